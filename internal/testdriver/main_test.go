package testdriver_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/taskapi"
)

// appEnv, when set, makes the test binary the fake app instead of running
// the tests: the tests re-execute their own binary as the app's requestor
// and providers, so no other binary is built.
const appEnv = "GTASK_TESTDRIVER_APP"

func TestMain(m *testing.M) {
	if os.Getenv(appEnv) == "" {
		goleak.VerifyTestMain(m)
		return
	}
	appmain.Main(appmain.Roles{
		Requestor: func(workDir string, _ *slog.Logger) (requestor.Handler, error) {
			return &fakeRequestor{workDir: workDir}, nil
		},
		Provider: func(workDir string, _ *slog.Logger) (provider.Handler, error) {
			return fakeProvider{workDir: workDir}, nil
		},
	})
}

// taskParams say how the fake app behaves for one task.
type taskParams struct {
	// Parts is how many parts the task has; part i computes i*i.
	Parts int `json:"parts"`
	// AwaitFirst: part 0's result awaits data until every other part is
	// accepted.
	AwaitFirst bool `json:"await_first,omitempty"`
	// BadOutputFirst: the first attempt at each part names a bad output:
	// "outside" the provider's work dir, or a "dir".
	BadOutputFirst string `json:"bad_output_first,omitempty"`
	// Stuck: HasPendingSubtasks answers true but NextSubtask hands out
	// nothing.
	Stuck bool `json:"stuck,omitempty"`
	// CrashInVerify: the requestor process kills itself (SIGKILL) in its
	// n-th Verify, once per task (a marker file remembers it).
	CrashInVerify int `json:"crash_in_verify,omitempty"`
}

// subtaskParams are what the fake requestor hands out, in the SDK's shape
// ({"part": N, ...}) so that the driver sees the part.
type subtaskParams struct {
	Part      int    `json:"part"`
	Value     int    `json:"value"`
	BadOutput string `json:"bad_output,omitempty"`
}

// fakeState is one task's whole state, kept in {task}/state.json after
// every change, so that a restarted requestor picks it up.
type fakeState struct {
	Params   taskParams
	Parts    []string       // per part: "pending", "assigned" or "done"
	Attempts []int          // per part: subtasks handed out
	Subtasks map[string]int // subtask id → part
	Verdicts map[string]requestor.Verdict
	Verifies int
}

// fakeRequestor is a requestor.Handler over fakeState, durable on disk. It
// runs in the app process, or in the test's own process for RunWith.
type fakeRequestor struct {
	workDir string
	mu      sync.Mutex
}

func (f *fakeRequestor) statePath(taskID string) string {
	return filepath.Join(f.workDir, taskID, "state.json")
}

func (f *fakeRequestor) load(taskID string) (*fakeState, error) {
	b, err := os.ReadFile(f.statePath(taskID))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("task %q: %w", taskID, requestor.ErrUnknownTask)
	}
	if err != nil {
		return nil, err
	}
	var s fakeState
	return &s, json.Unmarshal(b, &s)
}

func (f *fakeRequestor) save(taskID string, s *fakeState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	tmp := f.statePath(taskID) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f.statePath(taskID))
}

func (f *fakeRequestor) CreateTask(_ context.Context, taskID string, _ int, raw json.RawMessage) (requestor.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, err := f.load(taskID); err == nil {
		return requestor.Task{}, requestor.ErrTaskExists
	}
	var p taskParams
	if err := json.Unmarshal(raw, &p); err != nil || p.Parts < 1 {
		return requestor.Task{}, fmt.Errorf("%w: want {\"parts\": N>0}", requestor.ErrInvalidParams)
	}
	s := &fakeState{
		Params:   p,
		Parts:    make([]string, p.Parts),
		Attempts: make([]int, p.Parts),
		Subtasks: map[string]int{},
		Verdicts: map[string]requestor.Verdict{},
	}
	for i := range s.Parts {
		s.Parts[i] = "pending"
	}
	return requestor.Task{EnvID: "fake"}, f.save(taskID, s)
}

func (f *fakeRequestor) NextSubtask(_ context.Context, taskID, subtaskID, _ string) (*requestor.Subtask, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.load(taskID)
	if err != nil {
		return nil, err
	}
	if _, ok := s.Subtasks[subtaskID]; ok {
		return nil, requestor.ErrSubtaskExists
	}
	if s.Params.Stuck {
		return nil, nil
	}
	for i, st := range s.Parts {
		if st != "pending" {
			continue
		}
		s.Parts[i] = "assigned"
		s.Attempts[i]++
		s.Subtasks[subtaskID] = i
		if err := f.save(taskID, s); err != nil {
			return nil, err
		}
		params, _ := json.Marshal(subtaskParams{Part: i, Value: i * i})
		if s.Attempts[i] == 1 {
			params, _ = json.Marshal(subtaskParams{Part: i, Value: i * i, BadOutput: s.Params.BadOutputFirst})
		}
		return &requestor.Subtask{Params: params}, nil
	}
	return nil, nil
}

