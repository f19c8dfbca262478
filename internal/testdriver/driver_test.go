package testdriver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/internal/testdriver"
	"github.com/gtask/gtask/requestor"
)

// runTimeout bounds one whole run. It is generous because the machine is
// shared and the children are race-built; no test asserts a duration.
const runTimeout = 3 * time.Minute

// syncBuffer collects the children's logs for a failing test to show.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// procConfig is a Config running the fake app as processes of the test
// binary.
func procConfig(t *testing.T, params taskParams) testdriver.Config {
	t.Helper()
	raw, err := json.Marshal(params)
	require.NoError(t, err)
	logs := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("children's logs:\n%s", logs.String())
		}
	})
	return testdriver.Config{
		Bin: os.Args[0],
		Env: []string{appEnv + "=1",
			// Under -race the runtime sleeps 1s at exit to report late
			// races; every provider would pay it.
			"GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")},
		Log:     logs,
		WorkDir: t.TempDir(),
		TaskID:  "t1",
		Params:  raw,
	}
}

func runCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	t.Cleanup(cancel)
	return ctx
}

func requireResult(t *testing.T, out *testdriver.Outcome, parts int) {
	t.Helper()
	require.True(t, out.Finished, "the task finished")
	require.Equal(t, []string{"result.txt"}, out.Outputs)
	got, err := os.ReadFile(filepath.Join(out.OutputsDir, "result.txt"))
	require.NoError(t, err)
	var want strings.Builder
	for i := range parts {
		want.WriteString(strconv.Itoa(i*i) + "\n")
	}
	assert.Equal(t, want.String(), string(got))
}

func TestRunThreeParts(t *testing.T) {
	cfg := procConfig(t, taskParams{Parts: 3})
	var kinds []testdriver.EventKind
	cfg.OnEvent = func(ev testdriver.Event) error {
		kinds = append(kinds, ev.Kind)
		return nil
	}
	out, err := testdriver.Run(runCtx(t), cfg)
	require.NoError(t, err)
	requireResult(t, out, 3)
	assert.Equal(t, map[requestor.Verdict]int{requestor.Success: 3}, out.Verdicts)
	assert.Zero(t, out.ComputeErrors)
	assert.Zero(t, out.Restarts)
	require.Len(t, out.Subtasks, 3)
	for i, rec := range out.Subtasks {
		assert.Equal(t, i, rec.Part, "parts are handed out in order")
		assert.Equal(t, 1, rec.Attempt)
		assert.Equal(t, "node-0", rec.Node)
		assert.Equal(t, 1, rec.Verifications)
	}
	want := []testdriver.EventKind{testdriver.RequestorStarted, testdriver.TaskCreated}
	for range 3 {
		want = append(want, testdriver.SubtaskAssigned, testdriver.SubtaskComputed, testdriver.SubtaskVerified)
	}
	assert.Equal(t, append(want, testdriver.TaskDone), kinds)
}

func TestRunFaults(t *testing.T) {
	cfg := procConfig(t, taskParams{Parts: 3})
	cfg.Providers = 2
	cfg.Fault = func(a testdriver.Assignment) testdriver.Fault {
		if a.Attempt > 1 {
			return testdriver.NoFault
		}
		return []testdriver.Fault{testdriver.FaultWrong, testdriver.FaultMissing, testdriver.FaultError}[a.Part]
	}
	out, err := testdriver.Run(runCtx(t), cfg)
	require.NoError(t, err)
	requireResult(t, out, 3)
	assert.Equal(t, map[requestor.Verdict]int{requestor.Success: 3, requestor.Failure: 2}, out.Verdicts)
	assert.Equal(t, 1, out.ComputeErrors)
	require.Len(t, out.Subtasks, 6)
	failedOn := map[int]string{} // part: the node its faulty attempt ran on
	for _, rec := range out.Subtasks {
		if rec.Fault != testdriver.NoFault {
			failedOn[rec.Part] = rec.Node
		} else if n, ok := failedOn[rec.Part]; ok {
			assert.NotEqual(t, n, rec.Node, "part %d is computed again on another node", rec.Part)
		}
		switch rec.Fault {
		case testdriver.FaultWrong:
			assert.Equal(t, requestor.Failure, rec.Verdict)
			assert.Contains(t, rec.Reason, "is wrong")
		case testdriver.FaultMissing:
			assert.Equal(t, requestor.Failure, rec.Verdict)
			assert.Equal(t, "no result", rec.Reason)
		case testdriver.FaultError:
			assert.ErrorIs(t, rec.ComputeErr, testdriver.ErrInjected)
			assert.Zero(t, rec.Verifications)
		default:
			assert.Equal(t, requestor.Success, rec.Verdict)
		}
	}
	assert.Len(t, failedOn, 3)
}

