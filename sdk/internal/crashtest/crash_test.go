package crashtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/gtask/gtask/internal/testdriver"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
)

// The environment of the re-executed test binary.
const (
	// appEnv, when set, makes the test binary the cubes app (sdk.Main)
	// instead of running the tests.
	appEnv = "GTASK_CRASHTEST_APP"
	// selfKillEnv makes the app kill itself (SIGKILL) inside its own code:
	// "split", "verify:P" (the Verify of a result of part P) or "merge".
	selfKillEnv = "GTASK_CRASHTEST_SELFKILL"
	// redundancyEnv, when set, is the app's sdk.WithRedundancy.
	redundancyEnv = "GTASK_CRASHTEST_REDUNDANCY"
	// markerEnv names a file the app creates just before killing itself,
	// and whose existence stops it from doing so again: the crash happens
	// once per test, whatever the restarts.
	markerEnv = "GTASK_CRASHTEST_MARKER"
)

func TestMain(m *testing.M) {
	if os.Getenv(appEnv) == "" {
		goleak.VerifyTestMain(m)
		return
	}
	var opts []sdk.Option
	if k, err := strconv.Atoi(os.Getenv(redundancyEnv)); err == nil {
		opts = append(opts, sdk.WithRedundancy(k))
	}
	sdk.Main[params, part](cubes{}, opts...)
}

type params struct {
	N int `json:"n"`
}

type part struct {
	X int `json:"x"`
}

// cubes is the app under test: part X computes (X+1)³ into cube.txt;
// Verify checks it exactly; Merge writes one line per part.
type cubes struct{}

func cube(x int) int { return (x + 1) * (x + 1) * (x + 1) }

