package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	hostclient "github.com/gtask/gtask/client"
	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// longMandelbrot takes several seconds on two cores, in 32 parts: long
// enough to act on a task while it runs.
const longMandelbrot = `{"width": 1024, "height": 1024, "max_iter": 20000, "rows_per_part": 32}`

// daemonProc is a `gtask serve` started by startServe.
type daemonProc struct {
	cmd    *exec.Cmd
	exited chan error
	read   chan struct{} // closed when its stderr is all read

	mu     sync.Mutex
	stderr bytes.Buffer
}

// startServe starts `gtask serve args...` and waits for its "serving"
// line; it answers the process and the gRPC and HTTP addresses. It is
// killed, if still running, when the test ends.
func startServe(t *testing.T, bin string, args ...string) (d *daemonProc, grpcAddr, httpAddr string) {
	t.Helper()
	d = &daemonProc{cmd: exec.Command(bin, append([]string{"serve"}, args...)...), exited: make(chan error, 1), read: make(chan struct{})}
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	d.cmd.Stderr = pw
	require.NoError(t, d.cmd.Start())
	pw.Close()
	go func() {
		defer close(d.read)
		defer pr.Close()
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			d.mu.Lock()
			d.stderr.Write(buf[:n])
			d.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		err := <-d.exited
		d.exited <- err
		<-d.read
		t.Logf("gtask serve %s: stderr:\n%s", strings.Join(args, " "), d.output())
	})
	m := d.await(t, regexp.MustCompile(`gtask: serving host API on (\S+) \(HTTP (?:on (\S+)\)|off\))`), time.Minute)
	return d, m[1], m[2]
}

func (d *daemonProc) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stderr.String()
}

// await waits for re to match the daemon's stderr and answers the match.
func (d *daemonProc) await(t *testing.T, re *regexp.Regexp, limit time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if m := re.FindStringSubmatch(d.output()); m != nil {
			return m
		}
		select {
		case err := <-d.exited:
			d.exited <- err
			<-d.read
			t.Fatalf("gtask serve exited (%v) before printing %q:\n%s", err, re, d.output())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("gtask serve did not print %q within %s:\n%s", re, limit, d.output())
		}
	}
}

// gtaskEnv runs the gtask binary with the daemon's address and token.
type gtaskEnv struct {
	bin, host, token string
}

func (g gtaskEnv) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, g.bin, args...)
	cmd.Env = append(os.Environ(), "GTASK_HOST="+g.host, "GTASK_TOKEN="+g.token)
	return cmd
}

// run runs gtask args... to its end and answers its exit status and
// streams.
func (g gtaskEnv) run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := g.command(ctx, args...)
	var out, errw bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errw
	err := cmd.Run()
	code = exitCode(t, err)
	t.Logf("gtask %s: exit %d\nstderr:\n%s", strings.Join(args, " "), code, errw.String())
	return code, out.String(), errw.String()
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("running gtask: %v", err)
	return -1
}

