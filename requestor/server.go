package requestor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	taskapipb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/internal/rpcserver"
	"github.com/gtask/gtask/taskapi"
)

// Option configures a Server.
type Option func(*config)

type config struct {
	rpc rpcserver.Config
}

// WithLogger sets the logger for lifecycle events, app failures and panics.
// Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.rpc.Logger = l }
}

// WithTLS makes the server serve TLS with cfg (for mutual TLS, cfg requires
// and verifies the client certificate). Default: plaintext.
func WithTLS(cfg *tls.Config) Option {
	return func(c *config) { c.rpc.TLS = cfg }
}

// WithGracePeriod bounds a graceful stop: calls in flight get d to finish
// before they are cancelled (a handler deaf to cancellation is given up on
// after d more), and Handler.Shutdown's context ends after d. Zero or
// negative means the default. Default: rpcserver.DefaultGracePeriod (5s).
func WithGracePeriod(d time.Duration) Option {
	return func(c *config) { c.rpc.GracePeriod = d }
}

// Server serves RequestorApp over a Handler, with the standard health and
// reflection services. Make one with NewServer, run it with Serve, stop it
// with Shutdown, a Shutdown RPC or by cancelling Serve's context.
type Server struct {
	h     Handler
	log   *slog.Logger
	grace time.Duration
	rs    *rpcserver.Server

	served atomic.Bool

	closeOnce sync.Once
	closeErr  error // Handler.Shutdown's error, set once by closeOnce
}

// NewServer returns a Server that answers RequestorApp calls with h. It
// serves nothing until Serve is called.
func NewServer(h Handler, opts ...Option) *Server {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.rpc.Logger == nil {
		c.rpc.Logger = slog.New(slog.DiscardHandler)
	}
	if c.rpc.GracePeriod <= 0 {
		c.rpc.GracePeriod = rpcserver.DefaultGracePeriod
	}
	s := &Server{h: h, log: c.rpc.Logger, grace: c.rpc.GracePeriod}
	s.rs = rpcserver.New(c.rpc, func(g grpc.ServiceRegistrar) {
		taskapipb.RegisterRequestorAppServer(g, &service{s: s})
	})
	return s
}

// Serve serves on lis until ctx is done, a Shutdown RPC arrives or Shutdown
// is called; then it stops gracefully, calls Handler.Shutdown (once, for the
// life of the Server) and returns. It returns nil after a graceful stop, the
// listener's error if serving failed, and, joined to either, the error of
// Handler.Shutdown, so that main can exit non-zero when the app failed to
// close what it holds. lis is closed when Serve returns.
//
// Serve may be called once. Called after Shutdown, it closes lis and returns
// at once.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if !s.served.CompareAndSwap(false, true) {
		lis.Close()
		return errors.New("requestor: Serve called more than once")
	}
	s.log.Info("serving", "addr", lis.Addr().String())
	err := s.rs.Serve(ctx, lis)
	return errors.Join(err, s.closeHandler(ctx))
}

// Conn returns a connection that calls this server's RequestorApp in this
// process, without a network, for a host that runs the app inside itself:
// wrap it with the generated client (golem_task_api.NewRequestorAppClient),
// as host.NewRequestorClient does. A call through it gets exactly what the
// same call over gRPC gets, the request validated and the reply checked as
// the package doc says, the same codes, a panic INTERNAL, except that it skips
// the transport and its TLS. It is served from NewServer until a stop
// begins, whether or not Serve runs; then new calls answer UNAVAILABLE, and
// calls in flight are part of the stop like those over gRPC. A server
// called through it must be stopped (Shutdown), even one never served.
func (s *Server) Conn() grpc.ClientConnInterface { return s.rs.Conn() }

