package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/client"
	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeHost is a HostService whose methods the tests choose; the others
// answer UNIMPLEMENTED.
type fakeHost struct {
	hostv1.UnimplementedHostServiceServer
	createTask func(context.Context, *hostv1.CreateTaskRequest) (*hostv1.CreateTaskResponse, error)
	upload     func(hostv1.HostService_UploadInputServer) error
	getTask    func(context.Context, *hostv1.GetTaskRequest) (*hostv1.GetTaskResponse, error)
	listTasks  func(context.Context, *hostv1.ListTasksRequest) (*hostv1.ListTasksResponse, error)
	watchTask  func(*hostv1.WatchTaskRequest, hostv1.HostService_WatchTaskServer) error
	runLogs    func(*hostv1.GetRunLogsRequest, hostv1.HostService_GetRunLogsServer) error
	killTask   func(context.Context, *hostv1.KillTaskRequest) (*hostv1.KillTaskResponse, error)
	results    func(*hostv1.GetResultsRequest, hostv1.HostService_GetResultsServer) error
}

func (f *fakeHost) CreateTask(ctx context.Context, r *hostv1.CreateTaskRequest) (*hostv1.CreateTaskResponse, error) {
	if f.createTask == nil {
		return f.UnimplementedHostServiceServer.CreateTask(ctx, r)
	}
	return f.createTask(ctx, r)
}

func (f *fakeHost) UploadInput(s hostv1.HostService_UploadInputServer) error {
	if f.upload == nil {
		return f.UnimplementedHostServiceServer.UploadInput(s)
	}
	return f.upload(s)
}

func (f *fakeHost) GetTask(ctx context.Context, r *hostv1.GetTaskRequest) (*hostv1.GetTaskResponse, error) {
	if f.getTask == nil {
		return f.UnimplementedHostServiceServer.GetTask(ctx, r)
	}
	return f.getTask(ctx, r)
}

func (f *fakeHost) ListTasks(ctx context.Context, r *hostv1.ListTasksRequest) (*hostv1.ListTasksResponse, error) {
	if f.listTasks == nil {
		return f.UnimplementedHostServiceServer.ListTasks(ctx, r)
	}
	return f.listTasks(ctx, r)
}

func (f *fakeHost) WatchTask(r *hostv1.WatchTaskRequest, s hostv1.HostService_WatchTaskServer) error {
	if f.watchTask == nil {
		return f.UnimplementedHostServiceServer.WatchTask(r, s)
	}
	return f.watchTask(r, s)
}

func (f *fakeHost) GetRunLogs(r *hostv1.GetRunLogsRequest, s hostv1.HostService_GetRunLogsServer) error {
	if f.runLogs == nil {
		return f.UnimplementedHostServiceServer.GetRunLogs(r, s)
	}
	return f.runLogs(r, s)
}

func (f *fakeHost) KillTask(ctx context.Context, r *hostv1.KillTaskRequest) (*hostv1.KillTaskResponse, error) {
	if f.killTask == nil {
		return f.UnimplementedHostServiceServer.KillTask(ctx, r)
	}
	return f.killTask(ctx, r)
}

func (f *fakeHost) GetResults(r *hostv1.GetResultsRequest, s hostv1.HostService_GetResultsServer) error {
	if f.results == nil {
		return f.UnimplementedHostServiceServer.GetResults(r, s)
	}
	return f.results(r, s)
}

// server is a fakeHost served on a real loopback socket.
type server struct {
	addr string
	g    *grpc.Server
	done chan struct{}
	// auth is every call's authorization metadata, in order.
	mu   sync.Mutex
	auth []string
}

