// Package exampletest holds what the examples' end-to-end tests share: run a
// task through host.Run with the test binary itself as the app (the
// examples' TestMain re-executes it as the app when an environment variable
// is set), read back what the run recorded, and check that chaos changes
// nothing in the outputs.
//
// RunHost and RunWith run a task that must finish; Try runs one as Options
// say and returns how it ended, whatever that was (a task the app refuses,
// say):
//
//	res, err := exampletest.Try(t, task, exampletest.Options{})
//	require.NoError(t, err)
//	exampletest.RequireRefused(t, res, `no column "height"`)
//
// A test that sabotages attempts on purpose (Options.Chaos) checks in the
// run's events that every sabotaged attempt failed as it should and that
// its part was accepted later (RequireRecovered).
package exampletest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/host/docker"
	"github.com/gtask/gtask/host/docker/dockertest"
	"github.com/gtask/gtask/requestor"
)

// Task is one example task to run.
type Task struct {
	// AppEnv is the environment variable (NAME=VALUE) that makes the test
	// binary serve as the app.
	AppEnv string
	Params json.RawMessage
	Inputs []string
	// MaxSubtasks is CreateTask's max_subtasks_count. Default 0: the app
	// chooses.
	MaxSubtasks int
}

// Options say how Try runs a task; the zero value runs it as RunHost does
// without chaos.
type Options struct {
	// Launcher starts the app. Default: real processes of the test binary,
	// with Task.AppEnv in their environment.
	Launcher host.Launcher
	// Chaos is the chaos spec, in host.ParseChaos's form. Default "": none.
	Chaos string
	// Providers is the number of provider slots. Default 3.
	Providers int
	// Backups is the run's backup policy. Default: the host's (on).
	Backups host.Backups
	// WorkDir is the run's dir. Default: a t.TempDir().
	WorkDir string
	// OnEvent receives every event, as host.RunConfig.OnEvent does: on a
	// goroutine of the run, not the test's, so it must not call t.FailNow
	// (require). Default: none.
	OnEvent func(host.Event)
}

// RunHost runs task through host.Run with real processes of the test binary
// and three providers, under chaos when it is not empty, and requires that
// it finishes with outputs.
func RunHost(t *testing.T, task Task, chaos string) *host.Result {
	t.Helper()
	return Run(t, task, Options{Chaos: chaos})
}

// RunWith runs task through host.Run with launcher and three providers,
// under chaos when it is not empty, and requires that it finishes with
// outputs.
func RunWith(t *testing.T, task Task, launcher host.Launcher, chaos string) *host.Result {
	t.Helper()
	return Run(t, task, Options{Launcher: launcher, Chaos: chaos})
}

// Run runs task through host.Run as opts say and requires that it
// finishes with outputs.
func Run(t *testing.T, task Task, opts Options) *host.Result {
	t.Helper()
	res, err := Try(t, task, opts)
	require.NoError(t, err)
	require.Equal(t, host.Finished, res.Outcome, "reason: %s; %s", res.Reason, res.Summary())
	require.NotEmpty(t, res.Outputs)
	return res
}

// Try runs task through host.Run as opts say and returns what host.Run
// returned, whatever the outcome: a task the app refused is a Result with
// Outcome Failed, and no error.
func Try(t *testing.T, task Task, opts Options) (*host.Result, error) {
	t.Helper()
	c, err := host.ParseChaos(opts.Chaos)
	require.NoError(t, err)
	if opts.Launcher == nil {
		bin, err := os.Executable()
		require.NoError(t, err)
		opts.Launcher = host.ProcessLauncher{Bin: bin, Env: []string{task.AppEnv}, GtaskApp: true}
	}
	if opts.Providers == 0 {
		opts.Providers = 3
	}
	if opts.WorkDir == "" {
		opts.WorkDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	return host.Run(ctx, host.RunConfig{
		Launcher:    opts.Launcher,
		WorkDir:     opts.WorkDir,
		Params:      task.Params,
		Inputs:      task.Inputs,
		MaxSubtasks: task.MaxSubtasks,
		Providers:   opts.Providers,
		// Generous for a race-built process on a loaded machine; a stalled
		// provider (chaos "hang") costs this much.
		SubtaskTimeout: 20 * time.Second,
		Chaos:          c,
		Backups:        opts.Backups,
		OnEvent:        opts.OnEvent,
	})
}

// RequireRefused requires that the app refused the task at CreateTask as
// InvalidArgument, with a message containing each of want, and that
// nothing was computed.
func RequireRefused(t *testing.T, res *host.Result, want ...string) {
	t.Helper()
	require.NotNil(t, res)
	require.Equal(t, host.Failed, res.Outcome, "reason: %s; %s", res.Reason, res.Summary())
	assert.Contains(t, res.Reason, "CreateTask refused the task ("+codes.InvalidArgument.String()+")")
	for _, s := range want {
		assert.Contains(t, res.Reason, s)
	}
	assert.Zero(t, res.Counts.Assigned, "no subtask of a refused task")
	evs := Events(t, res)
	require.NotEmpty(t, evs)
	last := evs[len(evs)-1]
	assert.Equal(t, host.EventTaskFailed, last.Kind)
	assert.Equal(t, res.Reason, last.Reason, "the last event says why")
}

// Events reads the run's events back from its events.jsonl.
func Events(t *testing.T, res *host.Result) []host.Event {
	t.Helper()
	f, err := os.Open(res.EventsPath)
	require.NoError(t, err)
	defer f.Close()
	var evs []host.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev host.Event
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), "%s", sc.Bytes())
		evs = append(evs, ev)
	}
	require.NoError(t, sc.Err())
	return evs
}