// selfKill kills the process when the test asked for it at point, the
// first time only.
func selfKill(point string) {
	if os.Getenv(selfKillEnv) != point {
		return
	}
	marker := os.Getenv(markerEnv)
	if _, err := os.Stat(marker); err == nil {
		return
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		panic(err)
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

func (cubes) Split(_ context.Context, t *sdk.Task[params]) ([]sdk.Part[part], error) {
	parts := make([]sdk.Part[part], t.Params.N)
	for x := range parts {
		parts[x].Params = part{X: x}
	}
	selfKill("split")
	return parts, nil
}

func (cubes) Compute(_ context.Context, s *sdk.Subtask[part]) (string, error) {
	out, err := s.OutputPath("cube.txt")
	if err != nil {
		return "", err
	}
	return out, os.WriteFile(out, []byte(strconv.Itoa(cube(s.Params.X))), 0o644)
}

func (cubes) Verify(_ context.Context, r *sdk.Result[params, part]) (sdk.Verdict, error) {
	selfKill(fmt.Sprintf("verify:%d", r.Part))
	b, err := os.ReadFile(r.File)
	if err != nil {
		return sdk.Reject("no result: %v", err), nil
	}
	if string(b) != strconv.Itoa(cube(r.Params.X)) {
		return sdk.Reject("%q is not %d", b, cube(r.Params.X)), nil
	}
	return sdk.Accept(), nil
}

func (cubes) Merge(_ context.Context, t *sdk.Task[params], rs []*sdk.Result[params, part]) error {
	f, err := os.Create(filepath.Join(t.Dir.Outputs(), "cubes.txt"))
	if err != nil {
		return err
	}
	for i, r := range rs {
		b, err := os.ReadFile(r.File)
		if err != nil {
			f.Close()
			return err
		}
		fmt.Fprintf(f, "%s\n", b)
		if i == 0 {
			// Half a merge is on disk when the process dies.
			if err := f.Sync(); err != nil {
				return err
			}
			selfKill("merge")
		}
	}
	return f.Close()
}

func wantOutput(n int) string {
	var b strings.Builder
	for x := range n {
		fmt.Fprintf(&b, "%d\n", cube(x))
	}
	return b.String()
}

// logBuffer collects the children's logs for a failing test to show.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runTimeout bounds one run: many race-built processes on a shared
// two-core machine. No test asserts a duration.
const runTimeout = 5 * time.Minute

const parts = 4

// killAt says after which events the driver kills the requestor.
type killAt func(testdriver.Event) bool

func at(kind testdriver.EventKind, n int) killAt {
	return func(ev testdriver.Event) bool { return ev.Kind == kind && ev.N == n }
}

// TestCrash kills the requestor at many points of a task and restarts it
// over the same work dir each time; the task finishes with the right
// output, a result accepted before a kill is still accepted after it, and
// no accepted part is computed again.
func TestCrash(t *testing.T) {
	cases := []struct {
		name       string
		kill       killAt
		selfKill   string
		redundancy int // the app's; 0 for the default
		restarts   int // exactly; -1 for "at least one"
	}{
		{name: "after CreateTask", kill: at(testdriver.TaskCreated, 1), restarts: 1},
		{name: "after NextSubtask 1", kill: at(testdriver.SubtaskAssigned, 1), restarts: 1},
		{name: "after NextSubtask 2", kill: at(testdriver.SubtaskAssigned, 2), restarts: 1},
		{name: "after NextSubtask 4", kill: at(testdriver.SubtaskAssigned, 4), restarts: 1},
		{name: "after Verify 1", kill: at(testdriver.SubtaskVerified, 1), restarts: 1},
		{name: "after Verify 2", kill: at(testdriver.SubtaskVerified, 2), restarts: 1},
		{name: "after the last Verify", kill: at(testdriver.SubtaskVerified, parts), restarts: 1},
		{name: "after every Verify", kill: func(ev testdriver.Event) bool {
			return ev.Kind == testdriver.SubtaskVerified
		}, restarts: -1},
		{name: "after every step", kill: func(ev testdriver.Event) bool {
			return ev.Kind != testdriver.RequestorStarted && ev.Kind != testdriver.TaskDone
		}, restarts: -1},
		{name: "inside Split", selfKill: "split", restarts: 1},
		{name: "inside Verify", selfKill: "verify:1", restarts: 1},
		{name: "inside Merge", selfKill: "merge", restarts: 1},
		// Two results per part: the first awaits data, so kills fall
		// while parts are half judged.
		{name: "redundancy 2, after every Verify", redundancy: 2, kill: func(ev testdriver.Event) bool {
			return ev.Kind == testdriver.SubtaskVerified
		}, restarts: -1},
		{name: "redundancy 2, after every step", redundancy: 2, kill: func(ev testdriver.Event) bool {
			return ev.Kind != testdriver.RequestorStarted && ev.Kind != testdriver.TaskDone
		}, restarts: -1},
		{name: "redundancy 2, inside Verify", redundancy: 2, selfKill: "verify:2", restarts: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := runCrashing(t, tc.kill, tc.selfKill, tc.redundancy)
			if tc.restarts >= 0 {
				assert.Equal(t, tc.restarts, out.Restarts)
			} else {
				assert.Positive(t, out.Restarts)
			}
		})
	}
}

// runCrashing drives a task of cubes (with the app's redundancy, when not
// 0) with the requestor killed after the events kill selects, or killing
// itself at selfKillAt, checking the invariants at every step.
func runCrashing(t *testing.T, kill killAt, selfKillAt string, redundancy int) *testdriver.Outcome {
	t.Helper()
	logs := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("children's logs:\n%s", logs.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	raw, err := json.Marshal(params{N: parts})
	require.NoError(t, err)
	marker := filepath.Join(t.TempDir(), "killed")
	cfg := testdriver.Config{
		Bin: os.Args[0],
		Env: []string{
			appEnv + "=1",
			selfKillEnv + "=" + selfKillAt,
			markerEnv + "=" + marker,
			redundancyEnv + "=" + strconv.Itoa(redundancy),
			// Under -race the runtime sleeps 1s at exit to report late
			// races; every provider would pay it.
			"GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"),
		},
		Log:     logs,
		WorkDir: t.TempDir(),
		TaskID:  "cubes",
		Params:  raw,
		// Two slots, so that kills also fall while a subtask is computing.
		Providers: 2,
	}

	// A part may be accepted more than once: a subtask in flight when the
	// requestor dies is no longer counted on (its part is handed out
	// again), but its result is still judged when it comes. What must not
	// happen is a part handed out after it was accepted.
	accepted := map[int]string{}       // part → the first subtask accepted for it
	verdicts := map[string][2]string{} // accepted subtask → its verdict and reason
	// checkAccepted calls Verify again for every accepted subtask: its
	// answer must not change, whatever happened since.
	checks := 0
	checkAccepted := func(ev testdriver.Event) error {
		for id, want := range verdicts {
			checks++
			v, reason, err := ev.Requestor.Verify(ctx, cfg.TaskID, id)
			if err != nil {
				return fmt.Errorf("Verify again of accepted %s (after %s #%d): %w", id, ev.Kind, ev.N, err)
			}
			assert.Equal(t, want, [2]string{v.String(), reason}, "Verify again of accepted %s after %s #%d", id, ev.Kind, ev.N)
		}
		return nil
	}
	cfg.OnEvent = func(ev testdriver.Event) error {
		switch ev.Kind {
		case testdriver.RequestorStarted, testdriver.TaskDone:
			if err := checkAccepted(ev); err != nil {
				return err
			}
		case testdriver.RequestorDied:
			if selfKillAt == "" {
				return fmt.Errorf("the requestor died by itself: %w", ev.Err)
			}
			return testdriver.RestartRequestor
		case testdriver.SubtaskAssigned:
			if id, ok := accepted[ev.Assignment.Part]; ok {
				t.Errorf("part %d handed out again (as %s) after %s was accepted for it", ev.Assignment.Part, ev.Assignment.SubtaskID, id)
			}
		case testdriver.SubtaskVerified:
			a := ev.Assignment
			if want, ok := verdicts[a.SubtaskID]; ok {
				assert.Equal(t, want, [2]string{ev.Verdict.String(), ev.Reason}, "verified again: %s", a.SubtaskID)
				break
			}
			if ev.Verdict == requestor.Success {
				if _, ok := accepted[a.Part]; !ok {
					accepted[a.Part] = a.SubtaskID
				}
				verdicts[a.SubtaskID] = [2]string{ev.Verdict.String(), ev.Reason}
			}
		}
		if kill != nil && ev.Kind != testdriver.RequestorDied && kill(ev) {
			return testdriver.RestartRequestor
		}
		return nil
	}

	out, err := testdriver.Run(ctx, cfg)
	require.NoError(t, err)
	require.True(t, out.Finished, "finished; status %s", out.Status)
	require.Equal(t, []string{"cubes.txt"}, out.Outputs, "task_outputs holds the merged file and nothing else")
	got, err := os.ReadFile(filepath.Join(out.OutputsDir, "cubes.txt"))
	require.NoError(t, err)
	assert.Equal(t, wantOutput(parts), string(got))
	assert.Len(t, accepted, parts, "every part accepted once")
	assert.Positive(t, checks, "accepted results were verified again")
	if selfKillAt != "" {
		assert.FileExists(t, marker, "the app did kill itself at %s", selfKillAt)
	}
	return out
}
