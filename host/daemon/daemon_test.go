package daemon_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
	"github.com/gtask/gtask/host/daemon"
)

// cacheDir is where the test apps are built, once for the whole run.
var cacheDir string

func TestMain(m *testing.M) {
	if dataDir := os.Getenv(childDaemonEnv); dataDir != "" {
		runChildDaemon(dataDir, os.Getenv(childCacheEnv)) // never returns
	}
	dir, err := os.MkdirTemp("", "gtask-daemon-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Paths of the test apps and inputs.
func averageApp(t *testing.T) string { return abs(t, "../../examples/average") }
func treeApp(t *testing.T) string    { return abs(t, "internal/treeapp") }
func orgCSV(t *testing.T, n int) string {
	return abs(t, fmt.Sprintf("../../examples/average/testdata/org%d.csv", n))
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	require.NoError(t, err)
	return a
}

// server is a daemon served over gRPC on a real socket.
type server struct {
	t       *testing.T
	dataDir string
	d       *daemon.Daemon
	srv     *grpc.Server
	conn    *grpc.ClientConn
	admin   string // the admin token, from the first start
	stopped bool
}

// serve opens a daemon over dataDir, serves it on 127.0.0.1:0 and
// starts it.
func serve(t *testing.T, dataDir string) *server { return serveLogged(t, dataDir, nil) }

// serveLogged is serve with the daemon's log going to logger.
func serveLogged(t *testing.T, dataDir string, logger *slog.Logger) *server {
	t.Helper()
	return serveConfig(t, daemon.Config{DataDir: dataDir, Logger: logger})
}

// serveConfig is serve with cfg, whose Slots (4 when 0), HostAddr and
// CacheDir it sets.
func serveConfig(t *testing.T, cfg daemon.Config) *server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if cfg.Slots == 0 {
		cfg.Slots = 4
	}
	cfg.HostAddr, cfg.CacheDir = lis.Addr().String(), cacheDir
	d, err := daemon.Open(t.Context(), cfg)
	require.NoError(t, err)
	dataDir := cfg.DataDir
	s := &server{t: t, dataDir: dataDir, d: d, srv: grpc.NewServer(), admin: d.AdminToken()}
	d.Register(s.srv)
	go s.srv.Serve(lis)
	require.NoError(t, d.Start(t.Context()))
	s.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(s.stop)
	return s
}

// stop closes the daemon, then the server. Safe twice.
func (s *server) stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	assert.NoError(s.t, s.d.Close(ctx))
	assert.NoError(s.t, s.d.Close(ctx), "a second Close")
	s.srv.Stop()
	s.conn.Close()
}

func (s *server) client() hostv1.HostServiceClient { return hostv1.NewHostServiceClient(s.conn) }