// RequireRecovered requires that res, a run under chaos of kind alone,
// recovered from it as its events show: chaos sabotaged wantInjected
// attempts, each failed the way kind makes an attempt fail (crash: killed;
// hang: timed out; wrong, garbage: rejected by Verify), and each part
// sabotaged was accepted afterwards, from another attempt. Counts agree:
// Injected and Recovered are wantInjected, and FailedBy counts the failures.
func RequireRecovered(t *testing.T, res *host.Result, kind host.ChaosKind, wantInjected int) {
	t.Helper()
	require.Positive(t, wantInjected)
	var failKind host.FailKind
	switch kind {
	case host.ChaosCrash:
		failKind = host.FailCrash
	case host.ChaosHang:
		failKind = host.FailTimeout
	case host.ChaosWrong, host.ChaosGarbage:
		failKind = host.FailRejected
	default:
		require.Failf(t, "no such chaos", "%q", kind)
	}
	c := res.Counts
	assert.Equal(t, map[host.ChaosKind]int{kind: wantInjected}, c.Injected, res.Summary().String())
	assert.Equal(t, wantInjected, c.Recovered, "every sabotaged part was accepted later")
	assert.Equal(t, wantInjected, c.FailedBy[failKind], "each sabotaged attempt failed as %s", failKind)

	evs := Events(t, res)
	sabotaged := map[string]bool{} // subtask ids
	failed := map[string]bool{}
	recovered := map[int]bool{} // parts accepted after a sabotage
	pending := map[int]bool{}   // parts sabotaged, not accepted since
	for _, ev := range evs {
		switch {
		case ev.Kind == host.EventChaosInjected:
			assert.Equal(t, kind, ev.Chaos, "event %d", ev.Seq)
			require.NotNil(t, ev.Part, "event %d names the part", ev.Seq)
			sabotaged[ev.Subtask] = true
			pending[*ev.Part] = true
		case ev.Kind == host.EventComputeFailed && sabotaged[ev.Subtask]:
			assert.Equal(t, failKind, ev.Fail, "event %d: %s", ev.Seq, ev.Reason)
			failed[ev.Subtask] = true
		case ev.Kind == host.EventSubtaskVerified && sabotaged[ev.Subtask]:
			assert.NotEqual(t, requestor.Success.String(), ev.Verdict, "event %d: a sabotaged result is never accepted", ev.Seq)
			if ev.Verdict == requestor.Failure.String() {
				failed[ev.Subtask] = true
			}
		case ev.Kind == host.EventSubtaskVerified && ev.Verdict == requestor.Success.String() && ev.Part != nil && pending[*ev.Part]:
			delete(pending, *ev.Part)
			recovered[*ev.Part] = true
		}
	}
	assert.Len(t, sabotaged, wantInjected, "chaos_injected events")
	assert.Len(t, failed, wantInjected, "sabotaged attempts that failed as %s", failKind)
	assert.Len(t, recovered, wantInjected, "sabotaged parts accepted afterwards")
	assert.Empty(t, pending, "sabotaged parts never accepted afterwards")
	last := evs[len(evs)-1]
	assert.Equal(t, host.EventTaskFinished, last.Kind)
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
