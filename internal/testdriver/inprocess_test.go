package testdriver_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/internal/testdriver"
	"github.com/gtask/gtask/requestor"
)

// inProcess is a Backend running the fake app's handlers in the test's own
// process: the loop's logic, without the cost of processes.
type inProcess struct {
	workDir string
	req     *fakeRequestor
}

func newInProcess(workDir string) *inProcess {
	return &inProcess{workDir: workDir, req: &fakeRequestor{workDir: workDir}}
}

func (b *inProcess) Requestor() testdriver.Requestor { return b.req }

func (b *inProcess) RestartRequestor(context.Context) error {
	b.req = &fakeRequestor{workDir: b.workDir}
	return nil
}

func (b *inProcess) RequestorDied(context.Context, error) bool { return false }

func (b *inProcess) Compute(ctx context.Context, a testdriver.Assignment, dir, taskID string) (string, error) {
	return fakeProvider{workDir: dir}.Compute(ctx, taskID, a.SubtaskID, a.Params)
}

func inProcessConfig(t *testing.T, params taskParams) testdriver.Config {
	t.Helper()
	raw, err := json.Marshal(params)
	require.NoError(t, err)
	return testdriver.Config{WorkDir: t.TempDir(), TaskID: "t1", Params: raw}
}

func TestRunWithAwaitingData(t *testing.T) {
	cfg := inProcessConfig(t, taskParams{Parts: 3, AwaitFirst: true})
	var again []string
	cfg.OnEvent = func(ev testdriver.Event) error {
		if ev.Kind == testdriver.SubtaskVerified && ev.Again {
			again = append(again, ev.Verdict.String())
		}
		return nil
	}
	out, err := testdriver.RunWith(runCtx(t), cfg, newInProcess(cfg.WorkDir))
	require.NoError(t, err)
	requireResult(t, out, 3)
	assert.Equal(t, map[requestor.Verdict]int{requestor.Success: 3}, out.Verdicts, "last verdicts")
	// Part 0 awaits; part 1's verification re-verifies it (still
	// awaiting), part 2's settles it.
	assert.Equal(t, []string{"AWAITING_DATA", "SUCCESS"}, again)
	assert.Equal(t, 3, out.Subtasks[0].Verifications)
}

func TestRunWithStuck(t *testing.T) {
	cfg := inProcessConfig(t, taskParams{Parts: 2, Stuck: true})
	cfg.Providers = 3
	out, err := testdriver.RunWith(runCtx(t), cfg, newInProcess(cfg.WorkDir))
	require.ErrorIs(t, err, testdriver.ErrStuck)
	assert.ErrorContains(t, err, "none of the 3 node(s)")
	assert.False(t, out.Finished)
}

func TestRunWithHang(t *testing.T) {
	cfg := inProcessConfig(t, taskParams{Parts: 2})
	cfg.Providers = 2
	cfg.ComputeTimeout = 50 * time.Millisecond
	cfg.Fault = func(a testdriver.Assignment) testdriver.Fault {
		if a.Part == 1 && a.Attempt == 1 {
			return testdriver.FaultHang
		}
		return testdriver.NoFault
	}
	out, err := testdriver.RunWith(runCtx(t), cfg, newInProcess(cfg.WorkDir))
	require.NoError(t, err)
	requireResult(t, out, 2)
	assert.Equal(t, 1, out.ComputeErrors)
	assert.Len(t, out.Subtasks, 3)
	hung := out.Subtasks[1]
	assert.Equal(t, testdriver.FaultHang, hung.Fault)
	assert.ErrorIs(t, hung.ComputeErr, context.DeadlineExceeded)
}

func TestRunWithHookError(t *testing.T) {
	cfg := inProcessConfig(t, taskParams{Parts: 3})
	stop := errors.New("enough")
	cfg.OnEvent = func(ev testdriver.Event) error {
		if ev.Kind == testdriver.SubtaskVerified {
			return stop
		}
		return nil
	}
	out, err := testdriver.RunWith(runCtx(t), cfg, newInProcess(cfg.WorkDir))
	require.ErrorIs(t, err, stop)
	assert.ErrorContains(t, err, "OnEvent(SubtaskVerified #1)")
	assert.Len(t, out.Subtasks, 1)
}

func TestRunWithCancelled(t *testing.T) {
	cfg := inProcessConfig(t, taskParams{Parts: 2})
	cfg.Fault = func(testdriver.Assignment) testdriver.Fault { return testdriver.FaultHang }
	ctx, cancel := context.WithCancel(context.Background())
	cfg.OnEvent = func(ev testdriver.Event) error {
		if ev.Kind == testdriver.SubtaskAssigned {
			cancel()
		}
		return nil
	}
	_, err := testdriver.RunWith(ctx, cfg, newInProcess(cfg.WorkDir))
	require.ErrorIs(t, err, context.Canceled)
}

func TestRunWithBadOutput(t *testing.T) {
	for _, bad := range []string{"outside", "dir"} {
		t.Run(bad, func(t *testing.T) {
			cfg := inProcessConfig(t, taskParams{Parts: 2, BadOutputFirst: bad})
			out, err := testdriver.RunWith(runCtx(t), cfg, newInProcess(cfg.WorkDir))
			require.NoError(t, err)
			requireResult(t, out, 2)
			assert.Equal(t, 2, out.ComputeErrors)
			for _, rec := range out.Subtasks {
				if rec.Attempt > 1 {
					continue
				}
				assert.ErrorIs(t, rec.ComputeErr, testdriver.ErrBadOutput)
			}
		})
	}
}

// TestRunWithNodes: a node whose attempt failed is replaced by a fresh one
// on its slot, unless KeepFailedNodes.
func TestRunWithNodes(t *testing.T) {
	fault := func(a testdriver.Assignment) testdriver.Fault {
		if a.Attempt == 1 {
			return []testdriver.Fault{testdriver.FaultWrong, testdriver.FaultError}[a.Part]
		}
		return testdriver.NoFault
	}
	nodes := func(out *testdriver.Outcome) []string {
		var n []string
		for _, rec := range out.Subtasks {
			n = append(n, rec.Node)
		}
		return n
	}
	t.Run("banned", func(t *testing.T) {
		cfg := inProcessConfig(t, taskParams{Parts: 2})
		cfg.Fault = fault
		out, err := testdriver.RunWith(runCtx(t), cfg, newInProcess(cfg.WorkDir))
		require.NoError(t, err)
		requireResult(t, out, 2)
		// One slot: part 0 fails on node-0, is redone on node-1, where part 1
		// fails, to be redone on node-2.
		assert.Equal(t, []string{"node-0", "node-1", "node-1", "node-2"}, nodes(out))
	})
	t.Run("kept", func(t *testing.T) {
		cfg := inProcessConfig(t, taskParams{Parts: 2})
		cfg.Fault = fault
		cfg.KeepFailedNodes = true
		out, err := testdriver.RunWith(runCtx(t), cfg, newInProcess(cfg.WorkDir))
		require.NoError(t, err)
		requireResult(t, out, 2)
		assert.Equal(t, []string{"node-0", "node-0", "node-0", "node-0"}, nodes(out))
	})
}
