package provider

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/internal/rpcserver"
	"github.com/gtask/gtask/taskapi"
)

// Option configures a Server. The zero set of options serves plaintext, logs
// nothing and stops with rpcserver.DefaultGracePeriod (5s).
type Option func(*config)

type config struct {
	log   *slog.Logger
	tls   *tls.Config
	grace time.Duration
}

// WithLogger makes the server log its request, panics and lifecycle to l.
// Default: logs are discarded.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithTLS makes the server serve TLS with cfg (for the contract's mutual TLS,
// see internal/mtls). Default: plaintext. A nil cfg means plaintext.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// WithGracePeriod bounds how long a stop waits for the request in flight
// before it cancels it and closes the connections. Default (and for d <= 0):
// rpcserver.DefaultGracePeriod, 5s.
func WithGracePeriod(d time.Duration) Option { return func(c *config) { c.grace = d } }

// errShutdown is the cause of a request's cancellation by Shutdown (the RPC,
// Server.Shutdown, or the end of Serve's ctx).
var errShutdown = errors.New("the provider is shutting down")

// state is where the server is in its one-shot life.
type state int

const (
	idle    state = iota // waiting for its one request
	running              // the request is being served
	served               // the request has been answered
)

// Server serves ProviderApp for one request (see the package doc). It is
// safe for concurrent use; Serve must be called at most once.
type Server struct {
	h     Handler
	log   *slog.Logger
	grace time.Duration
	rpc   *rpcserver.Server

	mu          sync.Mutex
	state       state
	shutdown    bool                    // Shutdown asked for: new requests are refused, the one in flight is cancelled
	cancel      context.CancelCauseFunc // cancels the request in flight; nil when none runs
	serveCalled bool                    // Serve was called: it may be only once
}

// NewServer makes a Server that serves h. It does not listen: see Serve.
func NewServer(h Handler, opts ...Option) *Server {
	var c config
	for _, o := range opts {
		o(&c)
	}
	log := c.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	grace := c.grace
	if grace <= 0 {
		grace = rpcserver.DefaultGracePeriod
	}
	s := &Server{h: h, log: log, grace: grace}
	s.rpc = rpcserver.New(rpcserver.Config{Logger: log, TLS: c.tls, GracePeriod: grace},
		func(g grpc.ServiceRegistrar) { pb.RegisterProviderAppServer(g, service{srv: s}) })
	return s
}

// Serve serves on lis until the one request has been answered, a Shutdown
// (RPC or method) has stopped the server, or ctx is done; each of these is a
// normal end and returns nil. The end of ctx cancels a request in flight as
// Shutdown does. Serve returns the listener's error if serving failed, and
// an error if called twice. lis is closed when Serve returns.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	s.mu.Lock()
	again := s.serveCalled
	s.serveCalled = true
	s.mu.Unlock()
	if again {
		lis.Close()
		return errors.New("provider: Serve called twice; a provider server serves once")
	}
	// Without this, the end of ctx would only reach the handler when the grace
	// period runs out, as a forced stop; cancelling at once lets it return
	// cleanly with Canceled.
	stop := context.AfterFunc(ctx, s.beginShutdown)
	defer stop()
	return s.rpc.Serve(ctx, lis)
}

// Conn returns a connection that calls this server's ProviderApp in this
// process, without a network, for a host that runs the app inside itself:
// wrap it with the generated client (golem_task_api.NewProviderAppClient),
// as host.NewProviderClient does. A call through it gets exactly what the
// same call over gRPC gets (the one-shot rule, the checks of the request
// and of the output path, the same codes, a panic INTERNAL), except that it
// skips the transport and its TLS. It is served from NewServer until a stop
// begins, whether or not Serve runs; then new calls answer UNAVAILABLE. A
// server called through it must be stopped (by its one call while Serve
// runs, or by Shutdown), even one never served.
func (s *Server) Conn() grpc.ClientConnInterface { return s.rpc.Conn() }

