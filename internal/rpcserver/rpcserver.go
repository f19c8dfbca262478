// Package rpcserver is the machinery the requestor and provider servers
// share: a grpc.Server with the standard health service and server
// reflection (gtask's own, see reflect.go: grpcurl works against any app), a
// panic guard, the mapping of Go errors to status codes, a lifecycle
// (Serve, Stop) that is graceful first, forced after a grace period, and safe
// to stop twice or from inside a handler, and an in-process connection
// (Conn) that calls the same services without a network.
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
//
// The grpc.Server itself is made only when Serve has a listener to serve:
// at once for a plain one, and for an OnDemand one once it is bound, so
// that an app served only through Conn never pays for one.
type Server struct {
	log    *slog.Logger
	grace  time.Duration
	health *health.Server
	opts   []grpc.ServerOption
	// services are the services New registered, for the grpc.Server when
	// it is made; written by New only.
	services []service

	gmu    sync.Mutex
	grpc   *grpc.Server // nil until made; guarded by gmu
	noGRPC bool         // a stop began, so none will be made; guarded by gmu

	stopOnce sync.Once
	// mu orders health changes and the admission of in-process calls with
	// RequestStop.
	mu         sync.Mutex
	stopping   bool          // RequestStop was called; guarded by mu
	stopReq    chan struct{} // closed by RequestStop
	finishOnce sync.Once
	stopped    chan struct{} // closed when the grpc server has fully stopped
	// stopDone is closed when a Stop has returned: a later one has nothing
	// to wait for.
	stopDone     chan struct{}
	stopDoneOnce sync.Once

	local local // calls made through Conn
}

// New makes a Server and lets register add the app's services to it. The
// registrar keeps them for the grpc.Server, which Serve makes, and their
// unary methods for Conn, which serves them from now on.
func New(cfg Config, register func(grpc.ServiceRegistrar)) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	grace := cfg.GracePeriod
	if grace <= 0 {
		grace = DefaultGracePeriod
	}
	s := &Server{
		log:      log,
		grace:    grace,
		health:   health.NewServer(),
		stopReq:  make(chan struct{}),
		stopped:  make(chan struct{}),
		stopDone: make(chan struct{}),
	}
	s.local.init()
	s.opts = []grpc.ServerOption{
		grpc.ForceServerCodecV2(lenientCodec{}),
		grpc.ChainUnaryInterceptor(s.recoverUnary),
		grpc.ChainStreamInterceptor(s.recoverStream),
	}
	if cfg.TLS != nil {
		s.opts = append(s.opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	reg := registrar{s}
	healthpb.RegisterHealthServer(reg, healthService{Server: s.health, stopping: s.stopReq})
	register(reg)
	// Health starts NOT_SERVING and turns SERVING once Serve runs.
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s
}

// OnDemand is a listener that binds its port only when someone asks for
// it, such as the host's for an app it runs inside itself and calls
// through Conn as a rule. Serve makes no grpc.Server for it until Bound is
// closed.
type OnDemand interface {
	net.Listener
	// Bound is closed once the listener has a port to accept on.
	Bound() <-chan struct{}
}

// Serve serves on lis until ctx is done or a stop is requested, then stops
// gracefully (see Stop). It returns nil after a requested or ctx-driven stop,
// and the listener's error if serving failed. An OnDemand lis is served
// once it is bound; until then only Conn is. lis is closed when Serve
// returns.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.SetServing(true)
	if od, ok := lis.(OnDemand); ok {
		select {
		case <-od.Bound():
		case <-ctx.Done():
			s.requestStop(context.Cause(ctx))
			return s.stopUnbound(lis)
		case <-s.stopReq:
			return s.stopUnbound(lis)
		}
	}
	g := s.grpcServer()
	if g == nil {
		// A stop began before there was anything to serve: as grpc's
		// Serve after a stop.
		lis.Close()
		s.finish()
		return nil
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- g.Serve(lis) }()
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
		s.requestStop(err)
		s.Stop(context.Background())
		return err
	case <-ctx.Done():
		s.requestStop(context.Cause(ctx))
	case <-s.stopReq:
	}
	s.Stop(context.Background())
	<-serveErr
	return nil
}

