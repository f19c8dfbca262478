package main

import "fmt"

// Params are the task's parameters. Samples and Parts left out (or 0) take
// their defaults; Seed 0 is a seed like any other.
type Params struct {
	// Samples is the total number of random points drawn. Default
	// DefaultSamples.
	Samples int64 `json:"samples"`
	// Parts is how many parts share them; at most the host's limit, and
	// at most Samples. Default DefaultParts.
	Parts int `json:"parts"`
	// Seed makes the estimate reproducible: the same params give the same
	// estimate on any machine, which is what lets replicas be compared.
	Seed uint64 `json:"seed"`
}

// The defaults, and the largest sample count accepted (about an hour of one
// core, as a guard against a typo).
const (
	DefaultSamples = 10_000_000
	DefaultParts   = 8
	maxSamples     = 1 << 40
)

// Validate refuses counts that make no estimate; 0 means the default. The
// SDK calls it after decoding and answers its error as InvalidArgument.
func (p Params) Validate() error {
	p = p.withDefaults()
	switch {
	case p.Samples < 1 || p.Samples > maxSamples:
		return fmt.Errorf("samples: %d: want 1 to %d", p.Samples, int64(maxSamples))
	case p.Parts < 1:
		return fmt.Errorf("parts: %d: want at least 1", p.Parts)
	}
	return nil
}

// withDefaults returns p with its zero counts replaced by the defaults.
func (p Params) withDefaults() Params {
	if p.Samples == 0 {
		p.Samples = DefaultSamples
	}
	if p.Parts == 0 {
		p.Parts = DefaultParts
	}
	return p
}

// PartParams are one part: draw Samples points from the stream (Seed, Part).
type PartParams struct {
	Part    int    `json:"part"`
	Samples int64  `json:"samples"`
	Seed    uint64 `json:"seed"`
}

// Validate refuses a part that draws nothing; the SDK calls it on the
// provider before Compute.
func (p PartParams) Validate() error {
	if p.Part < 0 || p.Samples < 1 {
		return fmt.Errorf("part %d with %d samples: want part >= 0 and samples >= 1", p.Part, p.Samples)
	}
	return nil
}

// Count is a part's result, and the sum of all of them: how many of the
// Samples points fell inside the quarter circle.
type Count struct {
	Inside  int64 `json:"inside"`
	Samples int64 `json:"samples"`
}

// Estimate is result.json. Inside is there beside π so that two runs can be
// compared exactly, without rounding.
type Estimate struct {
	Pi      float64 `json:"pi"`
	Samples int64   `json:"samples"`
	Inside  int64   `json:"inside"`
}
