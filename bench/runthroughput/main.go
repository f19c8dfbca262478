// Command runthroughput measures how many subtasks a whole task run gets
// through, each figure against a floor or a target measured in the same
// run; README.md says what each figure means and what limits it.
//
//	go run ./bench/runthroughput                  # the default: 2 to 3 minutes, work dirs in /dev/shm
//	go run ./bench/runthroughput -dir /tmp        # work dirs on /tmp (a disk, often)
//	go run ./bench/runthroughput -n 600 -rounds 5 -pairs 5
//	go run ./bench/runthroughput -only inline -inline-n 20000
//	go run ./bench/runthroughput -only process -p 2 -cpuprofile host.pprof
//
// Three figures:
//
//  1. process: a no-op app (noop/, handlers in ../internal/noopapp) run by
//     host.Run with host.ProcessLauncher at each -p, in subtasks per second
//     of the whole Run, against the floor: -p workers spawning a minimal
//     gRPC binary (../internal/floor, with -write-out), reading its readiness line, calling Compute and
//     waiting for its exit, for the same number of subtasks. Target: gtask
//     at least 0.75x the floor's rate at every -p. A third side, "app",
//     drives the no-op app's own binary with the floor's driver, to split
//     the gap between the app binary and the host.
//  2. mandelbrot: examples/mandelbrot (2048x1536, max_iter 1000, strips of
//     64 rows) with 2 providers against 1, runs alternating 1,2,1,2...;
//     speedup = median t1 / median t2. Target: at least 1.8x on 2 cores.
//  3. inline: the same no-op app's handlers served in process by
//     host.InlineLauncher, in subtasks per second of the whole Run. Target:
//     at least 5,000/s.
//
// Every binary is built static (CGO_ENABLED=0, -trimpath) with the same
// flags. The sides of a comparison run in alternating rounds (and rotating
// order) so that noise from a shared machine falls on all of them. With
// -cpuprofile, the process figure's samples carry a "side" label (floor,
// app, gtask): go tool pprof -tagfocus side=gtask.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gtask/gtask/bench/internal/benchrun"

	"github.com/gtask/gtask/bench/internal/noopapp"
	"github.com/gtask/gtask/bench/internal/spawn"
	"github.com/gtask/gtask/host"
)

// The targets the figures are held to.
const (
	processTarget = 0.75 // gtask's rate / the floor's
	speedupTarget = 1.8  // mandelbrot t1 / t2
	inlineTarget  = 5000 // subtasks/s
)

type config struct {
	dir         string
	n, rounds   int
	levels      []int
	pairs       int
	mandel      string
	inlineN     int
	inlineRound int
	only        map[string]bool
}

func main() {
	n := flag.Int("n", 200, "process: subtasks per run (and per floor round)")
	par := flag.String("p", "1,2,4", "process and inline: comma-separated provider counts")
	rounds := flag.Int("rounds", 3, "process: alternating floor/gtask rounds per provider count")
	pairs := flag.Int("pairs", 3, "mandelbrot: alternating (1 provider, 2 providers) pairs of runs")
	mandel := flag.String("mandel-params", `{"width": 2048, "height": 1536, "max_iter": 1000, "rows_per_part": 64}`, "mandelbrot: the task's params")
	inlineN := flag.Int("inline-n", 0, "inline: subtasks per run; 0 sizes a run to about 2 s")
	inlineRounds := flag.Int("inline-rounds", 2, "inline: runs per provider count")
	only := flag.String("only", "process,mandelbrot,inline", "comma-separated figures to measure")
	dir := flag.String("dir", benchrun.TmpfsDir("runthroughput"), "where the binaries and the runs' work dirs go (default: /dev/shm, a tmpfs, when there is one, else os.TempDir(); see README.md)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (the host side) to `file`")
	flag.Parse()

	cfg := config{dir: *dir, n: *n, rounds: *rounds, pairs: *pairs, mandel: *mandel,
		inlineN: *inlineN, inlineRound: *inlineRounds, only: map[string]bool{}}
	var err error
	if cfg.levels, err = benchrun.Levels("p", *par); err != nil {
		fail(err)
	}
	for _, f := range strings.Split(*only, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "process", "mandelbrot", "inline":
			cfg.only[f] = true
		default:
			fail(fmt.Errorf("-only: unknown figure %q (want process, mandelbrot or inline)", f))
		}
	}
	if cfg.n < 1 || cfg.rounds < 1 || cfg.pairs < 1 || cfg.inlineN < 0 || cfg.inlineRound < 1 {
		fail(errors.New("-n, -rounds, -pairs and -inline-rounds must be at least 1, -inline-n at least 0"))
	}
	if !json.Valid([]byte(cfg.mandel)) {
		fail(errors.New("-mandel-params is not JSON"))
	}
	stopProfile, err := benchrun.StartProfile(*cpuprofile)
	if err != nil {
		fail(err)
	}
	defer stopProfile()
	if err := run(cfg); err != nil {
		stopProfile()
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "runthroughput:", err)
	os.Exit(1)
}

