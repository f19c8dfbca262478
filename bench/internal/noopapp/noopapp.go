// Package noopapp is the no-op app of the runthroughput benchmark: its
// handlers do as little as an app can while still being a correct Task API
// app, so that a run's time is the host's.
//
// The requestor is a raw requestor.Handler, not the SDK: a task of K parts
// (params {"parts": K}, default 100) is a counter in memory. NextSubtask
// hands out the next part ({"part": N}), AbortSubtask puts it back, Verify
// always answers SUCCESS without reading the result, and once every part is
// accepted the task has ended. There is no store and no fsync; the only
// files it writes are those a host that shares the file system reads:
// {task dir}/.gtask/task.json ({"parts": K}) at CreateTask, and at the end
// task_outputs/done.txt and .gtask/status.json ({"state": "finished"}).
//
// The provider's Compute writes "ok\n" to out in its task work dir and
// names it.
package noopapp

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/taskapi"
)

// DefaultParts is the number of parts of a task whose params name none.
const DefaultParts = 100

// maxParts bounds a task's parts, so that a typo cannot make the requestor
// allocate without end.
const maxParts = 10_000_000

// Roles makes the no-op app's handlers, for appmain.Main and
// host.InlineLauncher alike.
func Roles() appmain.Roles {
	return appmain.Roles{
		Requestor: func(workDir string, _ *slog.Logger) (requestor.Handler, error) {
			return NewRequestor(workDir), nil
		},
		Provider: func(workDir string, _ *slog.Logger) (provider.Handler, error) {
			return Provider{WorkDir: workDir}, nil
		},
	}
}

// Params are a no-op task's params.
type Params struct {
	Parts int `json:"parts"`
}

// Requestor is the no-op requestor: every task a counter in memory.
type Requestor struct {
	workDir string

	mu    sync.Mutex
	tasks map[string]*task
}

var _ requestor.Handler = (*Requestor)(nil)

type task struct {
	dir      string
	parts    int
	next     int            // the next part never handed out
	free     []int          // parts handed back by AbortSubtask
	live     map[string]int // subtask id -> part, until verified or aborted
	accepted []bool
	done     int
	ended    bool
}

// NewRequestor returns a requestor over workDir, where task T's dir is
// workDir/T.
func NewRequestor(workDir string) *Requestor {
	return &Requestor{workDir: workDir, tasks: map[string]*task{}}
}

func (r *Requestor) task(id string) (*task, error) {
	t, ok := r.tasks[id]
	if !ok {
		return nil, fmt.Errorf("task %q: %w", id, requestor.ErrUnknownTask)
	}
	return t, nil
}

