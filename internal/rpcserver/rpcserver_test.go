package rpcserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	taskapipb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/internal/rpcserver"
	"github.com/gtask/gtask/taskapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// bound is how long any test waits for something that should happen at once.
// It is generous because the machine is shared; no test asserts a duration.
const bound = 30 * time.Second

// okStatus is an error whose status claims OK: an app bug StatusError must
// not turn into success.
type okStatus struct{}

func (okStatus) Error() string              { return "all fine, really" }
func (okStatus) GRPCStatus() *status.Status { return status.New(codes.OK, "") }

func TestStatusError(t *testing.T) {
	notFound := status.Error(codes.NotFound, "unknown task")
	tests := []struct {
		name     string
		err      error
		wantCode codes.Code
		wantMsg  string
	}{
		{"status error", notFound, codes.NotFound, "unknown task"},
		{"wrapped status error", fmt.Errorf("task %q: %w", "t1", notFound), codes.NotFound, `task "t1": unknown task`},
		{"twice wrapped status error", fmt.Errorf("a: %w", fmt.Errorf("b: %w", status.Error(codes.AlreadyExists, "exists"))), codes.AlreadyExists, "a: b: exists"},
		{"field error", &taskapi.FieldError{Field: "task_id", Reason: "must not be empty"}, codes.InvalidArgument, "task_id: must not be empty"},
		{"wrapped field error", fmt.Errorf("params: %w", &taskapi.FieldError{Field: "scale", Reason: "too big"}), codes.InvalidArgument, "params: scale: too big"},
		{"context canceled", context.Canceled, codes.Canceled, "context canceled"},
		{"wrapped context canceled", fmt.Errorf("verifying: %w", context.Canceled), codes.Canceled, "verifying: context canceled"},
		{"deadline exceeded", fmt.Errorf("verifying: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "verifying: context deadline exceeded"},
		{"plain error", errors.New("disk full"), codes.Internal, "disk full"},
		{"status beats context error", fmt.Errorf("%w; %w", status.Error(codes.FailedPrecondition, "aborted"), context.Canceled), codes.FailedPrecondition, "aborted; context canceled"},
		{"status claiming OK", fmt.Errorf("oops: %w", okStatus{}), codes.Internal, "oops: all fine, really"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rpcserver.StatusError(tt.err)
			require.Error(t, got)
			st, ok := status.FromError(got)
			require.True(t, ok, "want a status error, got %T", got)
			assert.Equal(t, tt.wantCode, st.Code())
			assert.Equal(t, tt.wantMsg, st.Message())
		})
	}
	assert.NoError(t, rpcserver.StatusError(nil))
}

// fakeService is a RequestorApp with only the calls these tests use.
type fakeService struct {
	taskapipb.UnimplementedRequestorAppServer
	hasPending func(context.Context, *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error)
	shutdown   func(context.Context) error
}

func (f *fakeService) HasPendingSubtasks(ctx context.Context, req *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
	return f.hasPending(ctx, req)
}

func (f *fakeService) Shutdown(ctx context.Context, _ *taskapipb.ShutdownRequest) (*taskapipb.ShutdownReply, error) {
	if err := f.shutdown(ctx); err != nil {
		return nil, err
	}
	return &taskapipb.ShutdownReply{}, nil
}

type harness struct {
	srv    *rpcserver.Server
	lis    net.Listener
	conn   *grpc.ClientConn
	client taskapipb.RequestorAppClient
	health healthpb.HealthClient
	served chan error // Serve's result
	cancel context.CancelFunc
}

// start serves svc on a fresh 127.0.0.1 port and dials it. The cleanup stops
// everything it started.
func start(t *testing.T, cfg rpcserver.Config, svc taskapipb.RequestorAppServer) *harness {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := &harness{lis: lis, served: make(chan error, 1)}
	h.srv = rpcserver.New(cfg, func(g grpc.ServiceRegistrar) { taskapipb.RegisterRequestorAppServer(g, svc) })
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.served <- h.srv.Serve(ctx, lis) }()
	h.conn, err = grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	h.client = taskapipb.NewRequestorAppClient(h.conn)
	h.health = healthpb.NewHealthClient(h.conn)
	t.Cleanup(func() {
		cancel()
		h.srv.Stop(context.Background())
		h.conn.Close()
		select {
		case <-h.served:
		case <-time.After(bound):
			t.Error("Serve did not return")
		}
	})
	waitServing(t, h.health)
	return h
}

