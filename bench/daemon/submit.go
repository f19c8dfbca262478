package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gtask/gtask/bench/internal/spawn"
	"github.com/gtask/gtask/client"
	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
	"github.com/gtask/gtask/host"
)

// daemonTask is what one task through the daemon took, step by step. The
// daemon runs in this process: its times (the task record's create, start
// and end) and the client's are on the same clock.
type daemonTask struct {
	whole   time.Duration // Submit's call to Results' return
	submit  time.Duration // the Submit call (CreateTask: checks, commit)
	queued  time.Duration // create_time to start_time: the run's goroutine resolves the app, makes the family token, stores RUNNING
	run     time.Duration // start_time to end_time: host.Run, and the end's commit
	seen    time.Duration // end_time to Wait's return: the commit, the watch's wake-up, a GetTask
	results time.Duration // the Results call
}

// floorTask is what one floor task took.
type floorTask struct {
	whole time.Duration // host.Run and the outputs read
	run   time.Duration // host.Run alone
}

// side is one side's totals at one concurrency.
type side struct {
	wall, cpu time.Duration
	tasks     int
	commits   int64
	perRound  []time.Duration // wall / K of each round
}

func (s *side) perTask() time.Duration { return s.wall / time.Duration(s.tasks) }

// submitFigure is figure 1: K small tasks through the daemon against the
// same tasks run directly by host.Run.
func submitFigure(b *bench) error {
	ctx := context.Background()
	cfg := b.cfg
	pool := host.NewSlotPool(cfg.slots)
	launcher := host.ProcessLauncher{Bin: b.noop, GtaskApp: true}
	params := json.RawMessage(fmt.Sprintf(`{"parts": %d}`, cfg.parts))
	want := fmt.Sprintf("%d parts\n", cfg.parts)
	db := filepath.Join(b.data, "gtask.db")

	var (
		mu     sync.Mutex
		dsteps []daemonTask
		fsteps []floorTask
		lastID string
	)
	oneDaemon := func(record bool) error {
		st, id, err := b.daemonTask(ctx, params, want)
		if err == nil && record {
			mu.Lock()
			dsteps, lastID = append(dsteps, st), id
			mu.Unlock()
		}
		return err
	}
	oneFloor := func(n int, record bool) error {
		st, err := b.floorTask(ctx, launcher, pool, n, params, want)
		if err == nil && record {
			mu.Lock()
			fsteps = append(fsteps, st)
			mu.Unlock()
		}
		return err
	}
	// Warm up both sides: the page cache, the connection, first runs.
	for i := range 3 {
		if err := oneDaemon(false); err != nil {
			return err
		}
		if err := oneFloor(-1-i, false); err != nil {
			return err
		}
	}

	type row struct {
		c             int
		floor, daemon side
		dsteps        []daemonTask
		fsteps        []floorTask
	}
	var rows []row
	fmt.Printf("\nsubmit: %d tasks of %d no-op parts per side and round, %d rounds; per task = the round's wall time / %d\n",
		cfg.k, cfg.parts, cfg.rounds, cfg.k)
	fmt.Printf("%-11s %10s %11s %7s %10s %10s %11s %12s\n",
		"submitters", "floor/task", "daemon/task", "ratio", "overhead", "floor cpu", "daemon cpu", "commits/task")
	for _, c := range cfg.levels {
		r := row{c: c}
		dsteps, fsteps = nil, nil
		floorSide := func() error {
			base := b.seq
			b.seq += cfg.k
			c0, t0 := cpuSelf(), time.Now()
			_, err := spawn.Parallel(cfg.k, c, func(int) error {
				mu.Lock()
				n := base
				base++
				mu.Unlock()
				return oneFloor(n, true)
			})
			wall := time.Since(t0)
			r.floor.add(wall, cpuSelf()-c0, cfg.k, 0)
			// The floor's work dirs go, outside the clock: the daemon's
			// stay in its data dir, as a served task's do.
			return errors.Join(err, os.RemoveAll(filepath.Join(b.tmp, "floor")))
		}
		daemonSide := func() error {
			n0, c0, t0 := commits(db), cpuSelf(), time.Now()
			_, err := spawn.Parallel(cfg.k, c, func(int) error { return oneDaemon(true) })
			wall := time.Since(t0)
			r.daemon.add(wall, cpuSelf()-c0, cfg.k, commits(db)-n0)
			return errors.Join(err, os.RemoveAll(filepath.Join(b.tmp, "results")))
		}
		sides := []func() error{floorSide, daemonSide}
		names := []string{"floor", "daemon"}
		for round := range cfg.rounds {
			for i := range sides {
				j := (i + round) % len(sides)
				var err error
				pprof.Do(ctx, pprof.Labels("side", names[j]), func(context.Context) { err = sides[j]() })
				if err != nil {
					return err
				}
			}
		}
		r.dsteps, r.fsteps = dsteps, fsteps
		rows = append(rows, r)
		f, d := r.floor.perTask(), r.daemon.perTask()
		fmt.Printf("%-11d %10s %11s %6.3fx %10s %10s %11s %12.1f\n", c, ms(f), ms(d),
			d.Seconds()/f.Seconds(), ms(d-f), ms(r.floor.cpu/time.Duration(r.floor.tasks)),
			ms(r.daemon.cpu/time.Duration(r.daemon.tasks)), float64(r.daemon.commits)/float64(r.daemon.tasks))
	}
	fmt.Println("ratio = daemon/task / floor/task; overhead = their difference; cpu = this process's user+system")
	fmt.Println("CPU per task (daemon side: the daemon, its client and the host.Runs it makes; floor: the host.Runs),")
	fmt.Println("not the apps'; commits = bbolt write transactions of gtask.db (2 fdatasyncs each)")
	fmt.Println("per-round ratios (daemon/task / floor/task of the same round):")
	for _, r := range rows {
		var s []string
		for i := range r.floor.perRound {
			s = append(s, fmt.Sprintf("%.2f", r.daemon.perRound[i].Seconds()/r.floor.perRound[i].Seconds()))
		}
		fmt.Printf("  %d submitter(s): %s\n", r.c, strings.Join(s, " "))
	}

	// Where a task's time goes, per level.
	fmt.Printf("\nwhere a task's time goes (medians per task, submit to results; at c > 1 tasks wait for slots)\n")
	fmt.Printf("%-11s %10s %10s | %10s %8s %9s %10s %9s %8s\n", "submitters", "floor", "host.Run",
		"daemon", "Submit", "->started", "->ended", "->Wait", "Results")
	for _, r := range rows {
		pick := func(f func(daemonTask) time.Duration) string {
			out := make([]time.Duration, len(r.dsteps))
			for i, s := range r.dsteps {
				out[i] = f(s)
			}
			return ms(median(out))
		}
		pickF := func(f func(floorTask) time.Duration) string {
			out := make([]time.Duration, len(r.fsteps))
			for i, s := range r.fsteps {
				out[i] = f(s)
			}
			return ms(median(out))
		}
		fmt.Printf("%-11d %10s %10s | %10s %8s %9s %10s %9s %8s\n", r.c,
			pickF(func(s floorTask) time.Duration { return s.whole }),
			pickF(func(s floorTask) time.Duration { return s.run }),
			pick(func(s daemonTask) time.Duration { return s.whole }),
			pick(func(s daemonTask) time.Duration { return s.submit }),
			pick(func(s daemonTask) time.Duration { return s.queued }),
			pick(func(s daemonTask) time.Duration { return s.run }),
			pick(func(s daemonTask) time.Duration { return s.seen }),
			pick(func(s daemonTask) time.Duration { return s.results }))
	}
	fmt.Println("floor = host.Run + its outputs read; daemon = Submit (CreateTask), created->started (the run's")
	fmt.Println("goroutine: app resolved, family token and RUNNING committed), started->ended (host.Run, its events")
	fmt.Println("stored, the end committed), ended->Wait (the watch woken, GetTask), Results (GetResults)")
	return b.eventsOf(ctx, lastID)
}

