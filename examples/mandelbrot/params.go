package main

import (
	"fmt"
	"math"
)

// Params are the task's parameters: the image's size, the iteration limit
// and the rectangle of the complex plane it shows. Every field is optional;
// DefaultParams gives the values of the ones left out.
type Params struct {
	Width   int `json:"width"`
	Height  int `json:"height"`
	MaxIter int `json:"max_iter"`
	// The rectangle shown: x is the real axis (left to right), y the
	// imaginary axis (bottom to top).
	XMin float64 `json:"x_min"`
	XMax float64 `json:"x_max"`
	YMin float64 `json:"y_min"`
	YMax float64 `json:"y_max"`
	// RowsPerPart is the height of one strip, one part; when the host
	// allows fewer parts, strips are made taller to fit.
	RowsPerPart int `json:"rows_per_part"`
}

// Limits on the params, so that a typo cannot ask the requestor to hold an
// image it has no memory for.
const (
	maxSide   = 1 << 14
	maxPixels = 1 << 26
	maxIter   = 1 << 20
)

// DefaultParams are the whole set, 1024×768, at 4:3 like the image.
func DefaultParams() Params {
	return Params{
		Width: 1024, Height: 768, MaxIter: 256,
		XMin: -2.25, XMax: 0.75, YMin: -1.125, YMax: 1.125,
		RowsPerPart: 64,
	}
}

// SetDefaults starts the params from DefaultParams: the SDK calls it
// before decoding, so a field left out keeps its default while an explicit
// 0 (a valid x_min) is kept, and a task with no params renders the default
// image.
func (p *Params) SetDefaults() { *p = DefaultParams() }

// Validate refuses params that make no image. The SDK calls it after
// decoding and answers its error as InvalidArgument.
func (p Params) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...))
	}
	finite := func(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }
	switch {
	case p.Width < 1 || p.Width > maxSide:
		return bad("width", "%d: want 1 to %d", p.Width, maxSide)
	case p.Height < 1 || p.Height > maxSide:
		return bad("height", "%d: want 1 to %d", p.Height, maxSide)
	case p.Width*p.Height > maxPixels:
		return bad("width", "%d×%d is %d pixels; at most %d are allowed", p.Width, p.Height, p.Width*p.Height, maxPixels)
	case p.MaxIter < 1 || p.MaxIter > maxIter:
		return bad("max_iter", "%d: want 1 to %d", p.MaxIter, maxIter)
	case p.RowsPerPart < 1:
		return bad("rows_per_part", "%d: want at least 1", p.RowsPerPart)
	case !finite(p.XMin) || !finite(p.XMax) || !(p.XMin < p.XMax):
		return bad("x_min", "want finite x_min < x_max, got %v and %v", p.XMin, p.XMax)
	case !finite(p.YMin) || !finite(p.YMax) || !(p.YMin < p.YMax):
		return bad("y_min", "want finite y_min < y_max, got %v and %v", p.YMin, p.YMax)
	}
	return nil
}

// Strip is one part: rows [Y0, Y0+Rows) of the image. It carries the
// whole image's params because a provider sees nothing but its part.
type Strip struct {
	Image Params `json:"image"`
	Y0    int    `json:"y0"`
	Rows  int    `json:"rows"`
}

// Validate refuses a strip that does not lie inside its image, so that a
// bad part fails on the provider with a reason (the SDK calls it before
// Compute) instead of a panic.
func (s Strip) Validate() error {
	if err := s.Image.Validate(); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if s.Y0 < 0 || s.Rows < 1 || s.Y0+s.Rows > s.Image.Height {
		return fmt.Errorf("strip y0=%d rows=%d does not fit an image %d rows high", s.Y0, s.Rows, s.Image.Height)
	}
	return nil
}

// pixels is the number of pixels, and bytes, of the strip's result.
func (s Strip) pixels() int { return s.Rows * s.Image.Width }