// TestServe is the daemon end to end, through the real binary: serve,
// submit --wait and results, watch, logs -f of a running task, the HTTP
// gateway with and without a token, kill, a daemon killed with SIGKILL
// mid-task and started again (the task resumes and `gtask wait`, started
// before the kill, sees it finish with the right result), and a graceful
// stop.
func TestServe(t *testing.T) {
	root := repoDir(t)
	bin := buildGtask(t, root)
	dataDir := filepath.Join(t.TempDir(), "data")
	average := filepath.Join(root, "examples", "average")
	mandelbrot := filepath.Join(root, "examples", "mandelbrot")

	d, grpcAddr, httpAddr := startServe(t, bin, "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--slots", "2")
	m := d.await(t, regexp.MustCompile(`export GTASK_TOKEN=(\S+)`), time.Second)
	g := gtaskEnv{bin: bin, host: grpcAddr, token: m[1]}
	require.NotEmpty(t, httpAddr)

	// submit --wait, then results.
	code, stdout, stderr := g.run(t, "submit", average, "--params", `{"column": "age"}`,
		"--input", filepath.Join(average, "testdata", "org1.csv"), "--input", filepath.Join(average, "testdata", "org2.csv"),
		"--backups=false", "--wait")
	require.Equal(t, ExitOK, code, stderr)
	id := strings.TrimSpace(stdout)
	require.NotEmpty(t, id)
	assert.Contains(t, stderr, "finished")
	out := filepath.Join(t.TempDir(), "out")
	code, _, stderr = g.run(t, "results", id, "--out", out)
	require.Equal(t, ExitOK, code, stderr)
	b, err := os.ReadFile(filepath.Join(out, "result.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"average": 53.25}`, string(b))

	// watch: the task's whole life, as lines and as JSON.
	code, stdout, _ = g.run(t, "watch", id)
	require.Equal(t, ExitOK, code)
	for _, kind := range []string{"task_queued", "task_created", "subtask_verified", "task_finished"} {
		assert.Contains(t, stdout, " "+kind, "watch shows no %s", kind)
	}
	code, stdout, _ = g.run(t, "watch", id, "--json")
	require.Equal(t, ExitOK, code)
	var last *hostv1.Event
	for line := range strings.Lines(stdout) {
		ev := &hostv1.Event{}
		require.NoError(t, protojson.Unmarshal([]byte(line), ev), "line %q", line)
		assert.Equal(t, id, ev.GetTaskId())
		if ev.GetKind() == "task_started" {
			assert.Contains(t, ev.GetReason(), "no backups", "submit --backups=false reaches the run")
		}
		last = ev
	}
	require.NotNil(t, last)
	assert.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, last.GetState())
	code, stdout, _ = g.run(t, "watch", id, "--cursor", "2")
	require.Equal(t, ExitOK, code)
	assert.NotContains(t, stdout, "task_queued", "--cursor 2 shows events after 2 only")

	// get and ls.
	code, stdout, _ = g.run(t, "get", id, "--json")
	require.Equal(t, ExitOK, code)
	task := &hostv1.Task{}
	require.NoError(t, protojson.Unmarshal([]byte(stdout), task))
	assert.Equal(t, []string{"result.json"}, task.GetOutputs())
	code, stdout, _ = g.run(t, "ls", "--state", "finished")
	require.Equal(t, ExitOK, code)
	assert.Regexp(t, regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(id)+`\s+finished\s+average\s+\d+/\d+\s+\d+s`), stdout)

	// The HTTP gateway: the token in the Authorization header, or 401.
	checkHTTP(t, "http://"+httpAddr+"/v1/tasks/"+id, g.token, id)

	// A client command without a token says how to get one.
	code, _, stderr = gtaskEnv{bin: bin, host: grpcAddr}.run(t, "ls")
	assert.Equal(t, ExitBadInput, code)
	assert.Contains(t, stderr, "gtask token create")

	// kill: the task and its tree; wait then says killed, exit 1.
	victim := submitLong(t, g, mandelbrot)
	code, stdout, _ = g.run(t, "kill", victim)
	require.Equal(t, ExitOK, code)
	assert.Contains(t, stdout, victim)
	code, _, stderr = g.run(t, "wait", victim)
	assert.Equal(t, ExitFailed, code)
	assert.Contains(t, stderr, "killed")

	// logs -f of a running task shows its lines as they come.
	long := submitLong(t, g, mandelbrot)
	c, err := hostclient.Dial(t.Context(), grpcAddr, g.token)
	require.NoError(t, err)
	defer c.Close()
	logs := startReader(t, g.command(t.Context(), "logs", long, "-f"))
	select {
	case line := <-logs.lines:
		assert.NotEmpty(t, line)
	case <-time.After(time.Minute):
		t.Fatal("logs -f showed no line within a minute")
	}
	tk, err := c.Get(t.Context(), long)
	require.NoError(t, err)
	require.False(t, hostclient.Terminal(tk.GetState()), "the task ended before its log was read: the test proves nothing")

	// SIGKILL the daemon mid-task, with `gtask wait` waiting; start it
	// again on the same data dir and address: the task resumes, and the
	// wait sees it finish.
	awaitEvent(t, c, long, "subtask_computed")
	wait := startReader(t, g.command(t.Context(), "wait", long))
	time.Sleep(300 * time.Millisecond) // the wait is watching
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGKILL))
	<-d.exited
	d.exited <- nil
	logsErr := logs.wait(t, 30*time.Second)
	assert.Error(t, logsErr, "logs -f of a task whose daemon died must not succeed")
	time.Sleep(time.Second) // the wait polls a dead daemon meanwhile
	_, _, _ = startServe(t, bin, "--data-dir", dataDir, "--listen", grpcAddr, "--http", "off", "--slots", "2")
	require.NoError(t, wait.wait(t, 3*time.Minute), "gtask wait across the restart; stderr:\n%s", wait.stderr())
	assert.Contains(t, wait.stderr(), "finished")

	code, stdout, _ = g.run(t, "get", long, "--json")
	require.Equal(t, ExitOK, code)
	task = &hostv1.Task{}
	require.NoError(t, protojson.Unmarshal([]byte(stdout), task))
	assert.GreaterOrEqual(t, task.GetStarts(), int32(2), "the task was not resumed but run again from nothing?")
	resumedOut := filepath.Join(t.TempDir(), "resumed")
	code, _, stderr = g.run(t, "results", long, "--out", resumedOut)
	require.Equal(t, ExitOK, code, stderr)
	resumed, err := os.ReadFile(filepath.Join(resumedOut, "mandelbrot.png"))
	require.NoError(t, err)

	// The result of the resumed task is the one of a run without a
	// restart, byte for byte.
	plainOut := filepath.Join(t.TempDir(), "plain")
	code, _, stderr = g.run(t, "run", mandelbrot, "--progress", "off", "--out", plainOut, "--params", longMandelbrot)
	require.Equal(t, ExitOK, code, stderr)
	plain, err := os.ReadFile(filepath.Join(plainOut, "mandelbrot.png"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(plain, resumed), "the resumed task's image differs from a plain run's")
	img, err := png.Decode(bytes.NewReader(resumed))
	require.NoError(t, err)
	assert.Equal(t, 1024, img.Bounds().Dx())
}

