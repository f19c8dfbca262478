package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/internal/rpcserver"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tparams are the test app's task parameters.
type tparams struct {
	Parts  int `json:"parts"`
	Nested struct {
		Count int `json:"count"`
	} `json:"nested"`
}

func (p *tparams) Validate() error {
	if p.Parts < 0 {
		return errors.New("parts must not be negative")
	}
	return nil
}

// pparams are a part's parameters.
type pparams struct {
	I int `json:"i"`
}

func (p pparams) Validate() error {
	if p.I < 0 {
		return errors.New("i must not be negative")
	}
	return nil
}

// fakeApp is an App whose methods are its function fields; a nil field has
// a plain default: Split makes Params.Parts parts (1 when 0), Verify
// accepts, Merge writes merged.txt, the result files joined in part order.
type fakeApp struct {
	split   func(ctx context.Context, t *sdk.Task[tparams]) ([]sdk.Part[pparams], error)
	compute func(ctx context.Context, s *sdk.Subtask[pparams]) (string, error)
	verify  func(ctx context.Context, r *sdk.Result[tparams, pparams]) (sdk.Verdict, error)
	merge   func(ctx context.Context, t *sdk.Task[tparams], rs []*sdk.Result[tparams, pparams]) error

	verifies atomic.Int32
	merges   atomic.Int32
}

func (a *fakeApp) Split(ctx context.Context, t *sdk.Task[tparams]) ([]sdk.Part[pparams], error) {
	if a.split != nil {
		return a.split(ctx, t)
	}
	parts := make([]sdk.Part[pparams], max(t.Params.Parts, 1))
	for i := range parts {
		parts[i].Params.I = i
	}
	return parts, nil
}

func (a *fakeApp) Compute(ctx context.Context, s *sdk.Subtask[pparams]) (string, error) {
	if a.compute != nil {
		return a.compute(ctx, s)
	}
	out, err := s.OutputPath("r.txt")
	if err != nil {
		return "", err
	}
	return out, os.WriteFile(out, []byte(fmt.Sprint(s.Params.I)), 0o644)
}

func (a *fakeApp) Verify(ctx context.Context, r *sdk.Result[tparams, pparams]) (sdk.Verdict, error) {
	a.verifies.Add(1)
	if a.verify != nil {
		return a.verify(ctx, r)
	}
	return sdk.Accept(), nil
}

func (a *fakeApp) Merge(ctx context.Context, t *sdk.Task[tparams], rs []*sdk.Result[tparams, pparams]) error {
	a.merges.Add(1)
	if a.merge != nil {
		return a.merge(ctx, t, rs)
	}
	var b strings.Builder
	for _, r := range rs {
		data, err := os.ReadFile(r.File)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%d:%s\n", r.Part, data)
	}
	return os.WriteFile(filepath.Join(t.Dir.Outputs(), "merged.txt"), []byte(b.String()), 0o644)
}

// harness drives a requestor Handler in process, as a host would.
type harness struct {
	t    *testing.T
	app  *fakeApp
	opts []sdk.Option
	wd   string
	h    requestor.Handler
	ctx  context.Context
}

func newHarness(t *testing.T, app *fakeApp, opts ...sdk.Option) *harness {
	t.Helper()
	hs := &harness{t: t, app: app, opts: opts, wd: t.TempDir(), ctx: context.Background()}
	hs.h = sdk.NewRequestor[tparams, pparams](app, hs.wd, nil, opts...)
	t.Cleanup(func() { hs.h.Shutdown(context.Background()) })
	return hs
}

// restart shuts the Handler down and makes a new one over the same work
// dir, as a requestor process restarted by its host.
func (hs *harness) restart() {
	hs.t.Helper()
	require.NoError(hs.t, hs.h.Shutdown(hs.ctx))
	hs.h = sdk.NewRequestor[tparams, pparams](hs.app, hs.wd, nil, hs.opts...)
	h := hs.h
	hs.t.Cleanup(func() { h.Shutdown(context.Background()) })
}

func (hs *harness) create(task, params string) {
	hs.t.Helper()
	_, err := hs.h.CreateTask(hs.ctx, task, 0, rawOrNil(params))
	require.NoError(hs.t, err)
}

func rawOrNil(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func (hs *harness) next(task, sub, node string) *requestor.Subtask {
	hs.t.Helper()
	st, err := hs.h.NextSubtask(hs.ctx, task, sub, node)
	require.NoError(hs.t, err)
	require.NotNil(hs.t, st, "NextSubtask(%s, %s, %s) handed out nothing", task, sub, node)
	return st
}

func (hs *harness) none(task, sub, node string) {
	hs.t.Helper()
	st, err := hs.h.NextSubtask(hs.ctx, task, sub, node)
	require.NoError(hs.t, err)
	require.Nil(hs.t, st)
}

// part is the part index a subtask's params name.
func part(t *testing.T, st *requestor.Subtask) int {
	t.Helper()
	var w struct {
		Part int `json:"part"`
	}
	require.NoError(t, json.Unmarshal(st.Params, &w))
	return w.Part
}

// put writes subtask sub's result, as the host does before Verify.
func (hs *harness) put(task, sub, content string) {
	hs.t.Helper()
	dir := filepath.Join(hs.wd, task, "subtask_outputs", sub)
	require.NoError(hs.t, os.MkdirAll(dir, 0o755))
	require.NoError(hs.t, os.WriteFile(filepath.Join(dir, "result.txt"), []byte(content), 0o644))
}

func (hs *harness) verify(task, sub string) (requestor.Verdict, string) {
	hs.t.Helper()
	v, reason, err := hs.h.Verify(hs.ctx, task, sub)
	require.NoError(hs.t, err)
	return v, reason
}

// compute is next, put and verify in one: one subtask's whole life.
func (hs *harness) compute(task, sub, node, content string) (requestor.Verdict, string) {
	hs.t.Helper()
	hs.next(task, sub, node)
	hs.put(task, sub, content)
	return hs.verify(task, sub)
}

func (hs *harness) pending(task string) bool {
	hs.t.Helper()
	ok, err := hs.h.HasPendingSubtasks(hs.ctx, task)
	require.NoError(hs.t, err)
	return ok
}

func (hs *harness) outputs(task string) map[string]string {
	hs.t.Helper()
	dir := filepath.Join(hs.wd, task, "task_outputs")
	entries, err := os.ReadDir(dir)
	require.NoError(hs.t, err)
	out := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(hs.t, err)
		out[e.Name()] = string(b)
	}
	return out
}

func (hs *harness) status(task string) sdk.Status {
	hs.t.Helper()
	st, err := sdk.ReadStatus(filepath.Join(hs.wd, task))
	require.NoError(hs.t, err)
	return st
}

// code is the gRPC code a host receives for err.
func code(err error) codes.Code { return status.Code(rpcserver.StatusError(err)) }

// msg is the status message a host receives for err.
func msg(err error) string { return status.Convert(rpcserver.StatusError(err)).Message() }

// gate blocks a fake's method until released, and tells when it is
// entered.
type gate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}, 16), release: make(chan struct{})} }

func (g *gate) wait(ctx context.Context) error {
	g.entered <- struct{}{}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }
