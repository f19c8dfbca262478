package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gtask/gtask/client"
	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// childArg, as this binary's first argument, makes it the watchers'
// process: see watchChild.
const childArg = "watch-child"

// childReport is what the watchers' process answers on its stdout.
type childReport struct {
	Watchers []watcherReport `json:"watchers"`
	// LatencyNS are, for every event of every watcher that happened after
	// that watcher's stream was opened, its arrival at the watcher minus
	// its time; Backlog counts the events that happened before (sent
	// from the store at once: not a latency).
	LatencyNS []int64 `json:"latency_ns"`
	Backlog   int     `json:"backlog"`
}

// watcherReport is what one watcher received.
type watcherReport struct {
	Events  int    `json:"events"`
	Digest  uint64 `json:"digest"`   // of every event, in order
	InOrder bool   `json:"in_order"` // cursors strictly increasing
	Last    string `json:"last"`     // the last event's kind
	Err     string `json:"err,omitempty"`
}

// digest hashes the events of one stream, in order, byte for byte.
type digest struct {
	h   hash.Hash64
	buf []byte
}

func (d *digest) add(ev *hostv1.Event) error {
	if d.h == nil {
		d.h = fnv.New64a()
	}
	var err error
	d.buf, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(d.buf[:0], ev)
	if err != nil {
		return err
	}
	d.h.Write(binary.AppendUvarint(nil, uint64(len(d.buf))))
	d.h.Write(d.buf)
	return nil
}

func (d *digest) sum() uint64 {
	if d.h == nil {
		return 0
	}
	return d.h.Sum64()
}

// watchRun is one run of the watched task.
type watchRun struct {
	wall      time.Duration // the task's start_time to end_time, as the daemon stored them
	submitEnd time.Duration // Submit's call to the poll that saw the end
	cpu       time.Duration // this process's (the daemon's) CPU, Submit to the last watcher's end
	childCPU  time.Duration // the watchers' process's CPU
	report    childReport
	commits   int64  // the store's commits during the run
	events    int    // the task's events, read after the end
	digest    uint64 // of those
}

// watchFigure is figure 2: one task with -watchers watchers against the
// same task with none (and with one, for the latency).
func watchFigure(b *bench) error {
	ctx := context.Background()
	cfg := b.cfg
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	levels := []int{0, cfg.watchers}
	if cfg.watchers > 1 {
		levels = []int{0, 1, cfg.watchers}
	}
	// Warm up: a run with the watchers.
	if _, err := b.watchRun(ctx, exe, cfg.watchers); err != nil {
		return err
	}
	runs := make([][]watchRun, len(levels))
	for round := range cfg.rounds {
		for i := range levels {
			j := (i + round) % len(levels)
			var r watchRun
			var err error
			pprof.Do(ctx, pprof.Labels("side", "watch", "watchers", strconv.Itoa(levels[j])), func(ctx context.Context) {
				r, err = b.watchRun(ctx, exe, levels[j])
			})
			if err != nil {
				return err
			}
			if err := r.check(); err != nil {
				return fmt.Errorf("%d watchers, round %d: %w", levels[j], round+1, err)
			}
			runs[j] = append(runs[j], r)
		}
	}

	fmt.Printf("\nwatch: one task of %d no-op parts, %d rounds; watchers in a child process over %d client connection(s), each from cursor 0 to the end\n",
		cfg.watchParts, cfg.rounds, cfg.conns)
	fmt.Printf("%-8s %10s %7s %8s %14s %9s %9s %9s %9s %11s %13s %11s\n", "watchers", "task wall", "ratio", "commits",
		"events/watcher", "identical", "lat p50", "lat p99", "lat max", "daemon cpu", "cpu/delivery", "watchers cpu")
	base := medianOf(runs[0], func(r watchRun) time.Duration { return r.wall })
	baseCPU := medianOf(runs[0], func(r watchRun) time.Duration { return r.cpu })
	for i, w := range levels {
		rs := runs[i]
		wall := medianOf(rs, func(r watchRun) time.Duration { return r.wall })
		cpu := medianOf(rs, func(r watchRun) time.Duration { return r.cpu })
		events, ident := "-", "-"
		lat := []string{"-", "-", "-"}
		perDelivery, childCPU := "-", "-"
		if w > 0 {
			var counts []string
			var all []time.Duration
			for _, r := range rs {
				counts = append(counts, strconv.Itoa(r.events))
				for _, ns := range r.report.LatencyNS {
					all = append(all, time.Duration(ns))
				}
			}
			events = strings.Join(uniq(counts), "/")
			ident = "yes" // check passed for every run
			lat = []string{ms(percentile(all, 50)), ms(percentile(all, 99)), ms(percentile(all, 100))}
			deliveries := w * rs[0].events
			perDelivery = us((cpu - baseCPU) / time.Duration(deliveries))
			childCPU = ms(medianOf(rs, func(r watchRun) time.Duration { return r.childCPU }))
		}
		var nc int64
		for _, r := range rs {
			nc += r.commits
		}
		fmt.Printf("%-8d %10s %6.3fx %8d %14s %9s %9s %9s %9s %11s %13s %11s\n", w, ms(wall), wall.Seconds()/base.Seconds(),
			nc/int64(len(rs)), events, ident, lat[0], lat[1], lat[2], ms(cpu), perDelivery, childCPU)
	}
	fmt.Println("task wall = median of the task's start_time to end_time (the daemon's record); ratio against 0 watchers;")
	fmt.Println("events/watcher = every watcher's count (each run: all watchers equal to the stored events, same order and bytes);")
	fmt.Println("lat = an event's arrival at a watcher minus its time, every event of every watcher that happened after")
	fmt.Println("its stream was opened; daemon cpu = this process's user+system CPU per run (Submit to the last watcher's")
	fmt.Println("end: the daemon, host.Run's host side, a GetTask poll every 20ms); cpu/delivery = (daemon cpu - that with")
	fmt.Println("0 watchers) / (watchers x events); watchers cpu = the watchers' process; commits = the store's")
	fmt.Println("write transactions per run (mean)")
	fmt.Println("per-round task wall:")
	for i, w := range levels {
		var s []string
		for _, r := range runs[i] {
			s = append(s, ms(r.wall))
		}
		fmt.Printf("  %3d watchers: %s\n", w, strings.Join(s, " "))
	}
	return nil
}

