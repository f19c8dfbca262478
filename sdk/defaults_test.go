package sdk_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/sdk"
)

// dparams has defaults: SetDefaults runs before decoding.
type dparams struct {
	Size  int     `json:"size"`
	Scale float64 `json:"scale"`
}

func (p *dparams) SetDefaults() { *p = dparams{Size: 64, Scale: 1.5} }

// seen is a Split-only app that records the params Split got.
type seen struct{ got chan dparams }

func (a seen) Split(_ context.Context, t *sdk.Task[dparams]) ([]sdk.Part[int], error) {
	a.got <- t.Params
	return []sdk.Part[int]{{Params: 1}}, nil
}
func (seen) Compute(context.Context, *sdk.Subtask[int]) (string, error) { return "", nil }
func (seen) Verify(context.Context, *sdk.Result[dparams, int]) (sdk.Verdict, error) {
	return sdk.Accept(), nil
}
func (seen) Merge(context.Context, *sdk.Task[dparams], []*sdk.Result[dparams, int]) error {
	return nil
}

func TestSetDefaultsRunsBeforeDecoding(t *testing.T) {
	for _, tc := range []struct {
		name, params string
		want         dparams
		code         codes.Code
	}{
		{name: "no params are the defaults", params: "", want: dparams{Size: 64, Scale: 1.5}},
		{name: "empty object is the defaults", params: "{}", want: dparams{Size: 64, Scale: 1.5}},
		{name: "a field given overrides its default only", params: `{"size": 8}`, want: dparams{Size: 8, Scale: 1.5}},
		{name: "an explicit zero is kept", params: `{"scale": 0}`, want: dparams{Size: 64, Scale: 0}},
		{name: "unknown fields are still refused", params: `{"sise": 8}`, code: codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			require.NoError(t, os.MkdirAll(filepath.Join(work, "t1"), 0o755))
			app := seen{got: make(chan dparams, 1)}
			h := sdk.NewRequestor(app, work, slog.New(slog.DiscardHandler))
			defer h.Shutdown(context.Background())
			var raw json.RawMessage
			if tc.params != "" {
				raw = json.RawMessage(tc.params)
			}
			_, err := h.CreateTask(context.Background(), "t1", 0, raw)
			if tc.code != codes.OK {
				assert.Equal(t, tc.code, status.Code(err), "%v", err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, <-app.got)
		})
	}
}
