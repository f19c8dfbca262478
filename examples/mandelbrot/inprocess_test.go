package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk/sdktest"
)

// TestInProcess renders whole tasks in this process with sdktest, faults
// injected, and checks that the image is always the direct render.
func TestInProcess(t *testing.T) {
	p := small()
	want, err := render(context.Background(), p)
	require.NoError(t, err)

	tests := []struct {
		name      string
		opts      []sdktest.RunOption
		wantParts int
		rejected  [][2]int // (part, attempt) pairs Verify must reject
	}{
		{name: "strips", wantParts: 5},
		{name: "host limit", opts: []sdktest.RunOption{sdktest.MaxSubtasks(2)}, wantParts: 2},
		{name: "wrong strip", opts: []sdktest.RunOption{sdktest.Faults(sdktest.At(3, 1, sdktest.Wrong))},
			wantParts: 5, rejected: [][2]int{{3, 1}}},
		{name: "missing and failed strips", wantParts: 5, rejected: [][2]int{{0, 1}},
			opts: []sdktest.RunOption{sdktest.Faults(sdktest.At(0, 1, sdktest.Missing), sdktest.At(4, 1, sdktest.Error))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := sdktest.Run(t, app{}, p, tt.opts...)
			assert.Equal(t, want, decodePNGBytes(t, res.Files[imageFile]), res.Log())
			parts := map[int]bool{}
			var rejected [][2]int
			for _, s := range res.Subtasks {
				parts[s.Part] = true
				if s.Verdict == requestor.Failure {
					rejected = append(rejected, [2]int{s.Part, s.Attempt})
				}
			}
			assert.Len(t, parts, tt.wantParts, res.Log())
			assert.ElementsMatch(t, tt.rejected, rejected, res.Log())
		})
	}
}

// renderInProcess renders p through a whole in-process task and returns
// the PNG file's bytes.
func renderInProcess(t *testing.T, p Params) []byte {
	t.Helper()
	res := sdktest.Run(t, app{}, p)
	require.Contains(t, res.Files, imageFile, res.Log())
	return res.Files[imageFile]
}

func decodePNGBytes(t *testing.T, b []byte) *image.Gray {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	gray, ok := img.(*image.Gray)
	require.True(t, ok, "a %T, want *image.Gray", img)
	return gray
}
