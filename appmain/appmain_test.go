package appmain_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/internal/readyline"
	"github.com/gtask/gtask/taskapi"
)

// startTimeout bounds a child's start: a race-built binary on a loaded
// two-core machine can take seconds.
const startTimeout = 30 * time.Second

// lockedBuffer is a bytes.Buffer safe to read while exec writes to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// child is the test app running as a process of its own.
type child struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	first  chan string   // the first stdout line, if any
	lines  []string      // every stdout line, complete once readDone is closed
	read   chan struct{} // closed when stdout reached EOF
	exited chan struct{} // closed when the process has exited
	exitAt time.Time     // when Wait returned; set before exited is closed
	err    error         // Wait's error; set before exited is closed
}

// startChild runs the test app with args in dir (a fresh temp dir when dir
// is ""), as behaviour (see childEnv). Cleanup kills it if it still runs.
func startChild(t *testing.T, behaviour, dir string, args ...string) *child {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), childEnv+"="+behaviour,
		// Under -race the runtime sleeps 1s at exit (atexit_sleep_ms) to let
		// late races be reported; that second is the race detector's, not
		// the app's, and would hide how fast the app exits.
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	dieWithParent(cmd)
	c := &child{
		cmd:    cmd,
		stderr: &lockedBuffer{},
		first:  make(chan string, 1),
		read:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	cmd.Stderr = c.stderr
	// A pipe of our own rather than StdoutPipe, so that reading it and
	// waiting for the process are independent.
	r, w, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout = w
	require.NoError(t, cmd.Start())
	w.Close()

	go func() {
		defer close(c.read)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if len(c.lines) == 0 {
				c.first <- sc.Text()
			}
			c.lines = append(c.lines, sc.Text())
		}
	}()
	go func() {
		err := cmd.Wait()
		c.exitAt, c.err = time.Now(), err
		close(c.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			_ = cmd.Process.Kill()
			<-c.exited
		}
		<-c.read
		if t.Failed() {
			t.Logf("stderr of %v:\n%s", args, c.stderr.String())
		}
	})
	return c
}

// ready waits for the readiness line and returns its role and a dialable
// address.
func (c *child) ready(t *testing.T) (role, addr string) {
	t.Helper()
	select {
	case line := <-c.first:
		role, addr, ok := readyline.Parse(line)
		require.True(t, ok, "not a readiness line: %q", line)
		addr, err := readyline.Dialable(addr)
		require.NoError(t, err)
		return role, addr
	case <-c.exited:
		t.Fatalf("exited before the readiness line: %v; stderr:\n%s", c.err, c.stderr.String())
	case <-time.After(startTimeout):
		t.Fatalf("no readiness line within %v; stderr:\n%s", startTimeout, c.stderr.String())
	}
	return "", ""
}

// wait waits for the process to exit and returns its exit code.
func (c *child) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(within):
		t.Fatalf("still running after %v; stderr:\n%s", within, c.stderr.String())
	}
	<-c.read
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, c.err)
	return 0
}

// waitStderr waits until the child's stderr holds s.
func (c *child) waitStderr(t *testing.T, s string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(c.stderr.String(), s) },
		startTimeout, 10*time.Millisecond, "stderr never held %q", s)
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProviderServesOneComputeAndExits(t *testing.T) {
	dir := t.TempDir()
	c := startChild(t, "app", "", "--work-dir", dir, "provider", "0")
	role, addr := c.ready(t)
	assert.Equal(t, "provider", role)

	client := pb.NewProviderAppClient(dial(t, addr))
	reply, err := client.Compute(callCtx(t), &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1", SubtaskParamsJson: `{"mode":"write"}`})
	require.NoError(t, err)
	replied := time.Now()

	require.Equal(t, 0, c.wait(t, 10*time.Second))
	assert.Less(t, c.exitAt.Sub(replied), time.Second, "the process exits within 1s of its reply")
	assert.Equal(t, "result.txt", reply.GetOutputFilepath())
	got, err := os.ReadFile(filepath.Join(dir, reply.GetOutputFilepath()))
	require.NoError(t, err)
	assert.Equal(t, dir, string(got), "the handler got the --work-dir")
	assert.Len(t, c.lines, 1, "stdout holds the readiness line and nothing else: %q", c.lines)
}

func TestProviderShutdownDuringCompute(t *testing.T) {
	c := startChild(t, "app", "", "--work-dir", t.TempDir(), "provider", "0")
	_, addr := c.ready(t)
	client := pb.NewProviderAppClient(dial(t, addr))

	computed := make(chan error, 1)
	go func() {
		_, err := client.Compute(callCtx(t), &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1", SubtaskParamsJson: `{"mode":"block"}`})
		computed <- err
	}()
	c.waitStderr(t, "msg=computing") // the provider server's log: the handler runs
	_, err := client.Shutdown(callCtx(t), &pb.ShutdownRequest{})
	require.NoError(t, err)
	shutdownAt := time.Now()

	err = <-computed
	assert.Equal(t, codes.Canceled, status.Code(err), "err: %v", err)
	// The default grace period is 5s; this handler honours its context, so
	// the process is gone long before.
	require.Equal(t, 0, c.wait(t, 10*time.Second))
	assert.Less(t, c.exitAt.Sub(shutdownAt), 5*time.Second)
	assert.Len(t, c.lines, 1)
}

// TestProviderEndsOnSignal: a provider (not process 1) catches no signal:
// SIGTERM or SIGINT end it at once, mid-Compute, by the default
// disposition.
func TestProviderEndsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			c := startChild(t, "app", "", "--work-dir", t.TempDir(), "provider", "0")
			_, addr := c.ready(t)
			client := pb.NewProviderAppClient(dial(t, addr))
			computed := make(chan error, 1)
			go func() {
				_, err := client.Compute(callCtx(t), &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1", SubtaskParamsJson: `{"mode":"block"}`})
				computed <- err
			}()
			c.waitStderr(t, "msg=computing")
			require.NoError(t, c.cmd.Process.Signal(sig))
			assert.Equal(t, -1, c.wait(t, 10*time.Second), "ended by the signal, not an exit")
			ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
			require.True(t, ok)
			assert.True(t, ws.Signaled())
			assert.Equal(t, sig, ws.Signal())
			assert.Equal(t, codes.Unavailable, status.Code(<-computed))
		})
	}
}

