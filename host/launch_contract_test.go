package host_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/host"
)

// The Launcher contract, for every launcher.

func TestLaunchRequestorServesUntilStopped(t *testing.T) {
	for _, tc := range launchCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			inst, _, logPath := startApp(t, tc.l, host.RoleRequestor)

			c, err := host.DialRequestor(testCtx(t), inst.Addr())
			require.NoError(t, err)
			pending, err := c.HasPendingSubtasks(testCtx(t), "t1")
			require.NoError(t, err)
			assert.True(t, pending)
			score, err := c.RunBenchmark(testCtx(t))
			require.NoError(t, err)
			assert.Equal(t, 7.0, score)
			require.NoError(t, c.Close())

			select {
			case <-inst.Done():
				require.FailNow(t, "the requestor ended by itself")
			default:
			}
			require.NoError(t, inst.Stop(testCtx(t)))
			requireDone(t, inst)
			assert.NoError(t, inst.Wait())
			assert.NoError(t, inst.Stop(testCtx(t)), "a second Stop")
			assert.NoError(t, inst.Kill(), "a Kill after the stop")
			assert.Contains(t, readLog(t, logPath), "serving", "the app's log")
		})
	}
}

func TestLaunchProviderEndsAfterItsOneCall(t *testing.T) {
	for _, tc := range launchCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			inst, dir, _ := startApp(t, tc.l, host.RoleProvider)

			c, err := host.DialProvider(testCtx(t), inst.Addr())
			require.NoError(t, err)
			out, err := c.Compute(testCtx(t), "t1", "s1", json.RawMessage(`{}`))
			require.NoError(t, err)
			require.NoError(t, c.Close())

			requireDone(t, inst)
			assert.NoError(t, inst.Wait())
			assert.NoError(t, inst.Stop(testCtx(t)), "a Stop after the end")

			assert.Equal(t, "s1.txt", out)
			got, err := os.ReadFile(filepath.Join(dir, out))
			require.NoError(t, err)
			assert.Equal(t, realPath(t, dir), realPath(t, string(got)), "the work dir the app was given")
		})
	}
}

func TestLaunchKill(t *testing.T) {
	for _, tc := range launchCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			inst, _, _ := startApp(t, tc.l, host.RoleRequestor)
			require.NoError(t, inst.Kill())
			requireDone(t, inst)
			assert.NoError(t, inst.Kill(), "a second Kill")
		})
	}
}

func TestLaunchStopAndKillTogether(t *testing.T) {
	for _, tc := range launchCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			inst, _, _ := startApp(t, tc.l, host.RoleRequestor)
			var wg sync.WaitGroup
			wg.Go(func() { _ = inst.Stop(testCtx(t)) })
			wg.Go(func() { _ = inst.Stop(testCtx(t)) })
			wg.Go(func() { assert.NoError(t, inst.Kill()) })
			wg.Go(func() { _ = inst.Wait() })
			wg.Wait()
			requireDone(t, inst)
		})
	}
}

func TestLaunchStartFailures(t *testing.T) {
	bin, err := os.Executable()
	require.NoError(t, err)
	failing := testAppLauncher(t, appFailing)
	failingReference := failing
	failingReference.GtaskApp = false
	tests := []struct {
		name    string
		l       host.Launcher
		workDir string // "" for a fresh one
		want    []string
	}{
		{
			name: "no such binary",
			l:    host.ProcessLauncher{Bin: "/nonexistent/gtask-test-app", GtaskApp: true},
			want: []string{"/nonexistent/gtask-test-app"},
		},
		{
			name: "the app exits at once",
			l:    failing,
			want: []string{bin, "exited before serving", "exit status 1", errNoGPU},
		},
		{
			name: "a reference app exits at once",
			l:    failingReference,
			want: []string{bin, "exited before serving", "exit status 1", errNoGPU},
		},
		{
			name:    "no work dir",
			l:       testAppLauncher(t, appNormal),
			workDir: "/nonexistent/work",
			want:    []string{bin, "/nonexistent/work"},
		},
		{
			name: "the factory fails inline",
			l:    host.InlineLauncher{Roles: failingRoles()},
			want: []string{"inline", errNoGPU},
		},
		{
			name: "a role the inline app lacks",
			l:    host.InlineLauncher{Roles: appmain.Roles{Provider: testAppRoles().Provider}},
			want: []string{"inline", "does not serve the requestor role"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.workDir
			if dir == "" {
				dir = t.TempDir()
			}
			logPath := filepath.Join(t.TempDir(), "app.log")
			ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
			defer cancel()
			inst, err := tc.l.Start(ctx, host.RoleRequestor, dir, logPath)
			require.Error(t, err)
			t.Log(err)
			assert.Nil(t, inst)
			for _, w := range append(tc.want, logPath) {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLaunchStartRefusesUnknownRole(t *testing.T) {
	for _, tc := range launchCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.l.Start(testCtx(t), "verifier", t.TempDir(), filepath.Join(t.TempDir(), "app.log"))
			require.ErrorContains(t, err, `unknown role "verifier"`)
		})
	}
}

func TestLaunchStartWithEndedContext(t *testing.T) {
	for _, tc := range launchCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err := tc.l.Start(ctx, host.RoleProvider, t.TempDir(), filepath.Join(t.TempDir(), "app.log"))
			require.ErrorIs(t, err, context.Canceled)
		})
	}
}

// realPath resolves symlinks, so that a work dir reached through one (as
// the app sees it) compares equal.
func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	require.NoError(t, err)
	return r
}