// Shutdown stops the server: new requests are refused, a request in flight
// has its context cancelled (it answers Canceled), and the server stops once
// it has returned, or by force after the grace period or when ctx is done,
// whichever comes first. It may be called any number of times, concurrently,
// and before or without Serve. It returns ctx's error when ctx ended before
// the stop did.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginShutdown()
	s.rpc.Stop(ctx)
	return ctx.Err()
}

// beginShutdown marks the server as shutting down and cancels the request in
// flight. It returns at once, so it is safe inside a handler.
func (s *Server) beginShutdown() {
	s.mu.Lock()
	s.shutdown = true
	if s.cancel != nil {
		s.cancel(errShutdown)
	}
	s.mu.Unlock()
	s.rpc.RequestStop()
}

// begin claims the server's one request for method and returns the context
// the handler runs in, cancelled by Shutdown as well as by the caller. The
// returned end must be called when the handler has returned, even by a
// panic: it stops the server, so that the reply is the last thing it sends.
func (s *Server) begin(ctx context.Context, method string) (context.Context, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.shutdown:
		return nil, nil, status.Errorf(codes.Unavailable, "%s: the provider is shutting down", method)
	case s.state == running:
		return nil, nil, status.Errorf(codes.FailedPrecondition,
			"%s: this provider is one-shot and is already serving a request; launch another provider", method)
	case s.state == served:
		return nil, nil, status.Errorf(codes.FailedPrecondition,
			"%s: this provider is one-shot and already served a request; launch another provider", method)
	}
	s.state = running
	hctx, cancel := context.WithCancelCause(ctx)
	s.cancel = cancel
	end := func() {
		s.mu.Lock()
		s.state = served
		s.cancel = nil
		s.mu.Unlock()
		cancel(nil)
		// Asynchronous on purpose: a synchronous stop would wait for this
		// very call. The graceful stop lets its reply go out first.
		s.rpc.RequestStop()
	}
	return hctx, end, nil
}

// call runs f, the Handler's method, and maps its error to a status. Once
// Shutdown has cancelled the request, any error is reported as Canceled (as
// the proto promises), whatever the handler made of the cancellation.
//
// f runs in a goroutine of its own so that a handler that ignores its
// cancelled context cannot hold the server hostage: once ctx is done, call
// waits at most the grace period for f, then answers Canceled and leaves f
// running. The grpc server's stop waits for every RPC method to return,
// forced or not, so without this a stubborn handler would keep the process
// alive forever. The goroutine belongs to the Server, which gives up on it
// only then; a provider process ends it by exiting.
func call[T any](s *Server, ctx context.Context, method string, f func(context.Context) (T, error)) (T, error) {
	var (
		res      T
		err      error
		panicked any
		stack    []byte
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			// The panic guard of rpcserver sits on the RPC's goroutine, not
			// this one, so this goroutine needs its own.
			if p := recover(); p != nil {
				panicked, stack = p, debug.Stack()
			}
		}()
		res, err = f(ctx)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		timer := time.NewTimer(s.grace)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			s.log.Error("the app ignored the cancellation of its request; giving up on it", "method", method, "grace", s.grace)
			var zero T
			return zero, status.Errorf(codes.Canceled, "%s: cancelled (%v), and the app did not stop within %v", method, context.Cause(ctx), s.grace)
		}
	}
	switch {
	case panicked != nil:
		s.log.Error("handler panicked", "method", method, "panic", fmt.Sprint(panicked), "stack", string(stack))
		return res, status.Errorf(codes.Internal, "%s: the app panicked: %v", method, panicked)
	case err == nil:
		return res, nil
	case context.Cause(ctx) == errShutdown:
		return res, status.Errorf(codes.Canceled, "%s: cancelled by Shutdown: %v", method, err)
	}
	return res, rpcserver.StatusError(err)
}

// service is the gRPC face of a Server. It is a separate type because the
// Shutdown RPC and Server.Shutdown, the Go lifecycle method, share a name.
type service struct {
	pb.UnimplementedProviderAppServer
	srv *Server
}