func (s *side) add(wall, cpu time.Duration, tasks int, commits int64) {
	s.wall += wall
	s.cpu += cpu
	s.tasks += tasks
	s.commits += commits
	s.perRound = append(s.perRound, wall/time.Duration(tasks))
}

// daemonTask submits one no-op task, waits for it and takes its results,
// as a user of the client would.
func (b *bench) daemonTask(ctx context.Context, params json.RawMessage, want string) (daemonTask, string, error) {
	var st daemonTask
	t0 := time.Now()
	t, err := b.c.Submit(ctx, client.SubmitRequest{App: b.noop, Params: params})
	if err != nil {
		return st, "", err
	}
	t1 := time.Now()
	id := t.GetTaskId()
	if t, err = b.c.Wait(ctx, id); err != nil {
		return st, id, err
	}
	t2 := time.Now()
	if t.GetState() != hostv1.TaskState_TASK_STATE_FINISHED {
		return st, id, fmt.Errorf("daemon task %s %s: %s", id, t.GetState(), t.GetReason())
	}
	dir := filepath.Join(b.tmp, "results", id)
	if _, err := b.c.Results(ctx, id, dir); err != nil {
		return st, id, err
	}
	t3 := time.Now()
	if out, _ := os.ReadFile(filepath.Join(dir, "done.txt")); string(out) != want {
		return st, id, fmt.Errorf("daemon task %s: done.txt says %q, want %q", id, out, want)
	}
	created, started, ended := t.GetCreateTime().AsTime(), t.GetStartTime().AsTime(), t.GetEndTime().AsTime()
	st = daemonTask{whole: t3.Sub(t0), submit: t1.Sub(t0), queued: started.Sub(created),
		run: ended.Sub(started), seen: t2.Sub(ended), results: t3.Sub(t2)}
	return st, id, nil
}