// stopUnbound stops a server whose OnDemand listener was never bound.
func (s *Server) stopUnbound(lis net.Listener) error {
	s.Stop(context.Background())
	lis.Close()
	return nil
}

// grpcServer makes the grpc.Server, the first time, unless a stop has
// begun, and returns it; nil after a stop began without one.
func (s *Server) grpcServer() *grpc.Server {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if s.grpc == nil && !s.noGRPC {
		g := grpc.NewServer(s.opts...)
		for _, sv := range s.services {
			g.RegisterService(sv.desc, sv.impl)
		}
		registerReflection(g) // streams only: nothing for Conn
		s.grpc = g
	}
	return s.grpc
}

// stopGRPC returns the grpc.Server, nil when none was made, and makes sure
// none is made from now on: a stop has begun.
func (s *Server) stopGRPC() *grpc.Server {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	s.noGRPC = true
	return s.grpc
}

// RequestStop asks Serve to stop gracefully and returns at once. It may be
// called from inside a handler (a Shutdown RPC, a one-shot provider's only
// call), where a synchronous stop would wait for that very handler.
func (s *Server) RequestStop() { s.requestStop("stop requested") }

// requestStop is RequestStop, saying why in the log. The first request
// logs it, on the requester's goroutine, rather than Serve's when it sees
// the request: a one-shot provider's requester is the goroutine that has
// just run its handler, whose stack has grown already, where Serve's would
// grow its own only to log one line.
func (s *Server) requestStop(why any) {
	s.stopOnce.Do(func() {
		s.log.Info("stopping", "why", why)
		s.mu.Lock()
		s.stopping = true
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		s.mu.Unlock()
		close(s.stopReq)
	})
}

// Stop turns health NOT_SERVING, refuses new calls, lets calls in flight
// (over gRPC and through Conn alike) finish for the grace period (or until
// ctx is done, if sooner), then cancels them and closes every connection. It
// returns when the server has stopped and every handler has returned; a
// handler that ignores its cancelled context is waited for one more grace
// period, then given up on (and logged), so that a stuck handler cannot keep
// the process alive. It is safe to call more than once and concurrently; it
// must not be called from inside a handler (use RequestStop there).
func (s *Server) Stop(ctx context.Context) {
	s.requestStop("stop requested")
	select {
	case <-s.stopDone:
		return // an earlier Stop finished: nothing is left to wait for
	default:
	}
	g := s.stopGRPC()
	done := make(chan struct{})
	go func() {
		if g != nil {
			g.GracefulStop()
		}
		// No call through Conn starts after RequestStop, so the wait
		// cannot race with a new one.
		s.local.calls.Wait()
		close(done)
	}()
	timer := time.NewTimer(s.grace)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		s.log.Warn("grace period over, cancelling calls in flight", "grace", s.grace)
		s.forceStop(g, done)
	case <-ctx.Done():
		s.forceStop(g, done)
	}
	s.finish()
	s.stopDoneOnce.Do(func() { close(s.stopDone) })
}

// forceStop cancels every call and closes every connection, then waits for
// the handlers: grpc's Stop does not, but the GracefulStop still running
// (done) does, and a handler deaf to cancellation would hold it for ever.
func (s *Server) forceStop(g *grpc.Server, done <-chan struct{}) {
	if g != nil {
		g.Stop()
	}
	s.local.cancel() // as closing a connection cancels its calls
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
	if s.stopping {
		// RequestStop set NOT_SERVING for good; the health server may even
		// be shut down already, when a call in process was served and
		// the stop done before Serve began.
		return
	}
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
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
