package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/sdk"
)

// The crash host's settings: its work dir (from the environment), its
// task, and the parts it computes before it sticks.
const (
	crashWorkDirEnv = "GTASK_HOST_TEST_WORK_DIR"
	crashTask       = "t1"
	crashParts      = 6
	crashComputes   = 3
)

// crashConfig is the RunConfig of both the crash host's run and the run
// that resumes it, but for the launcher and Resume.
func crashConfig(workDir string, l host.Launcher) host.RunConfig {
	return host.RunConfig{
		Launcher:       l,
		TaskID:         crashTask,
		WorkDir:        workDir,
		Params:         json.RawMessage(fmt.Sprintf(`{"parts": %d}`, crashParts)),
		Providers:      2,
		SubtaskTimeout: time.Minute,
	}
}

// runCrashHost is the test binary as a host that dies: it runs the task,
// its apps inline, computing parts below crashComputes and sticking at the
// others, until it is killed. It never returns.
func runCrashHost() {
	app := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Params.I < crashComputes {
			return honest()
		}
		<-ctx.Done()
		return "", ctx.Err()
	}}
	// Should the test never kill it, it ends by itself.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := crashConfig(os.Getenv(crashWorkDirEnv), host.InlineLauncher{Roles: sqRoles(app)})
	_, err := host.Run(ctx, cfg)
	fmt.Fprintln(os.Stderr, "crash host: the run ended:", err)
	os.Exit(1)
}

// readEvents reads the events of the events.jsonl at path, and fails the
// test unless every line is one.
func readEvents(t *testing.T, path string) []host.Event {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	return parseEvents(t, raw)
}

// parseEvents parses raw, JSON lines, as events.
func parseEvents(t *testing.T, raw []byte) []host.Event {
	t.Helper()
	var evs []host.Event
	for i, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		var ev host.Event
		require.NoError(t, json.Unmarshal([]byte(line), &ev), "line %d: %s", i+1, line)
		evs = append(evs, ev)
	}
	return evs
}

// accepted returns the parts whose results evs say were accepted.
func accepted(evs []host.Event) map[int]bool {
	parts := map[string]int{}
	out := map[int]bool{}
	for _, ev := range evs {
		switch {
		case ev.Kind == host.EventSubtaskAssigned && ev.Part != nil:
			parts[ev.Subtask] = *ev.Part
		case ev.Kind == host.EventSubtaskVerified && ev.Verdict == "SUCCESS":
			out[parts[ev.Subtask]] = true
		}
	}
	return out
}