// TestServeStops checks the graceful stop: SIGTERM, and serve exits 0
// having said so; and a --listen that is not loopback is refused.
func TestServeStops(t *testing.T) {
	bin := buildGtask(t, repoDir(t))
	d, _, _ := startServe(t, bin, "--data-dir", filepath.Join(t.TempDir(), "data"), "--listen", "127.0.0.1:0", "--http", "off")
	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-d.exited:
		d.exited <- err
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("gtask serve still runs 30 s after SIGTERM")
	}
	<-d.read
	assert.Contains(t, d.output(), "gtask: stopped")

	code, _, stderr := runMain(t, t.Context(), "serve", "--data-dir", t.TempDir(), "--listen", "0.0.0.0:0")
	assert.Equal(t, ExitBadInput, code)
	assert.Contains(t, stderr, "--insecure-listen-any")
}

// TestTokenCreate makes tokens in a data dir no daemon runs on, refuses
// while one does, and makes one through the daemon with an admin token.
func TestTokenCreate(t *testing.T) {
	bin := buildGtask(t, repoDir(t))
	dataDir := filepath.Join(t.TempDir(), "data")

	code, _, stderr := runMain(t, t.Context(), "token", "create", "--user", "bob", "--data-dir", dataDir)
	assert.Equal(t, ExitBadInput, code, "no data dir yet")
	assert.Contains(t, stderr, "gtask serve")

	d, grpcAddr, _ := startServe(t, bin, "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--http", "off")
	admin := d.await(t, regexp.MustCompile(`export GTASK_TOKEN=(\S+)`), time.Second)[1]

	code, _, stderr = runMain(t, t.Context(), "token", "create", "--user", "bob", "--data-dir", dataDir)
	assert.Equal(t, ExitBadInput, code)
	assert.Contains(t, stderr, "stop the daemon, or use --host")

	code, stdout, stderr := runMain(t, t.Context(), "token", "create", "--user", "carol", "--host", grpcAddr, "--token", admin)
	require.Equal(t, ExitOK, code, stderr)
	carol := strings.TrimSpace(stdout)
	require.NotEmpty(t, carol)
	// carol's token works, and is not an admin's.
	code, _, _ = runMain(t, t.Context(), "ls", "--host", grpcAddr, "--token", carol)
	assert.Equal(t, ExitOK, code)
	code, _, stderr = runMain(t, t.Context(), "token", "create", "--user", "dave", "--host", grpcAddr, "--token", carol)
	assert.Equal(t, ExitBadInput, code)
	code, _, stderr = runMain(t, t.Context(), "ls", "--host", grpcAddr, "--token", "nonsense")
	assert.Equal(t, ExitBadInput, code)
	assert.Contains(t, stderr, "refused the token")

	require.NoError(t, d.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, <-d.exited)
	d.exited <- nil
	code, stdout, stderr = runMain(t, t.Context(), "token", "create", "--user", "bob", "--data-dir", dataDir)
	require.Equal(t, ExitOK, code, stderr)
	assert.NotEmpty(t, strings.TrimSpace(stdout))
	assert.NotContains(t, stderr, "GTASK_TOKEN=", "the admin token is made on the first open only")
}

