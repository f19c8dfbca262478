package main

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

// TestChaos runs a task (two partitions) through the host's Runner with real
// processes of this app, once as is and once with chaos killing, stalling
// and corrupting providers: both runs end with the same output files, byte
// for byte, and the chaos run says what it injected and recovered.
func TestChaos(t *testing.T) {
	t.Parallel()
	plain := runHost(t, "")
	chaotic := runHost(t, "crash=0.2,hang=0.05,wrong=0.2,garbage=0.2,seed=7")
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

// runHost runs one task with host.Run, this test binary serving as the app.
func runHost(t *testing.T, chaos string) *host.Result {
	t.Helper()
	c, err := host.ParseChaos(chaos)
	require.NoError(t, err)
	bin, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	res, err := host.Run(ctx, host.RunConfig{
		Launcher:  host.ProcessLauncher{Bin: bin, Env: []string{asApp + "=1"}, GtaskApp: true},
		WorkDir:   t.TempDir(),
		Params:    json.RawMessage(`{"column": "age"}`),
		Inputs:    seedInputs(t),
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