func (f *fakeRequestor) Verify(_ context.Context, taskID, subtaskID string) (requestor.Verdict, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.load(taskID)
	if err != nil {
		return 0, "", err
	}
	part, ok := s.Subtasks[subtaskID]
	if !ok {
		return 0, "", requestor.ErrUnknownSubtask
	}
	if v, ok := s.Verdicts[subtaskID]; ok && v != requestor.AwaitingData {
		return v, "as before", nil
	}
	s.Verifies++
	if err := f.save(taskID, s); err != nil {
		return 0, "", err
	}
	if s.Verifies == s.Params.CrashInVerify {
		marker := filepath.Join(f.workDir, taskID, "crashed")
		if _, err := os.Stat(marker); err != nil {
			_ = os.WriteFile(marker, nil, 0o644)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
	v, reason := requestor.Success, "right"
	got, err := os.ReadFile(filepath.Join(f.workDir, taskID, taskapi.SubtaskOutputsDir(), subtaskID, "out.txt"))
	switch {
	case err != nil:
		v, reason = requestor.Failure, "no result"
	case strings.TrimSpace(string(got)) != strconv.Itoa(part*part):
		v, reason = requestor.Failure, fmt.Sprintf("%q is wrong", got)
	case part == 0 && s.Params.AwaitFirst && !othersDone(s):
		v, reason = requestor.AwaitingData, "waiting for the other parts"
	}
	s.Verdicts[subtaskID] = v
	switch v {
	case requestor.Success:
		s.Parts[part] = "done"
	case requestor.Failure:
		s.Parts[part] = "pending"
	}
	if v == requestor.Success && allDone(s) {
		if err := f.merge(taskID, s); err != nil {
			return 0, "", err
		}
	}
	return v, reason, f.save(taskID, s)
}

func othersDone(s *fakeState) bool {
	for i, st := range s.Parts {
		if i != 0 && st != "done" {
			return false
		}
	}
	return true
}

func allDone(s *fakeState) bool {
	for _, st := range s.Parts {
		if st != "done" {
			return false
		}
	}
	return true
}

// merge writes task_outputs/result.txt: one line per part, its value.
func (f *fakeRequestor) merge(taskID string, s *fakeState) error {
	var b strings.Builder
	for i := range s.Parts {
		fmt.Fprintln(&b, i*i)
	}
	return os.WriteFile(filepath.Join(f.workDir, taskID, taskapi.TaskOutputsDir(), "result.txt"), []byte(b.String()), 0o644)
}

func (f *fakeRequestor) HasPendingSubtasks(_ context.Context, taskID string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.load(taskID)
	if err != nil {
		return false, err
	}
	for _, st := range s.Parts {
		if st == "pending" {
			return true, nil
		}
	}
	return false, nil
}

func (f *fakeRequestor) AbortSubtask(_ context.Context, taskID, subtaskID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.load(taskID)
	if err != nil {
		return err
	}
	part, ok := s.Subtasks[subtaskID]
	if !ok {
		return requestor.ErrUnknownSubtask
	}
	if s.Parts[part] == "assigned" {
		s.Parts[part] = "pending"
	}
	return f.save(taskID, s)
}

func (f *fakeRequestor) DiscardSubtasks(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("not used by the tests")
}

func (f *fakeRequestor) RunBenchmark(context.Context) (float64, error) { return 1, nil }

func (f *fakeRequestor) AbortTask(context.Context, string) error {
	return errors.New("not used by the tests")
}

func (f *fakeRequestor) Shutdown(context.Context) error { return nil }

// fakeProvider computes a part: it writes the part's value to
// {subtask}/out.txt.
type fakeProvider struct{ workDir string }

func (p fakeProvider) Compute(_ context.Context, _, subtaskID string, raw json.RawMessage) (string, error) {
	var sp subtaskParams
	if err := json.Unmarshal(raw, &sp); err != nil {
		return "", fmt.Errorf("%w: %v", provider.ErrInvalidParams, err)
	}
	if err := os.MkdirAll(filepath.Join(p.workDir, subtaskID), 0o755); err != nil {
		return "", err
	}
	switch sp.BadOutput {
	case "outside":
		return "../elsewhere.txt", nil
	case "dir":
		return subtaskID, nil
	}
	rel := filepath.Join(subtaskID, "out.txt")
	return rel, os.WriteFile(filepath.Join(p.workDir, rel), []byte(strconv.Itoa(sp.Value)+"\n"), 0o644)
}

func (fakeProvider) RunBenchmark(context.Context) (float64, error) { return 1, nil }
