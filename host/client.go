package host

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/internal/mtls"
	"github.com/gtask/gtask/internal/readyline"
	"github.com/gtask/gtask/requestor"
)

// DefaultDialTimeout bounds DialRequestor and DialProvider when their ctx
// has no deadline: long enough for a container to start, short enough that a
// host never hangs on an app that will not serve.
const DefaultDialTimeout = 10 * time.Second

// Connection parameters of every client. gRPC's defaults (1 s first
// reconnect delay, 20 s connect timeout) suit remote servers; here the
// server is usually a process the host started a few milliseconds before
// dialling, and a one-shot provider's whole life may be shorter than gRPC's
// first back-off. Override them with WithGRPCOptions(grpc.WithConnectParams(...)).
const (
	reconnectBaseDelay = 5 * time.Millisecond
	reconnectMaxDelay  = 200 * time.Millisecond
	minConnectTimeout  = 2 * time.Second
)

// While a server answers NOT_SERVING, health is polled with a delay growing
// from healthPollMin to healthPollMax: a server that is about to serve is
// seen within milliseconds, one that takes longer costs few calls.
const (
	healthPollMin = 5 * time.Millisecond
	healthPollMax = 100 * time.Millisecond
)

// ErrBadReply is wrapped by the error for a reply that breaks the Task API
// contract, such as a Verify result that is none of the four verdicts. Such
// a reply is refused rather than guessed at.
var ErrBadReply = errors.New("reply outside the Task API contract")

// DialOption configures DialRequestor and DialProvider.
type DialOption func(*dialOptions)

type dialOptions struct {
	tlsDir    string
	tlsConfig *tls.Config
	grpcOpts  []grpc.DialOption
	// defaultTimeout is DefaultDialTimeout; tests shorten it.
	defaultTimeout time.Duration
	// noHealth skips the wait for SERVING: the Runner sets it for an
	// instance that has said it serves (see announcer).
	noHealth bool
}

// withoutHealthWait makes a dial return without asking the server's
// health: for a server known to serve already, whose first call then
// connects.
func withoutHealthWait() DialOption { return func(o *dialOptions) { o.noHealth = true } }

// WithTLSDir makes the client use the contract's mutual TLS with the files
// in dir (task_api_client_key.pem, task_api_client_cert.pem and
// task_api_server_cert.pem, see internal/mtls): the client presents its
// certificate and accepts only a server presenting the pinned one. A dir
// holding none of them means plaintext; a dir holding some but not all is a
// dial error naming the missing files. An empty dir means plaintext. It
// replaces an earlier WithTLSConfig. Default: plaintext.
func WithTLSDir(dir string) DialOption {
	return func(o *dialOptions) { o.tlsDir, o.tlsConfig = dir, nil }
}

// WithTLSConfig makes the client use TLS with cfg as given (nil means
// plaintext). It replaces an earlier WithTLSDir. Default: plaintext.
func WithTLSConfig(cfg *tls.Config) DialOption {
	return func(o *dialOptions) { o.tlsConfig, o.tlsDir = cfg, "" }
}

// WithGRPCOptions adds grpc dial options. They are applied after the
// client's own (transport credentials, connect parameters), so they override
// them. Default: none.
func WithGRPCOptions(opts ...grpc.DialOption) DialOption {
	return func(o *dialOptions) { o.grpcOpts = append(o.grpcOpts, opts...) }
}

// RequestorClient calls an app's RequestorApp service. Its methods take and
// return the plain Go types of package requestor. It is safe for concurrent
// use.
//
// Errors from the server are returned wrapped with the method's name; the
// gRPC status survives the wrap, so status.Code(err) is the server's code
// (NotFound, InvalidArgument, FailedPrecondition, ...). A host must treat any
// error as a failure of that call.
type RequestorClient struct {
	conn *grpc.ClientConn // the connection it dialled, closed by Close; nil for one it was given
	rpc  pb.RequestorAppClient
	once sync.Once
}

// ProviderClient calls an app's one-shot ProviderApp service. It is safe for
// concurrent use; errors are as for RequestorClient.
type ProviderClient struct {
	conn *grpc.ClientConn // as RequestorClient's
	rpc  pb.ProviderAppClient
	once sync.Once
}

// NewRequestorClient returns a client that calls the RequestorApp over
// conn: a DirectInstance's Conn (an app in this process, ready at once, no
// dial), or a connection the caller made itself. The caller keeps conn:
// Close does not close it.
func NewRequestorClient(conn grpc.ClientConnInterface) *RequestorClient {
	return &RequestorClient{rpc: pb.NewRequestorAppClient(conn)}
}