// Shutdown stops the server gracefully: health turns NOT_SERVING, new calls
// are refused, calls in flight get the grace period (or until ctx is done, if
// sooner) to finish and are then cancelled. It then calls Handler.Shutdown,
// unless that already happened, and returns its error. It is safe to call
// more than once, concurrently, and without Serve ever having been called;
// every call returns the same error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.rs.Stop(ctx)
	return s.closeHandler(ctx)
}

// closeHandler calls Handler.Shutdown exactly once, after the grpc server has
// stopped (rpcserver's Stop waits for the handlers to return), and gives
// every caller its error. The app gets a context with ctx's values but not
// its cancellation (ctx is often the very context whose end stopped the
// server), ending after the grace period.
func (s *Server) closeHandler(ctx context.Context) error {
	<-s.rs.Stopped()
	s.closeOnce.Do(func() {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.grace)
		defer cancel()
		if err := s.shutdownHandler(hctx); err != nil {
			s.log.Error("app shutdown failed", "err", err)
			s.closeErr = fmt.Errorf("requestor: app shutdown: %w", err)
		}
		s.log.Info("stopped")
	})
	return s.closeErr
}

// shutdownHandler turns a panic in Handler.Shutdown into an error, as the
// server does for every other Handler method: it runs in Serve's or
// Shutdown's goroutine, where it would take main down with it.
func (s *Server) shutdownHandler(ctx context.Context) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return s.h.Shutdown(ctx)
}

// service adapts a Handler to taskapipb.RequestorAppServer. It is a type of
// its own so that Server's API stays small (and Server.Shutdown free of the
// RPC's signature).
type service struct {
	taskapipb.UnimplementedRequestorAppServer
	s *Server
}

// fail turns a handler's error into the status the caller gets, and logs the
// app's own failures, which the caller can do nothing about.
func (v *service) fail(method string, err error) error {
	serr := rpcserver.StatusError(err)
	if status.Code(serr) == codes.Internal {
		v.s.log.Error("app failed", "method", method, "err", err)
	} else {
		v.s.log.Debug("call refused", "method", method, "err", err)
	}
	return serr
}

// invalid reports a malformed request without bothering the log: the caller
// is told which field is wrong.
func invalid(err error) error { return rpcserver.StatusError(err) }

// appBug is the status for a reply the app got wrong: the caller must not
// receive it, and it is never the caller's fault.
func (v *service) appBug(method, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	v.s.log.Error("app returned a bad reply", "method", method, "why", msg)
	return status.Error(codes.Internal, msg)
}

func (v *service) CreateTask(ctx context.Context, req *taskapipb.CreateTaskRequest) (*taskapipb.CreateTaskReply, error) {
	if err := validate(
		taskapi.ValidateID("task_id", req.GetTaskId()),
		validateMaxSubtasks(req.GetMaxSubtasksCount()),
		taskapi.ValidateJSON("task_params_json", req.GetTaskParamsJson()),
	); err != nil {
		return nil, invalid(err)
	}
	var params json.RawMessage
	if p := req.GetTaskParamsJson(); p != "" {
		params = json.RawMessage(p)
	}
	task, err := v.s.h.CreateTask(ctx, req.GetTaskId(), int(req.GetMaxSubtasksCount()), params)
	if err != nil {
		return nil, v.fail("CreateTask", err)
	}
	prereq, err := replyJSON("prerequisites_json", task.Prerequisites)
	if err != nil {
		return nil, v.appBug("CreateTask", "the app returned %v", err)
	}
	return &taskapipb.CreateTaskReply{
		EnvId:             task.EnvID,
		PrerequisitesJson: prereq,
		InfRequirements:   &taskapipb.Infrastructure{MinMemoryMib: float32(task.MinMemoryMiB)},
	}, nil
}

