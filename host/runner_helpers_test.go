package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/gtask/gtask/appmain"
	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/internal/rpcserver"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
)

// trackLauncher starts apps with its inner launcher and keeps their
// instances, for a test to check that none outlives Run, or to kill one.
type trackLauncher struct {
	inner host.Launcher

	mu         sync.Mutex
	all        []host.Instance
	requestors []host.Instance
	providers  []host.Instance
	provLogs   []string // the providers' log paths, in start order
}

func track(inner host.Launcher) *trackLauncher { return &trackLauncher{inner: inner} }

func (l *trackLauncher) Start(ctx context.Context, role host.Role, workDir, logPath string) (host.Instance, error) {
	inst, err := l.inner.Start(ctx, role, workDir, logPath)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all = append(l.all, inst)
	if role == host.RoleRequestor {
		l.requestors = append(l.requestors, inst)
	} else {
		l.providers = append(l.providers, inst)
		l.provLogs = append(l.provLogs, logPath)
	}
	return inst, nil
}

// requestor returns the i-th requestor started.
func (l *trackLauncher) requestor(i int) host.Instance {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requestors[i]
}

// lastProvider returns the provider started last.
func (l *trackLauncher) lastProvider() host.Instance {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.providers[len(l.providers)-1]
}

// providerLogs returns the log paths the providers were started with.
func (l *trackLauncher) providerLogs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.provLogs)
}

// requireAllGone checks that every app the launcher started has stopped.
func (l *trackLauncher) requireAllGone(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	require.NotEmpty(t, l.all)
	for i, inst := range l.all {
		select {
		case <-inst.Done():
		default:
			t.Fatalf("instance %d (%s) still runs after Run returned", i, inst.Addr())
		}
	}
}

// memLauncher is a host.Launcher that serves apps in this process, like
// host.InlineLauncher, but lets a provider be a raw pb.ProviderAppServer,
// served one-shot as is, so that a test can answer what no gtask server
// would (an output path outside the work dir). newProvider gets the
// provider's start number n, from 1, and returns a provider.Handler or a
// pb.ProviderAppServer.
type memLauncher struct {
	newRequestor func(workDir string, log *slog.Logger) requestor.Handler
	newProvider  func(workDir string, n int, log *slog.Logger) any
	// direct makes its instances host.DirectInstances, called in process.
	direct bool

	mu        sync.Mutex
	providers int
}

func (l *memLauncher) Start(ctx context.Context, role host.Role, workDir, logPath string) (host.Instance, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewTextHandler(logf, nil)).With("role", role)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		logf.Close()
		return nil, err
	}
	inst := &memInstance{addr: lis.Addr().String(), done: make(chan struct{})}
	var (
		serve func(context.Context, net.Listener) error
		conn  grpc.ClientConnInterface
	)
	switch role {
	case host.RoleRequestor:
		srv := requestor.NewServer(l.newRequestor(workDir, log), requestor.WithLogger(log), requestor.WithGracePeriod(time.Second))
		serve, inst.shutdown, conn = srv.Serve, func(ctx context.Context) { srv.Shutdown(ctx) }, srv.Conn()
	case host.RoleProvider:
		l.mu.Lock()
		l.providers++
		n := l.providers
		l.mu.Unlock()
		switch p := l.newProvider(workDir, n, log).(type) {
		case provider.Handler:
			srv := provider.NewServer(p, provider.WithLogger(log), provider.WithGracePeriod(time.Second))
			serve, inst.shutdown, conn = srv.Serve, func(ctx context.Context) { srv.Shutdown(ctx) }, srv.Conn()
		case pb.ProviderAppServer:
			once := &oneShot{inner: p}
			rs := rpcserver.New(rpcserver.Config{Logger: log, GracePeriod: time.Second},
				func(g grpc.ServiceRegistrar) { pb.RegisterProviderAppServer(g, once) })
			once.stop = rs.RequestStop
			serve, inst.shutdown, conn = rs.Serve, rs.Stop, rs.Conn()
		default:
			panic(fmt.Sprintf("newProvider returned %T", p))
		}
	}
	go func() {
		defer close(inst.done)
		defer logf.Close()
		err := serve(context.Background(), lis)
		inst.mu.Lock()
		defer inst.mu.Unlock()
		if inst.killed {
			err = errors.Join(errors.New("killed"), err)
		}
		inst.err = err
	}()
	if l.direct {
		return &memDirect{memInstance: inst, conn: conn}, nil
	}
	return inst, nil
}

// memDirect is a memInstance the host calls in process.
type memDirect struct {
	*memInstance
	conn grpc.ClientConnInterface
}

func (i *memDirect) Conn() grpc.ClientConnInterface { return i.conn }

// memInstance is one app served by memLauncher. Serving it is the one
// goroutine it owns; Stop and Kill wait for it.
type memInstance struct {
	addr     string
	shutdown func(ctx context.Context)
	done     chan struct{}

	mu     sync.Mutex
	killed bool
	err    error
}