// as is a context whose calls carry token.
func as(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func (s *server) token(user string) string {
	s.t.Helper()
	resp, err := s.client().CreateToken(as(s.t.Context(), s.admin), &hostv1.CreateTokenRequest{User: user})
	require.NoError(s.t, err)
	return resp.GetToken()
}

// watch collects every event of a watch until it ends.
func watch(ctx context.Context, c hostv1.HostServiceClient, req *hostv1.WatchTaskRequest) ([]*hostv1.Event, error) {
	st, err := c.WatchTask(ctx, req)
	if err != nil {
		return nil, err
	}
	var evs []*hostv1.Event
	for {
		resp, err := st.Recv()
		if err == io.EOF {
			return evs, nil
		}
		if err != nil {
			return evs, err
		}
		evs = append(evs, resp.GetEvent())
	}
}

// wait watches task to its end and returns it.
func (s *server) wait(ctx context.Context, id string) *hostv1.Task {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	_, err := watch(ctx, s.client(), &hostv1.WatchTaskRequest{TaskId: id})
	require.NoError(s.t, err)
	resp, err := s.client().GetTask(ctx, &hostv1.GetTaskRequest{TaskId: id})
	require.NoError(s.t, err)
	return resp.GetTask()
}

// results reads a finished task's outputs, by name.
func results(ctx context.Context, c hostv1.HostServiceClient, id string) (map[string][]byte, error) {
	st, err := c.GetResults(ctx, &hostv1.GetResultsRequest{TaskId: id})
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	for {
		resp, err := st.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if int64(len(out[resp.GetName()])) != resp.GetOffset() {
			return nil, fmt.Errorf("%s: chunk at %d after %d bytes", resp.GetName(), resp.GetOffset(), len(out[resp.GetName()]))
		}
		out[resp.GetName()] = append(out[resp.GetName()], resp.GetData()...)
	}
}

func upload(ctx context.Context, t *testing.T, c hostv1.HostServiceClient, name, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	st, err := c.UploadInput(ctx)
	require.NoError(t, err)
	// Two messages: the name with the first bytes, then the rest.
	require.NoError(t, st.Send(&hostv1.UploadInputRequest{Name: name, Data: data[:10]}))
	require.NoError(t, st.Send(&hostv1.UploadInputRequest{Data: data[10:]}))
	resp, err := st.CloseAndRecv()
	require.NoError(t, err)
	require.Equal(t, int64(len(data)), resp.GetSize())
	return resp.GetUploadId()
}

func TestAverageByPathAndUpload(t *testing.T) {
	s := serve(t, t.TempDir())
	ctx := as(t.Context(), s.token("alice"))
	c := s.client()

	up := upload(ctx, t, c, "org2.csv", orgCSV(t, 2))
	for i, inputs := range [][]*hostv1.Input{
		{
			{Name: "org1.csv", Source: &hostv1.Input_Path{Path: orgCSV(t, 1)}},
			{Name: "org2.csv", Source: &hostv1.Input_Path{Path: orgCSV(t, 2)}},
		},
		{
			{Name: "a.csv", Source: &hostv1.Input_Path{Path: orgCSV(t, 1)}},
			{Name: "b.csv", Source: &hostv1.Input_UploadId{UploadId: up}},
		},
	} {
		noBackups := i == 1 // the run's policy, from the request
		resp, err := c.CreateTask(ctx, &hostv1.CreateTaskRequest{
			App: averageApp(t), ParamsJson: `{"column":"age"}`, Inputs: inputs, NoBackups: noBackups,
		})
		require.NoError(t, err)
		id := resp.GetTask().GetTaskId()
		require.Equal(t, "alice", resp.GetTask().GetOwner())

		task := s.wait(ctx, id)
		require.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, task.GetState(), task.GetReason())
		require.Equal(t, []string{"result.json"}, task.GetOutputs())
		require.Contains(t, task.GetRuns(), "requestor")
		require.EqualValues(t, 1, task.GetStarts())
		require.EqualValues(t, 2, task.GetProgress().GetDone())

		out, err := results(ctx, c, id)
		require.NoError(t, err)
		require.JSONEq(t, `{"average": 53.25}`, string(out["result.json"]))

		// The whole watch, then from a cursor in the middle: exactly the rest.
		all, err := watch(ctx, c, &hostv1.WatchTaskRequest{TaskId: id})
		require.NoError(t, err)
		require.Greater(t, len(all), 6)
		kinds := kindsOf(all)
		require.Equal(t, "task_queued", kinds[0])
		require.Equal(t, "run_started", kinds[1])
		require.Equal(t, "task_ended", kinds[len(kinds)-1])
		require.Contains(t, kinds, "task_finished")
		require.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, all[len(all)-1].GetState())
		require.Equal(t, "task_started", kinds[2])
		if noBackups {
			require.Contains(t, all[2].GetReason(), "no backups")
		} else {
			require.Contains(t, all[2].GetReason(), "backups after 2 times the median attempt (1s at least)")
		}
		requireIncreasing(t, all)
		mid := len(all) / 2
		rest, err := watch(ctx, c, &hostv1.WatchTaskRequest{TaskId: id, Cursor: all[mid].GetCursor()})
		require.NoError(t, err)
		require.Equal(t, cursorsOf(all[mid+1:]), cursorsOf(rest))
		// From the last event, or past every event stored: none, and the
		// watch ends.
		for _, cursor := range []int64{all[len(all)-1].GetCursor(), 1 << 40} {
			rest, err := watch(ctx, c, &hostv1.WatchTaskRequest{TaskId: id, Cursor: cursor})
			require.NoError(t, err)
			require.Empty(t, rest)
		}

		// The requestor's log, whole, from an offset, and followed.
		log := runLog(ctx, t, c, &hostv1.GetRunLogsRequest{TaskId: id, Run: "requestor"})
		require.NotEmpty(t, log)
		require.Equal(t, log[5:], runLog(ctx, t, c, &hostv1.GetRunLogsRequest{TaskId: id, Run: "requestor", Offset: 5}))
		require.Equal(t, log, runLog(ctx, t, c, &hostv1.GetRunLogsRequest{TaskId: id, Run: "requestor", Follow: true}))
	}

	list, err := c.ListTasks(ctx, &hostv1.ListTasksRequest{PageSize: 1})
	require.NoError(t, err)
	require.Len(t, list.GetTasks(), 1)
	require.NotEmpty(t, list.GetNextPageToken())
	list2, err := c.ListTasks(ctx, &hostv1.ListTasksRequest{PageSize: 1, PageToken: list.GetNextPageToken()})
	require.NoError(t, err)
	require.Len(t, list2.GetTasks(), 1)
	require.Empty(t, list2.GetNextPageToken())
	require.True(t, list.GetTasks()[0].GetCreateTime().AsTime().After(list2.GetTasks()[0].GetCreateTime().AsTime()), "newest first")
}

