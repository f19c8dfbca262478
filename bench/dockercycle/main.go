// Command dockercycle measures what the docker runtime costs per subtask
// against a floor measured in the same run; README.md says what each
// figure means.
//
//	go run ./bench/dockercycle                     # the default: a few minutes
//	go run ./bench/dockercycle -n 40 -rounds 5 -p 2
//	go run ./bench/dockercycle -trace              # per engine call, both sides
//
// Both sides run containers of one image, built here from the no-op app
// (bench/runthroughput/noop) with docker.BuildImage and removed at the end
// (unless -keep-image):
//
//   - floor: -p workers that each, in a loop, create a container of the
//     image with the settings the docker launcher gives a provider (its
//     user, a bind-mounted work dir, an internal bridge network with
//     traffic between containers off, every capability dropped,
//     no-new-privileges, a read-only root file system, a tmpfs /tmp, the
//     launcher's default limits), wait for its next exit, start it, see it
//     exit (the app run without arguments prints its usage and exits 2)
//     and remove it. That is the least any docker runtime does for a
//     one-shot provider.
//   - gtask: host.Run of a no-op task of -n subtasks with the docker
//     launcher (docker.New) of the same image and -p providers: the
//     requestor in a container, each subtask a provider container that
//     starts, prints its readiness line, is dialled, serves one Compute,
//     exits and is removed.
//
// per subtask = a side's wall time / -n, for the floor all its cycles, for
// gtask the whole Run (the requestor's start, CreateTask, every subtask,
// the requestor's stop); the docker.New before and the Close after are
// outside it. Target: gtask at most 1.2x the floor. The sides alternate,
// rotating which goes first, so that noise from a shared machine falls on
// all of them; the figures are medians over the rounds.
//
// Nothing here is a test: there are no timing assertions anywhere.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/gtask/gtask/bench/internal/noopapp"
	"github.com/gtask/gtask/bench/internal/spawn"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/host/docker"
	"github.com/gtask/gtask/taskapi"
)

// target is the most gtask's time per subtask may be, as a multiple of the
// floor's.
const target = 1.2

// labelBench marks the floor's containers and network with the
// benchmark's run, so that whatever a failure leaves is found and removed.
const labelBench = "io.gtask.bench.dockercycle"

// cleanupTimeout bounds the removals at the end.
const cleanupTimeout = time.Minute

type config struct {
	n, rounds, p int
	bare         bool
	keepImage    bool
	trace        bool
	steps        bool
	dir          string
}