func waitServing(t *testing.T, hc healthpb.HealthClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
}

// waitServe returns Serve's result, failing the test if it takes too long.
func (h *harness) waitServe(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.served:
		h.served <- err // the cleanup reads it again
		return err
	case <-time.After(bound):
		t.Fatal("Serve did not return")
		return nil
	}
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	t.Cleanup(cancel)
	return ctx
}

func pending(v bool) func(context.Context, *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
	return func(context.Context, *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
		return &taskapipb.HasPendingSubtasksReply{HasPendingSubtasks: v}, nil
	}
}

func TestStopTwiceAndConcurrently(t *testing.T) {
	h := start(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	_, err := h.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
	require.NoError(t, err)

	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { h.srv.Stop(context.Background()) })
	}
	wg.Wait()
	h.srv.Stop(context.Background()) // and once more, after it stopped

	require.NoError(t, h.waitServe(t))
	select {
	case <-h.srv.Stopped():
	default:
		t.Fatal("Stopped not closed after Stop returned")
	}
	_, err = h.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
	assert.Equal(t, codes.Unavailable, status.Code(err), "a call after the stop: %v", err)
}

func TestStopBeforeServe(t *testing.T) {
	srv := rpcserver.New(rpcserver.Config{}, func(grpc.ServiceRegistrar) {})
	srv.Stop(context.Background())
	srv.Stop(context.Background())
	<-srv.Stopped()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, srv.Serve(context.Background(), lis), "Serve after Stop")
	_, err = lis.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "Serve after Stop closes the listener")
}

func TestServeUntilContextDone(t *testing.T) {
	h := start(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	h.cancel()
	require.NoError(t, h.waitServe(t))
	<-h.srv.Stopped()
}

func TestRequestStopFromHandler(t *testing.T) {
	var srv *rpcserver.Server
	svc := &fakeService{
		hasPending: pending(true),
		shutdown: func(context.Context) error {
			srv.RequestStop() // returns at once; a synchronous stop would wait for this call
			srv.RequestStop() // and may be asked for twice
			return nil
		},
	}
	h := start(t, rpcserver.Config{}, svc)
	srv = h.srv

	// A watch sees health turn NOT_SERVING before the stop; the test ends it
	// then, since a graceful stop waits for every open stream.
	watchCtx, endWatch := context.WithCancel(callCtx(t))
	defer endWatch()
	watch, err := h.health.Watch(watchCtx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	first, err := watch.Recv()
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, first.GetStatus())

	_, err = h.client.Shutdown(callCtx(t), &taskapipb.ShutdownRequest{})
	require.NoError(t, err, "the Shutdown call gets its reply")

	next, err := watch.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, next.GetStatus())
	endWatch()

	require.NoError(t, h.waitServe(t))
}

func TestPanicIsInternalAndServerGoesOn(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	svc := &fakeService{hasPending: func(_ context.Context, req *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		if req.GetTaskId() == "boom" {
			panic("kaboom")
		}
		return &taskapipb.HasPendingSubtasksReply{HasPendingSubtasks: true}, nil
	}}
	h := start(t, rpcserver.Config{}, svc)

	_, err := h.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "boom"})
	require.Equal(t, codes.Internal, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "kaboom")

	reply, err := h.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "fine"})
	require.NoError(t, err)
	assert.True(t, reply.GetHasPendingSubtasks())
	mu.Lock()
	assert.Equal(t, 2, calls)
	mu.Unlock()
}

