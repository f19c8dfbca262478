package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/taskapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeHandler is a provider.Handler whose methods are its function fields;
// a nil field fails the test if called.
type fakeHandler struct {
	t       *testing.T
	compute func(ctx context.Context, taskID, subtaskID string, params json.RawMessage) (string, error)
	bench   func(ctx context.Context) (float64, error)
	calls   atomic.Int32
}

func (f *fakeHandler) Compute(ctx context.Context, taskID, subtaskID string, params json.RawMessage) (string, error) {
	f.calls.Add(1)
	if f.compute == nil {
		f.t.Errorf("unexpected Compute(%q, %q)", taskID, subtaskID)
		return "", errors.New("unexpected call")
	}
	return f.compute(ctx, taskID, subtaskID, params)
}

func (f *fakeHandler) RunBenchmark(ctx context.Context) (float64, error) {
	f.calls.Add(1)
	if f.bench == nil {
		f.t.Error("unexpected RunBenchmark")
		return 0, errors.New("unexpected call")
	}
	return f.bench(ctx)
}

// served is a Server serving on a real TCP socket, with a client connected.
type served struct {
	srv      *provider.Server
	client   pb.ProviderAppClient
	health   healthpb.HealthClient
	serveErr chan error // receives Serve's result once
}

// serve starts srv on 127.0.0.1 and connects a client. Cleanup closes the
// client and makes sure Serve has returned, so that no goroutine outlives
// the test.
func serve(t *testing.T, h provider.Handler, opts ...provider.Option) *served {
	t.Helper()
	return serveCtx(t, context.Background(), h, opts...)
}

func serveCtx(t *testing.T, ctx context.Context, h provider.Handler, opts ...provider.Option) *served {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := provider.NewServer(h, opts...)
	s := &served{srv: srv, serveErr: make(chan error, 1)}
	go func() { s.serveErr <- srv.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	s.client = pb.NewProviderAppClient(conn)
	s.health = healthpb.NewHealthClient(conn)
	t.Cleanup(func() {
		conn.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, srv.Shutdown(sctx))
		select {
		case <-s.serveErr:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after Shutdown")
		}
	})
	return s
}

// waitServed waits for Serve to return by itself and checks it returned nil.
func (s *served) waitServed(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case err := <-s.serveErr:
		require.NoError(t, err)
		s.serveErr <- err // for the cleanup
	case <-time.After(within):
		t.Fatalf("Serve did not return within %v", within)
	}
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func okRequest() *pb.ComputeRequest {
	return &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1", SubtaskParamsJson: `{"frame":3}`}
}

func TestComputeServesOnceAndStops(t *testing.T) {
	tests := []struct {
		name       string
		params     string
		wantParams json.RawMessage
		out        string
		wantOut    string
	}{
		{"params", `{"frame": 3}`, json.RawMessage(`{"frame": 3}`), "s1/out.png", "s1/out.png"},
		{"no params is nil", "", nil, "out.png", "out.png"},
		{"JSON scalar", `42`, json.RawMessage(`42`), "out.png", "out.png"},
		{"path is cleaned", `{}`, json.RawMessage(`{}`), "./s1//x/../out.png", "s1/out.png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHandler{t: t, compute: func(_ context.Context, taskID, subtaskID string, params json.RawMessage) (string, error) {
				assert.Equal(t, "t1", taskID)
				assert.Equal(t, "s1", subtaskID)
				assert.Equal(t, tt.wantParams, params)
				return tt.out, nil
			}}
			s := serve(t, h)
			reply, err := s.client.Compute(callCtx(t), &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1", SubtaskParamsJson: tt.params})
			require.NoError(t, err)
			assert.Equal(t, tt.wantOut, reply.GetOutputFilepath())
			s.waitServed(t, 5*time.Second)
			assert.EqualValues(t, 1, h.calls.Load())
		})
	}
}

func TestRunBenchmarkServesOnceAndStops(t *testing.T) {
	h := &fakeHandler{t: t, bench: func(context.Context) (float64, error) { return 2.5, nil }}
	s := serve(t, h)
	reply, err := s.client.RunBenchmark(callCtx(t), &pb.RunBenchmarkRequest{})
	require.NoError(t, err)
	assert.InDelta(t, 2.5, reply.GetScore(), 1e-6)
	s.waitServed(t, 5*time.Second)
}