func (v *service) NextSubtask(ctx context.Context, req *taskapipb.NextSubtaskRequest) (*taskapipb.NextSubtaskReply, error) {
	if err := validate(
		taskapi.ValidateID("task_id", req.GetTaskId()),
		taskapi.ValidateID("subtask_id", req.GetSubtaskId()),
		validateNodeID("opaque_node_id", req.GetOpaqueNodeId()),
	); err != nil {
		return nil, invalid(err)
	}
	st, err := v.s.h.NextSubtask(ctx, req.GetTaskId(), req.GetSubtaskId(), req.GetOpaqueNodeId())
	if err != nil {
		return nil, v.fail("NextSubtask", err)
	}
	if st == nil {
		// Nothing for this node now: the oneof stays unset.
		return &taskapipb.NextSubtaskReply{}, nil
	}
	params, err := replyJSON("subtask_params_json", st.Params)
	if err != nil {
		return nil, v.appBug("NextSubtask", "the app returned %v", err)
	}
	return &taskapipb.NextSubtaskReply{
		SubtaskOneof: &taskapipb.NextSubtaskReply_Subtask{Subtask: &taskapipb.SubtaskReply{
			SubtaskParamsJson: params,
			Resources:         append([]string(nil), st.Resources...),
		}},
	}, nil
}

// wireResult maps a Verdict to the wire. Anything but the four verdicts has
// no wire value, so that it can never go out as the wire's zero, SUCCESS.
func wireResult(v Verdict) (taskapipb.VerifyReply_VerifyResult, bool) {
	switch v {
	case Success:
		return taskapipb.VerifyReply_SUCCESS, true
	case Failure:
		return taskapipb.VerifyReply_FAILURE, true
	case AwaitingData:
		return taskapipb.VerifyReply_AWAITING_DATA, true
	case Inconclusive:
		return taskapipb.VerifyReply_INCONCLUSIVE, true
	}
	return 0, false
}

func (v *service) Verify(ctx context.Context, req *taskapipb.VerifyRequest) (*taskapipb.VerifyReply, error) {
	if err := validate(
		taskapi.ValidateID("task_id", req.GetTaskId()),
		taskapi.ValidateID("subtask_id", req.GetSubtaskId()),
	); err != nil {
		return nil, invalid(err)
	}
	verdict, reason, err := v.s.h.Verify(ctx, req.GetTaskId(), req.GetSubtaskId())
	if err != nil {
		return nil, v.fail("Verify", err)
	}
	result, ok := wireResult(verdict)
	if !ok {
		return nil, v.appBug("Verify", "the app returned no verdict (%v) for subtask %q", verdict, req.GetSubtaskId())
	}
	reply := &taskapipb.VerifyReply{Reason: reason}
	// Set even for SUCCESS: the reply says what the app decided, not what
	// the zero value happens to mean.
	reply.Result = result
	return reply, nil
}

func (v *service) DiscardSubtasks(ctx context.Context, req *taskapipb.DiscardSubtasksRequest) (*taskapipb.DiscardSubtasksReply, error) {
	errs := []error{taskapi.ValidateID("task_id", req.GetTaskId())}
	for i, id := range req.GetSubtaskIds() {
		errs = append(errs, taskapi.ValidateID(fmt.Sprintf("subtask_ids[%d]", i), id))
	}
	if err := validate(errs...); err != nil {
		return nil, invalid(err)
	}
	// An empty list still reaches the app, which answers NOT_FOUND for an
	// unknown task and, normally, nothing discarded.
	ids := append([]string{}, req.GetSubtaskIds()...)
	discarded, err := v.s.h.DiscardSubtasks(ctx, req.GetTaskId(), ids)
	if err != nil {
		return nil, v.fail("DiscardSubtasks", err)
	}
	return &taskapipb.DiscardSubtasksReply{DiscardedSubtaskIds: append([]string(nil), discarded...)}, nil
}

func (v *service) RunBenchmark(ctx context.Context, _ *taskapipb.RunBenchmarkRequest) (*taskapipb.RunBenchmarkReply, error) {
	score, err := v.s.h.RunBenchmark(ctx)
	if err != nil {
		return nil, v.fail("RunBenchmark", err)
	}
	return &taskapipb.RunBenchmarkReply{Score: float32(score)}, nil
}

