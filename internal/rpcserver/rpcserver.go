// Package rpcserver is the machinery the requestor and provider servers
// share: a grpc.Server with the standard health and reflection services, a
// panic guard, the mapping of Go errors to status codes, and a lifecycle
// (Serve, Stop) that is graceful first, forced after a grace period, and safe
// to stop twice or from inside a handler.
package rpcserver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/taskapi"
)

// DefaultGracePeriod is how long Stop lets calls in flight finish before it
// cancels them, when Config.GracePeriod is zero.
const DefaultGracePeriod = 5 * time.Second

// Config configures a Server. Its zero value serves plaintext, logs nothing
// and stops with DefaultGracePeriod.
type Config struct {
	// Logger receives panics and lifecycle events. Default: discard.
	Logger *slog.Logger
	// TLS, when set, makes the server serve TLS with it. Default: plaintext.
	TLS *tls.Config
	// GracePeriod bounds a graceful stop. Default: DefaultGracePeriod.
	GracePeriod time.Duration
}

// Server is a grpc.Server with health, reflection and a stop that can be
// asked for from anywhere, any number of times.
type Server struct {
	log    *slog.Logger
	grace  time.Duration
	grpc   *grpc.Server
	health *health.Server

	stopOnce   sync.Once
	mu         sync.Mutex    // orders health changes with RequestStop
	stopping   bool          // RequestStop was called; guarded by mu
	stopReq    chan struct{} // closed by RequestStop
	finishOnce sync.Once
	stopped    chan struct{} // closed when the grpc server has fully stopped
}

// New makes a Server and lets register add the app's services to it.
func New(cfg Config, register func(*grpc.Server)) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	grace := cfg.GracePeriod
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	s := &Server{
		log:     log,
		grace:   grace,
		health:  health.NewServer(),
		stopReq: make(chan struct{}),
		stopped: make(chan struct{}),
	}
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(lenientCodec{}),
		grpc.ChainUnaryInterceptor(s.recoverUnary),
		grpc.ChainStreamInterceptor(s.recoverStream),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.grpc = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s.grpc, healthService{Server: s.health, stopping: s.stopReq})
	reflection.Register(s.grpc)
	register(s.grpc)
	// Health starts NOT_SERVING and turns SERVING once Serve runs.
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s
}

// Serve serves on lis until ctx is done or a stop is requested, then stops
// gracefully (see Stop). It returns nil after a requested or ctx-driven stop,
// and the listener's error if serving failed.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.SetServing(true)
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.grpc.Serve(lis) }()
	select {
	case err := <-serveErr:
		// Serve returns on its own only when the listener fails or someone
		// already stopped the grpc server.
		if err == nil || errors.Is(err, grpc.ErrServerStopped) {
			s.finish()
			return nil
		}
		// The listener failed, but grpc keeps serving the connections it
		// already accepted: stop them too, so that nothing outlives Serve.
		s.log.Error("serving failed", "err", err)
		s.Stop(context.Background())
		return err
	case <-ctx.Done():
		s.log.Info("stopping", "why", context.Cause(ctx))
	case <-s.stopReq:
		s.log.Info("stopping", "why", "stop requested")
	}
	s.Stop(context.Background())
	<-serveErr
	return nil
}

// RequestStop asks Serve to stop gracefully and returns at once. It may be
// called from inside a handler (a Shutdown RPC, a one-shot provider's only
// call), where a synchronous stop would wait for that very handler.
func (s *Server) RequestStop() {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopping = true
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		s.mu.Unlock()
		close(s.stopReq)
	})
}

// Stop turns health NOT_SERVING, refuses new calls, lets calls in flight
// finish for the grace period (or until ctx is done, if sooner), then cancels
// them and closes every connection. It returns when the server has stopped
// and every handler has returned; a handler that ignores its cancelled
// context is waited for one more grace period, then given up on (and
// logged), so that a stuck handler cannot keep the process alive. It is safe
// to call more than once and concurrently; it must not be called from inside
// a handler (use RequestStop there).
func (s *Server) Stop(ctx context.Context) {
	s.RequestStop()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	timer := time.NewTimer(s.grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.log.Warn("grace period over, cancelling calls in flight", "grace", s.grace)
		s.forceStop(done)
	case <-ctx.Done():
		s.forceStop(done)
	}
	s.finish()
}