func (r *Requestor) CreateTask(_ context.Context, taskID string, maxSubtasks int, params json.RawMessage) (requestor.Task, error) {
	p := Params{Parts: DefaultParts}
	if len(params) > 0 {
		if err := json.Unmarshal(params, &p); err != nil {
			return requestor.Task{}, fmt.Errorf("params: %v: %w", err, requestor.ErrInvalidParams)
		}
	}
	if p.Parts < 1 || p.Parts > maxParts {
		return requestor.Task{}, fmt.Errorf("parts %d: want 1 to %d: %w", p.Parts, maxParts, requestor.ErrInvalidParams)
	}
	if maxSubtasks > 0 {
		p.Parts = min(p.Parts, maxSubtasks)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.tasks[taskID]; ok {
		return requestor.Task{}, fmt.Errorf("task %q: %w", taskID, requestor.ErrTaskExists)
	}
	t := &task{
		dir: filepath.Join(r.workDir, taskID), parts: p.Parts,
		live: map[string]int{}, accepted: make([]bool, p.Parts),
	}
	if err := os.MkdirAll(filepath.Join(t.dir, ".gtask"), 0o755); err != nil {
		return requestor.Task{}, err
	}
	info := []byte(`{"parts": ` + strconv.Itoa(p.Parts) + "}\n")
	if err := os.WriteFile(filepath.Join(t.dir, ".gtask", "task.json"), info, 0o644); err != nil {
		return requestor.Task{}, err
	}
	r.tasks[taskID] = t
	return requestor.Task{EnvID: taskapi.DockerCPUEnvID()}, nil
}

func (r *Requestor) NextSubtask(_ context.Context, taskID, subtaskID, _ string) (*requestor.Subtask, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.task(taskID)
	if err != nil {
		return nil, err
	}
	if t.ended {
		return nil, fmt.Errorf("task %q is finished: %w", taskID, requestor.ErrWrongState)
	}
	if _, ok := t.live[subtaskID]; ok {
		return nil, fmt.Errorf("subtask %q: %w", subtaskID, requestor.ErrSubtaskExists)
	}
	var part int
	switch {
	case len(t.free) > 0:
		part = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
	case t.next < t.parts:
		part = t.next
		t.next++
	default:
		return nil, nil
	}
	t.live[subtaskID] = part
	return &requestor.Subtask{Params: json.RawMessage(`{"part": ` + strconv.Itoa(part) + "}")}, nil
}

func (r *Requestor) Verify(_ context.Context, taskID, subtaskID string) (requestor.Verdict, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.task(taskID)
	if err != nil {
		return 0, "", err
	}
	part, ok := t.live[subtaskID]
	if !ok {
		return 0, "", fmt.Errorf("subtask %q: %w", subtaskID, requestor.ErrUnknownSubtask)
	}
	delete(t.live, subtaskID)
	if !t.accepted[part] {
		t.accepted[part] = true
		t.done++
	}
	if t.done == t.parts && !t.ended {
		t.ended = true
		if err := t.finish(); err != nil {
			return 0, "", err
		}
	}
	return requestor.Success, "no-op", nil
}

// finish writes what a finished task leaves: its output and status.json.
func (t *task) finish() error {
	out := filepath.Join(t.dir, taskapi.TaskOutputsDir())
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "done.txt"), []byte(strconv.Itoa(t.parts)+" parts\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(t.dir, ".gtask", "status.json"), []byte(`{"state": "finished"}`+"\n"), 0o644)
}

func (r *Requestor) DiscardSubtasks(_ context.Context, taskID string, _ []string) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.task(taskID)
	return nil, err
}

func (r *Requestor) RunBenchmark(context.Context) (float64, error) { return 1, nil }

func (r *Requestor) HasPendingSubtasks(_ context.Context, taskID string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.task(taskID)
	if err != nil {
		return false, err
	}
	return !t.ended && (len(t.free) > 0 || t.next < t.parts), nil
}

func (r *Requestor) AbortTask(_ context.Context, taskID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.task(taskID)
	if err != nil {
		return err
	}
	if !t.ended {
		t.ended = true
		return os.WriteFile(filepath.Join(t.dir, ".gtask", "status.json"), []byte(`{"state": "aborted"}`+"\n"), 0o644)
	}
	return nil
}

func (r *Requestor) AbortSubtask(_ context.Context, taskID, subtaskID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, err := r.task(taskID)
	if err != nil {
		return err
	}
	part, ok := t.live[subtaskID]
	if !ok {
		return fmt.Errorf("subtask %q: %w", subtaskID, requestor.ErrUnknownSubtask)
	}
	delete(t.live, subtaskID)
	if !t.accepted[part] {
		t.free = append(t.free, part)
	}
	return nil
}

func (r *Requestor) Shutdown(context.Context) error { return nil }

// Provider is the no-op provider of one task work dir.
type Provider struct{ WorkDir string }

var _ provider.Handler = Provider{}

// Compute writes the tiny output and names it.
func (p Provider) Compute(context.Context, string, string, json.RawMessage) (string, error) {
	if err := os.WriteFile(filepath.Join(p.WorkDir, "out"), []byte("ok\n"), 0o644); err != nil {
		return "", err
	}
	return "out", nil
}

func (Provider) RunBenchmark(context.Context) (float64, error) { return 1, nil }
