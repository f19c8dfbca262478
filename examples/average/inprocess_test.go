package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
	"github.com/gtask/gtask/sdk/sdktest"
)

// TestInProcess runs whole tasks in this process with sdktest, faults
// injected, and checks that the result never changes.
func TestInProcess(t *testing.T) {
	const (
		avg      = `{"average": 53.25}`
		partials = `[{"sum": 253, "count": 4}, {"sum": 173, "count": 4}]`
	)
	tests := []struct {
		name   string
		params Params
		opts   []sdktest.RunOption
		want   string
		// rejected lists the (part, attempt) pairs Verify must reject.
		rejected [][2]int
	}{
		{name: "average", params: Params{Column: "age"}, want: avg},
		{name: "partials", params: Params{Column: "age", Partial: true}, want: partials},
		{name: "average of another column", params: Params{Column: "weight"}, want: `{"average": 68.7625}`},
		{name: "wrong result", params: Params{Column: "age"}, want: avg,
			opts:     []sdktest.RunOption{sdktest.Faults(sdktest.At(1, 1, sdktest.Wrong))},
			rejected: [][2]int{{1, 1}}},
		{name: "wrong twice", params: Params{Column: "age", Partial: true}, want: partials,
			opts:     []sdktest.RunOption{sdktest.Faults(sdktest.At(0, 1, sdktest.Wrong), sdktest.At(0, 2, sdktest.Wrong))},
			rejected: [][2]int{{0, 1}, {0, 2}}},
		{name: "provider error", params: Params{Column: "age"}, want: avg,
			opts: []sdktest.RunOption{sdktest.Faults(sdktest.At(0, 1, sdktest.Error))}},
		{name: "missing result", params: Params{Column: "age"}, want: avg,
			opts:     []sdktest.RunOption{sdktest.Faults(sdktest.At(1, 1, sdktest.Missing))},
			rejected: [][2]int{{1, 1}}},
		{name: "hung provider", params: Params{Column: "age"}, want: avg,
			opts: []sdktest.RunOption{sdktest.Faults(sdktest.At(1, 1, sdktest.Hang)), sdktest.AttemptTimeout(200 * time.Millisecond)}},
		{name: "one provider", params: Params{Column: "age"}, want: avg,
			opts: []sdktest.RunOption{sdktest.Providers(1), sdktest.Faults(sdktest.At(0, 1, sdktest.Wrong))}, rejected: [][2]int{{0, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := append([]sdktest.RunOption{sdktest.Inputs(seedInputs(t)...)}, tt.opts...)
			res := sdktest.Run(t, app{}, tt.params, opts...)
			require.Contains(t, res.Files, resultFile, res.Log())
			assert.JSONEq(t, tt.want, string(res.Files[resultFile]))
			var rejected [][2]int
			for _, s := range res.Subtasks {
				if s.Verdict == requestor.Failure {
					rejected = append(rejected, [2]int{s.Part, s.Attempt})
				}
			}
			assert.ElementsMatch(t, tt.rejected, rejected, res.Log())
		})
	}
}

// TestInProcessRandomFaults injects faults of every quick kind into a
// third of the attempts; the seed makes each run the same every time. The
// attempt limit is raised so that no part runs out of attempts (with the
// default 3, some seeds fail a part three times in a row).
func TestInProcessRandomFaults(t *testing.T) {
	for seed := range uint64(8) {
		res := sdktest.Run(t, app{}, Params{Column: "age"}, sdktest.Inputs(seedInputs(t)...),
			sdktest.Faults(sdktest.Rate(0.3, seed)), sdktest.SDKOptions(sdk.WithMaxAttempts(8)))
		assert.JSONEq(t, `{"average": 53.25}`, string(res.Files[resultFile]), res.Log())
	}
}