// TestRunResumeAfterHostDeath: a host process running a task is killed
// (SIGKILL: no AbortTask, no last event) once some parts are accepted,
// with others computing and a half-written event at the end of
// events.jsonl; a Run with Resume over the same work dir finishes the
// task right, appends its events to the earlier run's with Seq going on,
// and computes none of the parts accepted before.
func TestRunResumeAfterHostDeath(t *testing.T) {
	workDir := t.TempDir()
	bin, err := os.Executable()
	require.NoError(t, err)
	var stderr bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), testAppEnv+"="+appCrashHost, crashWorkDirEnv+"="+workDir)
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	killed := false
	t.Cleanup(func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	// The host flushes its events before it waits, and it waits, stuck,
	// once the parts it computes are accepted.
	eventsPath := filepath.Join(workDir, "events.jsonl")
	for {
		// Whole lines only: the host may be writing the next ones.
		raw, err := os.ReadFile(eventsPath)
		if i := bytes.LastIndexByte(raw, '\n'); err == nil && i >= 0 &&
			len(accepted(parseEvents(t, raw[:i+1]))) == crashComputes {
			break
		}
		select {
		case <-t.Context().Done():
			require.FailNow(t, "the crash host never accepted its parts", "stderr:\n%s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	killed = true

	before := readEvents(t, eventsPath)
	last := before[len(before)-1]
	assert.NotContains(t, []host.EventKind{host.EventTaskFinished, host.EventTaskFailed, host.EventTaskAborted}, last.Kind,
		"the host died before the task ended")
	wasAccepted := accepted(before)
	assert.Equal(t, map[int]bool{0: true, 1: true, 2: true}, wasAccepted)
	// The host died in the middle of writing an event.
	f, err := os.OpenFile(eventsPath, os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	_, err = fmt.Fprintf(f, `{"seq":%d,"time":"2026-01-01T00:00:00Z","kind":"subtask_ass`, last.Seq+1)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	l := sqLauncher(&sqApp{})
	evs := &eventLog{}
	cfg := crashConfig(workDir, l)
	cfg.Resume = true
	cfg.OnEvent = evs.add
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res, err := host.Run(ctx, cfg)
	require.NoError(t, err)
	l.requireAllGone(t)
	assert.Equal(t, wantSquares(crashParts, 0), readOutput(t, res))

	// events.jsonl: the earlier run's whole lines, then this run's, Seq
	// going on without a gap.
	all := readEvents(t, eventsPath)
	resumed := evs.all()
	require.Len(t, all, len(before)+len(resumed))
	for i, ev := range all {
		assert.Equal(t, int64(i+1), ev.Seq, "line %d", i+1)
	}
	assert.Equal(t, before, all[:len(before)])
	for i, ev := range resumed {
		got := all[len(before)+i]
		assert.Equal(t, ev.Seq, got.Seq)
		assert.Equal(t, ev.Kind, got.Kind)
		assert.Equal(t, ev.Subtask, got.Subtask)
	}
	assert.Equal(t, host.EventTaskResumed, resumed[0].Kind)
	assert.Equal(t, last.Seq+1, resumed[0].Seq)
	created := evs.ofKind(host.EventTaskCreated)
	require.Len(t, created, 1)
	assert.Equal(t, "docker_cpu", created[0].Env, "the environment the task was created with")
	assert.Equal(t, crashParts, created[0].Parts)
	assert.Contains(t, created[0].Reason, "exists already")
	assert.Empty(t, evs.ofKind(host.EventTaskStarted))

	// Only the parts not accepted before were computed, once each.
	perPart := map[int]int{}
	for _, ev := range evs.ofKind(host.EventSubtaskAssigned) {
		require.NotNil(t, ev.Part)
		perPart[*ev.Part]++
	}
	assert.Equal(t, map[int]int{3: 1, 4: 1, 5: 1}, perPart)
	lastEv := resumed[len(resumed)-1]
	assert.Equal(t, host.EventTaskFinished, lastEv.Kind)
	assert.Equal(t, crashParts, lastEv.Progress.Done, "parts done go on from the earlier run's")
	assert.Equal(t, 3, res.Counts.Assigned, "the resumed run's own")
}

// TestRunResumeFresh: Resume over a work dir where no run created the task
// yet (the host died before CreateTask) creates it, inputs and all.
func TestRunResumeFresh(t *testing.T) {
	l := sqLauncher(&sqApp{})
	evs := &eventLog{}
	cfg := config(t, l, evs, 3)
	cfg.Resume = true
	offset := filepath.Join(t.TempDir(), "offset.txt")
	require.NoError(t, os.WriteFile(offset, []byte("10"), 0o644))
	cfg.Inputs = []string{offset}
	res, err := host.Run(t.Context(), cfg)
	require.NoError(t, err)
	l.requireAllGone(t)
	assert.Equal(t, wantSquares(3, 10), readOutput(t, res))
	all := evs.all()
	assert.Equal(t, host.EventTaskResumed, all[0].Kind)
	assert.Equal(t, int64(1), all[0].Seq)
	created := evs.ofKind(host.EventTaskCreated)
	require.Len(t, created, 1)
	assert.Empty(t, created[0].Reason, "created by this run")
	assert.Len(t, readEvents(t, res.EventsPath), len(all))
}

// TestRunResumeKeepsInputs: a resumed run copies no input the earlier run
// copied (its source may be gone), and copies one it did not get to.
func TestRunResumeKeepsInputs(t *testing.T) {
	l := sqLauncher(&sqApp{})
	evs := &eventLog{}
	cfg := config(t, l, evs, 2)
	src := t.TempDir()
	offset := filepath.Join(src, "offset.txt")
	other := filepath.Join(src, "other.txt")
	require.NoError(t, os.WriteFile(other, []byte("other"), 0o644))
	cfg.Inputs = []string{offset, other}
	// The earlier run copied offset.txt, whose source is gone since.
	inputs := filepath.Join(cfg.WorkDir, "requestor", cfg.TaskID, "task_inputs")
	require.NoError(t, os.MkdirAll(inputs, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(inputs, "offset.txt"), []byte("7"), 0o644))
	cfg.Resume = true
	res, err := host.Run(t.Context(), cfg)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(2, 7), readOutput(t, res))
	b, err := os.ReadFile(filepath.Join(inputs, "other.txt"))
	require.NoError(t, err)
	assert.Equal(t, "other", string(b))
	entries, err := os.ReadDir(inputs)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "no temporary file left")
}

// TestRunStoppedThenResumed: a run whose ctx ends with ErrStopped, once
// some parts are accepted and others compute, stops without ending the
// task (no AbortTask: the last event is task_stopped, the Outcome
// Stopped, every app gone); a Run with Resume over the same work dir then
// finishes it right without computing the accepted parts again.
func TestRunStoppedThenResumed(t *testing.T) {
	workDir := t.TempDir()
	stuck := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Params.I < crashComputes {
			return honest()
		}
		<-ctx.Done()
		return "", ctx.Err()
	}}
	l := track(host.InlineLauncher{Roles: sqRoles(stuck)})
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	stop := fmt.Errorf("the host restarts: %w", host.ErrStopped)
	evs := &eventLog{}
	cfg := crashConfig(workDir, l)
	cfg.Backups.Off = true // the stuck parts are to stay stuck
	done := 0
	cfg.OnEvent = func(ev host.Event) {
		evs.add(ev)
		if ev.Kind == host.EventSubtaskVerified && ev.Verdict == "SUCCESS" {
			if done++; done == crashComputes {
				cancel(stop)
			}
		}
	}
	res, err := host.Run(ctx, cfg)
	require.ErrorIs(t, err, host.ErrStopped)
	l.requireAllGone(t)
	require.NotNil(t, res)
	assert.Equal(t, host.Stopped, res.Outcome)
	assert.Equal(t, "the host restarts: the run was stopped, to be resumed", res.Reason)
	all := evs.all()
	last := all[len(all)-1]
	assert.Equal(t, host.EventTaskStopped, last.Kind)
	assert.Empty(t, evs.ofKind(host.EventTaskAborted))
	first := accepted(all)
	require.Len(t, first, crashComputes)

	l2 := track(host.InlineLauncher{Roles: sqRoles(&sqApp{})})
	evs2 := &eventLog{}
	cfg2 := crashConfig(workDir, l2)
	cfg2.Resume = true
	cfg2.OnEvent = evs2.add
	res2, err := host.Run(t.Context(), cfg2)
	require.NoError(t, err)
	l2.requireAllGone(t)
	require.Equal(t, host.Finished, res2.Outcome, res2.Reason)
	assert.Equal(t, wantSquares(crashParts, 0), readOutput(t, res2))
	assert.Equal(t, host.EventTaskResumed, evs2.all()[0].Kind)
	for _, ev := range evs2.ofKind(host.EventSubtaskAssigned) {
		assert.False(t, first[*ev.Part], "part %d was accepted before the stop, and computed again", *ev.Part)
	}
}