// serve serves f on 127.0.0.1 until the test ends (or stop).
func serve(t *testing.T, f *fakeHost) *server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &server{addr: lis.Addr().String(), done: make(chan struct{})}
	record := func(ctx context.Context) {
		md, _ := metadata.FromIncomingContext(ctx)
		s.mu.Lock()
		s.auth = append(s.auth, strings.Join(md.Get("authorization"), ","))
		s.mu.Unlock()
	}
	s.g = grpc.NewServer(
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(ctx)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(ss.Context())
			return h(srv, ss)
		}))
	hostv1.RegisterHostServiceServer(s.g, f)
	go func() {
		defer close(s.done)
		_ = s.g.Serve(lis)
	}()
	t.Cleanup(s.stop)
	return s
}

// stop stops the server at once, closing every connection; safe twice.
func (s *server) stop() {
	s.g.Stop()
	<-s.done
}

func (s *server) authHeaders() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...)
}

func dial(t *testing.T, addr string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.Dial(t.Context(), addr, "tok-123", opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

func task(id string, st hostv1.TaskState) *hostv1.Task {
	return &hostv1.Task{TaskId: id, State: st, App: "app"}
}

func TestAuthHeader(t *testing.T) {
	s := serve(t, &fakeHost{
		getTask: func(_ context.Context, r *hostv1.GetTaskRequest) (*hostv1.GetTaskResponse, error) {
			return &hostv1.GetTaskResponse{Task: task(r.GetTaskId(), hostv1.TaskState_TASK_STATE_RUNNING)}, nil
		},
		watchTask: func(*hostv1.WatchTaskRequest, hostv1.HostService_WatchTaskServer) error { return nil },
	})
	c := dial(t, s.addr)
	got, err := c.Get(t.Context(), "t1")
	require.NoError(t, err)
	assert.Equal(t, "t1", got.GetTaskId())
	require.NoError(t, c.Watch(t.Context(), "t1", false, 0, func(*hostv1.Event) error { return nil }))
	assert.Equal(t, []string{"Bearer tok-123", "Bearer tok-123"}, s.authHeaders(), "unary and stream calls carry the token")
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "Close twice")
}

func TestDialRefusesNoToken(t *testing.T) {
	_, err := client.Dial(t.Context(), "127.0.0.1:1", " ")
	require.ErrorContains(t, err, "no token")
	_, err = client.Dial(t.Context(), "nohost", "tok")
	require.ErrorContains(t, err, "HOST:PORT")
}

func TestFromEnv(t *testing.T) {
	s := serve(t, &fakeHost{
		getTask: func(_ context.Context, r *hostv1.GetTaskRequest) (*hostv1.GetTaskResponse, error) {
			return &hostv1.GetTaskResponse{Task: task(r.GetTaskId(), hostv1.TaskState_TASK_STATE_RUNNING)}, nil
		},
	})
	t.Setenv(client.EnvHost, s.addr)
	t.Setenv(client.EnvToken, "user-tok")
	t.Setenv(client.EnvFamilyToken, "family-tok")
	c, err := client.FromEnv(t.Context())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Get(t.Context(), "t")
	require.NoError(t, err)
	assert.Equal(t, []string{"Bearer family-tok"}, s.authHeaders(), "the family token comes first")

	t.Setenv(client.EnvFamilyToken, "")
	t.Setenv(client.EnvToken, "")
	_, err = client.FromEnv(t.Context())
	require.ErrorContains(t, err, client.EnvFamilyToken)
}

func TestSubmitUploadsInputs(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB: several messages
	a := filepath.Join(dir, "a.csv")
	b := filepath.Join(dir, "b.bin")
	require.NoError(t, os.WriteFile(a, []byte("x,y\n1,2\n"), 0o644))
	require.NoError(t, os.WriteFile(b, big, 0o644))

	var mu sync.Mutex
	uploads := map[string][]byte{} // upload id -> data
	names := map[string]string{}   // upload id -> name
	messages := 0
	var created *hostv1.CreateTaskRequest
	s := serve(t, &fakeHost{
		upload: func(st hostv1.HostService_UploadInputServer) error {
			var name string
			var data []byte
			for i := 0; ; i++ {
				m, err := st.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				if i == 0 {
					name = m.GetName()
				} else if m.GetName() != "" {
					return status.Error(codes.InvalidArgument, "name in a later message")
				}
				data = append(data, m.GetData()...)
				mu.Lock()
				messages++
				mu.Unlock()
			}
			mu.Lock()
			defer mu.Unlock()
			id := fmt.Sprintf("up-%d", len(uploads)+1)
			uploads[id], names[id] = data, name
			return st.SendAndClose(&hostv1.UploadInputResponse{UploadId: id, Size: int64(len(data))})
		},
		createTask: func(_ context.Context, r *hostv1.CreateTaskRequest) (*hostv1.CreateTaskResponse, error) {
			mu.Lock()
			created = r
			mu.Unlock()
			return &hostv1.CreateTaskResponse{Task: task("t-1", hostv1.TaskState_TASK_STATE_QUEUED)}, nil
		},
	})
	c := dial(t, s.addr)
	got, err := c.Submit(t.Context(), client.SubmitRequest{
		App: "/apps/average", Params: json.RawMessage(`{"column": "age"}`), Inputs: []string{a, b},
		Providers: 2, Timeout: time.Minute, Runtime: hostv1.Runtime_RUNTIME_PROCESS, Parent: "p-1",
	})
	require.NoError(t, err)
	assert.Equal(t, "t-1", got.GetTaskId())

	mu.Lock()
	defer mu.Unlock()
	require.NotNil(t, created)
	assert.Equal(t, "/apps/average", created.GetApp())
	assert.JSONEq(t, `{"column": "age"}`, created.GetParamsJson())
	assert.Equal(t, int32(2), created.GetProviders())
	assert.Equal(t, time.Minute, created.GetTimeout().AsDuration())
	assert.Equal(t, "p-1", created.GetParentId())
	require.Len(t, created.GetInputs(), 2)
	for i, want := range []struct {
		name string
		data []byte
	}{{"a.csv", []byte("x,y\n1,2\n")}, {"b.bin", big}} {
		in := created.GetInputs()[i]
		assert.Equal(t, want.name, in.GetName())
		id := in.GetUploadId()
		require.NotEmpty(t, id, "input %d not sent as an upload", i)
		assert.Equal(t, want.name, names[id])
		assert.True(t, bytes.Equal(want.data, uploads[id]), "input %s: the daemon got other bytes", want.name)
	}
	assert.Greater(t, messages, 3, "1 MiB in one message: not streamed")
}

func TestSubmitInputsByPath(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	require.NoError(t, os.WriteFile(in, []byte("hi"), 0o644))
	got := make(chan *hostv1.CreateTaskRequest, 1)
	s := serve(t, &fakeHost{
		createTask: func(_ context.Context, r *hostv1.CreateTaskRequest) (*hostv1.CreateTaskResponse, error) {
			got <- r
			return &hostv1.CreateTaskResponse{Task: task("t", hostv1.TaskState_TASK_STATE_QUEUED)}, nil
		},
	})
	c := dial(t, s.addr)
	t.Chdir(dir)
	_, err := c.Submit(t.Context(), client.SubmitRequest{App: "app", Inputs: []string{"in.txt"}, InputsByPath: true})
	require.NoError(t, err)
	r := <-got
	assert.Equal(t, "app", r.GetApp(), "a name that is not a local file is sent as it is")
	require.Len(t, r.GetInputs(), 1)
	assert.Equal(t, in, r.GetInputs()[0].GetPath())

	// Refused before any call.
	_, err = c.Submit(t.Context(), client.SubmitRequest{App: "app", Params: json.RawMessage(`{`)})
	require.ErrorContains(t, err, "not valid JSON")
	_, err = c.Submit(t.Context(), client.SubmitRequest{App: "app", Inputs: []string{in, filepath.Join(dir, ".", "in.txt")}})
	require.ErrorContains(t, err, "both be task_inputs/in.txt")
}

func TestList(t *testing.T) {
	s := serve(t, &fakeHost{
		listTasks: func(_ context.Context, r *hostv1.ListTasksRequest) (*hostv1.ListTasksResponse, error) {
			if r.GetApp() != "avg" || len(r.GetStates()) != 1 {
				return nil, status.Error(codes.InvalidArgument, "filter not sent")
			}
			switch r.GetPageToken() {
			case "":
				return &hostv1.ListTasksResponse{Tasks: []*hostv1.Task{task("a", 2), task("b", 2)}, NextPageToken: "p2"}, nil
			case "p2":
				return &hostv1.ListTasksResponse{Tasks: []*hostv1.Task{task("c", 2)}}, nil
			}
			return nil, status.Error(codes.InvalidArgument, "bad page token")
		},
	})
	c := dial(t, s.addr)
	var ids []string
	for tk, err := range c.List(t.Context(), client.ListFilter{App: "avg", States: []hostv1.TaskState{hostv1.TaskState_TASK_STATE_RUNNING}}) {
		require.NoError(t, err)
		ids = append(ids, tk.GetTaskId())
	}
	assert.Equal(t, []string{"a", "b", "c"}, ids)
}

func TestLogsAndKill(t *testing.T) {
	s := serve(t, &fakeHost{
		runLogs: func(r *hostv1.GetRunLogsRequest, st hostv1.HostService_GetRunLogsServer) error {
			if r.GetRun() != "requestor" || !r.GetFollow() || r.GetOffset() != 3 {
				return status.Errorf(codes.InvalidArgument, "unexpected request %v", r)
			}
			for i, line := range []string{"one\n", "two\n"} {
				if err := st.Send(&hostv1.GetRunLogsResponse{Data: []byte(line), Offset: int64(3 + 4*i)}); err != nil {
					return err
				}
			}
			return nil
		},
		killTask: func(_ context.Context, r *hostv1.KillTaskRequest) (*hostv1.KillTaskResponse, error) {
			return &hostv1.KillTaskResponse{KilledTaskIds: []string{r.GetTaskId(), r.GetTaskId() + "-child"}}, nil
		},
	})
	c := dial(t, s.addr)
	var buf bytes.Buffer
	require.NoError(t, c.Logs(t.Context(), "t", "", 3, true, &buf))
	assert.Equal(t, "one\ntwo\n", buf.String())
	killed, err := c.Kill(t.Context(), "t")
	require.NoError(t, err)
	assert.Equal(t, []string{"t", "t-child"}, killed)
}

// sendResults is a GetResults that sends files, each in chunks of 4 bytes.
func sendResults(files ...[2]string) func(*hostv1.GetResultsRequest, hostv1.HostService_GetResultsServer) error {
	return func(_ *hostv1.GetResultsRequest, st hostv1.HostService_GetResultsServer) error {
		for _, f := range files {
			name, data := f[0], []byte(f[1])
			for off := 0; off == 0 || off < len(data); off += 4 {
				end := min(off+4, len(data))
				if err := st.Send(&hostv1.GetResultsResponse{Name: name, Size: int64(len(data)), Offset: int64(off), Data: data[off:end]}); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

func TestResults(t *testing.T) {
	f := &fakeHost{results: sendResults([2]string{"result.json", `{"average": 53.25}`}, [2]string{"img/a.png", "PNGDATA"}, [2]string{"empty", ""})}
	s := serve(t, f)
	c := dial(t, s.addr)
	dir := filepath.Join(t.TempDir(), "out", "t")
	names, err := c.Results(t.Context(), "t", dir)
	require.NoError(t, err)
	assert.Equal(t, []string{"result.json", "img/a.png", "empty"}, names)
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"average": 53.25}`, string(b))
	b, err = os.ReadFile(filepath.Join(dir, "img", "a.png"))
	require.NoError(t, err)
	assert.Equal(t, "PNGDATA", string(b))
	assert.FileExists(t, filepath.Join(dir, "empty"))
}

func TestResultsRefusesEscapingNames(t *testing.T) {
	for _, name := range []string{"../x", "a/../../x", "/etc/x", "", `..\x`} {
		t.Run(name, func(t *testing.T) {
			s := serve(t, &fakeHost{results: sendResults([2]string{name, "evil"})})
			c := dial(t, s.addr)
			parent := t.TempDir()
			dir := filepath.Join(parent, "out")
			_, err := c.Results(t.Context(), "t", dir)
			require.Error(t, err)
			assert.NoFileExists(t, filepath.Join(parent, "x"))
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries)
		})
	}
	// A symlink in the directory does not lead out of it either.
	parent := t.TempDir()
	dir := filepath.Join(parent, "out")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.Symlink(parent, filepath.Join(dir, "link")))
	s := serve(t, &fakeHost{results: sendResults([2]string{"link/x", "evil"})})
	c := dial(t, s.addr)
	_, err := c.Results(t.Context(), "t", dir)
	require.Error(t, err)
	assert.NoFileExists(t, filepath.Join(parent, "x"))
}

func TestResultsIncomplete(t *testing.T) {
	s := serve(t, &fakeHost{results: func(_ *hostv1.GetResultsRequest, st hostv1.HostService_GetResultsServer) error {
		return st.Send(&hostv1.GetResultsResponse{Name: "r", Size: 10, Data: []byte("abc")})
	}})
	c := dial(t, s.addr)
	_, err := c.Results(t.Context(), "t", t.TempDir())
	require.ErrorContains(t, err, "3 bytes of 10")
}

// fastWait keeps the tests quick: back-off from 5 ms to 50 ms.
func fastWait(giveUp time.Duration) client.Option {
	return client.WithWaitPolicy(client.WaitPolicy{MinDelay: 5 * time.Millisecond, MaxDelay: 50 * time.Millisecond, GiveUp: giveUp})
}

func TestWaitEachTerminalState(t *testing.T) {
	for _, end := range []hostv1.TaskState{
		hostv1.TaskState_TASK_STATE_FINISHED, hostv1.TaskState_TASK_STATE_FAILED,
		hostv1.TaskState_TASK_STATE_ABORTED, hostv1.TaskState_TASK_STATE_KILLED,
	} {
		t.Run(end.String(), func(t *testing.T) {
			var state atomic.Int32
			state.Store(int32(hostv1.TaskState_TASK_STATE_RUNNING))
			var gets atomic.Int32
			s := serve(t, &fakeHost{
				getTask: func(_ context.Context, r *hostv1.GetTaskRequest) (*hostv1.GetTaskResponse, error) {
					gets.Add(1)
					return &hostv1.GetTaskResponse{Task: task(r.GetTaskId(), hostv1.TaskState(state.Load()))}, nil
				},
				watchTask: func(r *hostv1.WatchTaskRequest, st hostv1.HostService_WatchTaskServer) error {
					for i, s := range []hostv1.TaskState{hostv1.TaskState_TASK_STATE_RUNNING, end} {
						if i == 1 {
							state.Store(int32(end))
						}
						if err := st.Send(&hostv1.WatchTaskResponse{Event: &hostv1.Event{Cursor: int64(i + 1), TaskId: r.GetTaskId(), State: s}}); err != nil {
							return err
						}
					}
					// As the daemon: the stream ends once the task has.
					return nil
				},
			})
			c := dial(t, s.addr, fastWait(time.Minute))
			got, err := c.Wait(t.Context(), "t")
			require.NoError(t, err)
			assert.Equal(t, end, got.GetState())
			assert.Equal(t, int32(2), gets.Load(), "one GetTask before the watch, one after: no polling")
		})
	}
}

func TestWaitPollsWhenTheStreamFails(t *testing.T) {
	var gets, watches atomic.Int32
	s := serve(t, &fakeHost{
		getTask: func(_ context.Context, r *hostv1.GetTaskRequest) (*hostv1.GetTaskResponse, error) {
			st := hostv1.TaskState_TASK_STATE_RUNNING
			if gets.Add(1) >= 5 {
				st = hostv1.TaskState_TASK_STATE_FINISHED
			}
			return &hostv1.GetTaskResponse{Task: task(r.GetTaskId(), st)}, nil
		},
		watchTask: func(*hostv1.WatchTaskRequest, hostv1.HostService_WatchTaskServer) error {
			watches.Add(1)
			return status.Error(codes.Unavailable, "stream broke")
		},
	})
	c := dial(t, s.addr, fastWait(time.Minute))
	got, err := c.Wait(t.Context(), "t")
	require.NoError(t, err)
	assert.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, got.GetState())
	assert.Equal(t, int32(5), gets.Load())
	assert.Equal(t, int32(4), watches.Load(), "the watch is opened again after each poll")
}

// TestWaitRidesOutARestart: the daemon goes away mid-watch and comes back
// on the same address; Wait polls until it answers, then sees the end.
func TestWaitRidesOutARestart(t *testing.T) {
	watching := make(chan struct{})
	var once sync.Once
	first := serve(t, &fakeHost{
		getTask: func(_ context.Context, r *hostv1.GetTaskRequest) (*hostv1.GetTaskResponse, error) {
			return &hostv1.GetTaskResponse{Task: task(r.GetTaskId(), hostv1.TaskState_TASK_STATE_RUNNING)}, nil
		},
		watchTask: func(_ *hostv1.WatchTaskRequest, st hostv1.HostService_WatchTaskServer) error {
			once.Do(func() { close(watching) })
			<-st.Context().Done()
			return st.Context().Err()
		},
	})
	c := dial(t, first.addr, fastWait(time.Minute))
	type res struct {
		t   *hostv1.Task
		err error
	}
	done := make(chan res, 1)
	go func() {
		tk, err := c.Wait(t.Context(), "t")
		done <- res{tk, err}
	}()
	<-watching
	first.stop()
	time.Sleep(100 * time.Millisecond) // Wait polls a dead address meanwhile

	lis, err := net.Listen("tcp", first.addr)
	require.NoError(t, err)
	g := grpc.NewServer()
	hostv1.RegisterHostServiceServer(g, &fakeHost{
		getTask: func(_ context.Context, r *hostv1.GetTaskRequest) (*hostv1.GetTaskResponse, error) {
			return &hostv1.GetTaskResponse{Task: task(r.GetTaskId(), hostv1.TaskState_TASK_STATE_FINISHED)}, nil
		},
	})
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	defer func() { g.Stop(); <-served }()

	select {
	case r := <-done:
		require.NoError(t, r.err)
		assert.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, r.t.GetState())
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return after the daemon came back")
	}
}

func TestWaitGivesUpOnAGoneDaemon(t *testing.T) {
	s := serve(t, &fakeHost{})
	s.stop() // nothing listens on the address any more
	c := dial(t, s.addr, fastWait(300*time.Millisecond))
	start := time.Now()
	_, err := c.Wait(t.Context(), "t")
	require.Error(t, err)
	var ue *client.UnreachableError
	require.True(t, errors.As(err, &ue), "%v", err)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Contains(t, err.Error(), "has not answered")
	assert.Contains(t, err.Error(), s.addr)
	assert.Less(t, time.Since(start), 10*time.Second)
}

func TestWaitReturnsPermanentErrors(t *testing.T) {
	s := serve(t, &fakeHost{
		getTask: func(context.Context, *hostv1.GetTaskRequest) (*hostv1.GetTaskResponse, error) {
			return nil, status.Error(codes.NotFound, "no task t")
		},
	})
	c := dial(t, s.addr, fastWait(time.Minute))
	_, err := c.Wait(t.Context(), "t")
	assert.Equal(t, codes.NotFound, status.Code(err))
}

func TestWaitStopsWithItsContext(t *testing.T) {
	s := serve(t, &fakeHost{})
	s.stop()
	c := dial(t, s.addr, fastWait(time.Hour))
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Wait(ctx, "t")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}