// Compute validates the request, runs the handler once, and checks the path
// it answers before sending it.
func (v service) Compute(ctx context.Context, req *pb.ComputeRequest) (*pb.ComputeReply, error) {
	s := v.srv
	const method = "Compute"
	hctx, end, err := s.begin(ctx, method)
	if err != nil {
		s.log.Warn("request refused", "method", method, "err", err)
		return nil, err
	}
	// A request refused for bad fields still counts as the one request: the
	// host that sent it treats the error as the subtask's failure and starts
	// a fresh provider, so this one has nothing left to do.
	defer end()
	if err := validateCompute(req); err != nil {
		return nil, rpcserver.StatusError(err)
	}
	var params json.RawMessage
	if req.GetSubtaskParamsJson() != "" {
		params = json.RawMessage(req.GetSubtaskParamsJson())
	}
	log := s.log.With("method", method, "task_id", req.GetTaskId(), "subtask_id", req.GetSubtaskId())
	log.Info("computing")
	start := time.Now()
	out, err := call(s, hctx, method, func(ctx context.Context) (string, error) {
		return s.h.Compute(ctx, req.GetTaskId(), req.GetSubtaskId(), params)
	})
	if err != nil {
		log.Warn("compute failed", "err", err, "took", time.Since(start))
		return nil, err
	}
	clean, err := checkOutputPath(out)
	if err != nil {
		log.Error("compute answered a bad output path", "err", err)
		return nil, status.Error(codes.Internal, err.Error())
	}
	log.Info("computed", "output", clean, "took", time.Since(start))
	return &pb.ComputeReply{OutputFilepath: clean}, nil
}

// RunBenchmark runs the handler's benchmark once; it counts as the server's
// one request.
func (v service) RunBenchmark(ctx context.Context, _ *pb.RunBenchmarkRequest) (*pb.RunBenchmarkReply, error) {
	s := v.srv
	const method = "RunBenchmark"
	hctx, end, err := s.begin(ctx, method)
	if err != nil {
		s.log.Warn("request refused", "method", method, "err", err)
		return nil, err
	}
	defer end()
	score, err := call(s, hctx, method, s.h.RunBenchmark)
	if err != nil {
		s.log.Warn("benchmark failed", "err", err)
		return nil, err
	}
	// The wire carries a float32: a score that does not fit would arrive as
	// Inf, and a NaN compares with nothing; both are app bugs.
	if f := float32(score); math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return nil, status.Errorf(codes.Internal, "%s: the app's score %v is not a finite float32", method, score)
	}
	s.log.Info("benchmarked", "score", score)
	return &pb.RunBenchmarkReply{Score: float32(score)}, nil
}

// Shutdown (the RPC) answers at once; the request in flight, if any, is
// cancelled, and the server stops when it has returned (by force after the
// grace period).
func (v service) Shutdown(context.Context, *pb.ShutdownRequest) (*pb.ShutdownReply, error) {
	s := v.srv
	s.log.Info("Shutdown requested")
	s.beginShutdown()
	return &pb.ShutdownReply{}, nil
}

func validateCompute(req *pb.ComputeRequest) error {
	if err := taskapi.ValidateID("task_id", req.GetTaskId()); err != nil {
		return err
	}
	if err := taskapi.ValidateID("subtask_id", req.GetSubtaskId()); err != nil {
		return err
	}
	return taskapi.ValidateJSON("subtask_params_json", req.GetSubtaskParamsJson())
}

// checkOutputPath checks, lexically, that the path Compute answered names a
// file inside the task work dir, and returns it cleaned. The server does not
// look at the file: the host, which copies it, checks that it exists (and
// that no symlink leads it out of the work dir).
func checkOutputPath(p string) (string, error) {
	switch clean := filepath.Clean(p); {
	case p == "":
		return "", errors.New("Compute: the app answered an empty output path")
	case filepath.IsAbs(p) || !filepath.IsLocal(p):
		return "", fmt.Errorf("Compute: the app answered output path %q, which is not inside the task work dir; it must be relative to it", p)
	case clean == ".":
		return "", fmt.Errorf("Compute: the app answered output path %q, which names the work dir itself, not a file in it", p)
	default:
		return clean, nil
	}
}
