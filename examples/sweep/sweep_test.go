package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"

	"github.com/gtask/gtask/client"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/host/daemon"
	"github.com/gtask/gtask/host/daemon/daemontest"
	"github.com/gtask/gtask/internal/appbuild"
)

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	require.NoError(t, err)
	return a
}

// serve starts a daemon and returns a client of it with the admin token.
func serve(t *testing.T) *client.Client {
	t.Helper()
	s := daemontest.Serve(t, daemon.Config{Slots: 2})
	c, err := client.Dial(t.Context(), s.Addr, s.AdminToken)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSweep runs a sweep of the montecarlo example over two seeds under a
// real daemon: each run is a child task of the sweep, and each run's
// result is the one montecarlo gives for those params on its own.
func TestSweep(t *testing.T) {
	t.Parallel()
	c := serve(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	montecarlo := abs(t, "../montecarlo")
	runs := []json.RawMessage{
		json.RawMessage(`{"samples": 20000, "parts": 2, "seed": 1}`),
		json.RawMessage(`{"samples": 30000, "parts": 3, "seed": 2}`),
	}
	params, err := json.Marshal(Params{App: montecarlo, Runs: runs})
	require.NoError(t, err)
	task, err := c.Submit(ctx, client.SubmitRequest{App: abs(t, "."), Params: params})
	require.NoError(t, err)
	task, err = c.Wait(ctx, task.GetTaskId())
	require.NoError(t, err)
	require.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, task.GetState(), task.GetReason())

	out := t.TempDir()
	files, err := c.Results(ctx, task.GetTaskId(), out)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{sweepFile, "run-0/result.json", "run-1/result.json"}, files)
	var sweep []struct {
		Run    int             `json:"run"`
		Task   string          `json:"task"`
		Params json.RawMessage `json:"params"`
		Files  []string        `json:"files"`
	}
	b, err := os.ReadFile(filepath.Join(out, sweepFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &sweep))
	require.Len(t, sweep, len(runs))

	bin, err := appbuild.Resolve(ctx, montecarlo, appbuild.DefaultCacheDir(), nil)
	require.NoError(t, err)
	for i, run := range sweep {
		assert.Equal(t, i, run.Run)
		assert.JSONEq(t, string(runs[i]), string(run.Params))
		assert.Equal(t, []string{"result.json"}, run.Files)
		child, err := c.Get(ctx, run.Task)
		require.NoError(t, err)
		assert.Equal(t, task.GetTaskId(), child.GetParentId(), "run %d is a child task of the sweep", i)
		assert.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, child.GetState())
		assert.True(t, slices.Contains(task.GetChildIds(), run.Task))

		// The same params, run by montecarlo alone.
		alone, err := host.Run(ctx, host.RunConfig{
			Launcher: host.ProcessLauncher{Bin: bin.Bin, GtaskApp: true},
			WorkDir:  t.TempDir(), Params: runs[i], Providers: 2,
		})
		require.NoError(t, err)
		require.Equal(t, host.Finished, alone.Outcome, alone.Reason)
		want, err := os.ReadFile(filepath.Join(alone.OutputsDir, "result.json"))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("run-%d", i), "result.json"))
		require.NoError(t, err)
		assert.JSONEq(t, string(want), string(got), "run %d", i)
	}
}

// TestSweepKill: killing a sweep kills the child tasks it created.
func TestSweepKill(t *testing.T) {
	t.Parallel()
	c := serve(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	// Runs of hours: they are running when the kill comes.
	params, err := json.Marshal(Params{App: abs(t, "../montecarlo"), Runs: []json.RawMessage{
		json.RawMessage(`{"samples": 1000000000000, "parts": 2}`),
		json.RawMessage(`{"samples": 1000000000000, "parts": 2}`),
	}})
	require.NoError(t, err)
	task, err := c.Submit(ctx, client.SubmitRequest{App: abs(t, "."), Params: params})
	require.NoError(t, err)
	id := task.GetTaskId()
	var children []string
	require.Eventually(t, func() bool {
		task, err := c.Get(ctx, id)
		if err != nil || len(task.GetChildIds()) < 2 {
			return false
		}
		children = task.GetChildIds()
		for _, ch := range children {
			if t, err := c.Get(ctx, ch); err != nil || t.GetState() != hostv1.TaskState_TASK_STATE_RUNNING {
				return false
			}
		}
		return true
	}, 2*time.Minute, 50*time.Millisecond, "the sweep's children never ran")

	killed, err := c.Kill(ctx, id)
	require.NoError(t, err)
	assert.ElementsMatch(t, append([]string{id}, children...), killed)
	for _, k := range killed {
		task, err := c.Get(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, hostv1.TaskState_TASK_STATE_KILLED, task.GetState(), k)
	}
}

// TestParamsValidate: what is wrong with a sweep's params is named.
func TestParamsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Params
		want string
	}{
		{"no app", Params{Runs: []json.RawMessage{json.RawMessage(`{}`)}}, "app: missing"},
		{"no runs", Params{App: "x"}, "runs: empty"},
		{"not an object", Params{App: "x", Runs: []json.RawMessage{json.RawMessage(`[1]`)}}, "runs[0]: [1] is not a JSON object"},
		{"ok", Params{App: "x", Runs: []json.RawMessage{json.RawMessage(`{"a": 1}`), json.RawMessage(`null`)}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.want)
		})
	}
}