func (v *service) HasPendingSubtasks(ctx context.Context, req *taskapipb.HasPendingSubtasksRequest) (*taskapipb.HasPendingSubtasksReply, error) {
	if err := taskapi.ValidateID("task_id", req.GetTaskId()); err != nil {
		return nil, invalid(err)
	}
	pending, err := v.s.h.HasPendingSubtasks(ctx, req.GetTaskId())
	if err != nil {
		return nil, v.fail("HasPendingSubtasks", err)
	}
	return &taskapipb.HasPendingSubtasksReply{HasPendingSubtasks: pending}, nil
}

func (v *service) AbortTask(ctx context.Context, req *taskapipb.AbortTaskRequest) (*taskapipb.AbortTaskReply, error) {
	if err := taskapi.ValidateID("task_id", req.GetTaskId()); err != nil {
		return nil, invalid(err)
	}
	if err := v.s.h.AbortTask(ctx, req.GetTaskId()); err != nil {
		return nil, v.fail("AbortTask", err)
	}
	return &taskapipb.AbortTaskReply{}, nil
}

func (v *service) AbortSubtask(ctx context.Context, req *taskapipb.AbortSubtaskRequest) (*taskapipb.AbortSubtaskReply, error) {
	if err := validate(
		taskapi.ValidateID("task_id", req.GetTaskId()),
		taskapi.ValidateID("subtask_id", req.GetSubtaskId()),
	); err != nil {
		return nil, invalid(err)
	}
	if err := v.s.h.AbortSubtask(ctx, req.GetTaskId(), req.GetSubtaskId()); err != nil {
		return nil, v.fail("AbortSubtask", err)
	}
	return &taskapipb.AbortSubtaskReply{}, nil
}

// Shutdown only asks for the stop: stopping synchronously here would wait
// for this very call to return. The reply goes out while the server drains;
// Serve then calls Handler.Shutdown.
func (v *service) Shutdown(context.Context, *taskapipb.ShutdownRequest) (*taskapipb.ShutdownReply, error) {
	v.s.log.Info("shutdown requested by a client")
	v.s.rs.RequestStop()
	return &taskapipb.ShutdownReply{}, nil
}

// validate returns the first error, so that the caller hears about the
// first malformed field in proto order.
func validate(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func validateMaxSubtasks(n int32) error {
	if n < 0 {
		return &taskapi.FieldError{Field: "max_subtasks_count", Reason: fmt.Sprintf("is %d; it must not be negative (0 lets the app choose)", n)}
	}
	return nil
}

// validateNodeID checks opaque_node_id. It is opaque and never a path, so
// unlike a task id it may hold '/', '.' or '..'; but it must be non-empty
// (an app that remembers which node failed a task could not tell nodes
// apart otherwise), at most taskapi.MaxIDLen bytes of valid UTF-8, and free
// of control characters, because apps log it and key state by it.
func validateNodeID(field, id string) error {
	bad := func(format string, args ...any) error {
		return &taskapi.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case id == "":
		return bad("must not be empty")
	case len(id) > taskapi.MaxIDLen:
		return bad("is %d bytes long; at most %d are allowed", len(id), taskapi.MaxIDLen)
	case !utf8.ValidString(id):
		return bad("is not valid UTF-8")
	}
	if i := strings.IndexFunc(id, isControl); i >= 0 {
		r, _ := utf8.DecodeRuneInString(id[i:])
		return bad("holds control character %U at byte %d", r, i)
	}
	return nil
}

// isControl matches the characters taskapi.ValidateID refuses as control
// characters: C0, DEL and C1.
func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// replyJSON checks JSON the app is about to send. None (nil or empty) sends
// the empty string, which the contract reads as "none".
func replyJSON(field string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	if err := taskapi.ValidateJSON(field, string(raw)); err != nil {
		return "", err
	}
	return string(raw), nil
}
