package rpcserver_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	taskapipb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/internal/rpcserver"
)

// local makes a server of svc that nothing serves over the network, for
// calls through Conn; the cleanup stops it.
func local(t *testing.T, cfg rpcserver.Config, svc taskapipb.RequestorAppServer) (*rpcserver.Server, taskapipb.RequestorAppClient) {
	t.Helper()
	srv := rpcserver.New(cfg, func(g grpc.ServiceRegistrar) { taskapipb.RegisterRequestorAppServer(g, svc) })
	t.Cleanup(func() { srv.Stop(context.Background()) })
	return srv, taskapipb.NewRequestorAppClient(srv.Conn())
}

// TestConnAnswersAsTheWire: the same calls, over gRPC and through Conn,
// get the same replies and errors, to the letter.
func TestConnAnswersAsTheWire(t *testing.T) {
	svc := &fakeService{hasPending: func(ctx context.Context, req *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
		switch req.GetTaskId() {
		case "boom":
			panic("kaboom")
		case "missing":
			return nil, status.Error(codes.NotFound, "unknown task")
		case "plain":
			return nil, context.DeadlineExceeded // no status: grpc makes one
		case "deadline":
			if _, ok := ctx.Deadline(); !ok {
				return nil, status.Error(codes.Internal, "the handler has no deadline")
			}
		}
		return &taskapipb.HasPendingSubtasksReply{HasPendingSubtasks: req.GetTaskId() == "yes"}, nil
	}}
	h := start(t, rpcserver.Config{}, svc)
	_, direct := local(t, rpcserver.Config{}, svc)
	for _, id := range []string{"yes", "no", "boom", "missing", "plain", "deadline", "bad\xffutf8", strings.Repeat("x", 5<<20)} {
		name := id
		if len(name) > 20 {
			name = "over 4 MiB"
		}
		t.Run(name, func(t *testing.T) {
			req := &taskapipb.HasPendingSubtasksRequest{TaskId: id}
			want, wantErr := h.client.HasPendingSubtasks(callCtx(t), req)
			got, gotErr := direct.HasPendingSubtasks(callCtx(t), req)
			assert.Equal(t, want.GetHasPendingSubtasks(), got.GetHasPendingSubtasks())
			assert.Equal(t, status.Code(wantErr), status.Code(gotErr), "over gRPC: %v, in process: %v", wantErr, gotErr)
			assert.Equal(t, status.Convert(wantErr).Message(), status.Convert(gotErr).Message())
		})
	}
	_, wantErr := h.client.DiscardSubtasks(callCtx(t), &taskapipb.DiscardSubtasksRequest{TaskId: "t"})
	_, gotErr := direct.DiscardSubtasks(callCtx(t), &taskapipb.DiscardSubtasksRequest{TaskId: "t"})
	assert.Equal(t, codes.Unimplemented, status.Code(gotErr))
	assert.Equal(t, status.Convert(wantErr).Message(), status.Convert(gotErr).Message())
}

func TestConnServesHealthCheckOnly(t *testing.T) {
	srv, _ := local(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	hc := healthpb.NewHealthClient(srv.Conn())
	resp, err := hc.Check(callCtx(t), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus(), "not served over the network")
	_, err = hc.Watch(callCtx(t), &healthpb.HealthCheckRequest{})
	assert.Equal(t, codes.Unimplemented, status.Code(err))

	err = srv.Conn().Invoke(callCtx(t), "/no.Such/Method", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{})
	assert.Equal(t, codes.Unimplemented, status.Code(err))
	assert.Equal(t, "unknown service no.Such", status.Convert(err).Message())
}

// TestConnAfterStop: a stopped server refuses calls through Conn, as a
// gone server refuses connections.
func TestConnAfterStop(t *testing.T) {
	srv, c := local(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	_, err := c.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
	require.NoError(t, err, "served without Serve")
	srv.RequestStop()
	_, err = c.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

func TestConnCallInFlightWaitedForByStop(t *testing.T) {
	entered, release, ended := make(chan struct{}, 10), make(chan struct{}), make(chan error, 10)
	srv, c := local(t, rpcserver.Config{GracePeriod: bound}, &fakeService{hasPending: blocking(entered, release, ended)})
	result := make(chan error, 1)
	go func() {
		_, err := c.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
		result <- err
	}()
	<-entered
	stopped := make(chan struct{})
	go func() {
		srv.Stop(context.Background())
		close(stopped)
	}()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a call was in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-ended)
	require.NoError(t, <-result, "the call in flight finishes")
	<-stopped
}

func TestConnCallInFlightCancelledByForcedStop(t *testing.T) {
	entered, release, ended := make(chan struct{}, 10), make(chan struct{}), make(chan error, 10)
	defer close(release)
	srv, c := local(t, rpcserver.Config{GracePeriod: time.Hour}, &fakeService{hasPending: blocking(entered, release, ended)})
	result := make(chan error, 1)
	go func() {
		_, err := c.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
		result <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	srv.Stop(ctx)
	assert.ErrorIs(t, <-ended, context.Canceled, "the handler's context is cancelled")
	err := <-result
	assert.Contains(t, []codes.Code{codes.Canceled, codes.Unavailable}, status.Code(err), "%v", err)
}

// TestConnCallerLeavesOnItsDeadline: the caller returns when its context
// ends, whatever the handler does; the handler's context has the caller's
// deadline but not its values.
func TestConnCallerLeavesOnItsDeadline(t *testing.T) {
	type key struct{}
	release := make(chan struct{})
	sawValue := make(chan any, 1)
	_, c := local(t, rpcserver.Config{}, &fakeService{hasPending: func(ctx context.Context, _ *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
		sawValue <- ctx.Value(key{})
		<-release // deaf to ctx
		return &taskapipb.HasPendingSubtasksReply{}, nil
	}})
	ctx, cancel := context.WithTimeout(context.WithValue(callCtx(t), key{}, "the caller's"), 50*time.Millisecond)
	defer cancel()
	_, err := c.HasPendingSubtasks(ctx, &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
	assert.Nil(t, <-sawValue)
	close(release) // before the cleanup's Stop, which waits for the handler
}

// onDemand is a listener that says it is not bound yet.
type onDemand struct {
	net.Listener
	bound chan struct{}
}

func (l *onDemand) Bound() <-chan struct{} { return l.bound }

// TestServeOnDemand: Serve makes no grpc.Server until an OnDemand listener
// is bound, and stops cleanly if it never is.
func TestServeOnDemand(t *testing.T) {
	srv, c := local(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	od := &onDemand{Listener: lis, bound: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), od) }()
	_, err = c.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
	require.NoError(t, err)
	srv.RequestStop()
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(bound):
		t.Fatal("Serve did not return")
	}
	_, err = lis.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "Serve closes the listener it never served")
}
