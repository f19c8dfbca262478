package daemon_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// childDaemon is the test binary serving as a daemon, in its own process.
type childDaemon struct {
	cmd         *exec.Cmd
	addr, admin string
	exited      chan error
	stderr      lockedBuffer
}

// startChildDaemon starts a daemon over dataDir in a child process and
// waits until it serves. It is killed, if still running, when the test
// ends.
func startChildDaemon(t *testing.T, dataDir string) *childDaemon {
	t.Helper()
	c := &childDaemon{cmd: exec.Command(os.Args[0], "-test.run=^$"), exited: make(chan error, 1)}
	c.cmd.Env = append(os.Environ(), childDaemonEnv+"="+dataDir, childCacheEnv+"="+cacheDir)
	// Gone with the test, even one that panics (a time out) before its
	// cleanups.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.cmd.Stderr = &c.stderr
	out, err := c.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, c.cmd.Start())
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
		c.exited <- c.cmd.Wait() // after the pipe is read to its end
	}()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		err := <-c.exited
		c.exited <- err
		t.Logf("child daemon: %v; stderr:\n%s", err, c.stderr.String())
	})
	select {
	case line, ok := <-lines:
		f := strings.Fields(line)
		require.True(t, ok && len(f) == 3 && f[0] == "serving", "child daemon said %q; stderr:\n%s", line, c.stderr.String())
		c.addr, c.admin = f[1], f[2]
	case <-time.After(time.Minute):
		t.Fatalf("the child daemon does not serve after a minute; stderr:\n%s", c.stderr.String())
	}
	return c
}

// lockedBuffer is a bytes.Buffer written and read by several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// fileEvent is what the test compares of an events.jsonl line.
type fileEvent struct {
	Seq     int64  `json:"seq"`
	Kind    string `json:"kind"`
	Task    string `json:"task"`
	Subtask string `json:"subtask"`
}

// readEventsFile reads the whole lines of an events.jsonl.
func readEventsFile(t *testing.T, path string) []fileEvent {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	if i := bytes.LastIndexByte(raw, '\n'); i >= 0 {
		raw = raw[:i+1]
	} else {
		raw = nil
	}
	var out []fileEvent
	for line := range bytes.Lines(raw) {
		var ev fileEvent
		require.NoError(t, json.Unmarshal(line, &ev), "line %q", line)
		out = append(out, ev)
	}
	return out
}