func (i *memInstance) Addr() string { return i.addr }

func (i *memInstance) Stop(ctx context.Context) error {
	i.shutdown(ctx)
	return i.Wait()
}

// Kill stops the server at once: calls in flight are cancelled.
func (i *memInstance) Kill() error {
	i.mu.Lock()
	select {
	case <-i.done:
	default:
		i.killed = true
	}
	i.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	i.shutdown(ctx)
	return i.Wait()
}

func (i *memInstance) Done() <-chan struct{} { return i.done }

func (i *memInstance) Wait() error {
	<-i.done
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.err
}

// oneShot serves a raw ProviderAppServer for one Compute, then stops, as
// a provider does.
type oneShot struct {
	pb.UnimplementedProviderAppServer
	inner pb.ProviderAppServer
	stop  func()
}

func (o *oneShot) Compute(ctx context.Context, req *pb.ComputeRequest) (*pb.ComputeReply, error) {
	defer o.stop()
	return o.inner.Compute(ctx, req)
}

// rewriter is a raw provider that computes with a real provider.Handler,
// then answers the path rewrite returns instead of the real one.
type rewriter struct {
	pb.UnimplementedProviderAppServer
	h       provider.Handler
	workDir string
	rewrite func(t *testing.T, workDir, subtaskID, rel string) string
	t       *testing.T
}

func (p *rewriter) Compute(ctx context.Context, req *pb.ComputeRequest) (*pb.ComputeReply, error) {
	rel, err := p.h.Compute(ctx, req.GetTaskId(), req.GetSubtaskId(), json.RawMessage(req.GetSubtaskParamsJson()))
	if err != nil {
		return nil, err
	}
	return &pb.ComputeReply{OutputFilepath: p.rewrite(p.t, p.workDir, req.GetSubtaskId(), rel)}, nil
}

// sqParams, sqPart and sqApp make a small gtask app: part i computes
// i*i+offset, where offset comes from task_inputs/offset.txt (0 without
// one) through a resource; Verify checks the result exactly; Merge writes
// squares.txt, one line per part.
type sqParams struct {
	Parts int `json:"parts"`
}

type sqPart struct {
	I int `json:"i"`
}

type sqApp struct {
	// compute, when set, replaces Compute; honest computes honestly.
	compute func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error)
	// verify, when set, replaces Verify; check judges honestly.
	verify func(ctx context.Context, r *sdk.Result[sqParams, sqPart], check func() (sdk.Verdict, error)) (sdk.Verdict, error)
}

const offsetFile = "offset.txt"

func (a *sqApp) Split(ctx context.Context, t *sdk.Task[sqParams]) ([]sdk.Part[sqPart], error) {
	offset := []byte("0")
	if b, err := os.ReadFile(filepath.Join(t.Dir.Inputs(), offsetFile)); err == nil {
		offset = b
	}
	if err := os.WriteFile(filepath.Join(t.Dir.SubtaskInputs(), offsetFile), offset, 0o644); err != nil {
		return nil, err
	}
	parts := make([]sdk.Part[sqPart], max(t.Params.Parts, 1))
	for i := range parts {
		parts[i] = sdk.Part[sqPart]{Params: sqPart{I: i}, Resources: []string{offsetFile}}
	}
	return parts, nil
}