func runLog(ctx context.Context, t *testing.T, c hostv1.HostServiceClient, req *hostv1.GetRunLogsRequest) []byte {
	t.Helper()
	st, err := c.GetRunLogs(ctx, req)
	require.NoError(t, err)
	var b bytes.Buffer
	for {
		resp, err := st.Recv()
		if err == io.EOF {
			return b.Bytes()
		}
		require.NoError(t, err)
		require.Equal(t, req.GetOffset()+int64(b.Len()), resp.GetOffset())
		b.Write(resp.GetData())
	}
}

func kindsOf(evs []*hostv1.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetKind()
	}
	return out
}

func cursorsOf(evs []*hostv1.Event) []int64 {
	out := make([]int64, len(evs))
	for i, ev := range evs {
		out[i] = ev.GetCursor()
	}
	return out
}

func requireIncreasing(t *testing.T, evs []*hostv1.Event) {
	t.Helper()
	for i := 1; i < len(evs); i++ {
		require.Greater(t, evs[i].GetCursor(), evs[i-1].GetCursor(), "event %d", i)
	}
}

func TestAuth(t *testing.T) {
	s := serve(t, t.TempDir())
	c := s.client()
	alice, bob := s.token("alice"), s.token("bob")

	_, err := c.ListTasks(t.Context(), &hostv1.ListTasksRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "no token: %v", err)
	_, err = c.ListTasks(as(t.Context(), "gtk_wrong"), &hostv1.ListTasksRequest{})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "a wrong token: %v", err)

	resp, err := c.CreateTask(as(t.Context(), alice), &hostv1.CreateTaskRequest{App: treeApp(t), ParamsJson: `{}`})
	require.NoError(t, err)
	id := resp.GetTask().GetTaskId()
	s.wait(as(t.Context(), alice), id)

	_, err = c.GetTask(as(t.Context(), bob), &hostv1.GetTaskRequest{TaskId: id})
	require.Equal(t, codes.NotFound, status.Code(err), "another user's task: %v", err)
	_, err = c.KillTask(as(t.Context(), bob), &hostv1.KillTaskRequest{TaskId: id})
	require.Equal(t, codes.NotFound, status.Code(err), "another user's task: %v", err)
	list, err := c.ListTasks(as(t.Context(), bob), &hostv1.ListTasksRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetTasks())
	_, err = c.CreateToken(as(t.Context(), alice), &hostv1.CreateTokenRequest{User: "mallory", Admin: true})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "a user's CreateToken: %v", err)
	// The admin sees it.
	_, err = c.GetTask(as(t.Context(), s.admin), &hostv1.GetTaskRequest{TaskId: id})
	require.NoError(t, err)

	// Uploads are their user's.
	up := upload(as(t.Context(), bob), t, c, "x.csv", orgCSV(t, 1))
	_, err = c.CreateTask(as(t.Context(), alice), &hostv1.CreateTaskRequest{App: averageApp(t),
		Inputs: []*hostv1.Input{{Name: "x.csv", Source: &hostv1.Input_UploadId{UploadId: up}}}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "another user's upload: %v", err)

	for _, req := range []*hostv1.CreateTaskRequest{
		{},
		{App: treeApp(t), ParamsJson: "{"},
		{App: "/no/such/app"},
		{App: treeApp(t), ParentId: "t-nosuchtask"},
		{App: treeApp(t), Inputs: []*hostv1.Input{{Name: "../x", Source: &hostv1.Input_Path{Path: orgCSV(t, 1)}}}},
		{App: treeApp(t), Inputs: []*hostv1.Input{{Name: "x", Source: &hostv1.Input_Path{Path: "/no/such/file"}}}},
		{App: treeApp(t), Inputs: []*hostv1.Input{{Name: "x", Source: &hostv1.Input_Path{Path: "/"}}}},
		{App: treeApp(t), Inputs: []*hostv1.Input{
			{Name: "x", Source: &hostv1.Input_Path{Path: orgCSV(t, 1)}},
			{Name: "x", Source: &hostv1.Input_Path{Path: orgCSV(t, 2)}},
		}},
	} {
		_, err := c.CreateTask(as(t.Context(), alice), req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v: %v", req, err)
	}
	for _, run := range []string{"../../gtask.db", "provider-../x", "requestor.log", "x"} {
		st, err := c.GetRunLogs(as(t.Context(), alice), &hostv1.GetRunLogsRequest{TaskId: id, Run: run})
		if err == nil {
			_, err = st.Recv()
		}
		require.Equal(t, codes.InvalidArgument, status.Code(err), "run %q: %v", run, err)
	}
	st, err := c.GetResults(as(t.Context(), alice), &hostv1.GetResultsRequest{TaskId: id})
	require.NoError(t, err)
	_, err = st.Recv()
	require.NoError(t, err, "a finished task's results")
}

// TestKillTree kills a tree of depth 3 (and a quick child that finished)
// while its parts hang.
func TestKillTree(t *testing.T) {
	s := serve(t, t.TempDir())
	c := s.client()
	alice := s.token("alice")
	ctx := as(t.Context(), alice)

	resp, err := c.CreateTask(ctx, &hostv1.CreateTaskRequest{
		App: treeApp(t), ParamsJson: `{"depth": 2, "hang": true, "quick_child": true}`,
	})
	require.NoError(t, err)
	root := resp.GetTask().GetTaskId()

	// Wait for the tree: root, its hanging child and its quick child,
	// and the grandchild, each computing; the quick one finished.
	var tree []*hostv1.Task
	require.Eventually(t, func() bool {
		tree = treeOf(ctx, t, c, root)
		if len(tree) != 4 {
			return false
		}
		finished := 0
		for _, task := range tree {
			switch {
			case task.GetState() == hostv1.TaskState_TASK_STATE_FINISHED:
				finished++
			case task.GetState() != hostv1.TaskState_TASK_STATE_RUNNING || task.GetProgress().GetComputing() == 0:
				return false
			}
		}
		return finished == 1
	}, time.Minute, 100*time.Millisecond, "tree: %v", tree)
	var quick string
	var live []string
	for _, task := range tree {
		if task.GetState() == hostv1.TaskState_TASK_STATE_FINISHED {
			quick = task.GetTaskId()
		} else {
			live = append(live, task.GetTaskId())
		}
	}

	// A family token cannot reach outside its tree.
	other, err := c.CreateTask(ctx, &hostv1.CreateTaskRequest{App: treeApp(t), ParamsJson: `{}`})
	require.NoError(t, err)
	family := familyToken(t, s.dataDir, tree[1].GetTaskId())
	_, err = c.GetTask(as(t.Context(), family), &hostv1.GetTaskRequest{TaskId: root})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err = c.GetTask(as(t.Context(), family), &hostv1.GetTaskRequest{TaskId: other.GetTask().GetTaskId()})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	_, err = c.GetTask(as(t.Context(), family), &hostv1.GetTaskRequest{TaskId: tree[1].GetTaskId()})
	require.NoError(t, err)

	// Watch the tree while it dies.
	type watched struct {
		evs []*hostv1.Event
		err error
	}
	watchDone := make(chan watched, 1)
	go func() {
		evs, err := watch(ctx, c, &hostv1.WatchTaskRequest{TaskId: root, Tree: true})
		watchDone <- watched{evs, err}
	}()
	// And the root alone, from the start and from a cursor past every
	// event there will be: both end with it.
	rootDone := make(chan watched, 2)
	for _, cursor := range []int64{0, 1 << 40} {
		go func() {
			evs, err := watch(ctx, c, &hostv1.WatchTaskRequest{TaskId: root, Cursor: cursor})
			rootDone <- watched{evs, err}
		}()
	}

	// Follow the root's requestor log while it dies.
	logDone := make(chan error, 1)
	logs, err := c.GetRunLogs(ctx, &hostv1.GetRunLogsRequest{TaskId: root, Run: "requestor", Follow: true})
	require.NoError(t, err)
	go func() {
		for {
			if _, err := logs.Recv(); err != nil {
				logDone <- err
				return
			}
		}
	}()

	kresp, err := c.KillTask(ctx, &hostv1.KillTaskRequest{TaskId: root})
	require.NoError(t, err)
	require.ElementsMatch(t, live, kresp.GetKilledTaskIds())
	require.Equal(t, io.EOF, <-logDone, "a followed log ends with its task")
	require.Empty(t, processesOf(t, s.dataDir), "processes left after the kill")

	for _, task := range treeOf(ctx, t, c, root) {
		if task.GetTaskId() == quick {
			require.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, task.GetState())
			continue
		}
		require.Equal(t, hostv1.TaskState_TASK_STATE_KILLED, task.GetState(), task.GetTaskId())
		if task.GetTaskId() == root {
			require.Equal(t, "killed by alice", task.GetReason())
		} else {
			require.Equal(t, fmt.Sprintf("its parent %s was killed", task.GetParentId()), task.GetReason())
		}
	}
	w := <-watchDone
	require.NoError(t, w.err)
	requireIncreasing(t, w.evs)
	killedEvents := 0
	for _, ev := range w.evs {
		if ev.GetKind() == "task_killed" {
			killedEvents++
		}
	}
	require.Equal(t, 3, killedEvents)
	for range 2 {
		w := <-rootDone
		require.NoError(t, w.err)
		if len(w.evs) > 0 {
			requireIncreasing(t, w.evs)
			require.Equal(t, "task_ended", w.evs[len(w.evs)-1].GetKind())
			require.Equal(t, hostv1.TaskState_TASK_STATE_KILLED, w.evs[len(w.evs)-1].GetState())
		}
	}

	// A second kill kills nothing; a child of a killed task is refused.
	kresp, err = c.KillTask(ctx, &hostv1.KillTaskRequest{TaskId: root})
	require.NoError(t, err)
	require.Empty(t, kresp.GetKilledTaskIds())
	_, err = c.CreateTask(ctx, &hostv1.CreateTaskRequest{App: treeApp(t), ParentId: root})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	_, err = c.GetResults(ctx, &hostv1.GetResultsRequest{TaskId: root})
	if err == nil {
		var st grpc.ServerStreamingClient[hostv1.GetResultsResponse]
		st, err = c.GetResults(ctx, &hostv1.GetResultsRequest{TaskId: root})
		require.NoError(t, err)
		_, err = st.Recv()
	}
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
	s.wait(ctx, other.GetTask().GetTaskId())
}

