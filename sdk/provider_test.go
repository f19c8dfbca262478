package sdk_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/gtask/gtask/sdk"
)

func TestProviderParams(t *testing.T) {
	tests := []struct {
		name     string
		params   string
		part     int
		i        int
		code     codes.Code
		contains string
	}{
		{name: "as NextSubtask sends them", params: `{"part": 4, "params": {"i": 9}}`, part: 4, i: 9},
		{name: "empty: part 0, zero params", params: ""},
		{name: "null params", params: `{"part": 2, "params": null}`, part: 2},
		{name: "unknown field around", params: `{"part": 1, "params": {}, "x": 1}`, code: codes.InvalidArgument, contains: `subtask_params_json: unknown field "x"`},
		{name: "unknown field inside", params: `{"part": 1, "params": {"j": 1}}`, code: codes.InvalidArgument, contains: `subtask_params_json.params: unknown field "j"`},
		{name: "no part", params: `{"params": {}}`, code: codes.InvalidArgument, contains: `no "part"`},
		{name: "negative part", params: `{"part": -1}`, code: codes.InvalidArgument, contains: "must not be negative"},
		{name: "wrong type", params: `{"part": 0, "params": {"i": "x"}}`, code: codes.InvalidArgument, contains: `field "i"`},
		{name: "Validate refuses", params: `{"part": 0, "params": {"i": -3}}`, code: codes.InvalidArgument, contains: "i must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var seen *sdk.Subtask[pparams]
			app := &fakeApp{compute: func(ctx context.Context, s *sdk.Subtask[pparams]) (string, error) {
				seen = s
				return "out", nil
			}}
			dir := t.TempDir()
			p := sdk.NewProvider[tparams, pparams](app, dir, nil)
			out, err := p.Compute(context.Background(), "T", "S", rawOrNil(tc.params))
			if tc.code != codes.OK {
				assert.Equal(t, tc.code, code(err), "%v", err)
				assert.Contains(t, msg(err), tc.contains)
				assert.Nil(t, seen, "Compute is not called")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, "out", out)
			assert.Equal(t, tc.part, seen.Part)
			assert.Equal(t, tc.i, seen.Params.I)
			assert.Equal(t, "T", seen.TaskID)
			assert.Equal(t, "S", seen.ID)
			assert.Equal(t, dir, seen.Dir.Root)
			assert.Equal(t, filepath.Join(dir, "subtask_inputs", "a.png"), seen.Dir.Input("a.png"))
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "the provider creates nothing of its own")
		})
	}
}

func TestProviderOutputPath(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, out, want string
		code            codes.Code
	}{
		{name: "OutputPath", out: "<output>", want: filepath.Join("S", "result.png")},
		{name: "absolute inside", out: filepath.Join(dir, "S", "r.png"), want: filepath.Join("S", "r.png")},
		{name: "relative", out: "S/r.png", want: filepath.Join("S", "r.png")},
		{name: "relative, cleaned", out: "./S/x/../r.png", want: filepath.Join("S", "r.png")},
		{name: "absolute outside", out: "/etc/passwd", code: codes.Internal},
		{name: "relative outside", out: "../r.png", code: codes.Internal},
		{name: "the dir itself", out: dir, code: codes.Internal},
		{name: "empty", out: "", code: codes.Internal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := &fakeApp{compute: func(ctx context.Context, s *sdk.Subtask[pparams]) (string, error) {
				if tc.out == "<output>" {
					return s.OutputPath("result.png")
				}
				return tc.out, nil
			}}
			out, err := sdk.NewProvider[tparams, pparams](app, dir, nil).Compute(context.Background(), "T", "S", nil)
			if tc.code != codes.OK {
				assert.Equal(t, tc.code, code(err), "%v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, out)
		})
	}
}

func TestProviderErrors(t *testing.T) {
	app := &fakeApp{compute: func(ctx context.Context, s *sdk.Subtask[pparams]) (string, error) {
		switch s.Params.I {
		case 1:
			return "", errors.New("renderer crashed")
		case 2:
			return "", ctx.Err()
		}
		return "", errors.New("unreachable")
	}}
	p := sdk.NewProvider[tparams, pparams](app, t.TempDir(), nil)
	_, err := p.Compute(context.Background(), "T", "S", []byte(`{"part":0,"params":{"i":1}}`))
	assert.Equal(t, codes.Internal, code(err))
	assert.Contains(t, msg(err), "renderer crashed")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = p.Compute(ctx, "T", "S", []byte(`{"part":0,"params":{"i":2}}`))
	assert.Equal(t, codes.Canceled, code(err))

	_, err = p.RunBenchmark(context.Background())
	assert.Equal(t, codes.Unimplemented, code(err))
	score, err := sdk.NewProvider[tparams, pparams](benchmarker{fakeApp: app}, t.TempDir(), nil).RunBenchmark(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 42.0, score)
}

// TestRoundTrip sends what NextSubtask answers to Compute, and Compute's
// file back to Verify, as a host does.
func TestRoundTrip(t *testing.T) {
	app := &fakeApp{}
	hs := newHarness(t, app)
	hs.create("T", `{"parts": 3}`)
	for i, sub := range []string{"a", "b", "c"} {
		st := hs.next("T", sub, "n")
		pdir := t.TempDir()
		out, err := sdk.NewProvider[tparams, pparams](app, pdir, nil).Compute(hs.ctx, "T", sub, st.Params)
		require.NoError(t, err)
		b, err := os.ReadFile(filepath.Join(pdir, out))
		require.NoError(t, err)
		assert.Equal(t, []byte{byte('0' + i)}, b)
		hs.put("T", sub, string(b))
		hs.verify("T", sub)
	}
	assert.Equal(t, map[string]string{"merged.txt": "0:0\n1:1\n2:2\n"}, hs.outputs("T"))
}
