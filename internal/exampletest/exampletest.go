// Package exampletest holds what the examples' end-to-end tests share: run a
// task through host.Run with the test binary itself as the app (the
// examples' TestMain re-executes it as the app when an environment variable
// is set), and check that chaos changes nothing in the outputs.
package exampletest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/host/docker"
	"github.com/gtask/gtask/host/docker/dockertest"
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
	bin, err := os.Executable()
	require.NoError(t, err)
	return RunWith(t, task, host.ProcessLauncher{Bin: bin, Env: []string{task.AppEnv}, GtaskApp: true}, chaos)
}

// RunWith runs task through host.Run with launcher and three providers,
// under chaos when it is not empty, and requires that it finishes with
// outputs.
func RunWith(t *testing.T, task Task, launcher host.Launcher, chaos string) *host.Result {
	t.Helper()
	c, err := host.ParseChaos(chaos)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	res, err := host.Run(ctx, host.RunConfig{
		Launcher:  launcher,
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

	requireSameOutputs(t, plain, chaotic, "with chaos as without")
	assert.Zero(t, plain.Counts.InjectedTotal())
	assert.Positive(t, chaotic.Counts.InjectedTotal(), "seed 7 sabotages some attempts")
	assert.Equal(t, chaotic.Counts.InjectedTotal(), chaotic.Counts.Recovered, "every sabotaged part was accepted later")
}

// requireSameOutputs requires that two runs ended with the same output
// files, byte for byte.
func requireSameOutputs(t *testing.T, want, got *host.Result, how string) {
	t.Helper()
	require.Equal(t, want.Outputs, got.Outputs, "the same output files %s", how)
	for _, name := range want.Outputs {
		w, err := os.ReadFile(filepath.Join(want.OutputsDir, name))
		require.NoError(t, err)
		g, err := os.ReadFile(filepath.Join(got.OutputsDir, name))
		require.NoError(t, err)
		assert.Equal(t, w, g, "%s: the same bytes %s", name, how)
	}
}

// SameInDocker runs task with the app in containers (the docker launcher,
// an image of the Go main package pkg built for the test), once as is and
// once under chaos, and requires both to end with the outputs the process
// runtime gives, byte for byte, and nothing of either run left in the
// engine. Without a Docker Engine the test is skipped, saying so.
func SameInDocker(t *testing.T, task Task, pkg string) {
	t.Helper()
	c := dockertest.Client(t)
	image := dockertest.AppImage(t, c, pkg)
	plain := RunHost(t, task, "")
	for _, chaos := range []string{"", "crash=0.2,hang=0.05,wrong=0.2,garbage=0.2,seed=7"} {
		l, err := docker.New(t.Context(), docker.Config{Client: c, Image: image})
		require.NoError(t, err)
		res := RunWith(t, task, l, chaos)
		require.NoError(t, l.Close(context.Background()))
		t.Logf("docker, chaos %q: %s", chaos, res.Summary())
		requireSameOutputs(t, plain, res, fmt.Sprintf("in containers (chaos %q) as in processes", chaos))
		if chaos != "" {
			assert.Equal(t, res.Counts.InjectedTotal(), res.Counts.Recovered, "every sabotaged part was accepted later")
		}
		dockertest.RequireNothingLeft(t, c, l.RunID())
	}
}
