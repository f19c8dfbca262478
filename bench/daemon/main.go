// Command daemon measures what `gtask serve` (package host/daemon) costs
// on top of host.Run, each figure against a floor measured in the same
// run; README.md says what each figure means and quotes measured ones.
//
//	go run ./bench/daemon                        # both figures, about 1 to 2 minutes, data dir in /dev/shm
//	go run ./bench/daemon -dir /tmp              # the daemon's data dir (gtask.db, fsyncs) on /tmp
//	go run ./bench/daemon -only submit -k 60 -c 1,4 -cpuprofile daemon.pprof
//	go run ./bench/daemon -only watch -watchers 100 -conns 4
//
// Two figures:
//
//  1. submit: K small no-op tasks (-parts parts each) submitted to an
//     in-process daemon through the Go client (Submit, Wait, Results), one
//     after the other and from -c submitters at once, against the floor:
//     the same tasks run directly with host.Run and host.ProcessLauncher
//     (sharing a host.SlotPool of the daemon's size, as the daemon's runs
//     do) and their outputs read. Time per task, ratio, overhead in ms.
//  2. watch: one task of -watch-parts no-op parts with -watchers WatchTask
//     streams following it from cursor 0, against the same task with
//     none: the task's wall time, what each watcher received, the latency
//     from an event's time to its arrival, and the daemon's CPU. The
//     watchers run in a child process (this binary, "watch-child"), so that
//     this process's CPU is the daemon's.
//
// The no-op app is bench/runthroughput/noop, built static
// (CGO_ENABLED=0, -trimpath) as the other benchmarks build it. The sides
// of a comparison run in alternating rounds (rotating which goes first)
// so that the noise of a shared machine falls on all of them. With
// -cpuprofile, samples of the driving goroutines carry a "side" label
// (floor, daemon, watch); the daemon's own goroutines (gRPC handlers, its
// writer, its runs) carry none, since gRPC starts them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gtask/gtask/bench/internal/benchrun"

	"github.com/gtask/gtask/client"
	"github.com/gtask/gtask/host/daemon"
	"github.com/gtask/gtask/internal/rpcserver"
)

type config struct {
	dir        string
	k          int
	levels     []int
	parts      int
	rounds     int
	slots      int
	watchParts int
	watchers   int
	conns      int
	watchRound int
	only       map[string]bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		if err := watchChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "daemon bench watch-child:", err)
			os.Exit(1)
		}
		return
	}
	k := flag.Int("k", 40, "submit: tasks per side and round")
	c := flag.String("c", "1,4", "submit: comma-separated numbers of concurrent submitters (1: one task after the other)")
	parts := flag.Int("parts", 3, "submit: parts of each small task")
	rounds := flag.Int("rounds", 3, "alternating rounds of each side, for both figures")
	slots := flag.Int("slots", runtime.NumCPU(), "the daemon's provider slots (Config.Slots), and the floor's slot pool")
	watchParts := flag.Int("watch-parts", 200, "watch: parts of the watched task")
	watchers := flag.Int("watchers", 100, "watch: concurrent WatchTask streams on the task")
	conns := flag.Int("conns", 1, "watch: client connections the watchers share (round-robin)")
	only := flag.String("only", "submit,watch", "comma-separated figures to measure")
	dir := flag.String("dir", benchrun.TmpfsDir("gtask-daemon-bench"), "where the binary, the daemon's data dir and the floor's work dirs go (default: /dev/shm, a tmpfs, when writable, else os.TempDir(); see README.md)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of this process (daemon, clients and floor) to `file`")
	flag.Parse()

	cfg := config{dir: *dir, k: *k, parts: *parts, rounds: *rounds, slots: *slots,
		watchParts: *watchParts, watchers: *watchers, conns: *conns, only: map[string]bool{}}
	var err error
	if cfg.levels, err = benchrun.Levels("c", *c); err != nil {
		fail(err)
	}
	for _, f := range strings.Split(*only, ",") {
		switch f = strings.TrimSpace(f); f {
		case "submit", "watch":
			cfg.only[f] = true
		default:
			fail(fmt.Errorf("-only: unknown figure %q (want submit or watch)", f))
		}
	}
	if cfg.k < 1 || cfg.parts < 1 || cfg.rounds < 1 || cfg.slots < 1 || cfg.watchParts < 1 || cfg.watchers < 1 || cfg.conns < 1 {
		fail(errors.New("-k, -parts, -rounds, -slots, -watch-parts, -watchers and -conns must be at least 1"))
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
	fmt.Fprintln(os.Stderr, "daemon bench:", err)
	os.Exit(1)
}