// blocking returns a HasPendingSubtasks that signals entered and then waits
// for release or for its context to end, reporting which on ended.
func blocking(entered chan<- struct{}, release <-chan struct{}, ended chan<- error) func(context.Context, *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
	return func(ctx context.Context, _ *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
		entered <- struct{}{}
		select {
		case <-release:
			ended <- nil
			return &taskapipb.HasPendingSubtasksReply{HasPendingSubtasks: true}, nil
		case <-ctx.Done():
			ended <- ctx.Err()
			return nil, rpcserver.StatusError(ctx.Err())
		}
	}
}

func TestCallInFlightFinishesWithinGrace(t *testing.T) {
	entered, release, ended := make(chan struct{}, 10), make(chan struct{}), make(chan error, 10)
	h := start(t, rpcserver.Config{GracePeriod: bound}, &fakeService{hasPending: blocking(entered, release, ended)})

	result := make(chan error, 1)
	go func() {
		_, err := h.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
		result <- err
	}()
	<-entered

	stopped := make(chan struct{})
	go func() {
		h.srv.Stop(context.Background())
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a call was in flight and the grace period is not over")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-ended)
	require.NoError(t, <-result, "the call in flight finishes")
	<-stopped
	require.NoError(t, h.waitServe(t))
}

func TestCallInFlightCancelledAfterGrace(t *testing.T) {
	entered, release, ended := make(chan struct{}, 10), make(chan struct{}), make(chan error, 10)
	defer close(release)
	h := start(t, rpcserver.Config{GracePeriod: 50 * time.Millisecond}, &fakeService{hasPending: blocking(entered, release, ended)})

	result := make(chan error, 1)
	go func() {
		_, err := h.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
		result <- err
	}()
	<-entered
	h.srv.Stop(context.Background())
	assert.ErrorIs(t, <-ended, context.Canceled, "the handler's context is cancelled")
	err := <-result
	assert.Contains(t, []codes.Code{codes.Canceled, codes.Unavailable}, status.Code(err), "%v", err)
	require.NoError(t, h.waitServe(t))
}

func TestStopContextCutsGraceShort(t *testing.T) {
	entered, release, ended := make(chan struct{}, 10), make(chan struct{}), make(chan error, 10)
	defer close(release)
	h := start(t, rpcserver.Config{GracePeriod: time.Hour}, &fakeService{hasPending: blocking(entered, release, ended)})

	result := make(chan error, 1)
	go func() {
		_, err := h.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
		result <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.srv.Stop(ctx) // returns although the grace period is an hour
	assert.ErrorIs(t, <-ended, context.Canceled)
	assert.Error(t, <-result)
	require.NoError(t, h.waitServe(t))
}

// TestListenerFailureStopsConnections: when the listener fails, grpc's Serve
// returns but keeps serving the connections it accepted; Serve must stop
// them, so that no call outlives it.
func TestListenerFailureStopsConnections(t *testing.T) {
	entered, release, ended := make(chan struct{}, 10), make(chan struct{}), make(chan error, 10)
	h := start(t, rpcserver.Config{GracePeriod: bound}, &fakeService{hasPending: blocking(entered, release, ended)})

	result := make(chan error, 1)
	go func() {
		_, err := h.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
		result <- err
	}()
	<-entered
	require.NoError(t, h.lis.Close())
	// Still graceful: the call in flight finishes.
	close(release)
	require.NoError(t, <-result)

	err := h.waitServe(t)
	require.ErrorIs(t, err, net.ErrClosed)
	<-h.srv.Stopped()
	_, err = h.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
	assert.Equal(t, codes.Unavailable, status.Code(err), "the old connection is closed too: %v", err)
}

// rawCodec sends a []byte request as is, to put on the wire what no
// conforming client would; replies decode as usual.
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

// TestInvalidUTF8ReachesValidation: protobuf-go refuses to decode a string
// field holding invalid UTF-8, which grpc would answer INTERNAL before the
// server's validation could answer INVALID_ARGUMENT, as the contract says.
func TestInvalidUTF8ReachesValidation(t *testing.T) {
	got := make(chan string, 1)
	svc := &fakeService{hasPending: func(_ context.Context, req *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
		got <- req.GetTaskId()
		if err := taskapi.ValidateID("task_id", req.GetTaskId()); err != nil {
			return nil, rpcserver.StatusError(err)
		}
		return &taskapipb.HasPendingSubtasksReply{}, nil
	}}
	h := start(t, rpcserver.Config{}, svc)

	frame := protowire.AppendTag(nil, 1, protowire.BytesType)
	frame = protowire.AppendString(frame, "a\xffb")
	var reply taskapipb.HasPendingSubtasksReply
	err := h.conn.Invoke(callCtx(t), taskapipb.RequestorApp_HasPendingSubtasks_FullMethodName, frame, &reply, grpc.ForceCodecV2(rawCodec{}))
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "task_id: is not valid UTF-8")
	assert.Equal(t, "a\xffb", <-got, "the bytes reach the server unchanged")

	// A frame that is not protobuf at all is still refused by decoding.
	err = h.conn.Invoke(callCtx(t), taskapipb.RequestorApp_HasPendingSubtasks_FullMethodName, []byte{0x0a, 0x05, 'a'}, &reply, grpc.ForceCodecV2(rawCodec{}))
	assert.Equal(t, codes.Internal, status.Code(err), "%v", err)
	assert.Empty(t, got, "the handler did not run")
}

// TestStuckHandlerDoesNotBlockStop: grpc's GracefulStop waits for every
// handler, even after a forced Stop; Stop must still return, a grace period
// later, when a handler ignores its cancelled context.
func TestStuckHandlerDoesNotBlockStop(t *testing.T) {
	entered, release := make(chan struct{}, 10), make(chan struct{})
	svc := &fakeService{hasPending: func(context.Context, *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
		entered <- struct{}{}
		<-release // deaf to its context
		return &taskapipb.HasPendingSubtasksReply{}, nil
	}}
	h := start(t, rpcserver.Config{GracePeriod: 50 * time.Millisecond}, svc)

	result := make(chan error, 1)
	go func() {
		_, err := h.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
		result <- err
	}()
	<-entered
	stopped := make(chan struct{})
	go func() {
		h.srv.Stop(context.Background())
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(bound):
		t.Fatal("Stop is held by a stuck handler")
	}
	<-h.srv.Stopped()
	assert.Error(t, <-result, "the caller was cut off")
	close(release) // let the handler (and grpc's GracefulStop) end, for the leak check
	require.NoError(t, h.waitServe(t))
}

// A host watching health must not hold a stop for the grace period: the
// watch gets NOT_SERVING and then ends, and Stop returns long before the
// (deliberately huge) grace period.
func TestOpenHealthWatchDoesNotHoldStop(t *testing.T) {
	h := start(t, rpcserver.Config{GracePeriod: time.Hour}, &fakeService{hasPending: pending(true)})
	watch, err := h.health.Watch(callCtx(t), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	first, err := watch.Recv()
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, first.GetStatus())

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		h.srv.Stop(context.Background())
	}()
	var last healthpb.HealthCheckResponse_ServingStatus
	for {
		resp, err := watch.Recv()
		if err != nil {
			// The server ended the stream cleanly: the watch did not just
			// run into its own deadline.
			require.ErrorIs(t, err, io.EOF, "the stop must end the watch")
			break
		}
		last = resp.GetStatus()
	}
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, last, "the watch's last word")
	select {
	case <-stopped:
	case <-time.After(bound):
		t.Fatal("Stop still waiting for the health watch")
	}
	require.NoError(t, h.waitServe(t))
}