// forceStop cancels every call and closes every connection, then waits for
// the handlers: grpc's Stop does not, but the GracefulStop still running
// (done) does, and a handler deaf to cancellation would hold it for ever.
func (s *Server) forceStop(done <-chan struct{}) {
	s.grpc.Stop()
	timer := time.NewTimer(s.grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		// The GracefulStop goroutine ends when the stuck handler returns.
		s.log.Error("handlers still running after cancellation; giving up on them", "grace", s.grace)
	}
}

func (s *Server) finish() {
	s.finishOnce.Do(func() {
		s.health.Shutdown()
		close(s.stopped)
	})
}

// Stopped is closed once the server has fully stopped.
func (s *Server) Stopped() <-chan struct{} { return s.stopped }

// SetServing sets the health of the empty service name. Once a stop was
// requested the server stays NOT_SERVING, whatever is asked.
func (s *Server) SetServing(serving bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving && !s.stopping {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
}

// healthService is grpc's health server, except that Watch streams end when
// a stop begins. grpc's graceful stop waits for every open stream, and a
// host that watches health (as grpc's client-side health checking does)
// would otherwise hold every stop for the whole grace period.
type healthService struct {
	*health.Server
	stopping <-chan struct{}
}

// Watch serves the health server's Watch until the client leaves or a stop
// begins; then it sends NOT_SERVING, the server's last word, and ends the
// stream cleanly.
func (h healthService) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() { // ends with this call: stop is closed on return
		select {
		case <-h.stopping:
			cancel()
		case <-stop:
		}
	}()
	err := h.Server.Watch(req, watchStream{Health_WatchServer: stream, ctx: ctx})
	select {
	case <-h.stopping:
		if stream.Context().Err() == nil {
			return stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_NOT_SERVING})
		}
	default:
	}
	return err
}

// watchStream is a Watch stream whose context also ends when a stop begins.
type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w watchStream) Context() context.Context { return w.ctx }

func (s *Server) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panicked", "method", info.FullMethod, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			resp, err = nil, status.Errorf(codes.Internal, "%s: the app panicked: %v", info.FullMethod, p)
		}
	}()
	return handler(ctx, req)
}

func (s *Server) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panicked", "method", info.FullMethod, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = status.Errorf(codes.Internal, "%s: the app panicked: %v", info.FullMethod, p)
		}
	}()
	return handler(srv, ss)
}

// StatusError turns a handler's error into a gRPC status error:
//   - nil stays nil;
//   - an error carrying a status (made with status.Error, possibly wrapped
//     with %w) keeps its code, with the whole wrapped message in which the
//     status error's own text ("rpc error: code = ... desc = unknown task")
//     is reduced to its message ("unknown task"); a status claiming OK is
//     Internal;
//   - a *taskapi.FieldError is InvalidArgument;
//   - context.Canceled is Canceled and context.DeadlineExceeded is
//     DeadlineExceeded;
//   - anything else is Internal with the error's message.
func StatusError(err error) error {
	if err == nil {
		return nil
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		st := se.GRPCStatus()
		if st == nil || st.Code() == codes.OK {
			// A non-nil error claiming OK would turn into a nil error and a
			// nil reply: it is a bug in the app.
			return status.Error(codes.Internal, err.Error())
		}
		// A status error reads "rpc error: code = NotFound desc = unknown
		// task"; wrapped, the caller would get that prefix inside its own
		// message. The code travels apart, so only the desc is kept.
		msg := err.Error()
		if inner, ok := se.(error); ok {
			msg = strings.Replace(msg, inner.Error(), st.Message(), 1)
		}
		p := st.Proto()
		p.Message = msg
		return status.FromProto(p).Err()
	}
	var fe *taskapi.FieldError
	switch {
	case errors.As(err, &fe):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}
