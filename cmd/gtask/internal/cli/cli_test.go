package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the reporter's
// clock, the runner's workers, the launchers' readers.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runMain runs Main in process and returns its exit status and streams.
func runMain(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	code = Main(ctx, args, &out, &errw)
	t.Logf("gtask %s: exit %d\nstderr:\n%s", strings.Join(args, " "), code, errw.String())
	return code, out.String(), errw.String()
}

// repoDir is the repository's root, from this package's directory.
func repoDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(d, "go.mod"))
	return d
}

// TestBadInput checks that what is wrong with the command line, the
// params, the inputs or APP exits 2 with a message naming it, before
// anything runs.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, perm os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), perm))
		return p
	}
	badJSON := write("bad.json", `{"width": 10,}`, 0o644)
	emptyJSON := write("empty.json", "  \n", 0o644)
	notExec := write("app.sh", "#!/bin/sh\n", 0o644)
	nonEmpty := filepath.Join(dir, "full")
	require.NoError(t, os.MkdirAll(filepath.Join(nonEmpty, "x"), 0o755))
	noGo := filepath.Join(dir, "nogo")
	require.NoError(t, os.Mkdir(noGo, 0o755))
	broken := filepath.Join(dir, "broken")
	require.NoError(t, os.Mkdir(broken, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(broken, "go.mod"), []byte("module broken\n\ngo 1.26\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(broken, "main.go"), []byte("package main\n\nfunc main() { undefined() }\n"), 0o644))
	mandelbrot := filepath.Join(repoDir(t), "examples", "mandelbrot")
	notMain := filepath.Join(repoDir(t), "taskapi")

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no APP", []string{"run"}, []string{"run needs APP"}},
		{"two APPs", []string{"run", "a", "b"}, []string{"one APP", `"a"`, `"b"`}},
		{"unknown command", []string{"walk"}, []string{`unknown command "walk"`}},
		{"unknown flag", []string{"run", "--frobnicate", mandelbrot}, []string{"unknown flag: --frobnicate"}},
		{"bad number", []string{"run", "--providers", "many", mandelbrot}, []string{"--providers", "many"}},
		{"negative", []string{"run", "--subtasks", "-1", mandelbrot}, []string{"--subtasks is -1"}},
		{"negative timeout", []string{"run", "--timeout", "-1s", mandelbrot}, []string{"must not be negative"}},
		{"bad duration", []string{"run", "--subtask-timeout", "soon", mandelbrot}, []string{"--subtask-timeout", "soon"}},
		{"backups too eager", []string{"run", "--backup-after", "0.5", mandelbrot}, []string{"--backup-after is 0.5", "at least 1"}},
		{"invalid JSON", []string{"run", "--params", `{"width": }`, mandelbrot}, []string{"--params", "not valid JSON"}},
		{"invalid JSON file", []string{"run", "--params", "@" + badJSON, mandelbrot}, []string{"bad.json", "not valid JSON"}},
		{"empty params file", []string{"run", "--params", "@" + emptyJSON, mandelbrot}, []string{"empty.json", "empty"}},
		{"missing params file", []string{"run", "--params", "@" + filepath.Join(dir, "nope.json"), mandelbrot}, []string{"nope.json", "no such file"}},
		{"missing input", []string{"run", "--input", filepath.Join(dir, "nope.csv"), mandelbrot}, []string{"--input", "nope.csv", "no such file"}},
		{"input is a dir", []string{"run", "--input", dir, mandelbrot}, []string{"not a regular file"}},
		{"inputs clash", []string{"run", "--input", badJSON, "--input", filepath.Join(nonEmpty, "..", "bad.json"), mandelbrot}, []string{"both be task_inputs/bad.json"}},
		{"runtime inline", []string{"run", "--runtime", "inline", mandelbrot}, []string{"--runtime inline", "host.InlineLauncher"}},
		{"runtime unknown", []string{"run", "--runtime", "vm", mandelbrot}, []string{`--runtime "vm"`}},
		{"progress unknown", []string{"run", "--progress", "loud", mandelbrot}, []string{`--progress "loud"`}},
		{"bad chaos", []string{"run", "--chaos", "crash=2", mandelbrot}, []string{"--chaos", "crash rate"}},
		{"unknown chaos", []string{"run", "--chaos", "flood=0.1", mandelbrot}, []string{"--chaos", `unknown key "flood"`}},
		{"bad task id", []string{"run", "--task-id", "a/b", mandelbrot}, []string{"--task-id", "path separator"}},
		{"missing APP", []string{"run", filepath.Join(dir, "nope")}, []string{"APP", "no such file"}},
		{"APP not executable", []string{"run", notExec}, []string{"not executable"}},
		{"APP without Go", []string{"run", noGo}, []string{"not a Go package directory"}},
		{"APP does not compile", []string{"run", broken}, []string{"building APP", "undefined: undefined"}},
		{"APP not main", []string{"run", notMain}, []string{`package "taskapi"`, "not a main package"}},
		{"out not empty", []string{"run", "--out", nonEmpty, mandelbrot}, []string{"--out", "not empty"}},
		{"work dir not empty", []string{"run", "--work-dir", nonEmpty, mandelbrot}, []string{"--work-dir", "not empty"}},
		{"params refused by the app", []string{"run", "--params", `{"width": -1}`, "--out", filepath.Join(dir, "out"), mandelbrot},
			[]string{"bad input", "InvalidArgument", "width: -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, t.Context(), tt.args...)
			assert.Equal(t, ExitBadInput, code)
			assert.Empty(t, stdout)
			for _, w := range tt.want {
				assert.Contains(t, stderr, w)
			}
		})
	}
	assert.NoDirExists(t, filepath.Join(dir, "out"), "a refused task leaves no outputs")
}

func TestHelp(t *testing.T) {
	code, stdout, _ := runMain(t, t.Context(), "run", "--help")
	assert.Equal(t, ExitOK, code)
	for _, w := range []string{"--params", "--input", "--chaos", "--json", "Exit status", "130"} {
		assert.Contains(t, stdout, w)
	}
	code, stdout, _ = runMain(t, t.Context())
	assert.Equal(t, ExitOK, code)
	assert.Contains(t, stdout, "gtask run")
}
