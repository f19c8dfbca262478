package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
)

// testAppEnv, when set, makes the test binary the test app instead of
// running the tests (see TestMain): the launcher tests start their own
// binary as the app's process, so no other binary is built. Its value is the
// app's behaviour, one of the modes below.
const testAppEnv = "GTASK_HOST_TEST_APP"

// The test app's modes.
const (
	// appNormal is a gtask app: appmain.Main over the test roles.
	appNormal = "app"
	// appSilent is the same app without the readiness line, as a
	// reference-convention app behaves: its stdout is discarded.
	appSilent = "silent"
	// appFailing's factories fail: it exits 1 before serving.
	appFailing = "failing"
	// appBigLines writes a 1 MiB line on stdout and another on stderr
	// before serving.
	appBigLines = "biglines"
	// appSpawn starts `sleep 60` in its own process group, writes both pids
	// to the pid file, then serves.
	appSpawn = "spawn"
	// appHang writes its pid to the pid file and never serves.
	appHang = "hang"
	// appDeaf ignores SIGTERM: only a kill stops it.
	appDeaf = "deaf"
	// appPlainTerm serves without catching SIGTERM, so SIGTERM kills it, as
	// it does many reference-convention apps.
	appPlainTerm = "plainterm"
	// appCrashHost is not an app but a host: it runs a task with Run, its
	// apps inline, until it is killed (see runner_resume_test.go).
	appCrashHost = "crashhost"
)

// pidFile is where the test app writes its pids, in its work dir (its
// current directory).
const pidFile = "pids"

// errNoGPU is the failing app's factories' error.
const errNoGPU = "the test app cannot start: no GPU"

// runTestApp is the whole test app; it never returns.
func runTestApp(mode string) {
	roles := testAppRoles()
	switch mode {
	case appFailing:
		appmain.Main(failingRoles())
	case appSilent:
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := appmain.Run(ctx, os.Args, roles, io.Discard, os.Stderr)
		stop()
		exitWith(err)
	case appBigLines:
		_, _ = os.Stdout.WriteString(strings.Repeat("x", 1<<20) + "\n")
		_, _ = os.Stderr.WriteString(strings.Repeat("y", 1<<20) + "\n")
		appmain.Main(roles)
	case appSpawn:
		sleep := exec.Command("sleep", "60")
		// It holds the app's stdout and stderr too, as a careless child
		// would: the instance must not wait for it to close them.
		sleep.Stdout, sleep.Stderr = os.Stdout, os.Stderr
		if err := sleep.Start(); err != nil {
			exitWith(err)
		}
		writePids(os.Getpid(), sleep.Process.Pid)
		appmain.Main(roles)
	case appHang:
		writePids(os.Getpid())
		time.Sleep(time.Hour)
		os.Exit(1)
	case appDeaf:
		signal.Ignore(syscall.SIGTERM)
		exitWith(appmain.Run(context.Background(), os.Args, roles, os.Stdout, os.Stderr))
	case appPlainTerm:
		exitWith(appmain.Run(context.Background(), os.Args, roles, os.Stdout, os.Stderr))
	case appCrashHost:
		runCrashHost()
	default:
		appmain.Main(roles)
	}
}

func exitWith(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "test app:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// writePids writes pids to the pid file in the current directory, whole
// or not at all (the test reads it while the app runs).
func writePids(pids ...int) {
	var b strings.Builder
	for _, p := range pids {
		fmt.Fprintln(&b, p)
	}
	if err := os.WriteFile(pidFile+".tmp", []byte(b.String()), 0o644); err != nil {
		exitWith(err)
	}
	if err := os.Rename(pidFile+".tmp", pidFile); err != nil {
		exitWith(err)
	}
}

// readPids reads the pids the test app in dir wrote.
func readPids(t *testing.T, dir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	require.NoError(t, err, "the test app wrote no pid file")
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		p, err := strconv.Atoi(f)
		require.NoError(t, err)
		pids = append(pids, p)
	}
	return pids
}

