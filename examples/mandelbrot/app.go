package main

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/gtask/gtask/sdk"
)

// app renders the Mandelbrot set. It holds no state: one value serves
// every task.
type app struct{}

const (
	// stripFile is a result: the strip's pixels, raw 8-bit gray, row after
	// row, Rows×Width bytes and nothing else. Raw bytes rather than PNG so
	// that Verify can check its size and read any pixel without decoding.
	stripFile = "strip.gray"
	// imageFile is the merged image in task_outputs/.
	imageFile = "mandelbrot.png"
	// samples is how many pixels Verify recomputes per strip: a few
	// percent of a default strip's 65536, enough that a provider skipping
	// even a small part of its work is caught with high probability.
	samples = 64
)

// Split cuts the image into horizontal strips.
func (app) Split(ctx context.Context, t *sdk.Task[Params]) ([]sdk.Part[Strip], error) {
	p := t.Params
	ss := strips(p.Height, p.RowsPerPart, t.MaxParts)
	parts := make([]sdk.Part[Strip], len(ss))
	for i, s := range ss {
		parts[i] = sdk.Part[Strip]{Params: Strip{Image: p, Y0: s.y0, Rows: s.rows}}
	}
	t.Log.Info("split", "width", p.Width, "height", p.Height, "strips", len(parts))
	return parts, nil
}

// Compute renders one strip. The SDK has checked s.Params with
// Strip.Validate.
func (app) Compute(ctx context.Context, s *sdk.Subtask[Strip]) (string, error) {
	pix, err := renderStrip(ctx, s.Params)
	if err != nil {
		return "", err
	}
	out, err := s.OutputPath(stripFile)
	if err != nil {
		return "", err
	}
	return out, os.WriteFile(out, pix, 0o644)
}

// Verify checks the size of the strip and recomputes a sample of its
// pixels: rendering is costly, recomputing 64 pixels is not. The sample is
// drawn from a hash of the subtask id, so that verifying one result twice
// gives the same verdict, while each attempt at a part is checked at other
// pixels. It is a spot check, not a proof: a provider that gets a few
// pixels wrong may pass, one that skips its work will not.
func (app) Verify(ctx context.Context, r *sdk.Result[Params, Strip]) (sdk.Verdict, error) {
	s := r.Params
	pix, err := os.ReadFile(r.File)
	if err != nil {
		return sdk.Verdict{}, err
	}
	if len(pix) != s.pixels() {
		return sdk.Reject("strip y0=%d: %d bytes, want %d (%d rows of %d pixels)", s.Y0, len(pix), s.pixels(), s.Rows, s.Image.Width), nil
	}
	for _, i := range sample(r.SubtaskID, s.pixels(), samples) {
		x, y := i%s.Image.Width, s.Y0+i/s.Image.Width
		if want := s.Image.pixel(x, y); pix[i] != want {
			return sdk.Reject("pixel (%d, %d): got %d, want %d", x, y, pix[i], want), nil
		}
	}
	return sdk.Accept(), nil
}

// sample returns n indices in [0, size) drawn from a PRNG seeded by the
// hash of key; all of them, in order, when size <= n.
func sample(key string, size, n int) []int {
	if size <= n {
		idx := make([]int, size)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	h := fnv.New64a()
	h.Write([]byte(key))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0))
	idx := make([]int, n)
	for i := range idx {
		idx[i] = rng.IntN(size)
	}
	return idx
}

// Merge assembles the strips, in part order, into mandelbrot.png.
func (app) Merge(ctx context.Context, t *sdk.Task[Params], results []*sdk.Result[Params, Strip]) error {
	p := t.Params
	img := image.NewGray(image.Rect(0, 0, p.Width, p.Height))
	for _, r := range results {
		pix, err := os.ReadFile(r.File)
		if err != nil {
			return err
		}
		s := r.Params
		if len(pix) != s.pixels() {
			return fmt.Errorf("strip y0=%d: %d bytes, want %d", s.Y0, len(pix), s.pixels())
		}
		copy(img.Pix[s.Y0*img.Stride:], pix)
	}
	// The fastest compression: the merge is the one part of a task that
	// no provider shares, and the default level takes four times as long
	// (about 0.1 s for 2048x1536 on one core) for a file a third smaller.
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(t.Dir.Outputs(), imageFile), buf.Bytes(), 0o644)
}