func main() {
	var cfg config
	flag.IntVar(&cfg.n, "n", 40, "subtasks per gtask run, and cycles per floor round")
	flag.IntVar(&cfg.rounds, "rounds", 5, "alternating rounds of each side")
	flag.IntVar(&cfg.p, "p", 1, "providers of the gtask run, and workers of the floor")
	flag.BoolVar(&cfg.bare, "bare", true, "also measure bare cycles (no settings at all, network none), for information")
	flag.BoolVar(&cfg.keepImage, "keep-image", false, "leave the benchmark's image in the engine, and print its reference")
	flag.BoolVar(&cfg.trace, "trace", false, "time every call to the engine, per side, and print the medians")
	flag.BoolVar(&cfg.steps, "steps", false, "after the rounds, drive -n providers through the launcher one at a time and time each step")
	flag.StringVar(&cfg.dir, "dir", "", "where the binary and the work dirs go (default: os.TempDir())")
	flag.Parse()
	if cfg.n < 1 || cfg.rounds < 1 || cfg.p < 1 {
		fail(errors.New("-n, -rounds and -p must be at least 1"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dockercycle:", err)
	os.Exit(1)
}

// bench is one run of the benchmark: the engine, the image, the floor's
// network, and what the sides measured.
type bench struct {
	cfg    config
	c      *client.Client
	tracer *tracer // nil without -trace
	tmp    string
	ref    string // the image
	id     string // the benchmark's run, labelBench's value
	net    string // the floor's network
	user   string // the containers' "uid:gid", as the launcher picks it
	seq    atomic.Int64
}

func run(ctx context.Context, cfg config) (err error) {
	b := &bench{cfg: cfg, id: strings.ToLower(rand.Text()[:12])}
	if b.tmp, err = os.MkdirTemp(cfg.dir, "dockercycle"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)
	if b.c, err = docker.Connect(ctx); err != nil {
		return err
	}
	defer b.c.Close()
	if cfg.trace {
		if b.c, b.tracer, err = tracedClient(ctx, b.c); err != nil {
			return err
		}
		defer b.c.Close()
	}
	v, err := b.c.ServerVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("%d CPUs, %s; Docker Engine %s (API %s, %s/%s)\n",
		runtime.NumCPU(), runtime.Version(), v.Version, v.APIVersion, v.Os, v.Arch)

	// Everything made from here on is removed on the way out, interrupted
	// or not, containers first.
	cleanup := context.WithoutCancel(ctx)
	if err := b.buildImage(ctx); err != nil {
		return err
	}
	defer func() {
		if cfg.keepImage {
			fmt.Println("image kept:", b.ref)
			return
		}
		rctx, cancel := context.WithTimeout(cleanup, cleanupTimeout)
		defer cancel()
		if _, rerr := b.c.ImageRemove(rctx, b.ref, image.RemoveOptions{Force: true, PruneChildren: true}); rerr != nil && !cerrdefs.IsNotFound(rerr) {
			err = errors.Join(err, fmt.Errorf("removing image %s: %w", b.ref, rerr))
		}
	}()
	if err := b.createNetwork(ctx); err != nil {
		return err
	}
	defer func() { err = errors.Join(err, b.removeLeftovers(cleanup)) }()
	return b.measure(ctx)
}

// buildImage builds the no-op app for the engine and makes its image.
func (b *bench) buildImage(ctx context.Context) error {
	arch, err := docker.EngineArch(ctx, b.c)
	if err != nil {
		return err
	}
	bin := filepath.Join(b.tmp, "noop")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./bench/runthroughput/noop")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building the no-op app (run from the module root): %w", err)
	}
	b.ref = "gtask-bench/dockercycle:" + b.id
	img, err := docker.BuildImage(ctx, b.c, docker.ImageSpec{Bin: bin, Ref: b.ref})
	if err != nil {
		return err
	}
	st, err := os.Stat(bin)
	if err != nil {
		return err
	}
	fmt.Printf("image %s (%s), the no-op app, %.1f MiB\n", b.ref, img.ID[:19], float64(st.Size())/(1<<20))
	return nil
}

// createNetwork creates the floor's network, made as the launcher makes
// its own.
func (b *bench) createNetwork(ctx context.Context) error {
	b.net = "gtask-bench-" + b.id
	_, err := b.c.NetworkCreate(ctx, b.net, network.CreateOptions{
		Driver:   "bridge",
		Internal: true,
		Options:  map[string]string{"com.docker.network.bridge.enable_icc": "false"},
		Labels:   map[string]string{labelBench: b.id},
	})
	if err != nil {
		return fmt.Errorf("creating network %s: %w", b.net, err)
	}
	// The launcher runs its containers as the host's user, or as the
	// image's when the host runs as root.
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65532, 65532
	}
	b.user = fmt.Sprintf("%d:%d", uid, gid)
	return nil
}

// removeLeftovers removes the floor's containers that a failure left, and
// its network.
func (b *bench) removeLeftovers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", labelBench+"="+b.id))
	cs, err := b.c.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("listing the floor's containers: %w", err)
	}
	var errs []error
	for _, ct := range cs {
		if err := b.c.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing container %s: %w", ct.ID[:12], err))
		}
	}
	if err := b.c.NetworkRemove(ctx, b.net); err != nil && !cerrdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("removing network %s: %w", b.net, err))
	}
	return errors.Join(errs...)
}

// side is what one side measured over the rounds.
type side struct {
	name     string
	per      []time.Duration // per subtask (wall / n), one per round
	lat      []time.Duration // every cycle (floor) or attempt (gtask)
	steady   []time.Duration // gtask: task_created to the last verdict, / n
	setup    []time.Duration // gtask: Run's start to task_created
	teardown []time.Duration // gtask: the last verdict to Run's return
}