// testAppRoles are the test app's factories, run in the app's process or,
// for the inline launcher, in the test's.
func testAppRoles() appmain.Roles {
	return appmain.Roles{
		Requestor: func(workDir string, log *slog.Logger) (requestor.Handler, error) {
			log.Info("test app", "work_dir", workDir)
			return testAppRequestor{}, nil
		},
		Provider: func(workDir string, log *slog.Logger) (provider.Handler, error) {
			log.Info("test app", "work_dir", workDir)
			return testAppProvider{workDir: workDir}, nil
		},
	}
}

// failingRoles are factories that fail, as an app that cannot run here.
func failingRoles() appmain.Roles {
	fail := errors.New(errNoGPU)
	return appmain.Roles{
		Requestor: func(string, *slog.Logger) (requestor.Handler, error) { return nil, fail },
		Provider:  func(string, *slog.Logger) (provider.Handler, error) { return nil, fail },
	}
}

// testAppRequestor answers what the tests call; any other call reaches the
// nil Handler, and the server answers its panic with Internal.
type testAppRequestor struct{ requestor.Handler }

func (testAppRequestor) HasPendingSubtasks(context.Context, string) (bool, error) { return true, nil }

func (testAppRequestor) RunBenchmark(context.Context) (float64, error) { return 7, nil }

func (testAppRequestor) Shutdown(context.Context) error { return nil }

// testAppProvider's Compute writes {subtask}.txt holding its work dir, for
// the test to see which dir the app was given.
type testAppProvider struct{ workDir string }

func (p testAppProvider) Compute(_ context.Context, _, subtaskID string, _ json.RawMessage) (string, error) {
	name := subtaskID + ".txt"
	return name, os.WriteFile(filepath.Join(p.workDir, name), []byte(p.workDir), 0o644)
}

func (testAppProvider) RunBenchmark(context.Context) (float64, error) { return 1, nil }

// testAppLauncher starts this test binary as the test app in mode, as a
// gtask app.
func testAppLauncher(t *testing.T, mode string) host.ProcessLauncher {
	t.Helper()
	bin, err := os.Executable()
	require.NoError(t, err)
	// A race-built binary sleeps a second at exit, waiting for reports
	// from other threads; the test app's exit is what the tests wait for.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return host.ProcessLauncher{
		Bin:      bin,
		Env:      []string{testAppEnv + "=" + mode, "GORACE=" + gorace},
		GtaskApp: true,
	}
}

// launchCase is one way to run the test app.
type launchCase struct {
	name string
	l    host.Launcher
}

// launchCases are the ways the contract tests run the test app: a gtask
// process, a reference-convention process (found by its health), and
// inline.
func launchCases(t *testing.T) []launchCase {
	reference := testAppLauncher(t, appSilent)
	reference.GtaskApp = false
	return []launchCase{
		{"process", testAppLauncher(t, appNormal)},
		{"reference process", reference},
		{"inline", host.InlineLauncher{Roles: testAppRoles()}},
	}
}

// startTimeout bounds a start: a race-built test binary on a loaded
// two-core machine can take seconds.
const startTimeout = 60 * time.Second

// exitTimeout bounds the wait for an instance to end once it should.
const exitTimeout = 30 * time.Second

// startApp starts the app in role over a fresh work dir and returns the
// instance, the work dir and the log's path. The instance is killed when the
// test ends, so that nothing outlives it.
func startApp(t *testing.T, l host.Launcher, role host.Role) (host.Instance, string, string) {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "app.log")
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	inst, err := l.Start(ctx, role, dir, logPath)
	require.NoError(t, err)
	t.Cleanup(func() { _ = inst.Kill() })
	return inst, dir, logPath
}

// requireDone waits for inst to end.
func requireDone(t *testing.T, inst host.Instance) {
	t.Helper()
	select {
	case <-inst.Done():
	case <-time.After(exitTimeout):
		require.FailNow(t, "the instance did not end")
	}
}

// readLog reads the app's log.
func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
