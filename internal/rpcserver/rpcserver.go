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
		grpc.ChainUnaryInterceptor(s.recoverUnary),
		grpc.ChainStreamInterceptor(s.recoverStream),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	s.grpc = grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(s.grpc, s.health)
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
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.grpc.Serve(lis) }()
	select {
	case err := <-serveErr:
		// Serve returns on its own only when the listener fails or someone
		// already stopped the grpc server.
		s.finish()
		if errors.Is(err, grpc.ErrServerStopped) {
			return nil
		}
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
		s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		close(s.stopReq)
	})
}

// Stop turns health NOT_SERVING, refuses new calls, lets calls in flight
// finish for the grace period (or until ctx is done, if sooner), then cancels
// them and closes every connection. It returns when the server has stopped.
// It is safe to call more than once and concurrently; it must not be called
// from inside a handler (use RequestStop there).
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
		s.grpc.Stop()
		<-done
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
	s.finish()
}

func (s *Server) finish() {
	s.finishOnce.Do(func() {
		s.health.Shutdown()
		close(s.stopped)
	})
}

// Stopped is closed once the server has fully stopped.
func (s *Server) Stopped() <-chan struct{} { return s.stopped }

// SetServing sets the health of the empty service name.
func (s *Server) SetServing(serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
}

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
//     with %w) keeps its code, with the whole wrapped message;
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
		st, _ := status.FromError(err)
		return st.Err()
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
