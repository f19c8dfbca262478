package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/taskapi"
)

// noopRequestor is the least a correct requestor can do, so that a run's
// time is the host's: a task of K parts ({"parts": K}) is a counter in
// memory, with no store and no fsync. NextSubtask hands out the next part,
// AbortSubtask puts it back, Verify accepts without reading the result,
// and once every part is accepted it writes task_outputs/done.txt, the
// task's one output (a task whose outputs are empty has failed).
type noopRequestor struct {
	workDir string

	mu    sync.Mutex
	tasks map[string]*noopTask
}

type noopTask struct {
	parts int
	next  int            // the next part never handed out
	free  []int          // parts handed back by AbortSubtask
	live  map[string]int // subtask id -> part, until verified or aborted
	done  int
	ended bool
}

func newNoopRequestor(workDir string) *noopRequestor {
	return &noopRequestor{workDir: workDir, tasks: map[string]*noopTask{}}
}

func (r *noopRequestor) task(taskID string) (*noopTask, error) {
	t := r.tasks[taskID]
	if t == nil {
		return nil, fmt.Errorf("task %q: %w", taskID, requestor.ErrUnknownTask)
	}
	if t.ended {
		return nil, fmt.Errorf("task %q: %w", taskID, requestor.ErrTaskAborted)
	}
	return t, nil
}

