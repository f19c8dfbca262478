package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
)

func TestShares(t *testing.T) {
	tests := []struct {
		name            string
		samples         int64
		parts, maxParts int
		want            []int64
	}{
		{name: "divides", samples: 12, parts: 3, want: []int64{4, 4, 4}},
		{name: "remainder to the first parts", samples: 11, parts: 3, want: []int64{4, 4, 3}},
		{name: "more parts than samples", samples: 2, parts: 8, want: []int64{1, 1}},
		{name: "host limit", samples: 100, parts: 8, maxParts: 4, want: []int64{25, 25, 25, 25}},
		{name: "limit above parts", samples: 100, parts: 2, maxParts: 4, want: []int64{50, 50}},
		{name: "one sample", samples: 1, parts: 1, want: []int64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, shares(tt.samples, tt.parts, tt.maxParts))
		})
	}
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name   string
		params Params
		field  string // "" for valid
	}{
		{name: "zero is the defaults", params: Params{}},
		{name: "seed zero", params: Params{Samples: 10, Parts: 2, Seed: 0}},
		{name: "negative samples", params: Params{Samples: -1}, field: "samples"},
		{name: "too many samples", params: Params{Samples: maxSamples + 1}, field: "samples"},
		{name: "negative parts", params: Params{Parts: -2}, field: "parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.params.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.field)
		})
	}
	assert.Equal(t, Params{Samples: DefaultSamples, Parts: DefaultParts, Seed: 7}, Params{Seed: 7}.withDefaults())
}

// TestCountIsPinned pins a few counts. The replicas of a part are compared
// by hash, so the stream of (seed, part) must never change between builds
// of the app; if a Go release changed PCG or Rand.Float64, this test, not
// a task's endless INCONCLUSIVE verdicts, should be what says so.
func TestCountIsPinned(t *testing.T) {
	tests := []struct {
		p    PartParams
		want int64
	}{
		{PartParams{Part: 0, Samples: 1000, Seed: 1}, 793},
		{PartParams{Part: 1, Samples: 1000, Seed: 1}, 760},
		{PartParams{Part: 0, Samples: 1000, Seed: 2}, 782},
	}
	for _, tt := range tests {
		c, err := count(context.Background(), tt.p)
		require.NoError(t, err)
		assert.Equal(t, Count{Inside: tt.want, Samples: 1000}, c, "%+v", tt.p)
	}
}

func TestCountConverges(t *testing.T) {
	c, err := count(context.Background(), PartParams{Part: 3, Samples: 1_000_000, Seed: 42})
	require.NoError(t, err)
	assert.InDelta(t, math.Pi, estimate(c).Pi, 0.01)
	assert.Empty(t, implausible(c, 1_000_000))
}

func TestCountStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := count(ctx, PartParams{Samples: 1 << 30})
	require.ErrorIs(t, err, context.Canceled)
}

func TestImplausible(t *testing.T) {
	tests := []struct {
		name   string
		c      Count
		n      int64
		reason string // "" for plausible
	}{
		{name: "expected", c: Count{Inside: 785398, Samples: 1_000_000}, n: 1_000_000},
		{name: "5 sigma off", c: Count{Inside: 785398 + 5*411, Samples: 1_000_000}, n: 1_000_000},
		{name: "7 sigma off", c: Count{Inside: 785398 - 7*411, Samples: 1_000_000}, n: 1_000_000, reason: "standard deviations"},
		{name: "tiny part, any count", c: Count{Inside: 0, Samples: 1}, n: 1},
		{name: "wrong sample count", c: Count{Inside: 7, Samples: 9}, n: 10, reason: "9 samples, want 10"},
		{name: "more inside than drawn", c: Count{Inside: 11, Samples: 10}, n: 10, reason: "11 inside out of 10"},
		{name: "negative", c: Count{Inside: -1, Samples: 10}, n: 10, reason: "-1 inside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := implausible(tt.c, tt.n)
			if tt.reason == "" {
				assert.Empty(t, got)
				return
			}
			assert.Contains(t, got, tt.reason)
		})
	}
}

