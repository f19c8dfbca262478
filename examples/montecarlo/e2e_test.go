package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/internal/exampletest"
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
func offByOne(path string) error {
	c, err := readCount(path)
	if err != nil {
		return err
	}
	c.Inside++
	return writeJSON(path, c)
}

// TestProcesses runs whole tasks through host.Run with real requestor and
// provider processes of this test binary: each part is computed on two
// nodes, and the estimate is the one computed directly. In the tampering
// case the first replica of part 1 is made subtly wrong once it is copied
// back, before Verify (the run calls OnEvent for subtask_computed before it
// queues the result for verification): the replicas disagree, a third one
// settles it, and the wrong one is never accepted.
func TestProcesses(t *testing.T) {
	want := expected(t)
	inProc, _ := inProcess(t, app{}, false)
	require.Equal(t, want, inProc, "the in-process task")
	tests := []struct {
		name string
		// tamper says whether to make an attempt's result subtly wrong.
		tamper func(ev host.Event) bool
	}{
		{name: "replicas agree"},
		{name: "wrong replica outvoted", tamper: func(ev host.Event) bool {
			return ev.Part != nil && *ev.Part == 1 && ev.Attempt == 1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			workDir := t.TempDir()
			var tampered string
			var tamperErr error
			opts := exampletest.Options{
				Providers: 3, // a third node for the replica that settles a disagreement
				WorkDir:   workDir,
				OnEvent: func(ev host.Event) {
					if ev.Kind != host.EventSubtaskComputed || tt.tamper == nil || !tt.tamper(ev) {
						return
					}
					tampered = ev.Subtask
					// On the run's goroutine: no require here.
					tamperErr = offByOne(filepath.Join(workDir, "requestor", ev.Task, "subtask_outputs", ev.Subtask, countFile))
				},
			}
			res := exampletest.Run(t, exampletest.Task{AppEnv: asApp + "=1", Params: json.RawMessage(testParams)}, opts)
			t.Log(res.Summary())
			require.NoError(t, tamperErr)
			require.Equal(t, []string{resultFile}, res.Outputs)
			assert.Equal(t, want, readEstimate(t, filepath.Join(res.OutputsDir, resultFile)))

			var summary strings.Builder
			perPart := map[int]int{}
			nodes := map[int]map[string]bool{}
			partOf := map[string]int{}        // subtask -> part
			verdicts := map[string][]string{} // subtask -> its verdicts, in order
			for _, ev := range exampletest.Events(t, res) {
				switch ev.Kind {
				case host.EventSubtaskAssigned:
					require.NotNil(t, ev.Part)
					perPart[*ev.Part]++
					partOf[ev.Subtask] = *ev.Part
					if nodes[*ev.Part] == nil {
						nodes[*ev.Part] = map[string]bool{}
					}
					nodes[*ev.Part][ev.Node] = true
				case host.EventSubtaskVerified:
					require.NotNil(t, ev.Part)
					verdicts[ev.Subtask] = append(verdicts[ev.Subtask], ev.Verdict)
				default:
					continue
				}
				fmt.Fprintf(&summary, "%s: part %d attempt %d on %s: %s %q\n", ev.Kind, *ev.Part, ev.Attempt, ev.Node, ev.Verdict, ev.Reason)
			}
			for part, n := range perPart {
				assert.Len(t, nodes[part], n, "part %d: each replica on a node of its own:\n%s", part, &summary)
			}
			assert.Len(t, verdicts, len(partOf), "every subtask verified:\n%s", &summary)
			assert.Equal(t, 4, res.Counts.Done, summary.String())
			if tt.tamper == nil {
				assert.Equal(t, map[int]int{0: 2, 1: 2, 2: 2, 3: 2}, perPart, "each part on two nodes:\n%s", &summary)
				// The replicas agree: each part's results are accepted,
				// none rejected or disputed. (A result that awaited the
				// other replica's is not verified again once that one
				// ends the task, so it may end AWAITING_DATA.)
				accepted := map[int]bool{}
				for id, vs := range verdicts {
					for _, v := range vs {
						assert.Contains(t, []string{requestor.Success.String(), requestor.AwaitingData.String()}, v, "subtask %s:\n%s", id, &summary)
					}
					if slices.Contains(vs, requestor.Success.String()) {
						accepted[partOf[id]] = true
					}
				}
				assert.Len(t, accepted, 4, "every part accepted:\n%s", &summary)
				assert.Zero(t, res.Counts.Rejected, summary.String())
				assert.Zero(t, res.Counts.Inconclusive, summary.String())
				assert.Zero(t, res.Counts.Failed, summary.String())
				return
			}
			require.NotEmpty(t, tampered)
			assert.Equal(t, 3, perPart[1], "a third replica for the part in dispute:\n%s", &summary)
			assert.Positive(t, res.Counts.Inconclusive, "a disagreement asks for a replica:\n%s", &summary)
			// Rejected when it is verified again after the third replica;
			// left INCONCLUSIVE when it was the result that asked for that
			// replica. Never accepted.
			require.NotEmpty(t, verdicts[tampered], "the tampered replica was verified:\n%s", &summary)
			assert.NotContains(t, verdicts[tampered], requestor.Success.String(), "the outvoted replica is not accepted:\n%s", &summary)
		})
	}
}
