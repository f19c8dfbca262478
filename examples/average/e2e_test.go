package main

import (
	"encoding/json"
	"fmt"
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
const asApp = "GTASK_EXAMPLE_AVERAGE_APP"

func TestMain(m *testing.M) {
	if os.Getenv(asApp) == "1" {
		main() // sdk.Main exits
		return
	}
	os.Exit(m.Run())
}

// task is a task of this app run by the end-to-end tests.
func task(params string, inputs []string) exampletest.Task {
	return exampletest.Task{AppEnv: asApp + "=1", Params: json.RawMessage(params), Inputs: inputs}
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

func readResult(t *testing.T, res *host.Result) string {
	t.Helper()
	require.Equal(t, []string{resultFile}, res.Outputs)
	b, err := os.ReadFile(filepath.Join(res.OutputsDir, resultFile))
	require.NoError(t, err)
	return string(b)
}

// TestProcesses runs whole tasks through host.Run with real requestor and
// provider processes of this test binary. Chaos sabotages the first
// attempt at every part (rate 1; chaos sabotages at most one attempt per
// part) in the fault cases: a wrong result is rejected by Verify and
// computed again, a provider killed during Compute is computed again
// elsewhere, and the result is the same.
func TestProcesses(t *testing.T) {
	tests := []struct {
		name     string
		params   string
		sabotage host.ChaosKind // on the first attempt at each part
		want     string
	}{
		{name: "average", params: `{"column": "age"}`, want: `{"average": 53.25}`},
		{name: "partials", params: `{"column": "age", "partial": true}`,
			want: `[{"sum": 253, "count": 4}, {"sum": 173, "count": 4}]`},
		{name: "wrong result rejected and recomputed", params: `{"column": "age"}`,
			sabotage: host.ChaosWrong, want: `{"average": 53.25}`},
		{name: "failed provider retried", params: `{"column": "age", "partial": true}`,
			sabotage: host.ChaosCrash, want: `[{"sum": 253, "count": 4}, {"sum": 173, "count": 4}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := exampletest.Options{Providers: 2}
			if tt.sabotage != "" {
				opts.Chaos = fmt.Sprintf("%s=1,seed=1", tt.sabotage)
				// A backup that beat a sabotaged attempt would leave its
				// part unsabotaged: without backups, each part's is.
				opts.Backups.Off = true
			}
			res := exampletest.Run(t, task(tt.params, seedInputs(t)), opts)
			t.Log(res.Summary())
			assert.JSONEq(t, tt.want, readResult(t, res))
			assert.Equal(t, 2, res.Counts.Parts, "a part per CSV file")
			assert.Equal(t, 2, res.Counts.Done)
			wantRejected := 0
			if tt.sabotage != "" {
				exampletest.RequireRecovered(t, res, tt.sabotage, 2)
				if tt.sabotage == host.ChaosWrong {
					wantRejected = 2
				}
			} else {
				assert.Zero(t, res.Counts.InjectedTotal())
			}
			assert.Equal(t, wantRejected, res.Counts.Rejected)
		})
	}
}

// TestProcessesRefuse checks that the errors Split finds in the data reach
// the task's creator through CreateTask, as InvalidArgument, with what they
// need to fix it: host.Run fails the task with the app's code and message.
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
			res, err := exampletest.Try(t, task(tt.params, tt.inputs), exampletest.Options{Providers: 2})
			require.NoError(t, err)
			exampletest.RequireRefused(t, res, tt.want...)
		})
	}
}
