package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
)

// chaos is the mix, with a seed that sabotages at least one
// attempt of every example below.
const chaos = "crash=0.1,wrong=0.1,garbage=0.1,hang=0.05,seed=7"

// TestExamples runs each example end to end through `gtask run`: Main
// builds it with go build and runs real requestor and provider processes.
// Each runs twice, without chaos and with it; the outputs must be the same
// bytes, and the events on stdout valid JSON lines.
func TestExamples(t *testing.T) {
	root := repoDir(t)
	average := filepath.Join(root, "examples", "average")
	tests := []struct {
		name   string
		args   []string
		file   string
		check  func(t *testing.T, b []byte)
		inject bool // chaos must have sabotaged something
	}{
		{
			name: "average",
			args: []string{"--params", `{"column": "age"}`,
				"--input", filepath.Join(average, "testdata", "org1.csv"),
				"--input", filepath.Join(average, "testdata", "org2.csv")},
			file:  "result.json",
			check: func(t *testing.T, b []byte) { assert.JSONEq(t, `{"average": 53.25}`, string(b)) },
		},
		{
			name: "mandelbrot",
			args: []string{"--params", `{"width": 256, "height": 192, "max_iter": 500, "rows_per_part": 16}`},
			file: "mandelbrot.png",
			check: func(t *testing.T, b []byte) {
				img, err := png.Decode(bytes.NewReader(b))
				require.NoError(t, err)
				assert.Equal(t, 256, img.Bounds().Dx())
				assert.Equal(t, 192, img.Bounds().Dy())
			},
		},
		{
			name: "montecarlo",
			args: []string{"--params", `{"samples": 200000, "parts": 4, "seed": 7}`},
			file: "result.json",
			check: func(t *testing.T, b []byte) {
				assert.JSONEq(t, `{"pi": 3.15028, "samples": 200000, "inside": 157514}`, string(b))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(root, "examples", tt.name)
			// One after the other: both build app to the same cache path.
			plain := runApp(t, dir, tt.args...)
			chaotic := runApp(t, dir, append(tt.args, "--chaos", chaos, "--subtask-timeout", "3s")...)

			c := plain.summary.Counts
			assert.Zero(t, c.InjectedTotal())
			cc := chaotic.summary.Counts
			assert.Positive(t, cc.InjectedTotal(), "chaos sabotaged nothing: the test proves nothing")
			assert.Equal(t, cc.InjectedTotal(), cc.Recovered)
			assert.Contains(t, chaotic.stderr, "chaos:    injected")

			for _, r := range []result{plain, chaotic} {
				assert.Equal(t, []string{tt.file}, r.files)
			}
			a, err := os.ReadFile(filepath.Join(plain.out, tt.file))
			require.NoError(t, err)
			b, err := os.ReadFile(filepath.Join(chaotic.out, tt.file))
			require.NoError(t, err)
			assert.True(t, bytes.Equal(a, b), "the outputs with and without chaos differ")
			tt.check(t, a)
		})
	}
}

// result is what one `gtask run` left.
type result struct {
	out     string   // --out
	files   []string // the files in it
	summary host.Summary
	stderr  string
}

// runApp runs `gtask run --json APP args...` and checks what every
// finished run must show: exit 0, stdout nothing but the events as JSON
// lines, numbered from 1 and ending with task_finished, the outputs in
// --out and the temporary work dir gone.
func runApp(t *testing.T, app string, args ...string) result {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	args = append([]string{"run", app, "--json", "--progress", "lines", "--out", out, "--providers", "3"}, args...)
	code, stdout, stderr := runMain(t, t.Context(), args...)
	require.Equal(t, ExitOK, code, "stderr:\n%s", stderr)

	events := parseEvents(t, stdout)
	require.NotEmpty(t, events)
	last := events[len(events)-1]
	require.Equal(t, host.EventTaskFinished, last.Kind)
	require.NotNil(t, last.Summary)
	assert.Equal(t, host.Finished, last.Summary.Outcome)
	assert.Equal(t, last.Summary.Counts.Parts, last.Summary.Counts.Done)

	assert.Contains(t, stderr, "outputs:  "+out)
	assert.NotContains(t, stderr, "logs:", "a finished run without --keep names no logs")
	m := regexp.MustCompile(`\(work dir (.+)\)`).FindStringSubmatch(stderr)
	require.NotNil(t, m, "stderr names no work dir")
	assert.NoDirExists(t, m[1], "the temporary work dir of a finished run is removed")

	entries, err := os.ReadDir(out)
	require.NoError(t, err)
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	return result{out: out, files: files, summary: *last.Summary, stderr: stderr}
}

