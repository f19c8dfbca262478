package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// DefaultHost is the address `gtask serve` listens on by default, and the
// one FromEnv uses when GTASK_HOST is not set.
const DefaultHost = "127.0.0.1:7878"

// The environment variables FromEnv reads.
const (
	// EnvHost is the daemon's address. The daemon sets it for the tasks it
	// runs.
	EnvHost = "GTASK_HOST"
	// EnvFamilyToken is the token the daemon gives a task's requestor: it
	// acts for the task's owner, within the task's tree.
	EnvFamilyToken = "GTASK_FAMILY_TOKEN"
	// EnvToken is a user's token.
	EnvToken = "GTASK_TOKEN"
)

// uploadChunk is the size of the data of one UploadInput message.
const uploadChunk = 256 << 10

// Client calls a gtask daemon. Its methods may be called concurrently.
type Client struct {
	addr string
	conn *grpc.ClientConn
	api  hostv1.HostServiceClient
	wait WaitPolicy

	closeOnce sync.Once
	closeErr  error
}

// WaitPolicy is how Wait behaves while it cannot reach the daemon: it
// polls GetTask, MinDelay after the first failure, doubling the delay up
// to MaxDelay, and gives up once the daemon has not answered for GiveUp.
type WaitPolicy struct {
	MinDelay time.Duration
	MaxDelay time.Duration
	GiveUp   time.Duration
}

// DefaultWaitPolicy is Wait's policy unless WithWaitPolicy says otherwise:
// 100 ms doubling to 5 s, giving up after 2 minutes without an answer.
func DefaultWaitPolicy() WaitPolicy {
	return WaitPolicy{MinDelay: 100 * time.Millisecond, MaxDelay: 5 * time.Second, GiveUp: 2 * time.Minute}
}

// Option configures Dial.
type Option func(*options)

type options struct {
	wait     WaitPolicy
	dialOpts []grpc.DialOption
}

// WithWaitPolicy sets Wait's back-off and how long it waits for an
// unreachable daemon. Zero fields keep DefaultWaitPolicy's.
func WithWaitPolicy(p WaitPolicy) Option {
	return func(o *options) {
		if p.MinDelay > 0 {
			o.wait.MinDelay = p.MinDelay
		}
		if p.MaxDelay > 0 {
			o.wait.MaxDelay = p.MaxDelay
		}
		if p.GiveUp > 0 {
			o.wait.GiveUp = p.GiveUp
		}
	}
}

// WithDialOptions adds grpc dial options (after the client's own).
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *options) { o.dialOpts = append(o.dialOpts, opts...) }
}

// Dial makes a client of the daemon at addr ("host:port") that sends token
// with every call. The connection is plaintext (the daemon listens on
// loopback) and made lazily: Dial does not wait for the daemon, whose
// absence the first call reports (codes.Unavailable). ctx is not kept.
func Dial(ctx context.Context, addr, token string, opts ...Option) (*Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("client: the daemon's address %q: want HOST:PORT: %w", addr, err)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, errors.New("client: no token: every call to the gtask daemon needs one")
	}
	o := options{wait: DefaultWaitPolicy()}
	for _, opt := range opts {
		opt(&o)
	}
	dialOpts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)),
		// Reconnect to a restarted daemon as soon as Wait's back-off
		// would look again, not after grpc's default of up to 2 minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}, o.dialOpts...)
	conn, err := grpc.NewClient("passthrough:///"+addr, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("client: connecting to %s: %w", addr, err)
	}
	return &Client{addr: addr, conn: conn, api: hostv1.NewHostServiceClient(conn), wait: o.wait}, nil
}

// FromEnv dials the daemon a task's environment names: GTASK_HOST
// (DefaultHost when unset), with GTASK_FAMILY_TOKEN (what a task's
// requestor gets) or, when that is unset, GTASK_TOKEN.
func FromEnv(ctx context.Context, opts ...Option) (*Client, error) {
	addr := os.Getenv(EnvHost)
	if addr == "" {
		addr = DefaultHost
	}
	token := os.Getenv(EnvFamilyToken)
	if token == "" {
		token = os.Getenv(EnvToken)
	}
	if token == "" {
		return nil, fmt.Errorf("client: neither %s nor %s is set: the daemon needs a token", EnvFamilyToken, EnvToken)
	}
	return Dial(ctx, addr, token, opts...)
}

// bearer is the per-RPC credential "authorization: Bearer TOKEN".
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: the daemon serves plaintext on
// loopback.
func (bearer) RequireTransportSecurity() bool { return false }

// Addr is the daemon's address.
func (c *Client) Addr() string { return c.addr }

// API is the generated client, for what the methods here do not cover.
func (c *Client) API() hostv1.HostServiceClient { return c.api }

// Close closes the connection. It is safe to call more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.conn.Close() })
	return c.closeErr
}