func medianOf(rs []watchRun, f func(watchRun) time.Duration) time.Duration {
	d := make([]time.Duration, len(rs))
	for i, r := range rs {
		d[i] = f(r)
	}
	return median(d)
}

func uniq(s []string) []string {
	var out []string
	for _, v := range s {
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}

// check says whether every watcher got every event of the task, in
// order, identical to the stored ones.
func (r watchRun) check() error {
	for i, w := range r.report.Watchers {
		switch {
		case w.Err != "":
			return fmt.Errorf("watcher %d: %s", i, w.Err)
		case !w.InOrder:
			return fmt.Errorf("watcher %d: events out of cursor order", i)
		case w.Events != r.events || w.Digest != r.digest:
			return fmt.Errorf("watcher %d: %d events (digest %x), the store has %d (%x)", i, w.Events, w.Digest, r.events, r.digest)
		case w.Last != "task_ended":
			return fmt.Errorf("watcher %d: the last event is %s, not task_ended", i, w.Last)
		}
	}
	return nil
}

// watchRun submits the watched task with w watchers following it (none:
// no child process) and polls GetTask until it has ended.
func (b *bench) watchRun(ctx context.Context, exe string, w int) (watchRun, error) {
	var r watchRun
	var (
		child  *exec.Cmd
		stdin  io.WriteCloser
		stdout *bufio.Reader
	)
	if w > 0 {
		child = exec.Command(exe, childArg, "-n", strconv.Itoa(w), "-conns", strconv.Itoa(b.cfg.conns))
		child.Env = append(os.Environ(), client.EnvHost+"="+b.addr, client.EnvToken+"="+b.token)
		child.Stderr = os.Stderr
		var err error
		if stdin, err = child.StdinPipe(); err != nil {
			return r, err
		}
		out, err := child.StdoutPipe()
		if err != nil {
			return r, err
		}
		if err := child.Start(); err != nil {
			return r, err
		}
		defer func() {
			if child.ProcessState == nil {
				_ = child.Process.Kill()
				_ = child.Wait()
			}
		}()
		stdout = bufio.NewReader(out)
		// The watchers' connections are up before the task exists.
		if line, err := stdout.ReadString('\n'); err != nil || line != "ready\n" {
			return r, fmt.Errorf("the watchers' process: %q, %v", line, err)
		}
	}
	db := filepath.Join(b.data, "gtask.db")
	n0, cpu0, t0 := commits(db), cpuSelf(), time.Now()
	t, err := b.c.Submit(ctx, client.SubmitRequest{App: b.noop, Params: json.RawMessage(fmt.Sprintf(`{"parts": %d}`, b.cfg.watchParts))})
	if err != nil {
		return r, err
	}
	id := t.GetTaskId()
	if stdin != nil {
		if _, err := io.WriteString(stdin, id+"\n"); err != nil {
			return r, err
		}
		stdin.Close()
	}
	for !client.Terminal(t.GetState()) {
		time.Sleep(20 * time.Millisecond)
		if t, err = b.c.Get(ctx, id); err != nil {
			return r, err
		}
	}
	r.submitEnd = time.Since(t0)
	if t.GetState() != hostv1.TaskState_TASK_STATE_FINISHED {
		return r, fmt.Errorf("watched task %s %s: %s", id, t.GetState(), t.GetReason())
	}
	if child != nil {
		if err := json.NewDecoder(stdout).Decode(&r.report); err != nil {
			return r, fmt.Errorf("the watchers' report: %w", err)
		}
		if err := child.Wait(); err != nil {
			return r, fmt.Errorf("the watchers' process: %w", err)
		}
		r.childCPU = child.ProcessState.UserTime() + child.ProcessState.SystemTime()
		if len(r.report.Watchers) != w {
			return r, fmt.Errorf("the watchers' process reports %d watchers, not %d", len(r.report.Watchers), w)
		}
	}
	r.cpu = cpuSelf() - cpu0
	r.commits = commits(db) - n0
	r.wall = t.GetEndTime().AsTime().Sub(t.GetStartTime().AsTime())
	// The stored events, for the watchers' check: outside the clock.
	var d digest
	err = b.c.Watch(ctx, id, false, 0, func(ev *hostv1.Event) error {
		r.events++
		return d.add(ev)
	})
	r.digest = d.sum()
	return r, err
}

// watchChild is the watchers' process: it dials the daemon named by
// GTASK_HOST with GTASK_TOKEN over -conns connections, says "ready", reads
// a task id from stdin, follows the task with -n concurrent watches from
// cursor 0 until each ends, and writes a childReport to stdout.
func watchChild(args []string) error {
	fs := flag.NewFlagSet(childArg, flag.ContinueOnError)
	n := fs.Int("n", 1, "watchers")
	conns := fs.Int("conns", 1, "client connections")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	clients := make([]*client.Client, max(*conns, 1))
	for i := range clients {
		c, err := client.Dial(ctx, os.Getenv(client.EnvHost), os.Getenv(client.EnvToken))
		if err != nil {
			return err
		}
		defer c.Close()
		// A call makes the connection: any answer of the daemon will do.
		if _, err := c.Get(ctx, "t-none"); status.Code(err) != codes.NotFound {
			return err
		}
		clients[i] = c
	}
	fmt.Println("ready")
	id, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return err
	}
	id = strings.TrimSpace(id)

	rep := childReport{Watchers: make([]watcherReport, *n)}
	lats := make([][]int64, *n)
	backlog := make([]int, *n)
	var wg sync.WaitGroup
	for i := range *n {
		wg.Go(func() {
			w := &rep.Watchers[i]
			w.InOrder = true
			var d digest
			var last int64
			opened := time.Now()
			err := clients[i%len(clients)].Watch(ctx, id, false, 0, func(ev *hostv1.Event) error {
				at := time.Now()
				if t := ev.GetTime().AsTime(); t.After(opened) {
					lats[i] = append(lats[i], int64(at.Sub(t)))
				} else {
					backlog[i]++
				}
				if ev.GetCursor() <= last {
					w.InOrder = false
				}
				last = ev.GetCursor()
				w.Events++
				w.Last = ev.GetKind()
				return d.add(ev)
			})
			w.Digest = d.sum()
			if err != nil {
				w.Err = err.Error()
			}
		})
	}
	wg.Wait()
	for i := range *n {
		rep.LatencyNS = append(rep.LatencyNS, lats[i]...)
		rep.Backlog += backlog[i]
	}
	if err := json.NewEncoder(os.Stdout).Encode(&rep); err != nil {
		return errors.Join(err, ctx.Err())
	}
	return nil
}
