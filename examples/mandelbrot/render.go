package main

import (
	"context"
	"image"
	"math"
)

// The arithmetic below must give the same bits on every machine, since
// Verify recomputes pixels on the requestor and compares them exactly. Go
// may fuse x*y+z into one FMA instruction on some architectures (arm64,
// ppc64, s390x) and not on others; an explicit float64(...) conversion of
// a product forbids that fusion (Go spec, "Floating-point operators"), so
// every product that feeds an addition is wrapped in one.

// escape is the escape time of c = cr + ci·i: the iteration at which
// |z| > 2 for z → z² + c from z = 0, or maxIter if it never does.
func escape(cr, ci float64, maxIter int) int {
	var zr, zi float64
	for i := range maxIter {
		zr2, zi2 := float64(zr*zr), float64(zi*zi)
		if zr2+zi2 > 4 {
			return i
		}
		zi = float64(2*zr*zi) + ci
		zr = zr2 - zi2 + cr
	}
	return maxIter
}

// shade maps an escape time to a gray level: points of the set are black,
// the others brighter the longer they took to escape. The square root
// spreads the many fast escapes over more levels; math.Sqrt is correctly
// rounded, so it is as deterministic as the rest.
func shade(n, maxIter int) uint8 {
	if n >= maxIter {
		return 0
	}
	return uint8(float64(255 * math.Sqrt(float64(n+1)/float64(maxIter))))
}

// pixel is the gray level of pixel (x, y) of the image, y = 0 the top row.
// It samples the centre of the pixel.
func (p Params) pixel(x, y int) uint8 {
	dx := (p.XMax - p.XMin) / float64(p.Width)
	dy := (p.YMax - p.YMin) / float64(p.Height)
	cr := p.XMin + float64((float64(x)+0.5)*dx)
	ci := p.YMax - float64((float64(y)+0.5)*dy)
	return shade(escape(cr, ci, p.MaxIter), p.MaxIter)
}

// renderStrip renders the strip's rows, row after row, into a buffer of
// s.pixels() bytes: the raw 8-bit grayscale format of a result file.
func renderStrip(ctx context.Context, s Strip) ([]byte, error) {
	w := s.Image.Width
	buf := make([]byte, s.pixels())
	for r := range s.Rows {
		// A row is the unit of cancellation: short enough to stop soon
		// after an abort, long enough not to cost anything.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for x := range w {
			buf[r*w+x] = s.Image.pixel(x, s.Y0+r)
		}
	}
	return buf, nil
}

// render renders the whole image in this process: what the task computes,
// for tests and for comparing a task's output with.
func render(ctx context.Context, p Params) (*image.Gray, error) {
	pix, err := renderStrip(ctx, Strip{Image: p, Y0: 0, Rows: p.Height})
	if err != nil {
		return nil, err
	}
	img := image.NewGray(image.Rect(0, 0, p.Width, p.Height))
	copy(img.Pix, pix)
	return img, nil
}