func (b *bench) measure(ctx context.Context) error {
	floor := &side{name: "floor"}
	gtask := &side{name: "gtask"}
	bare := &side{name: "bare"}
	// Warm up: the image's layers, the engine's caches, a first run.
	fmt.Println("warming up...")
	if _, err := b.floorRound(ctx, b.floorConfig, 3); err != nil {
		return err
	}
	if _, err := b.gtaskRound(ctx, 3); err != nil {
		return err
	}
	type step struct {
		s   *side
		run func() error
	}
	steps := []step{
		{floor, func() error { return b.floorSide(ctx, floor, b.floorConfig) }},
		{gtask, func() error { return b.gtaskSide(ctx, gtask) }},
	}
	if b.cfg.bare {
		steps = append(steps, step{bare, func() error { return b.floorSide(ctx, bare, b.bareConfig) }})
	}
	fmt.Printf("\n%d rounds of %d subtasks, %d at a time, sides alternating\n", b.cfg.rounds, b.cfg.n, b.cfg.p)
	for round := range b.cfg.rounds {
		for i := range steps {
			st := steps[(i+round)%len(steps)]
			b.tracer.side(st.s.name)
			if err := st.run(); err != nil {
				return err
			}
			fmt.Printf("  round %d %-5s %s per subtask\n", round+1, st.s.name, ms(st.s.per[len(st.s.per)-1]))
		}
	}
	b.tracer.side("")
	b.report(floor, gtask, bare)
	if b.cfg.steps {
		b.tracer.side("steps")
		err := b.stepsRound(ctx)
		b.tracer.side("")
		return err
	}
	return nil
}

func (b *bench) report(floor, gtask, bare *side) {
	f, g := median(floor.per), median(gtask.per)
	ratio := g.Seconds() / f.Seconds()
	fmt.Printf("\nper subtask, median of %d rounds (-p %d)\n", b.cfg.rounds, b.cfg.p)
	fmt.Printf("%-6s %10s   %s\n", "floor", ms(f), "create, wait, start, exit, remove (the launcher's settings)")
	fmt.Printf("%-6s %10s   %s\n", "gtask", ms(g), "host.Run / n: requestor, CreateTask, every subtask, requestor's stop")
	steady := median(gtask.steady)
	fmt.Printf("%-6s %10s   %s\n", "", ms(steady), "of which subtasks alone: task_created to the last verdict / n")
	if b.cfg.bare {
		fmt.Printf("%-6s %10s   %s\n", "bare", ms(median(bare.per)), "the floor's cycle without any settings, network none (information)")
	}
	fmt.Printf("ratio  %9.3fx   gtask / floor (subtasks alone: %.3fx)\n", ratio, steady.Seconds()/f.Seconds())
	// The sides of a round ran next to each other: their ratio is less
	// exposed to the machine's swings than the medians' ratio, and shows
	// how far those swings go.
	paired := make([]float64, len(gtask.per))
	for r := range paired {
		paired[r] = gtask.per[r].Seconds() / floor.per[r].Seconds()
	}
	slices.Sort(paired)
	fmt.Printf("       per round: %s (median %.3fx)\n", ratios(paired), medianF(paired))
	fmt.Printf("\nwhere the time goes (medians)\n")
	fmt.Printf("  floor cycle p50 %s; gtask attempt p50 %s (provider dirs, container start, readiness line,\n",
		ms(median(floor.lat)), ms(median(gtask.lat)))
	fmt.Printf("  dial with health, Compute, exit, removal, output copied); gtask setup %s, teardown %s per run\n",
		ms(median(gtask.setup)), ms(median(gtask.teardown)))
	if b.tracer != nil {
		b.tracer.report(b.cfg.n*b.cfg.rounds, "floor", "gtask", "bare")
	}
	if ratio <= target {
		fmt.Printf("\nVERDICT: ok, gtask takes %.2fx the floor's time per subtask (target: at most %.1fx)\n", ratio, target)
	} else {
		fmt.Printf("\nVERDICT: over target, gtask takes %.2fx the floor's time per subtask (target: at most %.1fx)\n", ratio, target)
	}
}

// floorSide runs one round of floor cycles with the HostConfig mk makes.
func (b *bench) floorSide(ctx context.Context, s *side, mk func(dir string) *container.HostConfig) error {
	start := time.Now()
	lat, err := b.floorRound(ctx, mk, b.cfg.n)
	if err != nil {
		return err
	}
	s.per = append(s.per, time.Since(start)/time.Duration(b.cfg.n))
	s.lat = append(s.lat, lat...)
	return nil
}

// floorRound runs n floor cycles, p at a time, each worker over a work dir
// of its own.
func (b *bench) floorRound(ctx context.Context, mk func(dir string) *container.HostConfig, n int) ([]time.Duration, error) {
	hcs := make([]*container.HostConfig, b.cfg.p)
	for w := range hcs {
		dir, err := os.MkdirTemp(b.tmp, "floor-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if os.Getuid() == 0 {
			// As the launcher hands a work dir to the container's user.
			if err := os.Chown(dir, 65532, 65532); err != nil {
				return nil, err
			}
		}
		hcs[w] = mk(dir)
	}
	return spawn.Parallel(n, b.cfg.p, func(w int) error { return b.floorCycle(ctx, hcs[w]) })
}

