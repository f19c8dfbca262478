package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/internal/testdriver"
	"github.com/gtask/gtask/requestor"
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

func runProcesses(t *testing.T, params string, maxSubtasks int, fault func(testdriver.Assignment) testdriver.Fault) (*testdriver.Outcome, error) {
	t.Helper()
	bin, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	return testdriver.Run(ctx, testdriver.Config{
		Bin:         bin,
		Env:         []string{asApp + "=1"},
		Log:         t.Output(),
		WorkDir:     t.TempDir(),
		TaskID:      "mandelbrot-1",
		Params:      json.RawMessage(params),
		MaxSubtasks: maxSubtasks,
		Providers:   3,
		Fault:       fault,
	})
}

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
		fault        func(testdriver.Assignment) testdriver.Fault
		wantParts    int
		wantFailures int
	}{
		{name: "strips of 32 rows", wantParts: 4},
		{name: "host limit", maxSubtasks: 3, wantParts: 3},
		{name: "wrong strip rejected and recomputed", wantParts: 4, wantFailures: 1,
			fault: func(a testdriver.Assignment) testdriver.Fault {
				if a.Part == 2 && a.Attempt == 1 {
					return testdriver.FaultWrong
				}
				return testdriver.NoFault
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := runProcesses(t, params, tt.maxSubtasks, tt.fault)
			require.NoError(t, err)
			require.True(t, out.Finished, "status: %s", out.Status)
			require.Equal(t, []string{imageFile}, out.Outputs)
			file := filepath.Join(out.OutputsDir, imageFile)
			got := decodePNG(t, file)
			assert.Equal(t, 160, got.Bounds().Dx())
			assert.Equal(t, 120, got.Bounds().Dy())
			assert.Equal(t, want, got, "the image equals the direct render")
			b, err := os.ReadFile(file)
			require.NoError(t, err)
			assert.Equal(t, inProcess, b, "the file equals the in-process task's, byte for byte")
			assert.Equal(t, tt.wantParts, out.Verdicts[requestor.Success])
			assert.Equal(t, tt.wantFailures, out.Verdicts[requestor.Failure])
		})
	}
}

// TestProcessesWithoutParams: a task created with no params at all renders
// the default image.
func TestProcessesWithoutParams(t *testing.T) {
	t.Parallel()
	out, err := runProcesses(t, "", 0, nil)
	require.NoError(t, err)
	require.True(t, out.Finished, "status: %s", out.Status)
	got := decodePNG(t, filepath.Join(out.OutputsDir, imageFile))
	want, err := render(context.Background(), DefaultParams())
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

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
			_, err := runProcesses(t, tt.params, 0, nil)
			require.Error(t, err)
			assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