// floorTask runs one no-op task with host.Run, as the daemon's run does
// (process launcher, the slot pool's gate, all the slots as providers),
// and reads its outputs, as Results would.
func (b *bench) floorTask(ctx context.Context, l host.Launcher, pool *host.SlotPool, n int, params json.RawMessage, want string) (floorTask, error) {
	var st floorTask
	id := fmt.Sprintf("f%d", n)
	if n < 0 {
		id = fmt.Sprintf("w%d", -n)
	}
	t0 := time.Now()
	res, err := host.Run(ctx, host.RunConfig{
		Launcher:  l,
		TaskID:    id,
		WorkDir:   filepath.Join(b.tmp, "floor", id),
		Params:    params,
		Providers: b.cfg.slots,
		Gate:      pool.Gate(id),
	})
	if err != nil {
		return st, err
	}
	t1 := time.Now()
	if res.Outcome != host.Finished {
		return st, fmt.Errorf("floor task %s: %s (%s)", id, res.Outcome, res.Reason)
	}
	var done string
	for _, o := range res.Outputs {
		data, err := os.ReadFile(filepath.Join(res.OutputsDir, o))
		if err != nil {
			return st, err
		}
		if o == "done.txt" {
			done = string(data)
		}
	}
	t2 := time.Now()
	if done != want {
		return st, fmt.Errorf("floor task %s: done.txt says %q, want %q", id, done, want)
	}
	return floorTask{whole: t2.Sub(t0), run: t1.Sub(t0)}, nil
}

// eventsOf prints how many events of each kind task id has in the store:
// what each small task costs the store.
func (b *bench) eventsOf(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	kinds := map[string]int{}
	n := 0
	err := b.c.Watch(ctx, id, false, 0, func(ev *hostv1.Event) error {
		kinds[ev.GetKind()]++
		n++
		return nil
	})
	if err != nil {
		return err
	}
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	var s []string
	for _, k := range names {
		s = append(s, fmt.Sprintf("%s %d", k, kinds[k]))
	}
	fmt.Printf("  one task's stored events: %d (%s)\n", n, strings.Join(s, ", "))
	return nil
}