// TestKill9 kills a daemon (a child process) with SIGKILL in the middle of
// a task, at a moment its events.jsonl is ahead of what a watch has
// received (so, likely, of what the store has committed), then opens a
// daemon over the same data dir: the task resumes and finishes with the
// right result, the store holds every event of events.jsonl, seq 1..N
// without a gap or a repeat, and the requestor's log is whole.
func TestKill9(t *testing.T) {
	dataDir := t.TempDir()
	child := startChildDaemon(t, dataDir)
	conn, err := grpc.NewClient(child.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	c := hostv1.NewHostServiceClient(conn)
	ctx := as(t.Context(), child.admin)

	const parts = 16
	resp, err := c.CreateTask(ctx, &hostv1.CreateTaskRequest{
		App: treeApp(t), ParamsJson: fmt.Sprintf(`{"parts": %d, "sleep_ms": 150}`, parts), Providers: 2,
	})
	require.NoError(t, err)
	id := resp.GetTask().GetTaskId()
	eventsPath := filepath.Join(dataDir, "tasks", id, "events.jsonl")

	// Watch the task; once two parts are verified, stop the daemon
	// (SIGSTOP) as a subtask is computed, when the run's next events are
	// likely written and not yet committed. Kill it if events.jsonl is
	// then ahead of the watch; let it go on and try again if not.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.WatchTask(wctx, &hostv1.WatchTaskRequest{TaskId: id})
	require.NoError(t, err)
	evs := make(chan *hostv1.Event, 1024)
	watchDone := make(chan error, 1)
	go func() {
		defer close(evs)
		for {
			resp, err := st.Recv()
			if err != nil {
				watchDone <- err
				return
			}
			evs <- resp.GetEvent()
		}
	}()
	var watched int64 // the last run seq the watch received
	verified, tries := 0, 0
	take := func(ev *hostv1.Event) {
		if ev.GetSeq() > 0 {
			watched = ev.GetSeq()
		}
		if ev.GetKind() == "subtask_verified" {
			verified++
		}
	}
	killed := false
	for !killed {
		var ev *hostv1.Event
		select {
		case ev = <-evs:
		case <-time.After(time.Minute):
			t.Fatal("no event for a minute")
		}
		if ev == nil {
			t.Fatalf("the watch ended before the kill: %v", <-watchDone)
		}
		require.NotEqual(t, "task_ended", ev.GetKind(), "the task ended before the kill: the test proves nothing")
		take(ev)
		if verified < 2 || ev.GetKind() != "subtask_computed" {
			continue
		}
		tries++
		require.NoError(t, child.cmd.Process.Signal(syscall.SIGSTOP))
		time.Sleep(50 * time.Millisecond) // what was sent arrives
		for drained := false; !drained; {
			select {
			case ev := <-evs:
				if ev != nil {
					take(ev)
				}
			default:
				drained = true
			}
		}
		inFile := readEventsFile(t, eventsPath)
		ahead := len(inFile) > 0 && inFile[len(inFile)-1].Seq > watched
		if ahead || verified >= parts-4 {
			t.Logf("SIGKILL at try %d: events.jsonl at seq %d, the watch at seq %d", tries, inFile[len(inFile)-1].Seq, watched)
			require.NoError(t, child.cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
		require.NoError(t, child.cmd.Process.Signal(syscall.SIGCONT))
	}
	err = <-child.exited
	child.exited <- err
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL, "the child daemon: %v", err)
	cancel()
	for range evs {
	}
	require.Eventually(t, func() bool { return len(processesOf(t, dataDir)) == 0 }, 10*time.Second, 50*time.Millisecond,
		"the apps outlive their daemon")

	// Start again over the same data dir.
	var logs lockedBuffer
	s := serveLogged(t, dataDir, slog.New(slog.NewTextHandler(&logs, nil)))
	task := s.wait(ctx, id)
	require.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, task.GetState(), task.GetReason())
	require.EqualValues(t, 2, task.GetStarts())
	out, err := results(ctx, s.client(), id)
	require.NoError(t, err)
	sum := 0
	for i := range parts {
		sum += i * i
	}
	require.JSONEq(t, fmt.Sprintf(`{"sum": %d}`, sum), string(out["result.json"]))
	recovered, dropped := 0, 0
	if m := regexp.MustCompile(`recovered=(\d+) dropped=(\d+)`).FindStringSubmatch(logs.String()); m != nil {
		recovered, _ = strconv.Atoi(m[1])
		dropped, _ = strconv.Atoi(m[2])
	}
	t.Logf("the restart recovered %d events from events.jsonl and dropped %d", recovered, dropped)

	// The task's events from the start: the run events are events.jsonl,
	// line for line.
	all, err := watch(ctx, s.client(), &hostv1.WatchTaskRequest{TaskId: id})
	require.NoError(t, err)
	requireIncreasing(t, all)
	inFile := readEventsFile(t, eventsPath)
	require.NotEmpty(t, inFile)
	var own []string
	var run []fileEvent
	for i, ev := range all {
		if ev.GetSeq() == 0 {
			own = append(own, ev.GetKind())
			if ev.GetKind() == "run_resumed" {
				require.Less(t, i+1, len(all))
				require.Equal(t, "task_resumed", all[i+1].GetKind(), "run_resumed is followed by the resumed run's first event")
			}
			continue
		}
		run = append(run, fileEvent{Seq: ev.GetSeq(), Kind: ev.GetKind(), Task: ev.GetTaskId(), Subtask: ev.GetSubtaskId()})
	}
	require.Equal(t, []string{"task_queued", "run_started", "run_resumed", "task_ended"}, own)
	for i, ev := range run {
		require.EqualValues(t, i+1, ev.Seq, "run event %d (%s): a gap or a repeat", i, ev.Kind)
	}
	require.EqualValues(t, inFile[len(inFile)-1].Seq, len(run), "the store's last seq against events.jsonl's")
	require.Equal(t, inFile, run)

	// The requestor's log: both runs', whole.
	logFile, err := os.ReadFile(filepath.Join(dataDir, "tasks", id, "logs", "requestor.log"))
	require.NoError(t, err)
	require.NotEmpty(t, logFile)
	require.Equal(t, string(logFile), string(runLog(ctx, t, s.client(), &hostv1.GetRunLogsRequest{TaskId: id, Run: "requestor"})))
	starts := 0
	for _, ev := range run {
		if ev.Kind == "requestor_started" {
			starts++
		}
	}
	require.GreaterOrEqual(t, starts, 2)
	require.Equal(t, starts, strings.Count(string(logFile), "gtask: serving requestor on"),
		"a readiness line in requestor.log per requestor_started:\n%s", logFile)
}