func TestComputeValidation(t *testing.T) {
	tests := []struct {
		name      string
		req       *pb.ComputeRequest
		wantField string
	}{
		{"empty task_id", &pb.ComputeRequest{SubtaskId: "s"}, "task_id"},
		{"dot-dot task_id", &pb.ComputeRequest{TaskId: "..", SubtaskId: "s"}, "task_id"},
		{"slash in task_id", &pb.ComputeRequest{TaskId: "a/b", SubtaskId: "s"}, "task_id"},
		{"control char in task_id", &pb.ComputeRequest{TaskId: "a\nb", SubtaskId: "s"}, "task_id"},
		{"empty subtask_id", &pb.ComputeRequest{TaskId: "t"}, "subtask_id"},
		{"backslash in subtask_id", &pb.ComputeRequest{TaskId: "t", SubtaskId: `a\b`}, "subtask_id"},
		{"long subtask_id", &pb.ComputeRequest{TaskId: "t", SubtaskId: string(make([]byte, taskapi.MaxIDLen+1))}, "subtask_id"},
		{"bad JSON", &pb.ComputeRequest{TaskId: "t", SubtaskId: "s", SubtaskParamsJson: `{"a":`}, "subtask_params_json"},
		{"trailing JSON", &pb.ComputeRequest{TaskId: "t", SubtaskId: "s", SubtaskParamsJson: `{} {}`}, "subtask_params_json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHandler{t: t} // any call fails the test
			s := serve(t, h)
			_, err := s.client.Compute(callCtx(t), tt.req)
			require.Equal(t, codes.InvalidArgument, status.Code(err), "err: %v", err)
			assert.Contains(t, status.Convert(err).Message(), tt.wantField)
			// A refused request is still the one request.
			s.waitServed(t, 5*time.Second)
			assert.Zero(t, h.calls.Load())
		})
	}
}

func TestHandlerErrorsMapToCodes(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode codes.Code
		wantMsg  string
	}{
		{"invalid params sentinel", fmt.Errorf("frame 9 of 3: %w", provider.ErrInvalidParams), codes.InvalidArgument, "frame 9 of 3"},
		{"field error", &taskapi.FieldError{Field: "frame", Reason: "must be positive"}, codes.InvalidArgument, "frame: must be positive"},
		{"status error", status.Error(codes.NotFound, "no such scene"), codes.NotFound, "no such scene"},
		{"plain error", errors.New("renderer crashed"), codes.Internal, "renderer crashed"},
		{"deadline", fmt.Errorf("render: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "render"},
		{"canceled", context.Canceled, codes.Canceled, "canceled"},
	}
	for _, tt := range tests {
		t.Run("Compute/"+tt.name, func(t *testing.T) {
			s := serve(t, &fakeHandler{t: t, compute: func(context.Context, string, string, json.RawMessage) (string, error) {
				return "", tt.err
			}})
			_, err := s.client.Compute(callCtx(t), okRequest())
			assert.Equal(t, tt.wantCode, status.Code(err), "err: %v", err)
			assert.Contains(t, status.Convert(err).Message(), tt.wantMsg)
			s.waitServed(t, 5*time.Second)
		})
		t.Run("RunBenchmark/"+tt.name, func(t *testing.T) {
			s := serve(t, &fakeHandler{t: t, bench: func(context.Context) (float64, error) { return 0, tt.err }})
			_, err := s.client.RunBenchmark(callCtx(t), &pb.RunBenchmarkRequest{})
			assert.Equal(t, tt.wantCode, status.Code(err), "err: %v", err)
			assert.Contains(t, status.Convert(err).Message(), tt.wantMsg)
			s.waitServed(t, 5*time.Second)
		})
	}
}

func TestRunBenchmarkErrors(t *testing.T) {
	tests := []struct {
		name     string
		bench    func(context.Context) (float64, error)
		wantCode codes.Code
		wantMsg  string
	}{
		{"no benchmark", func(context.Context) (float64, error) { return 0, provider.ErrNoBenchmark }, codes.Unimplemented, "no benchmark"},
		{"NaN score", func(context.Context) (float64, error) { return math.NaN(), nil }, codes.Internal, "NaN"},
		{"score overflows float32", func(context.Context) (float64, error) { return math.MaxFloat64, nil }, codes.Internal, "finite"},
		{"panic", func(context.Context) (float64, error) { panic("bench exploded") }, codes.Internal, "bench exploded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serve(t, &fakeHandler{t: t, bench: tt.bench})
			_, err := s.client.RunBenchmark(callCtx(t), &pb.RunBenchmarkRequest{})
			assert.Equal(t, tt.wantCode, status.Code(err), "err: %v", err)
			assert.Contains(t, status.Convert(err).Message(), tt.wantMsg)
			s.waitServed(t, 5*time.Second)
		})
	}
}

