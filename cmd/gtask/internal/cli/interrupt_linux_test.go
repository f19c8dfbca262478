package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
)

// TestInterrupt is the Ctrl-C check, through the real binary: SIGINT
// to gtask mid-run, and within 5 s gtask has exited with 130 and no process
// it started is left.
func TestInterrupt(t *testing.T) {
	root := repoDir(t)
	bin := buildGtask(t, root)

	// A render that takes minutes on two cores, in parts that take
	// seconds: the task is still running when the signal comes.
	workDir := filepath.Join(t.TempDir(), "work")
	cmd := exec.Command(bin, "run", filepath.Join(root, "examples", "mandelbrot"),
		"--json", "--progress", "lines", "--providers", "2",
		"--work-dir", workDir, "--out", filepath.Join(t.TempDir(), "out"),
		"--params", `{"width": 4096, "height": 4096, "max_iter": 20000}`)
	g := startGtask(t, cmd)
	g.awaitComputed(t)
	before := appProcesses(t, workDir)
	require.NotEmpty(t, before, "no app process runs mid-task")

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	err := g.exit(t, 5*time.Second)
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "exit: %v", err)
	assert.Equal(t, ExitInterrupted, ee.ExitCode())
	assert.Empty(t, appProcesses(t, workDir), "app processes left after gtask exited; before SIGINT: %v", before)
	assert.Contains(t, g.stderr.String(), "interrupted")
	assert.Contains(t, g.stderr.String(), "logs:     "+filepath.Join(workDir, "logs"))
}

// appProcesses lists the live processes whose command line mentions dir:
// the apps gtask started get --work-dir under the run's work dir. Finding
// them by that, not by parentage, also finds any that were orphaned.
func appProcesses(t *testing.T, dir string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*")
	require.NoError(t, err)
	var found []string
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
			continue // gone meanwhile, or not one of ours
		}
		stat, err := os.ReadFile(filepath.Join(p, "stat"))
		if err != nil {
			continue
		}
		// A zombie has exited; only its parent's wait is missing.
		if _, rest, ok := strings.Cut(string(stat), ") "); ok && strings.HasPrefix(rest, "Z") {
			continue
		}
		found = append(found, filepath.Base(p)+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
	}
	return found
}

// buildGtask builds the gtask command into a temporary dir.
func buildGtask(t *testing.T, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gtask")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/gtask")
	build.Dir = root
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// gtaskProc is a gtask process started by startGtask, its --json events
// read as they come.
type gtaskProc struct {
	cmd      *exec.Cmd
	exited   chan error
	computed chan struct{}
	lines    chan struct{}
	stderr   *bytes.Buffer
}

// startGtask starts cmd (a `gtask run --json`) and reads its events; the
// process is killed, if still running, when the test ends.
func startGtask(t *testing.T, cmd *exec.Cmd) *gtaskProc {
	t.Helper()
	g := &gtaskProc{cmd: cmd, exited: make(chan error, 1), computed: make(chan struct{}), lines: make(chan struct{}), stderr: &bytes.Buffer{}}
	cmd.Stderr = g.stderr
	// A pipe of our own rather than StdoutPipe, whose Wait would race
	// the reads.
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout = pw
	require.NoError(t, cmd.Start())
	pw.Close()
	go func() { g.exited <- cmd.Wait() }()
	go func() {
		defer close(g.lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		seen := false
		for sc.Scan() {
			var ev host.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Kind == host.EventSubtaskComputed && !seen {
				seen = true
				close(g.computed)
			}
		}
	}()
	t.Cleanup(func() {
		// Whatever failed, leave nothing running.
		_ = cmd.Process.Kill()
		err := <-g.exited
		g.exited <- err
		<-g.lines
		pr.Close()
		t.Logf("gtask's stderr:\n%s", g.stderr.String())
	})
	return g
}

// awaitComputed waits for the first subtask_computed event: the requestor
// and providers run.
func (g *gtaskProc) awaitComputed(t *testing.T) {
	t.Helper()
	select {
	case <-g.computed:
	case err := <-g.exited:
		g.exited <- err
		t.Fatalf("gtask exited before computing a part: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("no subtask_computed event within 2 minutes")
	}
}

// exit waits up to limit for gtask to exit and returns how it did.
func (g *gtaskProc) exit(t *testing.T, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-g.exited:
		g.exited <- err
		<-g.lines
		return err
	case <-time.After(limit):
		t.Fatalf("gtask still runs %s after the signal", limit)
		return nil
	}
}