// TestRunBadOutputIsAComputeError: the provider server itself refuses a
// path outside its work dir; the driver refuses what gets past it (see
// TestRunWithBadOutput).
func TestRunBadOutputIsAComputeError(t *testing.T) {
	cfg := procConfig(t, taskParams{Parts: 2, BadOutputFirst: "outside"})
	out, err := testdriver.Run(runCtx(t), cfg)
	require.NoError(t, err)
	requireResult(t, out, 2)
	assert.Equal(t, 2, out.ComputeErrors)
	for _, rec := range out.Subtasks {
		if rec.Attempt > 1 {
			continue
		}
		assert.Equal(t, codes.Internal, status.Code(rec.ComputeErr), "%v", rec.ComputeErr)
	}
}

// TestRunRestarts kills the requestor at several points; the fake app keeps
// its state on disk, so the task goes on where it was.
func TestRunRestarts(t *testing.T) {
	cfg := procConfig(t, taskParams{Parts: 3})
	var verified []string
	var checks int
	cfg.OnEvent = func(ev testdriver.Event) error {
		switch {
		case ev.Kind == testdriver.RequestorStarted && ev.N > 1:
			// What was verified before the kill still is.
			for _, id := range verified {
				v, _, err := ev.Requestor.Verify(context.Background(), cfg.TaskID, id)
				if err != nil {
					return err
				}
				assert.Equal(t, requestor.Success, v, id)
				checks++
			}
		case ev.Kind == testdriver.SubtaskVerified:
			verified = append(verified, ev.Assignment.SubtaskID)
			if ev.N == 1 {
				return testdriver.RestartRequestor
			}
		case ev.Kind == testdriver.TaskCreated,
			ev.Kind == testdriver.SubtaskAssigned && ev.N == 2:
			return testdriver.RestartRequestor
		}
		return nil
	}
	out, err := testdriver.Run(runCtx(t), cfg)
	require.NoError(t, err)
	requireResult(t, out, 3)
	assert.Equal(t, 3, out.Restarts)
	assert.Len(t, out.Subtasks, 3, "no part was computed twice")
	assert.Equal(t, 2, checks, "verified before the 2nd and 3rd restarts: 0 + 1 + 1")
}

func TestRunRequestorDiesInVerify(t *testing.T) {
	t.Run("restarted", func(t *testing.T) {
		cfg := procConfig(t, taskParams{Parts: 3, CrashInVerify: 2})
		died := 0
		cfg.OnEvent = func(ev testdriver.Event) error {
			if ev.Kind == testdriver.RequestorDied {
				died++
				assert.Error(t, ev.Err)
				return testdriver.RestartRequestor
			}
			return nil
		}
		out, err := testdriver.Run(runCtx(t), cfg)
		require.NoError(t, err)
		requireResult(t, out, 3)
		assert.Equal(t, 1, died)
		assert.Equal(t, 1, out.Restarts)
		assert.Len(t, out.Subtasks, 3, "the Verify cut short was made again, not the part")
	})
	t.Run("not restarted", func(t *testing.T) {
		cfg := procConfig(t, taskParams{Parts: 3, CrashInVerify: 2})
		out, err := testdriver.Run(runCtx(t), cfg)
		require.ErrorContains(t, err, "the requestor died during Verify")
		require.NotNil(t, out)
		assert.False(t, out.Finished)
	})
}

func TestRunRefusedTask(t *testing.T) {
	cfg := procConfig(t, taskParams{Parts: 0})
	_, err := testdriver.Run(runCtx(t), cfg)
	require.Error(t, err)
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "the server's code survives: %v", err)
}
