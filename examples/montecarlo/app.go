package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/gtask/gtask/sdk"
)

// app estimates π. It holds no state: one value serves every task.
type app struct{}

const (
	countFile  = "count.json"
	resultFile = "result.json"
	// sigmas is how far from its expected value a count may lie before
	// Verify calls it implausible: at 6 standard deviations an honest count
	// is rejected about once in 500 million parts.
	sigmas = 6
)

// Split shares the samples among the parts.
func (app) Split(ctx context.Context, t *sdk.Task[Params]) ([]sdk.Part[PartParams], error) {
	p := t.Params.withDefaults()
	ns := shares(p.Samples, p.Parts, t.MaxParts)
	parts := make([]sdk.Part[PartParams], len(ns))
	for i, n := range ns {
		parts[i] = sdk.Part[PartParams]{Params: PartParams{Part: i, Samples: n, Seed: p.Seed}}
	}
	t.Log.Info("split", "samples", p.Samples, "parts", len(parts), "seed", p.Seed)
	return parts, nil
}

// Compute draws the part's samples. The SDK has checked s.Params with
// PartParams.Validate.
func (app) Compute(ctx context.Context, s *sdk.Subtask[PartParams]) (string, error) {
	c, err := count(ctx, s.Params)
	if err != nil {
		return "", err
	}
	out, err := s.OutputPath(countFile)
	if err != nil {
		return "", err
	}
	return out, writeJSON(out, c)
}

// Verify is only a sanity check: checking a count exactly means drawing
// the samples again, as costly as computing it. It rejects what cannot be
// right (a malformed file, the wrong number of samples, more inside than
// drawn, a count far from n·π/4) and leaves the rest to the redundancy,
// which compares the replicas of each part by hash.
func (app) Verify(ctx context.Context, r *sdk.Result[Params, PartParams]) (sdk.Verdict, error) {
	c, err := readCount(r.File)
	if err != nil {
		return sdk.Reject("%v", err), nil
	}
	if reason := implausible(c, r.Params.Samples); reason != "" {
		return sdk.Reject("part %d: %s", r.Part, reason), nil
	}
	return sdk.Accept(), nil
}

// implausible says what is wrong with c as the count of n samples, or "".
// The bound is the binomial's: inside ~ B(n, π/4).
func implausible(c Count, n int64) string {
	switch {
	case c.Samples != n:
		return fmt.Sprintf("%d samples, want %d", c.Samples, n)
	case c.Inside < 0 || c.Inside > c.Samples:
		return fmt.Sprintf("%d inside out of %d samples", c.Inside, c.Samples)
	}
	p := math.Pi / 4
	mean := float64(n) * p
	sd := math.Sqrt(float64(n) * p * (1 - p))
	if math.Abs(float64(c.Inside)-mean) > sigmas*sd+1 {
		return fmt.Sprintf("%d inside out of %d samples is more than %d standard deviations from the expected %.0f", c.Inside, n, sigmas, mean)
	}
	return ""
}

// Merge adds the counts of all parts up into the estimate.
func (app) Merge(ctx context.Context, t *sdk.Task[Params], results []*sdk.Result[Params, PartParams]) error {
	var total Count
	for _, r := range results {
		c, err := readCount(r.File)
		if err != nil {
			return fmt.Errorf("part %d: %w", r.Part, err)
		}
		total.Inside += c.Inside
		total.Samples += c.Samples
	}
	return writeJSON(filepath.Join(t.Dir.Outputs(), resultFile), estimate(total))
}

// estimate is π from a count: the quarter circle covers π/4 of the square.
func estimate(c Count) Estimate {
	return Estimate{Pi: 4 * float64(c.Inside) / float64(c.Samples), Samples: c.Samples, Inside: c.Inside}
}

// readCount reads a result file strictly: a provider's output is untrusted.
func readCount(path string) (Count, error) {
	f, err := os.Open(path)
	if err != nil {
		return Count{}, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var c Count
	if err := dec.Decode(&c); err != nil {
		return Count{}, fmt.Errorf("result is not {\"inside\": I, \"samples\": N}: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Count{}, errors.New("result has data after its JSON object")
	}
	return c, nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