// NewProviderClient returns a client that calls the ProviderApp over conn,
// as NewRequestorClient does.
func NewProviderClient(conn grpc.ClientConnInterface) *ProviderClient {
	return &ProviderClient{rpc: pb.NewProviderAppClient(conn)}
}

// DialRequestor connects to the RequestorApp served at addr (host:port) and
// returns once the server's health (grpc.health.v1, empty service name)
// answers SERVING. A server answering NOT_SERVING, or not listening yet, is
// waited for until ctx is done, or for DefaultDialTimeout when ctx has no
// deadline; the error then says what was dialled and the last health answer
// or connection error. ctx bounds only the dial, not the client's life.
//
// Reconnects are fast (5 ms first back-off, 200 ms at most, 2 s for one
// connection attempt) because the server is usually a process the host has
// just started.
func DialRequestor(ctx context.Context, addr string, opts ...DialOption) (*RequestorClient, error) {
	conn, err := dial(ctx, "requestor", addr, opts)
	if err != nil {
		return nil, err
	}
	return &RequestorClient{conn: conn, rpc: pb.NewRequestorAppClient(conn)}, nil
}

// DialProvider connects to the ProviderApp served at addr, as DialRequestor
// does. The health checks do not count as the provider's one request.
func DialProvider(ctx context.Context, addr string, opts ...DialOption) (*ProviderClient, error) {
	conn, err := dial(ctx, "provider", addr, opts)
	if err != nil {
		return nil, err
	}
	return &ProviderClient{conn: conn, rpc: pb.NewProviderAppClient(conn)}, nil
}

// ReadyAddr reads a readiness line an app printed on stdout
// ("gtask: serving provider on 0.0.0.0:5000") and returns the role and an
// address to dial it at on this machine ("127.0.0.1:5000": an unspecified
// host becomes loopback). ok is false for any other line, which a launcher
// passes over.
func ReadyAddr(line string) (role, addr string, ok bool) {
	role, listen, ok := readyline.Parse(line)
	if !ok {
		return "", "", false
	}
	addr, err := readyline.Dialable(listen)
	if err != nil {
		return "", "", false
	}
	return role, addr, true
}

func dial(ctx context.Context, role, addr string, opts []DialOption) (*grpc.ClientConn, error) {
	start := time.Now()
	o := dialOptions{defaultTimeout: DefaultDialTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	cfg := o.tlsConfig
	if o.tlsDir != "" {
		var err error
		if cfg, err = mtls.ClientConfig(o.tlsDir); err != nil {
			return nil, fmt.Errorf("host: dial %s at %s: %w", role, addr, err)
		}
	}
	creds, transport := insecure.NewCredentials(), "plaintext"
	if cfg != nil {
		creds, transport = credentials.NewTLS(cfg), "TLS"
	}
	what := fmt.Sprintf("%s at %s (%s)", role, addr, transport)

	gopts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  reconnectBaseDelay,
				Multiplier: backoff.DefaultConfig.Multiplier,
				Jitter:     backoff.DefaultConfig.Jitter,
				MaxDelay:   reconnectMaxDelay,
			},
			MinConnectTimeout: minConnectTimeout,
		}),
	}, o.grpcOpts...)
	conn, err := grpc.NewClient(target(addr), gopts...)
	if err != nil {
		return nil, fmt.Errorf("host: dial %s: %w", what, err)
	}
	if o.noHealth {
		return conn, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.defaultTimeout)
		defer cancel()
	}
	if err := waitServing(ctx, conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("host: dial %s: not SERVING after %s: %w",
			what, time.Since(start).Round(time.Millisecond), err)
	}
	return conn, nil
}

// target is the grpc target of addr: an IP address and port go to the
// passthrough resolver, which hands them to the connection as they are,
// sparing every dial (one per provider) the DNS resolver's goroutine and
// its work; anything else (a host name) is resolved as grpc does.
func target(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		if _, err := netip.ParseAddr(host); err == nil {
			return "passthrough:///" + addr
		}
	}
	return addr
}