func readOffset(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func (a *sqApp) Compute(ctx context.Context, s *sdk.Subtask[sqPart]) (string, error) {
	honest := func() (string, error) {
		offset, err := readOffset(s.Dir.Input(offsetFile))
		if err != nil {
			return "", err
		}
		out, err := s.OutputPath("square.txt")
		if err != nil {
			return "", err
		}
		return out, os.WriteFile(out, fmt.Appendf(nil, "%d\n", s.Params.I*s.Params.I+offset), 0o644)
	}
	if a.compute != nil {
		return a.compute(ctx, s, honest)
	}
	return honest()
}

func (a *sqApp) Verify(ctx context.Context, r *sdk.Result[sqParams, sqPart]) (sdk.Verdict, error) {
	check := func() (sdk.Verdict, error) {
		offset, err := readOffset(filepath.Join(r.Task.Dir.SubtaskInputs(), offsetFile))
		if err != nil {
			return sdk.Verdict{}, err
		}
		got, err := os.ReadFile(r.File)
		if err != nil {
			return sdk.Verdict{}, err
		}
		if want := fmt.Sprintf("%d\n", r.Params.I*r.Params.I+offset); string(got) != want {
			return sdk.Reject("part %d: got %q, want %q", r.Part, got, want), nil
		}
		return sdk.Accept(), nil
	}
	if a.verify != nil {
		return a.verify(ctx, r, check)
	}
	return check()
}

func (a *sqApp) Merge(ctx context.Context, t *sdk.Task[sqParams], results []*sdk.Result[sqParams, sqPart]) error {
	var all []byte
	for _, r := range results {
		b, err := os.ReadFile(r.File)
		if err != nil {
			return err
		}
		all = append(all, b...)
	}
	return os.WriteFile(filepath.Join(t.Dir.Outputs(), "squares.txt"), all, 0o644)
}

// wantSquares is squares.txt for parts parts and offset.
func wantSquares(parts, offset int) string {
	var b strings.Builder
	for i := range parts {
		fmt.Fprintf(&b, "%d\n", i*i+offset)
	}
	return b.String()
}

// sqRoles are app's roles with opts, as sdk.Main would serve them.
func sqRoles(app *sqApp, opts ...sdk.Option) appmain.Roles {
	return appmain.Roles{
		Requestor: func(workDir string, log *slog.Logger) (requestor.Handler, error) {
			return sdk.NewRequestor(app, workDir, log, opts...), nil
		},
		Provider: func(workDir string, log *slog.Logger) (provider.Handler, error) {
			return sdk.NewProvider(app, workDir, log, opts...), nil
		},
	}
}

// sqLauncher serves app with opts inline; the Runner calls it in process.
func sqLauncher(app *sqApp, opts ...sdk.Option) *trackLauncher {
	return track(host.InlineLauncher{Roles: sqRoles(app, opts...)})
}

// sqLauncherOn serves app inline, called in process when direct, else
// dialled over gRPC as a process is.
func sqLauncherOn(direct bool, app *sqApp, opts ...sdk.Option) *trackLauncher {
	if direct {
		return sqLauncher(app, opts...)
	}
	return track(grpcOnly{host.InlineLauncher{Roles: sqRoles(app, opts...)}})
}

// firsts says whether an attempt is the first at its part.
type firsts struct {
	mu   sync.Mutex
	seen map[int]bool
}

func (f *firsts) first(part int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[int]bool{}
	}
	if f.seen[part] {
		return false
	}
	f.seen[part] = true
	return true
}

// eventLog collects the events OnEvent receives.
type eventLog struct {
	mu  sync.Mutex
	evs []host.Event
}

func (l *eventLog) add(ev host.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, ev)
}

func (l *eventLog) all() []host.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]host.Event(nil), l.evs...)
}

func (l *eventLog) ofKind(kind host.EventKind) []host.Event {
	var out []host.Event
	for _, ev := range l.all() {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// config is a RunConfig for tests: a fresh work dir, small limits, events
// collected into evs.
func config(t *testing.T, l host.Launcher, evs *eventLog, parts int) host.RunConfig {
	return host.RunConfig{
		Launcher:       l,
		TaskID:         "t1",
		WorkDir:        t.TempDir(),
		Params:         json.RawMessage(fmt.Sprintf(`{"parts": %d}`, parts)),
		Providers:      2,
		SubtaskTimeout: time.Minute,
		OnEvent:        evs.add,
	}
}

// runTask runs cfg under a generous limit and checks what every run must
// leave: no app running, and an events file holding exactly the events
// OnEvent saw, in order.
func runTask(t *testing.T, l *trackLauncher, cfg host.RunConfig, evs *eventLog) (*host.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	res, err := host.Run(ctx, cfg)
	l.requireAllGone(t)
	if res != nil {
		checkEventsFile(t, res.EventsPath, evs.all())
	}
	return res, err
}

// checkEventsFile checks that path holds valid JSON lines, numbered from 1
// in order, in UTC, equal to want.
func checkEventsFile(t *testing.T, path string, want []host.Event) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	require.Len(t, lines, len(want))
	var prev time.Time
	for i, line := range lines {
		var ev host.Event
		require.NoError(t, json.Unmarshal([]byte(line), &ev), "line %d: %s", i+1, line)
		assert.Equal(t, int64(i+1), ev.Seq, "line %d", i+1)
		assert.Equal(t, time.UTC, ev.Time.Location(), "line %d", i+1)
		assert.False(t, ev.Time.Before(prev), "line %d: time goes back", i+1)
		prev = ev.Time
		assert.Equal(t, want[i].Seq, ev.Seq)
		assert.Equal(t, want[i].Kind, ev.Kind)
		assert.Equal(t, want[i].Subtask, ev.Subtask)
		assert.Equal(t, want[i].Reason, ev.Reason)
	}
	require.NotEmpty(t, want)
	assert.Equal(t, host.EventTaskStarted, want[0].Kind)
	last := want[len(want)-1]
	assert.Contains(t, []host.EventKind{host.EventTaskFinished, host.EventTaskFailed, host.EventTaskAborted}, last.Kind)
	assert.NotNil(t, last.Summary)
}

// readOutput reads squares.txt of a finished run.
func readOutput(t *testing.T, res *host.Result) string {
	t.Helper()
	require.Equal(t, host.Finished, res.Outcome, "reason: %s", res.Reason)
	require.Equal(t, []string{"squares.txt"}, res.Outputs)
	b, err := os.ReadFile(filepath.Join(res.OutputsDir, "squares.txt"))
	require.NoError(t, err)
	return string(b)
}