func newTask(t *testing.T, p Params) *sdk.Task[Params] {
	t.Helper()
	dir := sdk.RequestorDir{Root: t.TempDir()}
	require.NoError(t, dir.Create())
	return &sdk.Task[Params]{ID: "t1", Params: p, Dir: dir, Log: slog.New(slog.DiscardHandler)}
}

func TestSplitComputeVerifyMerge(t *testing.T) {
	task := newTask(t, Params{Samples: 100_001, Parts: 4, Seed: 9})
	parts, err := app{}.Split(context.Background(), task)
	require.NoError(t, err)
	require.Len(t, parts, 4)
	assert.Equal(t, PartParams{Part: 0, Samples: 25_001, Seed: 9}, parts[0].Params)
	assert.Equal(t, PartParams{Part: 3, Samples: 25_000, Seed: 9}, parts[3].Params)

	var results []*sdk.Result[Params, PartParams]
	var total Count
	for i, part := range parts {
		sub := &sdk.Subtask[PartParams]{TaskID: task.ID, ID: "s", Part: i, Params: part.Params,
			Dir: sdk.ProviderDir{Root: t.TempDir()}, Log: task.Log}
		out, err := app{}.Compute(context.Background(), sub)
		require.NoError(t, err)
		r := &sdk.Result[Params, PartParams]{Task: task, SubtaskID: sub.ID, Part: i, Params: part.Params, File: out}
		v, err := app{}.Verify(context.Background(), r)
		require.NoError(t, err)
		require.Equal(t, requestor.Success, v.Result, v.Reason)
		results = append(results, r)
		c, err := count(context.Background(), part.Params)
		require.NoError(t, err)
		total.Inside += c.Inside
		total.Samples += c.Samples
	}
	require.NoError(t, app{}.Merge(context.Background(), task, results))
	got := readEstimate(t, filepath.Join(task.Dir.Outputs(), resultFile))
	assert.Equal(t, estimate(total), got)
	assert.Equal(t, int64(100_001), got.Samples)
	assert.InDelta(t, math.Pi, got.Pi, 0.05)
}

func TestSplitDefaultsAndLimit(t *testing.T) {
	task := newTask(t, Params{})
	task.MaxParts = 3
	parts, err := app{}.Split(context.Background(), task)
	require.NoError(t, err)
	require.Len(t, parts, 3)
	var n int64
	for _, p := range parts {
		n += p.Params.Samples
	}
	assert.Equal(t, int64(DefaultSamples), n)
}

func TestVerify(t *testing.T) {
	part := PartParams{Part: 0, Samples: 1000, Seed: 1} // 793 inside
	tests := []struct {
		name   string
		file   string
		want   requestor.Verdict
		reason string
	}{
		{name: "honest", file: `{"inside": 793, "samples": 1000}`, want: requestor.Success},
		// Off by one is plausible: Verify cannot tell, the replicas will.
		{name: "subtly wrong", file: `{"inside": 794, "samples": 1000}`, want: requestor.Success},
		{name: "implausible", file: `{"inside": 1000, "samples": 1000}`, want: requestor.Failure, reason: "standard deviations"},
		{name: "wrong samples", file: `{"inside": 793, "samples": 999}`, want: requestor.Failure, reason: "999 samples, want 1000"},
		{name: "not JSON", file: `793`, want: requestor.Failure, reason: "not {\"inside\": I"},
		{name: "unknown field", file: `{"inside": 793, "samples": 1000, "pi": 3.172}`, want: requestor.Failure, reason: "unknown field"},
		{name: "trailing data", file: `{"inside": 793, "samples": 1000} 1`, want: requestor.Failure, reason: "data after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), countFile)
			require.NoError(t, os.WriteFile(path, []byte(tt.file), 0o644))
			v, err := app{}.Verify(context.Background(), &sdk.Result[Params, PartParams]{
				Task: newTask(t, Params{}), SubtaskID: "s", Part: 0, Params: part, File: path,
			})
			require.NoError(t, err)
			assert.Equal(t, tt.want, v.Result, v.Reason)
			assert.Contains(t, v.Reason, tt.reason)
		})
	}
}

func readEstimate(t *testing.T, path string) Estimate {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var e Estimate
	require.NoError(t, json.Unmarshal(b, &e))
	return e
}