// waitServing polls conn's health until it answers SERVING or ctx is done.
// Health is asked fail-fast, so that a connection failure is seen (and
// reported) at once instead of hiding behind a call waiting for readiness;
// between calls it sleeps until the connection changes state (a reconnect
// succeeded) or a short poll delay passes (the server may turn SERVING).
func waitServing(ctx context.Context, conn *grpc.ClientConn) error {
	health := healthpb.NewHealthClient(conn)
	var last error // the last health answer, or why there was none
	delay := healthPollMin
	for {
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		switch {
		case err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING:
			return nil
		case err == nil:
			last = fmt.Errorf("last health answer %s", resp.GetStatus())
		case status.Code(err) == codes.Unimplemented:
			// No health service will not become one by waiting.
			return fmt.Errorf("the server does not serve grpc.health.v1.Health, which the Task API requires: %w", err)
		case ctx.Err() == nil || last == nil:
			// A call cut short by ctx tells less than the one before it.
			last = fmt.Errorf("last error (connection %s): %w", conn.GetState(), err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w; %w", context.Cause(ctx), last)
		}
		wait, cancel := context.WithTimeout(ctx, delay)
		conn.WaitForStateChange(wait, conn.GetState())
		cancel()
		delay = min(2*delay, healthPollMax)
	}
}

// CreateTask creates task taskID (see requestor.Handler.CreateTask).
// maxSubtasks 0 lets the app choose; one outside int32 is InvalidArgument
// without a call. params nil sends no parameters (an empty string).
func (c *RequestorClient) CreateTask(ctx context.Context, taskID string, maxSubtasks int, params json.RawMessage) (requestor.Task, error) {
	if maxSubtasks < math.MinInt32 || maxSubtasks > math.MaxInt32 {
		return requestor.Task{}, fmt.Errorf("CreateTask: %w", status.Errorf(codes.InvalidArgument,
			"max_subtasks_count: %d does not fit the wire's int32", maxSubtasks))
	}
	reply, err := c.rpc.CreateTask(ctx, &pb.CreateTaskRequest{
		TaskId:           taskID,
		MaxSubtasksCount: int32(maxSubtasks),
		TaskParamsJson:   string(params),
	})
	if err != nil {
		return requestor.Task{}, fmt.Errorf("CreateTask: %w", err)
	}
	return requestor.Task{
		EnvID:         reply.GetEnvId(),
		Prerequisites: rawJSON(reply.GetPrerequisitesJson()),
		MinMemoryMiB:  float64(reply.GetInfRequirements().GetMinMemoryMib()),
	}, nil
}

// NextSubtask asks for a subtask with the fresh id subtaskID for node
// nodeID. It returns nil, nil when the app has nothing for that node now.
// Subtask.Params is passed through unchanged (nil when empty), for Compute.
func (c *RequestorClient) NextSubtask(ctx context.Context, taskID, subtaskID, nodeID string) (*requestor.Subtask, error) {
	reply, err := c.rpc.NextSubtask(ctx, &pb.NextSubtaskRequest{
		TaskId:       taskID,
		SubtaskId:    subtaskID,
		OpaqueNodeId: nodeID,
	})
	if err != nil {
		return nil, fmt.Errorf("NextSubtask: %w", err)
	}
	st := reply.GetSubtask()
	if st == nil {
		return nil, nil
	}
	return &requestor.Subtask{
		Params:    rawJSON(st.GetSubtaskParamsJson()),
		Resources: st.GetResources(),
	}, nil
}

// Verify asks for the verdict on subtaskID's result and its reason. A result
// that is none of the four verdicts is an error wrapping ErrBadReply.
func (c *RequestorClient) Verify(ctx context.Context, taskID, subtaskID string) (requestor.Verdict, string, error) {
	reply, err := c.rpc.Verify(ctx, &pb.VerifyRequest{TaskId: taskID, SubtaskId: subtaskID})
	if err != nil {
		return 0, "", fmt.Errorf("Verify: %w", err)
	}
	var v requestor.Verdict
	switch reply.GetResult() {
	case pb.VerifyReply_SUCCESS:
		v = requestor.Success
	case pb.VerifyReply_FAILURE:
		v = requestor.Failure
	case pb.VerifyReply_AWAITING_DATA:
		v = requestor.AwaitingData
	case pb.VerifyReply_INCONCLUSIVE:
		v = requestor.Inconclusive
	default:
		return 0, "", fmt.Errorf("Verify: subtask %q: %w: result %d is none of the four verdicts (reason %q)",
			subtaskID, ErrBadReply, int32(reply.GetResult()), reply.GetReason())
	}
	return v, reply.GetReason(), nil
}

// DiscardSubtasks drops the named results and those depending on them, and
// returns the ids the app discarded.
func (c *RequestorClient) DiscardSubtasks(ctx context.Context, taskID string, subtaskIDs []string) ([]string, error) {
	reply, err := c.rpc.DiscardSubtasks(ctx, &pb.DiscardSubtasksRequest{TaskId: taskID, SubtaskIds: subtaskIDs})
	if err != nil {
		return nil, fmt.Errorf("DiscardSubtasks: %w", err)
	}
	return reply.GetDiscardedSubtaskIds(), nil
}

// RunBenchmark returns the app's score for this machine (higher is better).
func (c *RequestorClient) RunBenchmark(ctx context.Context) (float64, error) {
	reply, err := c.rpc.RunBenchmark(ctx, &pb.RunBenchmarkRequest{})
	if err != nil {
		return 0, fmt.Errorf("RunBenchmark: %w", err)
	}
	return float64(reply.GetScore()), nil
}

// HasPendingSubtasks reports whether NextSubtask would hand out a subtask
// now.
func (c *RequestorClient) HasPendingSubtasks(ctx context.Context, taskID string) (bool, error) {
	reply, err := c.rpc.HasPendingSubtasks(ctx, &pb.HasPendingSubtasksRequest{TaskId: taskID})
	if err != nil {
		return false, fmt.Errorf("HasPendingSubtasks: %w", err)
	}
	return reply.GetHasPendingSubtasks(), nil
}

// AbortTask stops taskID; later calls for it answer FailedPrecondition.
func (c *RequestorClient) AbortTask(ctx context.Context, taskID string) error {
	if _, err := c.rpc.AbortTask(ctx, &pb.AbortTaskRequest{TaskId: taskID}); err != nil {
		return fmt.Errorf("AbortTask: %w", err)
	}
	return nil
}

// AbortSubtask stops subtaskID and makes its part computable again.
func (c *RequestorClient) AbortSubtask(ctx context.Context, taskID, subtaskID string) error {
	if _, err := c.rpc.AbortSubtask(ctx, &pb.AbortSubtaskRequest{TaskId: taskID, SubtaskId: subtaskID}); err != nil {
		return fmt.Errorf("AbortSubtask: %w", err)
	}
	return nil
}

// Shutdown asks the server to stop gracefully; its process then exits. The
// client stays open until Close.
func (c *RequestorClient) Shutdown(ctx context.Context) error {
	if _, err := c.rpc.Shutdown(ctx, &pb.ShutdownRequest{}); err != nil {
		return fmt.Errorf("Shutdown: %w", err)
	}
	return nil
}

// Close closes the connection DialRequestor made; calls in flight fail
// with codes.Canceled. It is safe to call more than once: later calls
// return nil. It does nothing for a client of NewRequestorClient.
func (c *RequestorClient) Close() error { return closeOnce(&c.once, c.conn) }

// Compute computes subtaskID on the one-shot provider and returns the path
// of its result file, relative to the provider's task work dir. params nil
// sends no parameters (an empty string).
func (c *ProviderClient) Compute(ctx context.Context, taskID, subtaskID string, params json.RawMessage) (string, error) {
	reply, err := c.rpc.Compute(ctx, &pb.ComputeRequest{
		TaskId:            taskID,
		SubtaskId:         subtaskID,
		SubtaskParamsJson: string(params),
	})
	if err != nil {
		return "", fmt.Errorf("Compute: %w", err)
	}
	return reply.GetOutputFilepath(), nil
}

// RunBenchmark returns the app's score for this machine (higher is better);
// it is the provider's one request.
func (c *ProviderClient) RunBenchmark(ctx context.Context) (float64, error) {
	reply, err := c.rpc.RunBenchmark(ctx, &pb.RunBenchmarkRequest{})
	if err != nil {
		return 0, fmt.Errorf("RunBenchmark: %w", err)
	}
	return float64(reply.GetScore()), nil
}

// Shutdown asks the provider to stop: a Compute in flight answers Canceled.
func (c *ProviderClient) Shutdown(ctx context.Context) error {
	if _, err := c.rpc.Shutdown(ctx, &pb.ShutdownRequest{}); err != nil {
		return fmt.Errorf("Shutdown: %w", err)
	}
	return nil
}

// Close closes the connection DialProvider made, as RequestorClient.Close
// does.
func (c *ProviderClient) Close() error { return closeOnce(&c.once, c.conn) }

func closeOnce(once *sync.Once, conn *grpc.ClientConn) error {
	var err error
	once.Do(func() {
		if conn != nil {
			err = conn.Close()
		}
	})
	return err
}

// rawJSON turns a *_json field into a json.RawMessage: the empty string
// means "none", which is nil in Go.
func rawJSON(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}
