package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/internal/testdriver"
	"github.com/gtask/gtask/requestor"
)

// asApp, set to 1 in its environment, makes the test binary run as the
// app: the end-to-end tests re-execute it as the requestor and providers,
// so no other binary is built.
const asApp = "GTASK_EXAMPLE_MONTECARLO_APP"

func TestMain(m *testing.M) {
	if os.Getenv(asApp) == "1" {
		main() // sdk.Main exits
		return
	}
	os.Exit(m.Run())
}

const testParams = `{"samples": 200000, "parts": 4, "seed": 7}`

// expected is the estimate for testParams, computed directly.
func expected(t *testing.T) Estimate {
	t.Helper()
	var total Count
	for i, n := range shares(200_000, 4, 0) {
		c, err := count(context.Background(), PartParams{Part: i, Samples: n, Seed: 7})
		require.NoError(t, err)
		total.Inside += c.Inside
		total.Samples += c.Samples
	}
	return estimate(total)
}

// offByOne rewrites a result the way a subtly wrong provider would: a
// count one too high passes Verify's sanity check, only the replicas tell.
func offByOne(t *testing.T, path string) {
	t.Helper()
	c, err := readCount(path)
	require.NoError(t, err)
	c.Inside++
	require.NoError(t, writeJSON(path, c))
}

func TestProcesses(t *testing.T) {
	want := expected(t)
	inProc, _ := inProcess(t, app{}, false)
	require.Equal(t, want, inProc, "the in-process task")
	tests := []struct {
		name string
		// tamper says whether to make an attempt's result subtly wrong.
		tamper func(testdriver.Assignment) bool
	}{
		{name: "replicas agree"},
		{name: "wrong replica outvoted", tamper: func(a testdriver.Assignment) bool { return a.Part == 1 && a.Attempt == 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bin, err := os.Executable()
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			workDir := t.TempDir()
			const taskID = "montecarlo-1"
			tampered := ""
			out, err := testdriver.Run(ctx, testdriver.Config{
				Bin:       bin,
				Env:       []string{asApp + "=1"},
				Log:       t.Output(),
				WorkDir:   workDir,
				TaskID:    taskID,
				Params:    json.RawMessage(testParams),
				Providers: 3, // a third node for the replica that settles a disagreement
				OnEvent: func(ev testdriver.Event) error {
					// After the result is copied back, before Verify.
					if ev.Kind == testdriver.SubtaskComputed && ev.Err == nil && tt.tamper != nil && tt.tamper(ev.Assignment) {
						tampered = ev.Assignment.SubtaskID
						offByOne(t, filepath.Join(workDir, taskID, "subtask_outputs", tampered, countFile))
					}
					return nil
				},
			})
			require.NoError(t, err)
			require.True(t, out.Finished, "status: %s", out.Status)
			require.Equal(t, []string{resultFile}, out.Outputs)
			assert.Equal(t, want, readEstimate(t, filepath.Join(out.OutputsDir, resultFile)))

			var summary strings.Builder
			perPart := map[int]int{}
			for _, r := range out.Subtasks {
				perPart[r.Part]++
				fmt.Fprintf(&summary, "part %d attempt %d on %s: %v %q\n", r.Part, r.Attempt, r.Node, r.Verdict, r.Reason)
			}
			if tt.tamper == nil {
				assert.Equal(t, map[int]int{0: 2, 1: 2, 2: 2, 3: 2}, perPart, "each part on two nodes:\n%s", &summary)
				assert.Equal(t, 8, out.Verdicts[requestor.Success], summary.String())
				return
			}
			require.NotEmpty(t, tampered)
			assert.Equal(t, 3, perPart[1], "a third replica for the part in dispute:\n%s", &summary)
			assert.Positive(t, out.Verdicts[requestor.Inconclusive], "a disagreement asks for a replica:\n%s", &summary)
			for _, r := range out.Subtasks {
				// Rejected when it is verified again after the third
				// replica; left INCONCLUSIVE when it was the result that
				// asked for that replica. Never accepted.
				if r.SubtaskID == tampered {
					assert.NotEqual(t, requestor.Success, r.Verdict, "the outvoted replica is not accepted:\n%s", &summary)
				}
			}
		})
	}
}