// treeOf lists root's tree, parents first.
func treeOf(ctx context.Context, t *testing.T, c hostv1.HostServiceClient, root string) []*hostv1.Task {
	t.Helper()
	var out []*hostv1.Task
	ids := []string{root}
	for len(ids) > 0 {
		resp, err := c.GetTask(ctx, &hostv1.GetTaskRequest{TaskId: ids[0]})
		require.NoError(t, err)
		ids = append(ids[1:], resp.GetTask().GetChildIds()...)
		out = append(out, resp.GetTask())
	}
	return out
}

// familyToken reads the family token a task's requestor got, from its
// environment.
func familyToken(t *testing.T, dataDir, task string) string {
	t.Helper()
	for _, pid := range processesOf(t, dataDir) {
		env, err := os.ReadFile(filepath.Join("/proc", pid, "environ"))
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if !strings.Contains(string(cmd), filepath.Join("tasks", task, "requestor")) {
			continue
		}
		for _, kv := range strings.Split(string(env), "\x00") {
			if v, ok := strings.CutPrefix(kv, daemon.EnvFamilyToken+"="); ok {
				return v
			}
		}
	}
	t.Fatalf("no requestor process of task %s", task)
	return ""
}

// processesOf lists the processes whose command line mentions dataDir.
func processesOf(t *testing.T, dataDir string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []string
	for _, e := range ents {
		if strings.Trim(e.Name(), "0123456789") != "" {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmd, []byte(dataDir)) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// TestRestart closes the daemon in the middle of a task and opens it
// again over the same data dir: the task resumes and finishes, and its
// events are all there.
func TestRestart(t *testing.T) {
	dataDir := t.TempDir()
	s := serve(t, dataDir)
	admin := s.admin
	require.NotEmpty(t, admin)
	ctx := as(t.Context(), admin)

	resp, err := s.client().CreateTask(ctx, &hostv1.CreateTaskRequest{
		App: treeApp(t), ParamsJson: `{"parts": 6, "sleep_ms": 300}`, Providers: 1,
	})
	require.NoError(t, err)
	id := resp.GetTask().GetTaskId()

	// Close once the first part is verified.
	wctx, cancel := context.WithCancel(ctx)
	st, err := s.client().WatchTask(wctx, &hostv1.WatchTaskRequest{TaskId: id})
	require.NoError(t, err)
	for {
		ev, err := st.Recv()
		require.NoError(t, err)
		if ev.GetEvent().GetKind() == "subtask_verified" {
			break
		}
	}
	cancel()
	s.stop()
	require.Empty(t, processesOf(t, dataDir), "processes left after Close")

	s = serve(t, dataDir)
	require.Empty(t, s.AdminToken(), "an admin token on the second open")
	task := s.wait(ctx, id)
	require.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, task.GetState(), task.GetReason())
	require.EqualValues(t, 2, task.GetStarts())
	out, err := results(ctx, s.client(), id)
	require.NoError(t, err)
	require.JSONEq(t, `{"sum": 55}`, string(out["result.json"]))

	evs, err := watch(ctx, s.client(), &hostv1.WatchTaskRequest{TaskId: id})
	require.NoError(t, err)
	requireIncreasing(t, evs)
	kinds := kindsOf(evs)
	var own []string // the daemon's events
	for _, ev := range evs {
		if ev.GetSeq() == 0 {
			own = append(own, ev.GetKind())
		}
	}
	require.Equal(t, []string{"task_queued", "run_started", "run_resumed", "task_ended"}, own)
	require.Equal(t, 6, count(kinds, "subtask_verified")-count(kinds, "compute_failed"), kinds)
	// Each run's seq has no gap; the restart may make one (what the
	// stopped run said is not stored), but seq never repeats.
	var seq int64
	for _, ev := range evs {
		if ev.GetSeq() != 0 {
			require.Greater(t, ev.GetSeq(), seq, "%s", ev.GetKind())
			seq = ev.GetSeq()
		}
	}
	resumed := slices.Index(kinds, "run_resumed")
	for _, run := range [][]*hostv1.Event{evs[:resumed], evs[resumed:]} {
		var last int64
		for _, ev := range run {
			if ev.GetSeq() == 0 {
				continue
			}
			if last != 0 {
				require.Equal(t, last+1, ev.GetSeq(), "%s after seq %d", ev.GetKind(), last)
			}
			last = ev.GetSeq()
		}
	}
}

func count(kinds []string, kind string) int {
	n := 0
	for _, k := range kinds {
		if k == kind {
			n++
		}
	}
	return n
}

// AdminToken is the second open's admin token.
func (s *server) AdminToken() string { return s.d.AdminToken() }

func TestTokenCreateOffline(t *testing.T) {
	dataDir := t.TempDir()
	d, err := daemon.Open(t.Context(), daemon.Config{DataDir: dataDir, CacheDir: cacheDir})
	require.NoError(t, err)
	require.NotEmpty(t, d.AdminToken())
	tok, err := d.CreateToken("carol", false)
	require.NoError(t, err)
	require.NoError(t, d.Close(t.Context()))
	require.NoError(t, d.Close(t.Context()))

	s := serve(t, dataDir)
	list, err := s.client().ListTasks(as(t.Context(), tok), &hostv1.ListTasksRequest{})
	require.NoError(t, err)
	require.Empty(t, list.GetTasks())
	// Stored hashed only.
	raw, err := os.ReadFile(filepath.Join(dataDir, "gtask.db"))
	require.NoError(t, err)
	require.False(t, bytes.Contains(raw, []byte(tok)))

	// Once the daemon is closing, calls are UNAVAILABLE.
	require.NoError(t, s.d.Close(t.Context()))
	_, err = s.client().ListTasks(as(t.Context(), tok), &hostv1.ListTasksRequest{})
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	_, err = s.client().CreateTask(as(t.Context(), tok), &hostv1.CreateTaskRequest{App: treeApp(t)})
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}
