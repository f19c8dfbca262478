package requestor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"

	taskapipb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/requestor"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bound is how long a test waits for something that should happen at once.
// It is generous because the machine is shared; no test asserts a duration.
const bound = 30 * time.Second

var errNotSet = errors.New("fake: method not set for this test")

// fakeHandler answers each call with its function field; an unset field
// answers errNotSet (INTERNAL). calls counts every call but Shutdown, so
// that a test can tell the handler was never reached.
type fakeHandler struct {
	createTask         func(ctx context.Context, taskID string, maxSubtasks int, params json.RawMessage) (requestor.Task, error)
	nextSubtask        func(ctx context.Context, taskID, subtaskID, nodeID string) (*requestor.Subtask, error)
	verify             func(ctx context.Context, taskID, subtaskID string) (requestor.Verdict, string, error)
	discardSubtasks    func(ctx context.Context, taskID string, subtaskIDs []string) ([]string, error)
	runBenchmark       func(ctx context.Context) (float64, error)
	hasPendingSubtasks func(ctx context.Context, taskID string) (bool, error)
	abortTask          func(ctx context.Context, taskID string) error
	abortSubtask       func(ctx context.Context, taskID, subtaskID string) error
	shutdown           func(ctx context.Context) error

	calls     atomic.Int64
	shutdowns atomic.Int64
}

func (f *fakeHandler) CreateTask(ctx context.Context, taskID string, maxSubtasks int, params json.RawMessage) (requestor.Task, error) {
	f.calls.Add(1)
	if f.createTask == nil {
		return requestor.Task{}, errNotSet
	}
	return f.createTask(ctx, taskID, maxSubtasks, params)
}

func (f *fakeHandler) NextSubtask(ctx context.Context, taskID, subtaskID, nodeID string) (*requestor.Subtask, error) {
	f.calls.Add(1)
	if f.nextSubtask == nil {
		return nil, errNotSet
	}
	return f.nextSubtask(ctx, taskID, subtaskID, nodeID)
}

func (f *fakeHandler) Verify(ctx context.Context, taskID, subtaskID string) (requestor.Verdict, string, error) {
	f.calls.Add(1)
	if f.verify == nil {
		return 0, "", errNotSet
	}
	return f.verify(ctx, taskID, subtaskID)
}

func (f *fakeHandler) DiscardSubtasks(ctx context.Context, taskID string, subtaskIDs []string) ([]string, error) {
	f.calls.Add(1)
	if f.discardSubtasks == nil {
		return nil, errNotSet
	}
	return f.discardSubtasks(ctx, taskID, subtaskIDs)
}

func (f *fakeHandler) RunBenchmark(ctx context.Context) (float64, error) {
	f.calls.Add(1)
	if f.runBenchmark == nil {
		return 0, errNotSet
	}
	return f.runBenchmark(ctx)
}

func (f *fakeHandler) HasPendingSubtasks(ctx context.Context, taskID string) (bool, error) {
	f.calls.Add(1)
	if f.hasPendingSubtasks == nil {
		return false, errNotSet
	}
	return f.hasPendingSubtasks(ctx, taskID)
}

func (f *fakeHandler) AbortTask(ctx context.Context, taskID string) error {
	f.calls.Add(1)
	if f.abortTask == nil {
		return errNotSet
	}
	return f.abortTask(ctx, taskID)
}

func (f *fakeHandler) AbortSubtask(ctx context.Context, taskID, subtaskID string) error {
	f.calls.Add(1)
	if f.abortSubtask == nil {
		return errNotSet
	}
	return f.abortSubtask(ctx, taskID, subtaskID)
}

func (f *fakeHandler) Shutdown(ctx context.Context) error {
	f.shutdowns.Add(1)
	if f.shutdown == nil {
		return nil
	}
	return f.shutdown(ctx)
}

// okHandler answers every call successfully, for tests about what happens
// around the handler.
func okHandler() *fakeHandler {
	return &fakeHandler{
		createTask: func(context.Context, string, int, json.RawMessage) (requestor.Task, error) {
			return requestor.Task{EnvID: "docker_cpu"}, nil
		},
		nextSubtask: func(context.Context, string, string, string) (*requestor.Subtask, error) { return nil, nil },
		verify: func(context.Context, string, string) (requestor.Verdict, string, error) {
			return requestor.Success, "", nil
		},
		discardSubtasks:    func(_ context.Context, _ string, ids []string) ([]string, error) { return ids, nil },
		runBenchmark:       func(context.Context) (float64, error) { return 1, nil },
		hasPendingSubtasks: func(context.Context, string) (bool, error) { return true, nil },
		abortTask:          func(context.Context, string) error { return nil },
		abortSubtask:       func(context.Context, string, string) error { return nil },
	}
}

type harness struct {
	srv    *requestor.Server
	lis    net.Listener
	conn   *grpc.ClientConn
	client taskapipb.RequestorAppClient
	health healthpb.HealthClient
	cancel context.CancelFunc // cancels Serve's context

	serveOnce sync.Once
	served    chan error
	serveErr  error
}

// start serves h on a fresh 127.0.0.1 port, dials it and waits for SERVING.
// The cleanup stops all it started.
func start(t *testing.T, h requestor.Handler, opts ...requestor.Option) *harness {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	hs := &harness{lis: lis, srv: requestor.NewServer(h, opts...), served: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	hs.cancel = cancel
	go func() { hs.served <- hs.srv.Serve(ctx, lis) }()
	hs.conn, err = grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	hs.client = taskapipb.NewRequestorAppClient(hs.conn)
	hs.health = healthpb.NewHealthClient(hs.conn)
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), bound)
		defer scancel()
		_ = hs.srv.Shutdown(sctx) // a test that cares checks the error itself
		hs.conn.Close()
		hs.waitServe(t)
	})
	waitServing(t, hs.health)
	return hs
}

func waitServing(t *testing.T, hc healthpb.HealthClient) {
	t.Helper()
	resp, err := hc.Check(callCtx(t), &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
}

// waitServe returns Serve's result, failing the test if it takes too long.
func (hs *harness) waitServe(t *testing.T) error {
	t.Helper()
	hs.serveOnce.Do(func() {
		select {
		case hs.serveErr = <-hs.served:
		case <-time.After(bound):
			t.Error("Serve did not return")
			hs.serveErr = errors.New("Serve did not return")
		}
	})
	return hs.serveErr
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	t.Cleanup(cancel)
	return ctx
}

// rawCodec sends a []byte request as is, to put on the wire what no
// conforming client would (invalid UTF-8 in a string field); replies decode
// as usual.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if b, ok := v.([]byte); ok {
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	return encoding.GetCodecV2("proto").Marshal(v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

// lockedBuffer is a log sink that the server's goroutines may write while
// the test reads.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