// SubmitRequest is a task to submit.
type SubmitRequest struct {
	// App is a Go package directory or an executable on the daemon's
	// machine, or with RuntimeDocker an image ("name:tag"). A relative path
	// that exists here is made absolute, the daemon's working directory
	// being another.
	App string
	// Params is the task's params, JSON; nil for none (the app's defaults).
	Params json.RawMessage
	// Inputs are local files, each put into the task's task_inputs/ under
	// its base name: uploaded, or with InputsByPath, sent as absolute paths
	// for the daemon to read (it must run on this machine and may read
	// them).
	Inputs       []string
	InputsByPath bool
	// Runtime is where the apps run; unspecified: the daemon's default.
	Runtime hostv1.Runtime
	// Parent is the parent task, for a child task. With a family token it
	// defaults to the token's task.
	Parent string
	// Providers bounds the provider slots the task holds at once; 0: as
	// many as the daemon shares it.
	Providers int
	// MaxSubtasks is CreateTask's max_subtasks_count; 0: the app chooses.
	MaxSubtasks int
	// Timeout aborts the task when it runs longer; 0: no limit.
	Timeout time.Duration
	// SubtaskTimeout bounds each attempt; 0: the daemon's default.
	SubtaskTimeout time.Duration
	// MaxAttempts bounds the task's failed attempts; 0: the default.
	MaxAttempts int
	// NoBackups turns backups off (see host.Backups): for an app whose
	// Compute must not run twice.
	NoBackups bool
}

// Submit creates a task, uploading its inputs first (unless InputsByPath),
// and answers it as the daemon has it: QUEUED or RUNNING.
func (c *Client) Submit(ctx context.Context, r SubmitRequest) (*hostv1.Task, error) {
	if r.App == "" {
		return nil, errors.New("client: submit: no app")
	}
	if len(r.Params) > 0 && !json.Valid(r.Params) {
		return nil, errors.New("client: submit: the params are not valid JSON")
	}
	if r.Timeout < 0 || r.SubtaskTimeout < 0 {
		return nil, errors.New("client: submit: timeouts must not be negative")
	}
	app := r.App
	if !filepath.IsAbs(app) && r.Runtime != hostv1.Runtime_RUNTIME_DOCKER {
		if _, err := os.Stat(app); err == nil {
			if abs, err := filepath.Abs(app); err == nil {
				app = abs
			}
		}
	}
	req := &hostv1.CreateTaskRequest{
		App:         app,
		ParamsJson:  string(r.Params),
		MaxSubtasks: int32(r.MaxSubtasks),
		Providers:   int32(r.Providers),
		Runtime:     r.Runtime,
		ParentId:    r.Parent,
		MaxAttempts: int32(r.MaxAttempts),
		NoBackups:   r.NoBackups,
	}
	if r.Timeout > 0 {
		req.Timeout = durationpb.New(r.Timeout)
	}
	if r.SubtaskTimeout > 0 {
		req.SubtaskTimeout = durationpb.New(r.SubtaskTimeout)
	}
	seen := map[string]string{}
	for _, in := range r.Inputs {
		name := filepath.Base(in)
		if prev, ok := seen[name]; ok {
			return nil, fmt.Errorf("client: submit: inputs %s and %s would both be task_inputs/%s", prev, in, name)
		}
		seen[name] = in
	}
	for _, in := range r.Inputs {
		name := filepath.Base(in)
		input := &hostv1.Input{Name: name}
		if r.InputsByPath {
			abs, err := filepath.Abs(in)
			if err != nil {
				return nil, fmt.Errorf("client: submit: input %s: %w", in, err)
			}
			input.Source = &hostv1.Input_Path{Path: abs}
		} else {
			id, err := c.upload(ctx, in, name)
			if err != nil {
				return nil, err
			}
			input.Source = &hostv1.Input_UploadId{UploadId: id}
		}
		req.Inputs = append(req.Inputs, input)
	}
	resp, err := c.api.CreateTask(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("client: creating the task: %w", err)
	}
	return resp.GetTask(), nil
}

