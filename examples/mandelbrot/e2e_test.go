package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/internal/exampletest"
)

// asApp, set to 1 in its environment, makes the test binary run as the
// app: the end-to-end tests re-execute it as the requestor and providers,
// so no other binary is built.
const asApp = "GTASK_EXAMPLE_MANDELBROT_APP"

func TestMain(m *testing.M) {
	if os.Getenv(asApp) == "1" {
		main() // sdk.Main exits
		return
	}
	os.Exit(m.Run())
}

// task is a task of this app run by the end-to-end tests.
func task(params string, maxSubtasks int) exampletest.Task {
	var p json.RawMessage
	if params != "" {
		p = json.RawMessage(params)
	}
	return exampletest.Task{AppEnv: asApp + "=1", Params: p, MaxSubtasks: maxSubtasks}
}

// TestProcesses renders whole tasks through host.Run with real requestor
// and provider processes of this test binary: the image is the direct
// render, and the file the in-process task's, byte for byte. In the fault
// case chaos inverts the first result of every strip (rate 1; chaos
// sabotages at most one attempt per part): Verify rejects each, and the
// strip is computed again.
func TestProcesses(t *testing.T) {
	// A zoom on the seahorse valley, small enough for a race-built test.
	const params = `{"width": 160, "height": 120, "max_iter": 200, "rows_per_part": 32,
		"x_min": -0.80, "x_max": -0.70, "y_min": 0.05, "y_max": 0.125}`
	var p Params
	require.NoError(t, json.Unmarshal([]byte(params), &p))
	want, err := render(context.Background(), p)
	require.NoError(t, err)
	inProcess := renderInProcess(t, p)

	tests := []struct {
		name         string
		maxSubtasks  int
		chaos        string
		wantParts    int
		wantRejected int
	}{
		{name: "strips of 32 rows", wantParts: 4},
		{name: "host limit", maxSubtasks: 3, wantParts: 3},
		{name: "wrong strips rejected and recomputed", chaos: "wrong=1,seed=1", wantParts: 4, wantRejected: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := exampletest.Options{Chaos: tt.chaos}
			if tt.chaos != "" {
				// A backup that beat a sabotaged attempt would leave its
				// part unsabotaged: without backups, each part's is.
				opts.Backups.Off = true
			}
			res := exampletest.Run(t, task(params, tt.maxSubtasks), opts)
			t.Log(res.Summary())
			require.Equal(t, []string{imageFile}, res.Outputs)
			file := filepath.Join(res.OutputsDir, imageFile)
			got := decodePNG(t, file)
			assert.Equal(t, 160, got.Bounds().Dx())
			assert.Equal(t, 120, got.Bounds().Dy())
			assert.Equal(t, want, got, "the image equals the direct render")
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			assert.Equal(t, inProcess, b, "the file equals the in-process task's, byte for byte")
			assert.Equal(t, tt.wantParts, res.Counts.Parts)
			assert.Equal(t, tt.wantParts, res.Counts.Accepted)
			assert.Equal(t, tt.wantRejected, res.Counts.Rejected)
			if tt.chaos != "" {
				exampletest.RequireRecovered(t, res, host.ChaosWrong, tt.wantParts)
			}
		})
	}
}

// TestProcessesWithoutParams: a task created with no params at all renders
// the default image.
func TestProcessesWithoutParams(t *testing.T) {
	t.Parallel()
	res := exampletest.Run(t, task("", 0), exampletest.Options{})
	got := decodePNG(t, filepath.Join(res.OutputsDir, imageFile))
	want, err := render(context.Background(), DefaultParams())
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

// TestProcessesRefuse: params the app cannot render are refused at
// CreateTask as InvalidArgument, naming what is wrong, and host.Run fails
// the task with that code and message.
func TestProcessesRefuse(t *testing.T) {
	tests := []struct {
		params string
		want   string
	}{
		{params: `{"width": 0}`, want: "width"},
		{params: `{"x_min": 1, "x_max": -1}`, want: "x_min"},
		{params: `{"zoom": 2}`, want: `unknown field "zoom"`},
	}
	for _, tt := range tests {
		t.Run(tt.params, func(t *testing.T) {
			t.Parallel()
			res, err := exampletest.Try(t, task(tt.params, 0), exampletest.Options{})
			require.NoError(t, err)
			exampletest.RequireRefused(t, res, tt.want)
		})
	}
}
