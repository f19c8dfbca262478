package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
)

// small is a view quick enough to render many times in a test, still
// showing the whole set.
func small() Params {
	p := DefaultParams()
	p.Width, p.Height, p.MaxIter, p.RowsPerPart = 96, 72, 64, 16
	return p
}

func TestStrips(t *testing.T) {
	tests := []struct {
		name                       string
		height, rowsPerPart, limit int
		want                       []span
	}{
		{name: "divides", height: 64, rowsPerPart: 16, want: []span{{0, 16}, {16, 16}, {32, 16}, {48, 16}}},
		{name: "last strip shorter", height: 100, rowsPerPart: 64, want: []span{{0, 64}, {64, 36}}},
		{name: "one strip", height: 10, rowsPerPart: 64, want: []span{{0, 10}}},
		{name: "limit below the count", height: 10, rowsPerPart: 1, limit: 3, want: []span{{0, 4}, {4, 4}, {8, 2}}},
		{name: "limit above the count", height: 5, rowsPerPart: 1, limit: 100, want: []span{{0, 1}, {1, 1}, {2, 1}, {3, 1}, {4, 1}}},
		{name: "limit of one", height: 768, rowsPerPart: 64, limit: 1, want: []span{{0, 768}}},
		{name: "default image, 5 parts", height: 768, rowsPerPart: 64, limit: 5,
			want: []span{{0, 154}, {154, 154}, {308, 154}, {462, 154}, {616, 152}}},
		{name: "one row", height: 1, rowsPerPart: 64, limit: 8, want: []span{{0, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, strips(tt.height, tt.rowsPerPart, tt.limit))
		})
	}
}

// TestStripsCover checks, over many shapes, what Merge relies on: the
// strips cover every row once, in order, and obey the limit.
func TestStripsCover(t *testing.T) {
	for height := 1; height <= 70; height++ {
		for _, rows := range []int{1, 3, 16, 64} {
			for _, limit := range []int{0, 1, 2, 7, 64} {
				ss := strips(height, rows, limit)
				next := 0
				for _, s := range ss {
					require.Equal(t, next, s.y0)
					require.Positive(t, s.rows)
					next += s.rows
				}
				require.Equal(t, height, next, "height %d rows %d limit %d", height, rows, limit)
				if limit > 0 {
					require.LessOrEqual(t, len(ss), limit)
				}
			}
		}
	}
}

func TestParamsJSON(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    func(*Params)
		wantErr string
	}{
		{name: "empty object is the defaults", json: `{}`, want: func(*Params) {}},
		{name: "null is the defaults", json: `null`, want: func(*Params) {}},
		{name: "some fields", json: `{"width": 640, "max_iter": 1000}`, want: func(p *Params) { p.Width, p.MaxIter = 640, 1000 }},
		{name: "explicit zero is kept", json: `{"x_min": 0, "y_max": 0}`, want: func(p *Params) { p.XMin, p.YMax = 0, 0 }},
		{name: "unknown field", json: `{"widht": 640}`, wantErr: `unknown field "widht"`},
		{name: "wrong type", json: `{"width": "640"}`, wantErr: "width"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// As the SDK decodes task params: SetDefaults, then a strict
			// decode (see the sdk package doc).
			var p Params
			p.SetDefaults()
			dec := json.NewDecoder(strings.NewReader(tt.json))
			dec.DisallowUnknownFields()
			err := dec.Decode(&p)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			want := DefaultParams()
			tt.want(&want)
			assert.Equal(t, want, p)
		})
	}
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Params)
		field  string // "" for valid
	}{
		{name: "defaults", change: func(*Params) {}},
		{name: "zero width", change: func(p *Params) { p.Width = 0 }, field: "width"},
		{name: "huge height", change: func(p *Params) { p.Height = maxSide + 1 }, field: "height"},
		{name: "too many pixels", change: func(p *Params) { p.Width, p.Height = maxSide, maxSide }, field: "pixels"},
		{name: "no iterations", change: func(p *Params) { p.MaxIter = 0 }, field: "max_iter"},
		{name: "zero rows per part", change: func(p *Params) { p.RowsPerPart = 0 }, field: "rows_per_part"},
		{name: "empty x range", change: func(p *Params) { p.XMax = p.XMin }, field: "x_min"},
		{name: "reversed y range", change: func(p *Params) { p.YMin, p.YMax = 1, -1 }, field: "y_min"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultParams()
			tt.change(&p)
			err := p.Validate()
			if tt.field == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.field)
		})
	}
}

func TestStripValidate(t *testing.T) {
	p := small()
	require.NoError(t, Strip{Image: p, Y0: 56, Rows: 16}.Validate())
	for _, s := range []Strip{{Image: p, Y0: -1, Rows: 2}, {Image: p, Y0: 0, Rows: 0}, {Image: p, Y0: 60, Rows: 16}} {
		require.ErrorContains(t, s.Validate(), "does not fit", "%+v", s)
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		cr, ci float64
		want   int
	}{
		{0, 0, 100},  // the centre never escapes
		{-1, 0, 100}, // a 2-cycle: 0, -1, 0, ...
		{0, 1, 100},  // a pre-periodic point on the boundary: i, i-1, -i, i-1, ...
		{1, 0, 3},    // 0, 1, 2, 5: |5| > 2 at the 4th look
		{2, 0, 2},    // 0, 2, 6
		{3, 3, 1},    // out after one step
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, escape(tt.cr, tt.ci, 100), "c = %v%+vi", tt.cr, tt.ci)
	}
}