// bench is one run of the benchmark: the no-op app, the daemon serving on
// loopback, a client of it, and the floor's slot pool.
type bench struct {
	cfg   config
	tmp   string
	noop  string // the no-op app's binary
	data  string // the daemon's data dir
	addr  string
	token string
	d     *daemon.Daemon
	c     *client.Client
	seq   int // the floor's task numbers; used by the driving goroutine only
}

func run(cfg config) (err error) {
	tmp, err := os.MkdirTemp(cfg.dir, "gtask-daemon-bench-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
	fmt.Printf("%d CPUs, GOMAXPROCS %d, %s, %d provider slots, data dir and work dirs in %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), cfg.slots, filepath.Dir(tmp))
	if out, err := exec.Command("uptime").Output(); err == nil {
		fmt.Printf("uptime: %s", out)
	}

	if d, err := syncCost(tmp); err == nil {
		fmt.Printf("a 4 KiB write and fsync there takes %s (bbolt makes 2 fdatasyncs per commit)\n", us(d))
	}

	b := &bench{cfg: cfg, tmp: tmp, noop: filepath.Join(tmp, "bin", "noop"), data: filepath.Join(tmp, "data")}
	build := exec.Command("go", "build", "-trimpath", "-o", b.noop, "./bench/runthroughput/noop")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building the no-op app (run from the module root): %w", err)
	}

	stop, err := b.serve()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stop()) }()

	if cfg.only["submit"] {
		if err := submitFigure(b); err != nil {
			return err
		}
	}
	if cfg.only["watch"] {
		if err := watchFigure(b); err != nil {
			return err
		}
	}
	return nil
}

// serve opens the daemon over a fresh data dir, serves it on 127.0.0.1:0
// with internal/rpcserver as `gtask serve` does, starts it and dials it
// with its admin token. stop undoes it all in `gtask serve`'s order: no
// new calls, the daemon closed, the server stopped.
func (b *bench) serve() (stop func() error, err error) {
	ctx := context.Background()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b.addr = lis.Addr().String()
	b.d, err = daemon.Open(ctx, daemon.Config{
		DataDir: b.data, Slots: b.cfg.slots, HostAddr: b.addr,
		CacheDir: filepath.Join(b.tmp, "cache"), // unused: the app is a binary
	})
	if err != nil {
		lis.Close()
		return nil, err
	}
	b.token = b.d.AdminToken()
	srv := rpcserver.New(rpcserver.Config{}, b.d.Register)
	serveCtx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx, lis) }()
	stop = func() error {
		var err error
		if b.c != nil {
			err = b.c.Close()
		}
		srv.RequestStop()
		cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
		defer ccancel()
		err = errors.Join(err, b.d.Close(cctx))
		cancel()
		return errors.Join(err, <-served)
	}
	if err := b.d.Start(ctx); err != nil {
		return nil, errors.Join(err, stop())
	}
	if b.c, err = client.Dial(ctx, b.addr, b.token); err != nil {
		return nil, errors.Join(err, stop())
	}
	return stop, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

func us(d time.Duration) string { return fmt.Sprintf("%.0fus", float64(d)/float64(time.Microsecond)) }

func median(d []time.Duration) time.Duration { return percentile(d, 50) }

// percentile is the nearest-rank percentile p (0 to 100) of d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// syncCost measures what a small write and its fsync cost in dir, where
// the daemon's store is: each commit of the store syncs twice.
func syncCost(dir string) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "sync-probe-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	const n = 50
	start := time.Now()
	for i := range n {
		if _, err := f.WriteAt(buf, int64(i%8)*4096); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / n, nil
}