func run(cfg config) error {
	tmp, err := os.MkdirTemp(cfg.dir, "runthroughput")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Printf("%d CPUs, GOMAXPROCS %d, %s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version())
	mk, cr, err := inodeCost(tmp)
	if err != nil {
		return err
	}
	fmt.Printf("work dirs in %s: a mkdir takes %s, a file's creation %s (a no-op subtask makes 5, the floor none)\n",
		filepath.Dir(tmp), us(mk), us(cr))
	pkgs := map[string]string{}
	if cfg.only["process"] {
		pkgs["floor"] = "./bench/internal/floor"
		pkgs["noop"] = "./bench/runthroughput/noop"
	}
	if cfg.only["mandelbrot"] {
		pkgs["mandelbrot"] = "./examples/mandelbrot"
	}
	bins := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(pkgs)) {
		out := filepath.Join(tmp, "bin", name)
		cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkgs[name])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s: %w", name, err)
		}
		st, err := os.Stat(out)
		if err != nil {
			return err
		}
		fmt.Printf("%-10s %5.1f MiB\n", name, float64(st.Size())/(1<<20))
		bins[name] = out
	}
	if cfg.only["process"] {
		if err := processFigure(cfg, tmp, bins["floor"], bins["noop"]); err != nil {
			return err
		}
	}
	if cfg.only["mandelbrot"] {
		if err := mandelbrotFigure(cfg, tmp, bins["mandelbrot"]); err != nil {
			return err
		}
	}
	if cfg.only["inline"] {
		if err := inlineFigure(cfg, tmp); err != nil {
			return err
		}
	}
	return nil
}

