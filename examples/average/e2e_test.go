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
const asApp = "GTASK_EXAMPLE_AVERAGE_APP"

func TestMain(m *testing.M) {
	if os.Getenv(asApp) == "1" {
		main() // sdk.Main exits
		return
	}
	os.Exit(m.Run())
}

// runProcesses runs a whole task through real requestor and provider
// processes of this test binary.
func runProcesses(t *testing.T, params string, inputs []string, fault func(testdriver.Assignment) testdriver.Fault) (*testdriver.Outcome, error) {
	t.Helper()
	bin, err := os.Executable()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	return testdriver.Run(ctx, testdriver.Config{
		Bin:       bin,
		Env:       []string{asApp + "=1"},
		Log:       t.Output(),
		WorkDir:   t.TempDir(),
		TaskID:    "average-1",
		Params:    json.RawMessage(params),
		Inputs:    inputs,
		Providers: 2,
		Fault:     fault,
	})
}

func seedInputs(t *testing.T) []string {
	t.Helper()
	var inputs []string
	for _, name := range []string{"org1.csv", "org2.csv"} {
		p, err := filepath.Abs(filepath.Join("testdata", name))
		require.NoError(t, err)
		inputs = append(inputs, p)
	}
	return inputs
}

func readResult(t *testing.T, out *testdriver.Outcome) string {
	t.Helper()
	require.True(t, out.Finished, "status: %s", out.Status)
	require.Equal(t, []string{resultFile}, out.Outputs)
	b, err := os.ReadFile(filepath.Join(out.OutputsDir, resultFile))
	require.NoError(t, err)
	return string(b)
}

func TestProcesses(t *testing.T) {
	tests := []struct {
		name         string
		params       string
		fault        func(testdriver.Assignment) testdriver.Fault
		want         string
		wantFailures int
	}{
		{name: "average", params: `{"column": "age"}`, want: `{"average": 53.25}`},
		{name: "partials", params: `{"column": "age", "partial": true}`,
			want: `[{"sum": 253, "count": 4}, {"sum": 173, "count": 4}]`},
		{name: "wrong result rejected and recomputed", params: `{"column": "age"}`,
			fault: func(a testdriver.Assignment) testdriver.Fault {
				if a.Part == 1 && a.Attempt == 1 {
					return testdriver.FaultWrong
				}
				return testdriver.NoFault
			},
			want: `{"average": 53.25}`, wantFailures: 1},
		{name: "failed provider retried", params: `{"column": "age", "partial": true}`,
			fault: func(a testdriver.Assignment) testdriver.Fault {
				if a.Part == 0 && a.Attempt == 1 {
					return testdriver.FaultError
				}
				return testdriver.NoFault
			},
			want: `[{"sum": 253, "count": 4}, {"sum": 173, "count": 4}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := runProcesses(t, tt.params, seedInputs(t), tt.fault)
			require.NoError(t, err)
			assert.JSONEq(t, tt.want, readResult(t, out))
			assert.Equal(t, tt.wantFailures, out.Verdicts[requestor.Failure])
		})
	}
}

// TestProcessesRefuse checks that the errors Split finds in the data reach
// the task's creator through CreateTask, as InvalidArgument, with what they
// need to fix it.
func TestProcessesRefuse(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "org3.csv")
	require.NoError(t, os.WriteFile(bad, []byte("name,age\nIvan,41\nJudy,n/a\n"), 0o644))
	tests := []struct {
		name   string
		params string
		inputs []string
		want   []string
	}{
		{name: "no such column", params: `{"column": "height"}`, inputs: seedInputs(t),
			want: []string{`no column "height"`, `"name", "age", "weight"`}},
		{name: "not a number", params: `{"column": "age"}`, inputs: append(seedInputs(t), bad),
			want: []string{"org3.csv:3:", `"n/a" is not a number`}},
		{name: "no CSV", params: `{"column": "age"}`, want: []string{"no CSV file in task_inputs"}},
		{name: "no column named", params: `{}`, want: []string{"column"}},
		{name: "unknown param", params: `{"column": "age", "colum": "x"}`, inputs: seedInputs(t), want: []string{"colum"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := runProcesses(t, tt.params, tt.inputs, nil)
			require.Error(t, err)
			assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			for _, s := range tt.want {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}