func TestComputePanicIsInternalAndStops(t *testing.T) {
	s := serve(t, &fakeHandler{t: t, compute: func(context.Context, string, string, json.RawMessage) (string, error) {
		panic("segfault in the renderer")
	}})
	_, err := s.client.Compute(callCtx(t), okRequest())
	require.Equal(t, codes.Internal, status.Code(err), "err: %v", err)
	assert.Contains(t, status.Convert(err).Message(), "segfault in the renderer")
	s.waitServed(t, 5*time.Second)
}

func TestComputeBadOutputPath(t *testing.T) {
	for _, out := range []string{"", "/etc/passwd", "../x", "a/../../x", ".", "a/.."} {
		t.Run(fmt.Sprintf("%q", out), func(t *testing.T) {
			s := serve(t, &fakeHandler{t: t, compute: func(context.Context, string, string, json.RawMessage) (string, error) {
				return out, nil
			}})
			_, err := s.client.Compute(callCtx(t), okRequest())
			require.Equal(t, codes.Internal, status.Code(err), "err: %v", err)
			msg := status.Convert(err).Message()
			if out == "" {
				assert.Contains(t, msg, "empty output path")
			} else {
				assert.Contains(t, msg, fmt.Sprintf("%q", out))
			}
			s.waitServed(t, 5*time.Second)
		})
	}
}

func TestSecondRequestWhileServingIsRefused(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := &fakeHandler{t: t, compute: func(context.Context, string, string, json.RawMessage) (string, error) {
		close(started)
		<-release
		return "out.png", nil
	}}
	s := serve(t, h)

	first := make(chan error, 1)
	go func() {
		_, err := s.client.Compute(callCtx(t), okRequest())
		first <- err
	}()
	<-started

	_, err := s.client.Compute(callCtx(t), okRequest())
	assert.Equal(t, codes.FailedPrecondition, status.Code(err), "err: %v", err)
	assert.Contains(t, status.Convert(err).Message(), "one-shot and is already serving")
	_, err = s.client.RunBenchmark(callCtx(t), &pb.RunBenchmarkRequest{})
	assert.Equal(t, codes.FailedPrecondition, status.Code(err), "err: %v", err)

	close(release)
	require.NoError(t, <-first)
	s.waitServed(t, 5*time.Second)
	assert.EqualValues(t, 1, h.calls.Load())
}

// TestSecondRequestAfterServedIsNotRun checks the socket-level behaviour: a
// request sent after the reply meets a server that is stopping, so it is
// refused either as FailedPrecondition (it reached the server in time) or
// as Unavailable (the server had gone), and never runs. The exact
// FailedPrecondition answer is checked deterministically in the internal
// test TestOneShotAfterServed.
func TestSecondRequestAfterServedIsNotRun(t *testing.T) {
	h := &fakeHandler{t: t, compute: func(context.Context, string, string, json.RawMessage) (string, error) {
		return "out.png", nil
	}}
	s := serve(t, h)
	_, err := s.client.Compute(callCtx(t), okRequest())
	require.NoError(t, err)
	_, err = s.client.Compute(callCtx(t), okRequest())
	assert.Contains(t, []codes.Code{codes.FailedPrecondition, codes.Unavailable}, status.Code(err), "err: %v", err)
	s.waitServed(t, 5*time.Second)
	assert.EqualValues(t, 1, h.calls.Load())
}

// blockUntilCancelled is a Compute that starts, then waits for its ctx.
func blockUntilCancelled(started chan<- struct{}) func(context.Context, string, string, json.RawMessage) (string, error) {
	return func(ctx context.Context, _, _ string, _ json.RawMessage) (string, error) {
		close(started)
		<-ctx.Done()
		return "", fmt.Errorf("render interrupted: %w", ctx.Err())
	}
}

func TestShutdownRPCCancelsCompute(t *testing.T) {
	started := make(chan struct{})
	s := serve(t, &fakeHandler{t: t, compute: blockUntilCancelled(started)}, provider.WithGracePeriod(10*time.Second))

	computed := make(chan error, 1)
	go func() {
		_, err := s.client.Compute(callCtx(t), okRequest())
		computed <- err
	}()
	<-started
	begin := time.Now()
	_, err := s.client.Shutdown(callCtx(t), &pb.ShutdownRequest{})
	require.NoError(t, err)

	err = <-computed
	assert.Equal(t, codes.Canceled, status.Code(err), "err: %v", err)
	assert.Contains(t, status.Convert(err).Message(), "Shutdown")
	// The handler honours ctx, so the stop is prompt, far inside the grace.
	s.waitServed(t, 5*time.Second)
	assert.Less(t, time.Since(begin), 5*time.Second)
}