// processFigure is figure 1: the no-op app on the process runtime against
// the floor. A third side, "app", drives the no-op app's binary as a
// provider with the floor's driver: what separates the floor from it is the
// app binary (appmain, health, ...), what separates it from gtask is the
// host.
func processFigure(cfg config, tmp, floorBin, noopBin string) error {
	launcher := host.ProcessLauncher{Bin: noopBin, GtaskApp: true}
	floorCmd := func(string) []string { return []string{floorBin, "-write-out"} }
	appCmd := func(dir string) []string { return []string{noopBin, "--work-dir", dir, "provider", "0"} }
	// Warm the page cache and the machine before measuring.
	if _, err := floorCycles(floorCmd, tmp, 20, 2); err != nil {
		return err
	}
	if _, err := floorCycles(appCmd, tmp, 20, 2); err != nil {
		return err
	}
	if _, err := noopapp.RunTask(context.Background(), launcher, tmp, 20, 2); err != nil {
		return err
	}
	type side struct {
		wall, cpuSelf, cpuChildren time.Duration
		lat                        []time.Duration
		setup, teardown            time.Duration
	}
	type row struct {
		p                 int
		floor, app, gtask side
	}
	cycleSide := func(cmd func(string) []string, p int, s *side) func() error {
		return func() error {
			self0, ch0 := cpuTimes()
			start := time.Now()
			lat, err := floorCycles(cmd, tmp, cfg.n, p)
			s.wall += time.Since(start)
			self1, ch1 := cpuTimes()
			s.cpuSelf += self1 - self0
			s.cpuChildren += ch1 - ch0
			s.lat = append(s.lat, lat...)
			return err
		}
	}
	var rows []row
	fmt.Printf("\nprocess runtime: a no-op app's whole host.Run vs the floor (%d subtasks x %d rounds per row)\n", cfg.n, cfg.rounds)
	fmt.Printf("%-9s %9s %9s %7s %7s\n", "providers", "floor/s", "gtask/s", "ratio", "target")
	for _, p := range cfg.levels {
		r := row{p: p}
		gtaskSide := func() error {
			self0, ch0 := cpuTimes()
			st, err := noopapp.RunTask(context.Background(), launcher, tmp, cfg.n, p)
			if err != nil {
				return err
			}
			self1, ch1 := cpuTimes()
			r.gtask.cpuSelf += self1 - self0
			r.gtask.cpuChildren += ch1 - ch0
			r.gtask.wall += st.Wall
			r.gtask.setup += st.Setup
			r.gtask.teardown += st.Teardown
			r.gtask.lat = append(r.gtask.lat, st.Attempts...)
			return nil
		}
		sides := []func() error{cycleSide(floorCmd, p, &r.floor), gtaskSide, cycleSide(appCmd, p, &r.app)}
		// The labels tell the sides apart in a -cpuprofile (pprof -tagfocus side=gtask).
		names := []string{"floor", "gtask", "app"}
		for round := range cfg.rounds {
			for i := range sides {
				j := (i + round) % len(sides)
				var err error
				pprof.Do(context.Background(), pprof.Labels("side", names[j]), func(context.Context) { err = sides[j]() })
				if err != nil {
					return err
				}
			}
		}
		rows = append(rows, r)
		total := float64(cfg.n * cfg.rounds)
		floorRate, gtaskRate := total/r.floor.wall.Seconds(), total/r.gtask.wall.Seconds()
		ratio := gtaskRate / floorRate
		fmt.Printf("%-9d %9.1f %9.1f %6.3fx %7s\n", p, floorRate, gtaskRate, ratio,
			verdict(ratio >= processTarget, fmt.Sprintf("%.2f", processTarget)))
	}
	fmt.Println("ratio = gtask/s / floor/s: subtasks per second of the whole host.Run / of the floor's workers")

	fmt.Printf("\nwhere the time goes (per subtask; app = the no-op binary driven like the floor)\n")
	fmt.Printf("%-9s %9s %9s %11s %9s %9s %11s %11s %9s %9s\n", "providers",
		"floor p50", "app p50", "attempt p50", "floor cpu", "app cpu", "host cpu", "g.apps cpu", "setup", "teardown")
	total := time.Duration(cfg.n * cfg.rounds)
	for _, r := range rows {
		fmt.Printf("%-9d %9s %9s %11s %9s %9s %11s %11s %9s %9s\n", r.p,
			ms(median(r.floor.lat)), ms(median(r.app.lat)), ms(median(r.gtask.lat)),
			ms((r.floor.cpuSelf+r.floor.cpuChildren)/total), ms((r.app.cpuSelf+r.app.cpuChildren)/total),
			ms(r.gtask.cpuSelf/total), ms(r.gtask.cpuChildren/total),
			ms(r.gtask.setup/time.Duration(cfg.rounds)), ms(r.gtask.teardown/time.Duration(cfg.rounds)))
	}
	fmt.Println("p50 = one floor or app cycle, one gtask attempt (provider dir, spawn, readiness line,")
	fmt.Println("dial, Compute, exit, output linked back); cpu = user+system CPU per subtask, floor and")
	fmt.Println("app: driver and child together; gtask: the host process (host cpu) and the requestor and")
	fmt.Println("providers (g.apps cpu); setup = Run's start to task_created (requestor spawn, dial,")
	fmt.Println("CreateTask) and teardown = last verdict to Run's return, per run, inside gtask/s")
	return nil
}

func verdict(ok bool, target string) string {
	if ok {
		return "ok"
	}
	return "<" + target
}