// floorConfig is what the launcher gives a provider's container: the same
// network kind, mount, security settings and default limits.
func (b *bench) floorConfig(dir string) *container.HostConfig {
	pids := docker.DefaultPids
	return &container.HostConfig{
		NetworkMode:    container.NetworkMode(b.net),
		Mounts:         []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: taskapi.ContainerWorkDir()}},
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": "rw,nosuid,nodev,size=" + strconv.FormatInt(docker.DefaultTmpSize, 10)},
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Resources: container.Resources{
			Memory:     docker.DefaultMemory,
			MemorySwap: docker.DefaultMemory,
			NanoCPUs:   int64(docker.DefaultCPUs * 1e9),
			PidsLimit:  &pids,
		},
	}
}

// bareConfig is no settings at all, and no network: what a container
// costs the engine at the least.
func (b *bench) bareConfig(string) *container.HostConfig {
	return &container.HostConfig{NetworkMode: "none"}
}

// floorCycle creates a container that exits at once (the app without
// arguments: its usage, exit status 2), waits for its next exit, starts
// it, sees it exit and removes it.
func (b *bench) floorCycle(ctx context.Context, hc *container.HostConfig) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	name := fmt.Sprintf("gtask-bench-%s-%d", b.id, b.seq.Add(1))
	cfg := &container.Config{Image: b.ref, User: b.user, Labels: map[string]string{labelBench: b.id}}
	created, err := b.c.ContainerCreate(ctx, cfg, hc, nil, nil, name)
	if err != nil {
		return fmt.Errorf("floor: creating a container: %w", err)
	}
	remove := func() error {
		return b.c.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
	waitC, waitErr := b.c.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := b.c.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return errors.Join(fmt.Errorf("floor: starting %s: %w", name, err), remove())
	}
	select {
	case w := <-waitC:
		if w.StatusCode != 2 {
			return errors.Join(fmt.Errorf("floor: %s exited with status %d, want 2 (usage)", name, w.StatusCode), remove())
		}
	case err := <-waitErr:
		return errors.Join(fmt.Errorf("floor: waiting for %s: %w", name, err), remove())
	}
	if err := remove(); err != nil {
		return fmt.Errorf("floor: removing %s: %w", name, err)
	}
	return nil
}

// gtaskSide runs one no-op task with a launcher of its own.
func (b *bench) gtaskSide(ctx context.Context, s *side) error {
	st, err := b.gtaskRound(ctx, b.cfg.n)
	if err != nil {
		return err
	}
	n := time.Duration(b.cfg.n)
	s.per = append(s.per, st.Wall/n)
	s.steady = append(s.steady, (st.Wall-st.Setup-st.Teardown)/n)
	s.setup = append(s.setup, st.Setup)
	s.teardown = append(s.teardown, st.Teardown)
	s.lat = append(s.lat, st.Attempts...)
	return nil
}

// stepsRound starts -n providers with a docker launcher of the image, one
// at a time, as the host does (start, dial with health, Compute, stop),
// and prints how long each step took. With -trace, the engine calls the
// steps made are reported apart, as side "steps".
func (b *bench) stepsRound(ctx context.Context) (err error) {
	l, err := docker.New(ctx, docker.Config{Client: b.c, Image: b.ref})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close(context.WithoutCancel(ctx))) }()
	names := []string{"Start", "dial+health", "Compute", "Stop", "cycle"}
	steps := make([][]time.Duration, len(names))
	for i := range b.cfg.n {
		dir, err := os.MkdirTemp(b.tmp, "steps-")
		if err != nil {
			return err
		}
		t0 := time.Now()
		ts := []time.Time{t0}
		lap := func() { ts = append(ts, time.Now()) }
		inst, err := l.Start(ctx, host.RoleProvider, dir, dir+".log")
		if err != nil {
			return err
		}
		lap()
		pc, err := host.DialProvider(ctx, inst.Addr())
		if err != nil {
			inst.Kill()
			return err
		}
		lap()
		_, err = pc.Compute(ctx, "noop", strconv.Itoa(i), json.RawMessage(`{"part": 0}`))
		pc.Close()
		if err != nil {
			inst.Kill()
			return err
		}
		lap()
		if err := inst.Stop(ctx); err != nil {
			return err
		}
		lap()
		for j := range names[:len(names)-1] {
			steps[j] = append(steps[j], ts[j+1].Sub(ts[j]))
		}
		steps[len(names)-1] = append(steps[len(names)-1], ts[len(ts)-1].Sub(t0))
		os.RemoveAll(dir)
		os.Remove(dir + ".log")
	}
	fmt.Printf("\na provider through the launcher, step by step (%d, one at a time): p50 per step\n", b.cfg.n)
	for j, name := range names {
		fmt.Printf("  %-12s %10s\n", name, ms(median(steps[j])))
	}
	fmt.Println("Start = create, attach, wait, start, inspect, readiness line; Stop = SIGTERM (the app is")
	fmt.Println("exiting by itself already), its exit, the end of its output, its removal")
	if b.tracer != nil {
		b.tracer.report(b.cfg.n, "steps")
	}
	return nil
}

