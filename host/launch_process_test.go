package host_test

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
)

func TestProcessLogGetsWholeLines(t *testing.T) {
	inst, _, logPath := startApp(t, testAppLauncher(t, appBigLines), host.RoleRequestor)
	require.NoError(t, inst.Stop(testCtx(t)))

	lines := strings.Split(readLog(t, logPath), "\n")
	for _, want := range []string{strings.Repeat("x", 1<<20), strings.Repeat("y", 1<<20)} {
		// Not assert.Contains: a failure would print megabytes.
		assert.True(t, slices.Contains(lines, want), "no whole 1 MiB line of %q in the log (its lines are %d long)",
			want[:1], lineLens(lines))
	}
	assert.True(t, slices.ContainsFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "gtask: serving requestor on ")
	}), "the readiness line is in the log too")
}

func lineLens(lines []string) []int {
	n := make([]int, len(lines))
	for i, l := range lines {
		n[i] = len(l)
	}
	return n
}

func TestProcessStopForcedWhenTheAppIgnoresSIGTERM(t *testing.T) {
	inst, _, _ := startApp(t, testAppLauncher(t, appDeaf), host.RoleRequestor)
	ctx, cancel := context.WithTimeout(testCtx(t), 500*time.Millisecond)
	defer cancel()
	err := inst.Stop(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.ErrorContains(t, err, "killed")
	requireDone(t, inst)
	var exit *exec.ExitError
	require.ErrorAs(t, inst.Wait(), &exit, "Wait reports the kill")
}

func TestProcessStopOfAnAppDyingOfSIGTERM(t *testing.T) {
	inst, _, _ := startApp(t, testAppLauncher(t, appPlainTerm), host.RoleRequestor)
	require.NoError(t, inst.Stop(testCtx(t)), "dying of the SIGTERM Stop sent is a clean stop")
	var exit *exec.ExitError
	require.ErrorAs(t, inst.Wait(), &exit, "Wait still says how it ended")
	assert.Contains(t, exit.Error(), "terminated")
}

func TestProcessStartRelativeBin(t *testing.T) {
	l := testAppLauncher(t, appNormal)
	// A relative path is the host's, not the work dir's.
	t.Chdir("/")
	l.Bin = strings.TrimPrefix(l.Bin, "/")
	inst, _, _ := startApp(t, l, host.RoleRequestor)
	require.NoError(t, inst.Stop(testCtx(t)))
}