func TestShade(t *testing.T) {
	assert.Equal(t, uint8(0), shade(256, 256), "the set is black")
	assert.Equal(t, uint8(255), shade(255, 256), "the slowest escape is white")
	assert.Equal(t, uint8(15), shade(0, 256))
	for n := 1; n < 256; n++ {
		assert.GreaterOrEqual(t, shade(n, 256), shade(n-1, 256), "shade grows with the escape time")
	}
}

func TestRenderStripMatchesImage(t *testing.T) {
	p := small()
	img, err := render(context.Background(), p)
	require.NoError(t, err)
	assert.Equal(t, uint8(0), img.GrayAt(p.Width*2/3, p.Height/2).Y, "the image's centre-right is inside the set")
	assert.NotEqual(t, uint8(0), img.GrayAt(0, 0).Y, "its corner is not")
	for _, s := range strips(p.Height, p.RowsPerPart, 0) {
		pix, err := renderStrip(context.Background(), Strip{Image: p, Y0: s.y0, Rows: s.rows})
		require.NoError(t, err)
		assert.Equal(t, img.Pix[s.y0*p.Width:(s.y0+s.rows)*p.Width], pix)
	}
}

func TestRenderStripStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := renderStrip(ctx, Strip{Image: small(), Y0: 0, Rows: 16})
	require.ErrorIs(t, err, context.Canceled)
}

func TestSample(t *testing.T) {
	a := sample("subtask-a", 1000, samples)
	assert.Len(t, a, samples)
	assert.Equal(t, a, sample("subtask-a", 1000, samples), "the same subtask is checked at the same pixels")
	assert.NotEqual(t, a, sample("subtask-b", 1000, samples), "another attempt at other pixels")
	for _, i := range a {
		assert.True(t, i >= 0 && i < 1000)
	}
	assert.Equal(t, []int{0, 1, 2}, sample("x", 3, samples), "a small strip is checked whole")
}

func newTask(t *testing.T, p Params) *sdk.Task[Params] {
	t.Helper()
	dir := sdk.RequestorDir{Root: t.TempDir()}
	require.NoError(t, dir.Create())
	return &sdk.Task[Params]{ID: "t1", Params: p, Dir: dir, Log: slog.New(slog.DiscardHandler)}
}

// computeAll computes every part in its own provider dir and returns the
// results, as the requestor sees them.
func computeAll(t *testing.T, task *sdk.Task[Params], parts []sdk.Part[Strip]) []*sdk.Result[Params, Strip] {
	t.Helper()
	var results []*sdk.Result[Params, Strip]
	for i, part := range parts {
		sub := &sdk.Subtask[Strip]{TaskID: task.ID, ID: "s" + string(rune('a'+i)), Part: i, Params: part.Params,
			Dir: sdk.ProviderDir{Root: t.TempDir()}, Log: task.Log}
		out, err := app{}.Compute(context.Background(), sub)
		require.NoError(t, err)
		results = append(results, &sdk.Result[Params, Strip]{Task: task, SubtaskID: sub.ID, NodeID: "n", Part: i, Params: part.Params, File: out})
	}
	return results
}

func TestSplitComputeVerifyMerge(t *testing.T) {
	task := newTask(t, small())
	parts, err := app{}.Split(context.Background(), task)
	require.NoError(t, err)
	require.Len(t, parts, 72/16+1)

	results := computeAll(t, task, parts)
	for _, r := range results {
		v, err := app{}.Verify(context.Background(), r)
		require.NoError(t, err)
		assert.Equal(t, requestor.Success, v.Result, v.Reason)
	}
	require.NoError(t, app{}.Merge(context.Background(), task, results))

	want, err := render(context.Background(), task.Params)
	require.NoError(t, err)
	assert.Equal(t, want, decodePNG(t, filepath.Join(task.Dir.Outputs(), imageFile)))
}

func TestSplitObeysMaxParts(t *testing.T) {
	task := newTask(t, small())
	task.MaxParts = 2
	parts, err := app{}.Split(context.Background(), task)
	require.NoError(t, err)
	require.Len(t, parts, 2)
	assert.Equal(t, Strip{Image: small(), Y0: 36, Rows: 36}, parts[1].Params)
}

func TestVerifyRejects(t *testing.T) {
	task := newTask(t, small())
	part := Strip{Image: task.Params, Y0: 16, Rows: 16}
	results := computeAll(t, task, []sdk.Part[Strip]{{Params: part}})
	r := results[0]
	honest, err := os.ReadFile(r.File)
	require.NoError(t, err)

	checked := sample(r.SubtaskID, part.pixels(), samples)[0]
	tests := []struct {
		name   string
		pix    func() []byte
		reason string
	}{
		{name: "short", pix: func() []byte { return honest[:len(honest)-1] }, reason: "1535 bytes, want 1536"},
		{name: "all black", pix: func() []byte { return make([]byte, len(honest)) }, reason: "pixel"},
		{name: "one sampled pixel off", pix: func() []byte {
			b := bytes.Clone(honest)
			b[checked]++
			return b
		}, reason: "pixel ("},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(r.File, tt.pix(), 0o644))
			v, err := app{}.Verify(context.Background(), r)
			require.NoError(t, err)
			assert.Equal(t, requestor.Failure, v.Result)
			assert.Contains(t, v.Reason, tt.reason)
		})
	}
}

func decodePNG(t *testing.T, path string) *image.Gray {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	gray, ok := img.(*image.Gray)
	require.True(t, ok, "a %T, want *image.Gray", img)
	return gray
}