// gtaskRound runs one no-op task of n parts with a docker launcher of the
// image, made before the clock starts and closed after it stops.
func (b *bench) gtaskRound(ctx context.Context, n int) (st noopapp.RunStats, err error) {
	l, err := docker.New(ctx, docker.Config{Client: b.c, Image: b.ref})
	if err != nil {
		return st, err
	}
	defer func() { err = errors.Join(err, l.Close(context.WithoutCancel(ctx))) }()
	return noopapp.RunTask(ctx, l, b.tmp, n, b.cfg.p)
}

// tracer times every HTTP call to the engine, by side and by call. The
// attach, a hijacked connection, is not among them; a wait is timed to
// its answer's headers, which the engine sends once it waits.
type tracer struct {
	next    http.RoundTripper
	version *regexp.Regexp // the API version in a path

	mu    sync.Mutex
	cur   string                                // the side being measured; "" for none
	calls map[string]map[string][]time.Duration // side -> call -> durations
}

// tracedClient returns a client of the engine c talks to whose calls the
// returned tracer times.
func tracedClient(ctx context.Context, c *client.Client) (*client.Client, *tracer, error) {
	t := &tracer{
		next:    c.HTTPClient().Transport,
		version: regexp.MustCompile(`^/v[0-9.]+`),
		calls:   map[string]map[string][]time.Duration{},
	}
	tc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation(),
		client.WithHTTPClient(&http.Client{Transport: t}))
	if err != nil {
		return nil, nil, err
	}
	tc.NegotiateAPIVersion(ctx)
	return tc, t, nil
}

func (t *tracer) side(name string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.cur = name
	t.mu.Unlock()
}

func (t *tracer) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	d := time.Since(start)
	// "/v1.41/containers/ID/start" is "POST /containers/{id}/start".
	parts := strings.Split(t.version.ReplaceAllString(req.URL.Path, ""), "/")
	if len(parts) > 3 && parts[1] == "images" {
		// An image's reference may hold slashes: /images/REF/json.
		parts = []string{"", "images", "{ref}", parts[len(parts)-1]}
	}
	for i := 2; i < len(parts); i++ {
		switch parts[i-1] {
		case "containers", "networks", "images":
			if parts[i] != "create" && parts[i] != "json" && parts[i] != "prune" {
				parts[i] = "{id}"
			}
		}
	}
	call := req.Method + " " + strings.Join(parts, "/")
	t.mu.Lock()
	if t.cur != "" {
		m := t.calls[t.cur]
		if m == nil {
			m = map[string][]time.Duration{}
			t.calls[t.cur] = m
		}
		m[call] = append(m[call], d)
	}
	t.mu.Unlock()
	return resp, err
}

// report prints the calls of the sides named, per subtask of subtasks.
func (t *tracer) report(subtasks int, sides ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Printf("\ncalls to the engine (attach not included): calls per subtask, p50, time per subtask\n")
	for _, s := range sides {
		m := t.calls[s]
		for _, call := range slices.Sorted(maps.Keys(m)) {
			ds := m[call]
			var sum time.Duration
			for _, d := range ds {
				sum += d
			}
			fmt.Printf("  %-6s %-36s %5.2f %10s %10s\n", s, call, float64(len(ds))/float64(subtasks),
				ms(median(ds)), ms(sum/time.Duration(subtasks)))
		}
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func ratios(rs []float64) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%.2fx", r)
	}
	return b.String()
}

func medianF(s []float64) float64 {
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
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
