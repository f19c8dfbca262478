// Package exampletest holds what the examples' end-to-end tests share: run a
// task through host.Run with the test binary itself as the app (the
// examples' TestMain re-executes it as the app when an environment variable
// is set), and check that chaos changes nothing in the outputs.
package exampletest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
)

// Task is one example task to run.
type Task struct {
	// AppEnv is the environment variable (NAME=VALUE) that makes the test
	// binary serve as the app.
	AppEnv string
	Params json.RawMessage
	Inputs []string
}

// RunHost runs task through host.Run with real processes of the test binary
// and three providers, under chaos when it is not empty, and requires that
// it finishes with outputs.
func RunHost(t *testing.T, task Task, chaos string) *host.Result {
	t.Helper()
	c, err := host.ParseChaos(chaos)
	require.NoError(t, err)
	bin, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	res, err := host.Run(ctx, host.RunConfig{
		Launcher:  host.ProcessLauncher{Bin: bin, Env: []string{task.AppEnv}, GtaskApp: true},
		WorkDir:   t.TempDir(),
		Params:    task.Params,
		Inputs:    task.Inputs,
		Providers: 3,
		// Generous for a race-built process on a loaded machine; a stalled
		// provider (chaos "hang") costs this much.
		SubtaskTimeout: 20 * time.Second,
		Chaos:          c,
	})
	require.NoError(t, err)
	require.Equal(t, host.Finished, res.Outcome, "reason: %s; %s", res.Reason, res.Summary())
	require.NotEmpty(t, res.Outputs)
	return res
}

// SameWithChaos runs task once as is and once with chaos killing, stalling
// and corrupting providers: both runs must end with the same output files,
// byte for byte, and the chaos run must have injected faults and recovered
// every one.
func SameWithChaos(t *testing.T, task Task) {
	t.Helper()
	plain := RunHost(t, task, "")
	chaotic := RunHost(t, task, "crash=0.2,hang=0.05,wrong=0.2,garbage=0.2,seed=7")
	t.Log(plain.Summary())
	t.Log(chaotic.Summary())

	require.Equal(t, plain.Outputs, chaotic.Outputs)
	for _, name := range plain.Outputs {
		want, err := os.ReadFile(filepath.Join(plain.OutputsDir, name))
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(chaotic.OutputsDir, name))
		require.NoError(t, err)
		assert.Equal(t, want, got, "%s: the same bytes with chaos as without", name)
	}
	assert.Zero(t, plain.Counts.InjectedTotal())
	assert.Positive(t, chaotic.Counts.InjectedTotal(), "seed 7 sabotages some attempts")
	assert.Equal(t, chaotic.Counts.InjectedTotal(), chaotic.Counts.Recovered, "every sabotaged part was accepted later")
}