func TestShutdownRPCForcesStopAfterGrace(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // lets the stubborn handler end before goleak looks
	const grace = 300 * time.Millisecond
	s := serve(t, &fakeHandler{t: t, compute: func(context.Context, string, string, json.RawMessage) (string, error) {
		close(started)
		<-release // ignores ctx
		return "out.png", nil
	}}, provider.WithGracePeriod(grace))

	computed := make(chan error, 1)
	go func() {
		_, err := s.client.Compute(callCtx(t), okRequest())
		computed <- err
	}()
	<-started
	begin := time.Now()
	_, err := s.client.Shutdown(callCtx(t), &pb.ShutdownRequest{})
	require.NoError(t, err)
	s.waitServed(t, grace+3*time.Second)
	assert.GreaterOrEqual(t, time.Since(begin), grace)
	// Answered Canceled after the grace, or cut off by the forced stop that
	// runs on the same clock.
	err = <-computed
	assert.Contains(t, []codes.Code{codes.Canceled, codes.Unavailable}, status.Code(err), "err: %v", err)
}

func TestShutdownRPCWhenIdleStops(t *testing.T) {
	h := &fakeHandler{t: t}
	s := serve(t, h)
	_, err := s.client.Shutdown(callCtx(t), &pb.ShutdownRequest{})
	require.NoError(t, err)
	s.waitServed(t, 5*time.Second)
	assert.Zero(t, h.calls.Load())
}

func TestShutdownMethodCancelsCompute(t *testing.T) {
	started := make(chan struct{})
	s := serve(t, &fakeHandler{t: t, compute: blockUntilCancelled(started)})
	computed := make(chan error, 1)
	go func() {
		_, err := s.client.Compute(callCtx(t), okRequest())
		computed <- err
	}()
	<-started

	// Twice, concurrently: both return once the server has stopped.
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- s.srv.Shutdown(callCtx(t)) }()
	}
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)
	assert.Equal(t, codes.Canceled, status.Code(<-computed))
	s.waitServed(t, 5*time.Second)
}

func TestServeCtxCancelsCompute(t *testing.T) {
	started := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := serveCtx(t, ctx, &fakeHandler{t: t, compute: blockUntilCancelled(started)})
	computed := make(chan error, 1)
	go func() {
		_, err := s.client.Compute(callCtx(t), okRequest())
		computed <- err
	}()
	<-started
	cancel()
	assert.Equal(t, codes.Canceled, status.Code(<-computed))
	s.waitServed(t, 5*time.Second)
}

func TestShutdownWithoutServe(t *testing.T) {
	srv := provider.NewServer(&fakeHandler{t: t})
	require.NoError(t, srv.Shutdown(callCtx(t)))
	require.NoError(t, srv.Shutdown(callCtx(t)))

	// Serving after Shutdown ends at once, and closes the listener.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, srv.Serve(callCtx(t), lis))
	_, err = lis.Accept()
	assert.Error(t, err)
}

func TestServeTwiceFails(t *testing.T) {
	s := serve(t, &fakeHandler{t: t})
	// A health answer means the first Serve is running.
	_, err := s.health.Check(callCtx(t), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	err = s.srv.Serve(callCtx(t), lis)
	assert.ErrorContains(t, err, "Serve called twice")
}

func TestHealth(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s := serve(t, &fakeHandler{t: t, compute: func(context.Context, string, string, json.RawMessage) (string, error) {
		close(started)
		<-release
		return "out.png", nil
	}})
	wctx, stopWatch := context.WithCancel(callCtx(t))
	defer stopWatch()
	watch, err := s.health.Watch(wctx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	st, err := watch.Recv()
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, st.GetStatus())

	computed := make(chan error, 1)
	go func() {
		_, err := s.client.Compute(callCtx(t), okRequest())
		computed <- err
	}()
	<-started
	// Still SERVING while the request runs: the process is alive and well.
	got, err := s.health.Check(callCtx(t), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, got.GetStatus())

	close(release)
	require.NoError(t, <-computed)
	// NOT_SERVING before the server stops (the watch keeps it from stopping
	// until we end it).
	st, err = watch.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, st.GetStatus())
	stopWatch()
	s.waitServed(t, 5*time.Second)
}
