package main

import (
	"context"
	"math/rand/v2"
)

// shares divides samples among parts as evenly as possible, the first
// samples%parts parts drawing one more. parts is capped at samples, so that
// no part draws nothing, and at maxParts when that is set (> 0).
func shares(samples int64, parts, maxParts int) []int64 {
	if maxParts > 0 {
		parts = min(parts, maxParts)
	}
	parts = int(min(int64(parts), samples))
	out := make([]int64, parts)
	q, r := samples/int64(parts), samples%int64(parts)
	for i := range out {
		out[i] = q
		if int64(i) < r {
			out[i]++
		}
	}
	return out
}

// cancelEvery is how many samples count draws between looks at ctx: a few
// hundred microseconds of work, so that an abort stops it promptly.
const cancelEvery = 1 << 16

// count draws p.Samples points uniformly in the unit square from the PCG
// stream (p.Seed, p.Part) and counts those inside the quarter circle
// x² + y² ≤ 1. Replicas run the same program, so PCG and Rand.Float64
// give them the same stream; the float64 conversions keep the arithmetic
// the same across architectures too (Go may fuse x*x + y*y into an FMA on
// some, and an explicit conversion forbids it). The count is therefore the
// same on every node, which is what lets replicas be compared by hash.
func count(ctx context.Context, p PartParams) (Count, error) {
	rng := rand.New(rand.NewPCG(p.Seed, uint64(p.Part)))
	var inside int64
	for i := range p.Samples {
		if i%cancelEvery == 0 {
			if err := ctx.Err(); err != nil {
				return Count{}, err
			}
		}
		x, y := rng.Float64(), rng.Float64()
		if float64(x*x)+float64(y*y) <= 1 {
			inside++
		}
	}
	return Count{Inside: inside, Samples: p.Samples}, nil
}