// TestClientCommandsUnreachable: no daemon at --host is a host error, and
// says what to do.
func TestClientCommandsUnreachable(t *testing.T) {
	code, _, stderr := runMain(t, t.Context(), "get", "x", "--host", "127.0.0.1:1", "--token", "t")
	assert.Equal(t, ExitHostError, code)
	assert.Contains(t, stderr, "cannot reach the gtask daemon at 127.0.0.1:1")
	assert.Contains(t, stderr, "gtask serve")
}

// checkHTTP gets url with the token, wanting the task as JSON, and
// without it, wanting 401.
func checkHTTP(t *testing.T, url, token, id string) {
	t.Helper()
	get := func(auth string) (*http.Response, []byte) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		require.NoError(t, err)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, b
	}
	resp, body := get("Bearer " + token)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Contains(t, resp.Header.Get("Content-Type"), "application/json")
	var got struct {
		Task struct {
			TaskID string `json:"taskId"`
			State  string `json:"state"`
		} `json:"task"`
	}
	require.NoError(t, json.Unmarshal(body, &got), "%s", body)
	assert.Equal(t, id, got.Task.TaskID)
	assert.Equal(t, "TASK_STATE_FINISHED", got.Task.State)

	resp, body = get("")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s", body)
}

// submitLong submits a task of the long mandelbrot and answers its id.
func submitLong(t *testing.T, g gtaskEnv, mandelbrot string) string {
	t.Helper()
	code, stdout, stderr := g.run(t, "submit", mandelbrot, "--params", longMandelbrot)
	require.Equal(t, ExitOK, code, stderr)
	return strings.TrimSpace(stdout)
}

// awaitEvent waits for an event of kind of task id.
func awaitEvent(t *testing.T, c *hostclient.Client, id, kind string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	found := errors.New("found")
	err := c.Watch(ctx, id, false, 0, func(ev *hostv1.Event) error {
		if ev.GetKind() == kind {
			return found
		}
		return nil
	})
	require.ErrorIs(t, err, found, "no %s event of task %s", kind, id)
}

// reader is a gtask process whose stdout lines are read as they come.
type reader struct {
	lines  chan string
	exited chan error
	read   chan struct{}
	mu     sync.Mutex
	errBuf bytes.Buffer
}

func (r *reader) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errBuf.Write(p)
}

func (r *reader) stderr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errBuf.String()
}

// startReader starts cmd; it is killed, if still running, when the test
// ends.
func startReader(t *testing.T, cmd *exec.Cmd) *reader {
	t.Helper()
	r := &reader{lines: make(chan string, 1024), exited: make(chan error, 1), read: make(chan struct{})}
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = pw, r
	require.NoError(t, cmd.Start())
	pw.Close()
	go func() {
		defer close(r.read)
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case r.lines <- sc.Text():
			default: // nobody reads that far
			}
		}
	}()
	go func() { r.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		err := <-r.exited
		r.exited <- err
		<-r.read
	})
	return r
}

// wait waits up to limit for the process to exit and answers how.
func (r *reader) wait(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-r.exited:
		r.exited <- err
		<-r.read
		return err
	case <-time.After(limit):
		t.Fatalf("still running after %s; stderr:\n%s", limit, r.stderr())
		return nil
	}
}