func (r *noopRequestor) CreateTask(_ context.Context, taskID string, _ int, params json.RawMessage) (requestor.Task, error) {
	var p struct {
		Parts int `json:"parts"`
	}
	if err := json.Unmarshal(params, &p); err != nil || p.Parts <= 0 {
		return requestor.Task{}, fmt.Errorf("want {\"parts\": K > 0}: %w", requestor.ErrInvalidParams)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tasks[taskID] != nil {
		return requestor.Task{}, requestor.ErrTaskExists
	}
	r.tasks[taskID] = &noopTask{parts: p.Parts, live: map[string]int{}}
	return requestor.Task{EnvID: taskapi.DockerCPUEnvID()}, nil
}

func (r *noopRequestor) NextSubtask(_ context.Context, taskID, subtaskID, _ string) (*requestor.Subtask, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.task(taskID)
	if err != nil {
		return nil, err
	}
	if _, ok := t.live[subtaskID]; ok {
		return nil, requestor.ErrSubtaskExists
	}
	var part int
	switch {
	case len(t.free) > 0:
		part, t.free = t.free[len(t.free)-1], t.free[:len(t.free)-1]
	case t.next < t.parts:
		part = t.next
		t.next++
	default:
		return nil, nil
	}
	t.live[subtaskID] = part
	return &requestor.Subtask{Params: json.RawMessage(`{"part":` + strconv.Itoa(part) + `}`)}, nil
}

func (r *noopRequestor) Verify(_ context.Context, taskID, subtaskID string) (requestor.Verdict, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.task(taskID)
	if err != nil {
		return 0, "", err
	}
	if _, ok := t.live[subtaskID]; !ok {
		return 0, "", requestor.ErrUnknownSubtask
	}
	delete(t.live, subtaskID)
	t.done++
	if t.done == t.parts {
		out := filepath.Join(r.workDir, taskID, taskapi.TaskOutputsDir(), "done.txt")
		if err := os.WriteFile(out, []byte(strconv.Itoa(t.parts)+"\n"), 0o644); err != nil {
			return 0, "", err
		}
	}
	return requestor.Success, "", nil
}

func (r *noopRequestor) HasPendingSubtasks(_ context.Context, taskID string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.task(taskID)
	if err != nil {
		return false, err
	}
	return len(t.free) > 0 || t.next < t.parts, nil
}

func (r *noopRequestor) AbortSubtask(_ context.Context, taskID, subtaskID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.task(taskID)
	if err != nil {
		return err
	}
	part, ok := t.live[subtaskID]
	if !ok {
		return requestor.ErrUnknownSubtask
	}
	delete(t.live, subtaskID)
	t.free = append(t.free, part)
	return nil
}

func (r *noopRequestor) AbortTask(_ context.Context, taskID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.task(taskID)
	if err != nil {
		return err
	}
	t.ended = true
	return nil
}

func (r *noopRequestor) DiscardSubtasks(context.Context, string, []string) ([]string, error) {
	return nil, nil
}

func (r *noopRequestor) RunBenchmark(context.Context) (float64, error) { return 1, nil }

func (r *noopRequestor) Shutdown(context.Context) error { return nil }

// noopProvider's Compute writes "ok\n" to out in its task work dir.
type noopProvider struct{ workDir string }

func (p noopProvider) Compute(context.Context, string, string, json.RawMessage) (string, error) {
	return "out", os.WriteFile(filepath.Join(p.workDir, "out"), []byte("ok\n"), 0o644)
}

func (noopProvider) RunBenchmark(context.Context) (float64, error) { return 1, nil }

func noopRoles() appmain.Roles {
	return appmain.Roles{
		Requestor: func(workDir string, _ *slog.Logger) (requestor.Handler, error) {
			return newNoopRequestor(workDir), nil
		},
		Provider: func(workDir string, _ *slog.Logger) (provider.Handler, error) {
			return noopProvider{workDir: workDir}, nil
		},
	}
}

// grpcOnly starts apps with its inner launcher but hides everything of
// their instances but host.Instance, so that the Runner dials them as it
// dials a process.
type grpcOnly struct{ inner host.Launcher }

func (l grpcOnly) Start(ctx context.Context, role host.Role, workDir, logPath string) (host.Instance, error) {
	inst, err := l.inner.Start(ctx, role, workDir, logPath)
	if err != nil {
		return nil, err
	}
	return struct{ host.Instance }{inst}, nil
}

// BenchmarkRunNoop measures no-op subtasks per second through host.Run with
// the InlineLauncher: K parts per run, each a whole attempt (NextSubtask,
// the provider's dir and start, Compute, the output checked and copied
// back, Verify, the events). "grpc" runs the same app but dials every
// instance over loopback, as before the in-process path. Compare with
// BenchmarkNoopFloor, the same app's calls with no Runner at all.
func BenchmarkRunNoop(b *testing.B) {
	for _, bc := range []struct {
		path      string
		launcher  host.Launcher
		parts     int
		providers int
	}{
		{"direct", host.InlineLauncher{Roles: noopRoles()}, 2000, 1},
		{"direct", host.InlineLauncher{Roles: noopRoles()}, 2000, 2},
		{"grpc", grpcOnly{host.InlineLauncher{Roles: noopRoles()}}, 300, 2},
	} {
		b.Run(fmt.Sprintf("%s/providers=%d", bc.path, bc.providers), func(b *testing.B) {
			ctx := b.Context()
			var subtasks int
			var took time.Duration
			cpu := processCPU()
			for b.Loop() {
				res, err := host.Run(ctx, host.RunConfig{
					Launcher:  bc.launcher,
					TaskID:    "noop",
					WorkDir:   b.TempDir(),
					Params:    json.RawMessage(fmt.Sprintf(`{"parts": %d}`, bc.parts)),
					Providers: bc.providers,
				})
				if err != nil {
					b.Fatal(err)
				}
				if res.Outcome != host.Finished || res.Counts.Accepted != bc.parts {
					b.Fatalf("%s: %+v", res.Outcome, res.Summary())
				}
				subtasks += bc.parts
				took += res.Duration
			}
			reportSubtasks(b, subtasks, took, processCPU()-cpu)
		})
	}
}

// BenchmarkNoopFloor is BenchmarkRunNoop's floor: the same app's handlers
// called in a loop with no Runner, host or server at all (NextSubtask,
// Compute, which writes its file, Verify), on as many goroutines as the
// Runner has providers. The ratio of the two is the Runner's own cost.
func BenchmarkNoopFloor(b *testing.B) {
	for _, providers := range []int{1, 2} {
		b.Run(fmt.Sprintf("providers=%d", providers), func(b *testing.B) {
			const parts = 20000
			ctx := b.Context()
			var subtasks int
			var took time.Duration
			cpu := processCPU()
			for b.Loop() {
				dir := b.TempDir()
				req := newNoopRequestor(dir)
				if err := os.MkdirAll(filepath.Join(dir, "t", taskapi.TaskOutputsDir()), 0o755); err != nil {
					b.Fatal(err)
				}
				if _, err := req.CreateTask(ctx, "t", 0, json.RawMessage(fmt.Sprintf(`{"parts": %d}`, parts))); err != nil {
					b.Fatal(err)
				}
				var ids atomic.Int64
				var wg sync.WaitGroup
				start := time.Now()
				for w := range providers {
					provDir := filepath.Join(dir, "prov-"+strconv.Itoa(w))
					if err := os.Mkdir(provDir, 0o755); err != nil {
						b.Fatal(err)
					}
					prov := noopProvider{workDir: provDir}
					node := "node-" + strconv.Itoa(w)
					wg.Go(func() {
						for {
							id := "s" + strconv.FormatInt(ids.Add(1), 10)
							sub, err := req.NextSubtask(ctx, "t", id, node)
							if err != nil {
								b.Error(err)
								return
							}
							if sub == nil {
								return
							}
							if _, err := prov.Compute(ctx, "t", id, sub.Params); err != nil {
								b.Error(err)
								return
							}
							if v, _, err := req.Verify(ctx, "t", id); err != nil || v != requestor.Success {
								b.Error(v, err)
								return
							}
						}
					})
				}
				wg.Wait()
				took += time.Since(start)
				subtasks += parts
			}
			reportSubtasks(b, subtasks, took, processCPU()-cpu)
		})
	}
}

// reportSubtasks reports the subtasks per second of wall time, and the
// CPU time (user and system, of the whole process) each cost: on a shared
// machine the first depends on the neighbours, the second much less, and
// GOMAXPROCS divided by it is the rate the run would reach on idle cores.
func reportSubtasks(b *testing.B, subtasks int, took, cpu time.Duration) {
	b.ReportMetric(float64(subtasks)/took.Seconds(), "subtasks/s")
	b.ReportMetric(float64(took.Microseconds())/float64(subtasks), "µs/subtask")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(subtasks), "cpu-µs/subtask")
	}
}
