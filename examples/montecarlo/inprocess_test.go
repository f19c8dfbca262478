package main

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
	"github.com/gtask/gtask/sdk/sdktest"
)

// liar computes like app, except that its first result for part counts one
// point too many: plausible, so Verify lets it through and only another
// node's replica can tell. The state is the test's own, one liar per run.
type liar struct {
	app
	part int
	// lied is the id of the subtask it lied in, once it has: replicas run
	// at once, so the first to compute is not always attempt 1.
	lied atomic.Pointer[string]
}

func (l *liar) Compute(ctx context.Context, s *sdk.Subtask[PartParams]) (string, error) {
	out, err := l.app.Compute(ctx, s)
	if err != nil || s.Part != l.part || !l.lied.CompareAndSwap(nil, &s.ID) {
		return out, err
	}
	c, err := readCount(out)
	if err != nil {
		return "", err
	}
	c.Inside++
	return out, writeJSON(out, c)
}

func testParamsValue(t *testing.T) Params {
	t.Helper()
	var p Params
	require.NoError(t, json.Unmarshal([]byte(testParams), &p))
	return p
}

// inProcess runs a whole task of a in this process, with the app's own SDK
// options unless noRedundancy, and returns its estimate.
func inProcess(t *testing.T, a sdk.App[Params, PartParams], noRedundancy bool, opts ...sdktest.RunOption) (Estimate, *sdktest.Result) {
	t.Helper()
	if !noRedundancy {
		opts = append(opts, sdktest.SDKOptions(options()...))
	}
	res := sdktest.Run(t, a, testParamsValue(t), opts...)
	require.Contains(t, res.Files, resultFile, res.Log())
	var e Estimate
	require.NoError(t, json.Unmarshal(res.Files[resultFile], &e))
	return e, res
}

func verdicts(res *sdktest.Result) (perPart map[int]int, counts map[requestor.Verdict]int) {
	perPart, counts = map[int]int{}, map[requestor.Verdict]int{}
	for _, s := range res.Subtasks {
		perPart[s.Part]++
		counts[s.Verdict]++
	}
	return perPart, counts
}

func TestInProcess(t *testing.T) {
	want := expected(t)

	t.Run("replicas agree", func(t *testing.T) {
		t.Parallel()
		got, res := inProcess(t, app{}, false)
		assert.Equal(t, want, got)
		perPart, counts := verdicts(res)
		assert.Equal(t, map[int]int{0: 2, 1: 2, 2: 2, 3: 2}, perPart, "each part on two nodes:\n%s", res.Log())
		assert.Equal(t, 8, counts[requestor.Success], res.Log())
	})

	t.Run("wrong replica outvoted", func(t *testing.T) {
		t.Parallel()
		l := &liar{part: 2}
		got, res := inProcess(t, l, false)
		assert.Equal(t, want, got)
		perPart, counts := verdicts(res)
		assert.Equal(t, 3, perPart[2], "a third replica settles the dispute:\n%s", res.Log())
		assert.Positive(t, counts[requestor.Inconclusive], res.Log())
		require.NotNil(t, l.lied.Load())
		for _, s := range res.Subtasks {
			if s.ID == *l.lied.Load() {
				// Rejected when verified again after the third replica;
				// left INCONCLUSIVE when it was the result that asked for
				// that replica. Never accepted.
				assert.NotEqual(t, requestor.Success, s.Verdict, "the lie is not accepted:\n%s", res.Log())
			}
		}
	})

	t.Run("garbled replica rejected by Verify", func(t *testing.T) {
		t.Parallel()
		got, res := inProcess(t, app{}, false, sdktest.Faults(sdktest.At(1, 1, sdktest.Wrong)))
		assert.Equal(t, want, got)
		for _, s := range res.Subtasks {
			if s.Part == 1 && s.Attempt == 1 {
				assert.Equal(t, requestor.Failure, s.Verdict, res.Log())
				assert.Contains(t, s.Reason, "not {\"inside\": I", res.Log())
			}
		}
	})

	// Without redundancy the same lie goes through: the reason the app
	// runs with sdk.WithRedundancy(2).
	t.Run("without redundancy a lie goes through", func(t *testing.T) {
		t.Parallel()
		got, _ := inProcess(t, &liar{part: 2}, true)
		assert.Equal(t, want.Inside+1, got.Inside)
	})
}