func TestRequestorStopsOnSignal(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			c := startChild(t, "app", "", "--work-dir", t.TempDir(), "requestor", "0")
			role, addr := c.ready(t)
			assert.Equal(t, "requestor", role)

			client := pb.NewRequestorAppClient(dial(t, addr))
			reply, err := client.HasPendingSubtasks(callCtx(t), &pb.HasPendingSubtasksRequest{TaskId: "t1"})
			require.NoError(t, err)
			assert.True(t, reply.GetHasPendingSubtasks())

			require.NoError(t, c.cmd.Process.Signal(sig))
			require.Equal(t, 0, c.wait(t, 10*time.Second))
			assert.Len(t, c.lines, 1)
		})
	}
}

func TestPartialTLSRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "task_api_server_key.pem"), []byte("not really a key"), 0o600))
	for _, role := range []string{"requestor", "provider"} {
		t.Run(role, func(t *testing.T) {
			c := startChild(t, "app", "", "--work-dir", dir, role, "0")
			assert.Equal(t, 1, c.wait(t, startTimeout))
			assert.Contains(t, c.stderr.String(), "task_api_server_cert.pem")
			assert.Contains(t, c.stderr.String(), "task_api_client_cert.pem")
			assert.Empty(t, c.lines, "no readiness line")
		})
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing", nil, "missing the role"},
		{"no port", []string{"provider"}, "missing PORT"},
		{"unknown role", []string{"worker", "1"}, `unknown role "worker"`},
		{"port not a number", []string{"provider", "http"}, `PORT "http"`},
		{"port too big", []string{"requestor", "70000"}, `PORT "70000"`},
		{"negative port", []string{"requestor", "-1"}, `PORT "-1"`},
		{"extra args", []string{"provider", "0", "more"}, "unexpected arguments after PORT: more"},
		{"unknown flag", []string{"--port", "1", "provider", "0"}, "flag provided but not defined: -port"},
		{"flag after the role", []string{"provider", "0", "--work-dir", "."}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := startChild(t, "app", "", tt.args...)
			assert.Equal(t, 2, c.wait(t, startTimeout))
			stderr := c.stderr.String()
			assert.Contains(t, stderr, tt.want)
			assert.Contains(t, stderr, "usage: ")
			assert.Contains(t, stderr, "requestor|provider PORT")
			assert.Empty(t, c.lines)
		})
	}
}

func TestHelpExitsZero(t *testing.T) {
	c := startChild(t, "app", "", "-h")
	assert.Equal(t, 0, c.wait(t, startTimeout))
	assert.Contains(t, c.stderr.String(), "usage: ")
	assert.Contains(t, c.stderr.String(), "-work-dir")
	assert.Empty(t, c.lines)
}

func TestMissingWorkDir(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-dir")
	c := startChild(t, "app", "", "--work-dir", missing, "provider", "0")
	assert.Equal(t, 1, c.wait(t, startTimeout))
	assert.Contains(t, c.stderr.String(), missing)
	assert.Empty(t, c.lines)
}

func TestFactoryErrorExitsOne(t *testing.T) {
	c := startChild(t, "failing-factory", "", "--work-dir", t.TempDir(), "provider", "0")
	assert.Equal(t, 1, c.wait(t, startTimeout))
	assert.Contains(t, c.stderr.String(), "no GPU")
	assert.Empty(t, c.lines)
}

func TestDefaultWorkDirIsTheCurrentDir(t *testing.T) {
	if _, err := os.Stat(taskapi.ContainerWorkDir()); err == nil {
		t.Skipf("%s exists here, so it is the default work dir", taskapi.ContainerWorkDir())
	}
	dir := t.TempDir()
	c := startChild(t, "app", dir, "provider", "0")
	_, addr := c.ready(t)
	assert.True(t, strings.HasPrefix(addr, "127.0.0.1:"), "listens on loopback outside a container: %s", addr)

	client := pb.NewProviderAppClient(dial(t, addr))
	reply, err := client.Compute(callCtx(t), &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1", SubtaskParamsJson: `{"mode":"write"}`})
	require.NoError(t, err)
	require.Equal(t, 0, c.wait(t, 10*time.Second))

	got, err := os.ReadFile(filepath.Join(dir, reply.GetOutputFilepath()))
	require.NoError(t, err, "the result is in the current dir of the process")
	gotDir, err := filepath.EvalSymlinks(string(got))
	require.NoError(t, err)
	wantDir, err := filepath.EvalSymlinks(dir)
	require.NoError(t, err)
	assert.Equal(t, wantDir, gotDir)
}

func TestListenFlag(t *testing.T) {
	c := startChild(t, "app", "", "--work-dir", t.TempDir(), "--listen", "localhost", "requestor", "0")
	_, addr := c.ready(t)
	client := pb.NewRequestorAppClient(dial(t, addr))
	reply, err := client.RunBenchmark(callCtx(t), &pb.RunBenchmarkRequest{})
	require.NoError(t, err)
	assert.InDelta(t, 7, reply.GetScore(), 1e-6)
	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, c.wait(t, 10*time.Second))
}