// parseEvents reads --json's stdout: every line one event, strictly, and
// Seq counting from 1 without gaps.
func parseEvents(t *testing.T, stdout string) []host.Event {
	t.Helper()
	var events []host.Event
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		var ev host.Event
		require.NoError(t, dec.Decode(&ev), "line %d: %s", len(events)+1, sc.Text())
		require.False(t, dec.More(), "line %d holds more than one value", len(events)+1)
		require.Equal(t, int64(len(events)+1), ev.Seq)
		events = append(events, ev)
	}
	require.NoError(t, sc.Err())
	return events
}

// TestFailedTask checks a task the host aborts (here: --timeout): exit 1,
// the reason, the summary, the logs named and kept, no outputs.
func TestFailedTask(t *testing.T) {
	root := repoDir(t)
	workDir := filepath.Join(t.TempDir(), "work")
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runMain(t, t.Context(), "run", filepath.Join(root, "examples", "mandelbrot"),
		"--progress", "off", "--work-dir", workDir, "--out", out, "--providers", "1", "--timeout", "300ms",
		"--params", `{"width": 2048, "height": 2048, "max_iter": 100000}`)
	assert.Equal(t, ExitFailed, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "aborted")
	assert.Contains(t, stderr, "logs:     "+filepath.Join(workDir, "logs"))
	assert.FileExists(t, filepath.Join(workDir, "events.jsonl"))
	assert.DirExists(t, filepath.Join(workDir, "logs"))
	assert.NoDirExists(t, out)
}

// TestKeep checks that --keep keeps the temporary work dir of a finished
// run and names it.
func TestKeep(t *testing.T) {
	root := repoDir(t)
	out := filepath.Join(t.TempDir(), "out")
	code, _, stderr := runMain(t, t.Context(), "run", filepath.Join(root, "examples", "montecarlo"),
		"--keep", "--progress", "off", "--out", out, "--params", `{"samples": 1000, "parts": 2}`)
	require.Equal(t, ExitOK, code)
	m := regexp.MustCompile(`events:   (.+)\n`).FindStringSubmatch(stderr)
	require.NotNil(t, m, "no events path in stderr")
	assert.FileExists(t, m[1])
	require.NoError(t, os.RemoveAll(filepath.Dir(m[1])))
	assert.FileExists(t, filepath.Join(out, "result.json"))
}

// TestBackupsOvertakeStalls runs mandelbrot through `gtask run` with real
// processes while chaos stalls two of its providers (seed 2 picks two
// parts) and --subtask-timeout is far beyond the test's own limit: only
// backups can end the run, and they do, with the image a run without
// chaos gives, byte for byte.
func TestBackupsOvertakeStalls(t *testing.T) {
	dir := filepath.Join(repoDir(t), "examples", "mandelbrot")
	plain := runApp(t, dir)
	stalled := runApp(t, dir, "--chaos", "hang=0.1,seed=2", "--subtask-timeout", "10m")

	c := stalled.summary.Counts
	assert.Equal(t, map[host.ChaosKind]int{host.ChaosHang: 2}, c.Injected)
	assert.Equal(t, 2, c.Recovered)
	assert.Equal(t, 2, c.Backups)
	assert.Equal(t, 2, c.BackupWins)
	assert.Equal(t, 2, c.Superseded)
	assert.Zero(t, c.Failed, "a stalled copy overtaken is no failure")
	assert.Contains(t, stalled.stderr, "backups:  2 of slow subtasks, 2 computed first")
	assert.Contains(t, stalled.stderr, "is slow: backup 1 on node-")

	require.Equal(t, plain.files, stalled.files)
	for _, name := range plain.files {
		a, err := os.ReadFile(filepath.Join(plain.out, name))
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(stalled.out, name))
		require.NoError(t, err)
		assert.True(t, bytes.Equal(a, b), "%s differs with the stalls overtaken", name)
	}
}