func us(d time.Duration) string { return fmt.Sprintf("%.0fus", float64(d)/float64(time.Microsecond)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// floorCycles runs n floor cycles of the command cmd gives for a worker's
// dir, p at a time, each worker in a dir of its own (the floor writes its
// output in its current directory), and returns each one's time.
func floorCycles(cmd func(dir string) []string, tmp string, n, p int) ([]time.Duration, error) {
	dirs := make([]string, p)
	args := make([][]string, p)
	logs := make([]*os.File, p)
	for w := range p {
		dir, err := os.MkdirTemp(tmp, "floor-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		// One log per worker, as stderr, opened once.
		logf, err := os.Create(filepath.Join(dir, "log"))
		if err != nil {
			return nil, err
		}
		defer logf.Close()
		dirs[w], args[w], logs[w] = dir, cmd(dir), logf
	}
	return spawn.Parallel(n, p, func(w int) error {
		return spawn.Cycle(args[w], dirs[w], logs[w])
	})
}

// mandelbrotFigure is figure 2: examples/mandelbrot with 2 providers
// against 1.
func mandelbrotFigure(cfg config, tmp, bin string) error {
	launcher := host.ProcessLauncher{Bin: bin, GtaskApp: true}
	params := json.RawMessage(cfg.mandel)
	// Warm up: the page cache, and a first run's costs.
	if _, err := mandelRun(launcher, tmp, json.RawMessage(`{}`), 2); err != nil {
		return err
	}
	fmt.Printf("\nmandelbrot %s: 2 providers vs 1, %d alternating pairs\n", cfg.mandel, cfg.pairs)
	var t1, t2 []time.Duration
	for range cfg.pairs {
		for _, p := range []int{1, 2} {
			d, err := mandelRun(launcher, tmp, params, p)
			if err != nil {
				return err
			}
			fmt.Printf("  %d provider(s): %s\n", p, d.Round(time.Millisecond))
			if p == 1 {
				t1 = append(t1, d)
			} else {
				t2 = append(t2, d)
			}
		}
	}
	m1, m2 := median(t1), median(t2)
	speedup := m1.Seconds() / m2.Seconds()
	fmt.Printf("%-12s %-12s %8s %7s\n", "t1 median", "t2 median", "speedup", "target")
	fmt.Printf("%-12s %-12s %7.3fx %7s\n", m1.Round(time.Millisecond), m2.Round(time.Millisecond),
		speedup, verdict(speedup >= speedupTarget, fmt.Sprintf("%.1f", speedupTarget)))
	fmt.Println("speedup = median wall time of a whole run with 1 provider / with 2")
	return nil
}

func mandelRun(launcher host.Launcher, tmp string, params json.RawMessage, p int) (time.Duration, error) {
	work, err := os.MkdirTemp(tmp, "mandel-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(work)
	start := time.Now()
	res, err := host.Run(context.Background(), host.RunConfig{
		Launcher: launcher, TaskID: "mandelbrot", WorkDir: work, Params: params, Providers: p,
	})
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if res.Outcome != host.Finished || res.Counts.Failed != 0 || !slices.Contains(res.Outputs, "mandelbrot.png") {
		return 0, fmt.Errorf("mandelbrot run: %s (%s), %d failed attempts, outputs %v; events in %s",
			res.Outcome, res.Reason, res.Counts.Failed, res.Outputs, res.EventsPath)
	}
	return d, nil
}

// inlineFigure is figure 3: the no-op app's handlers served in process.
func inlineFigure(cfg config, tmp string) error {
	launcher := host.InlineLauncher{Roles: noopapp.Roles()}
	// The warm-up sizes the runs when -inline-n is 0: about 2 s each.
	const warm = 300
	st, err := noopapp.RunTask(context.Background(), launcher, tmp, warm, 2)
	if err != nil {
		return err
	}
	if cfg.inlineN == 0 {
		cfg.inlineN = min(max(int(2*warm/st.Wall.Seconds()), 300), 100_000)
	}
	fmt.Printf("\ninline runtime: the no-op app's whole host.Run (%d subtasks x %d runs per row)\n", cfg.inlineN, cfg.inlineRound)
	fmt.Printf("%-9s %9s %7s %11s %9s %10s %10s\n", "providers", "inline/s", "target", "attempt p50", "cpu", "setup", "teardown")
	for _, p := range cfg.levels {
		var wall, setup, teardown, cpu time.Duration
		var attempts []time.Duration
		for range cfg.inlineRound {
			self0, _ := cpuTimes()
			st, err := noopapp.RunTask(context.Background(), launcher, tmp, cfg.inlineN, p)
			if err != nil {
				return err
			}
			self1, _ := cpuTimes()
			cpu += self1 - self0
			wall += st.Wall
			setup += st.Setup
			teardown += st.Teardown
			attempts = append(attempts, st.Attempts...)
		}
		rate := float64(cfg.inlineN*cfg.inlineRound) / wall.Seconds()
		fmt.Printf("%-9d %9.1f %7s %11s %9s %10s %10s\n", p, rate,
			verdict(rate >= inlineTarget, strconv.Itoa(inlineTarget)), ms(median(attempts)),
			us(cpu/time.Duration(cfg.inlineN*cfg.inlineRound)),
			ms(setup/time.Duration(cfg.inlineRound)), ms(teardown/time.Duration(cfg.inlineRound)))
	}
	fmt.Println("inline/s = subtasks / wall time of whole runs (setup and teardown included);")
	fmt.Println("cpu = this process's user+system CPU per subtask")
	return nil
}

// inodeCost measures what creating a directory and a file costs in dir,
// which the host does for every subtask: on a slow file system that, not
// the host's code, can set the pace.
func inodeCost(dir string) (mkdir, create time.Duration, err error) {
	d, err := os.MkdirTemp(dir, "probe-")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(d)
	const n = 200
	start := time.Now()
	for i := range n {
		if err := os.Mkdir(filepath.Join(d, "d"+strconv.Itoa(i)), 0o755); err != nil {
			return 0, 0, err
		}
	}
	mkdir = time.Since(start) / n
	start = time.Now()
	for i := range n {
		if err := os.WriteFile(filepath.Join(d, "f"+strconv.Itoa(i)), []byte("ok\n"), 0o644); err != nil {
			return 0, 0, err
		}
	}
	create = time.Since(start) / n
	return mkdir, create, nil
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