// upload streams the file at path to the daemon as name and answers its
// upload id.
func (c *Client) upload(ctx context.Context, path, name string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("client: input: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil {
		return "", fmt.Errorf("client: input: %w", err)
	} else if !st.Mode().IsRegular() {
		return "", fmt.Errorf("client: input %s is not a regular file", path)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream if anything below fails
	stream, err := c.api.UploadInput(ctx)
	if err != nil {
		return "", fmt.Errorf("client: uploading %s: %w", path, err)
	}
	buf := make([]byte, uploadChunk)
	first := true
	var sent int64
	for {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 || first {
			msg := &hostv1.UploadInputRequest{Data: buf[:n]}
			if first {
				msg.Name = name
				first = false
			}
			if err := stream.Send(msg); err != nil {
				// The server ended the stream; its status is in CloseAndRecv.
				_, err = stream.CloseAndRecv()
				return "", fmt.Errorf("client: uploading %s: %w", path, err)
			}
			sent += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return "", fmt.Errorf("client: reading input %s: %w", path, rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return "", fmt.Errorf("client: uploading %s: %w", path, err)
	}
	if resp.GetSize() != sent {
		return "", fmt.Errorf("client: uploading %s: the daemon stored %d bytes of %d", path, resp.GetSize(), sent)
	}
	return resp.GetUploadId(), nil
}

// Get answers the task id.
func (c *Client) Get(ctx context.Context, id string) (*hostv1.Task, error) {
	resp, err := c.api.GetTask(ctx, &hostv1.GetTaskRequest{TaskId: id})
	if err != nil {
		return nil, fmt.Errorf("client: getting task %s: %w", id, err)
	}
	return resp.GetTask(), nil
}

// ListFilter chooses the tasks List yields; its zero value: all of them.
type ListFilter struct {
	// Only tasks in these states; none: all.
	States []hostv1.TaskState
	// Only tasks of this app.
	App string
	// Only children of this task.
	Parent string
	// Tasks per call; 0: the daemon's default (100).
	PageSize int
}

// List yields the caller's tasks that pass filter, newest first, fetching
// a page at a time as the loop asks for more. An error ends it, yielded
// with a nil task.
func (c *Client) List(ctx context.Context, filter ListFilter) iter.Seq2[*hostv1.Task, error] {
	return func(yield func(*hostv1.Task, error) bool) {
		req := &hostv1.ListTasksRequest{
			States:   filter.States,
			App:      filter.App,
			ParentId: filter.Parent,
			PageSize: int32(filter.PageSize),
		}
		for {
			resp, err := c.api.ListTasks(ctx, req)
			if err != nil {
				yield(nil, fmt.Errorf("client: listing tasks: %w", err))
				return
			}
			for _, t := range resp.GetTasks() {
				if !yield(t, nil) {
					return
				}
			}
			if resp.GetNextPageToken() == "" {
				return
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
}

// Watch calls fn with each event of the task (of its whole tree, with
// tree) after cursor (0: from the first), as the daemon streams them,
// until the task (every task of the tree) has ended and its last event was
// sent; then it returns nil. It returns fn's error when fn fails, and the
// stream's when it breaks: the last event's Cursor is where to resume.
func (c *Client) Watch(ctx context.Context, id string, tree bool, cursor int64, fn func(*hostv1.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.WatchTask(ctx, &hostv1.WatchTaskRequest{TaskId: id, Tree: tree, Cursor: cursor})
	if err != nil {
		return fmt.Errorf("client: watching task %s: %w", id, err)
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("client: watching task %s: %w", id, err)
		}
		if err := fn(resp.GetEvent()); err != nil {
			return err
		}
	}
}

// Logs writes one run's log ("requestor" or "provider-SUBTASK", as
// Task.Runs names them) to w, from byte offset. With follow it goes on
// while the run writes, and returns when the run has ended and everything
// was written.
func (c *Client) Logs(ctx context.Context, id, run string, offset int64, follow bool, w io.Writer) error {
	if run == "" {
		run = "requestor"
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.GetRunLogs(ctx, &hostv1.GetRunLogsRequest{TaskId: id, Run: run, Offset: offset, Follow: follow})
	if err != nil {
		return fmt.Errorf("client: logs of task %s, run %s: %w", id, run, err)
	}
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("client: logs of task %s, run %s: %w", id, run, err)
		}
		if _, err := w.Write(resp.GetData()); err != nil {
			return fmt.Errorf("client: writing the log: %w", err)
		}
	}
}

// Kill kills the task and its whole tree, and answers the tasks it killed
// (none when the task had already ended) once every process is gone.
func (c *Client) Kill(ctx context.Context, id string) ([]string, error) {
	resp, err := c.api.KillTask(ctx, &hostv1.KillTaskRequest{TaskId: id})
	if err != nil {
		return nil, fmt.Errorf("client: killing task %s: %w", id, err)
	}
	return resp.GetKilledTaskIds(), nil
}

// CreateToken makes a token for user (an admin token with admin); it needs
// an admin token. The daemon shows the token this once.
func (c *Client) CreateToken(ctx context.Context, user string, admin bool) (string, error) {
	resp, err := c.api.CreateToken(ctx, &hostv1.CreateTokenRequest{User: user, Admin: admin})
	if err != nil {
		return "", fmt.Errorf("client: creating a token for %s: %w", user, err)
	}
	return resp.GetToken(), nil
}

// Terminal reports whether a task in state s has ended: FINISHED, FAILED,
// ABORTED or KILLED.
func Terminal(s hostv1.TaskState) bool {
	switch s {
	case hostv1.TaskState_TASK_STATE_FINISHED, hostv1.TaskState_TASK_STATE_FAILED,
		hostv1.TaskState_TASK_STATE_ABORTED, hostv1.TaskState_TASK_STATE_KILLED:
		return true
	}
	return false
}

// transient reports whether err, a call's, may pass: the daemon is
// restarting or the network failed. Any other error is the daemon's
// answer (an unknown task, a refused token) and will not change.
func transient(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded, codes.Aborted,
		codes.ResourceExhausted, codes.Internal, codes.Unknown:
		return true
	}
	return false
}
