package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
	"github.com/gtask/gtask/host/daemon"
)

// waitComputing waits until root's tree has n tasks, each RUNNING with a
// part being computed (its requestor is up), and returns it.
func waitComputing(ctx context.Context, t *testing.T, c hostv1.HostServiceClient, root string, n int) []*hostv1.Task {
	t.Helper()
	var tree []*hostv1.Task
	require.Eventually(t, func() bool {
		tree = treeOf(ctx, t, c, root)
		if len(tree) != n {
			return false
		}
		for _, task := range tree {
			if task.GetState() != hostv1.TaskState_TASK_STATE_RUNNING || task.GetProgress().GetComputing() == 0 {
				return false
			}
		}
		return true
	}, time.Minute, 50*time.Millisecond, "tree: %v", tree)
	return tree
}

// requireFamilyEnded checks that a call with the family token of task id,
// which has ended killed, is refused so.
func requireFamilyEnded(t *testing.T, c hostv1.HostServiceClient, family, id string) {
	t.Helper()
	_, err := c.GetTask(as(t.Context(), family), &hostv1.GetTaskRequest{TaskId: id})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	require.Equal(t, fmt.Sprintf("the family token of task %s is no longer valid: the task has ended (killed), "+
		"and a family token acts only while its task runs; use a user's token (GTASK_TOKEN) instead", id),
		status.Convert(err).Message())
}

// TestFamilyTokenEndsWithTask: a family token acts while its task runs
// and is refused, naming the task, once it has ended, after a restart
// too; so is one an older gtask stored (not deleted at the task's end).
func TestFamilyTokenEndsWithTask(t *testing.T) {
	dataDir := t.TempDir()
	s := serve(t, dataDir)
	c := s.client()
	ctx := as(t.Context(), s.token("alice"))

	resp, err := c.CreateTask(ctx, &hostv1.CreateTaskRequest{App: treeApp(t), ParamsJson: `{"hang": true}`})
	require.NoError(t, err)
	id := resp.GetTask().GetTaskId()
	waitComputing(ctx, t, c, id, 1)
	family := familyToken(t, dataDir, id)

	got, err := c.GetTask(as(t.Context(), family), &hostv1.GetTaskRequest{TaskId: id})
	require.NoError(t, err, "the family token of a running task")
	require.Equal(t, id, got.GetTask().GetTaskId())
	list, err := c.ListTasks(as(t.Context(), family), &hostv1.ListTasksRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetTasks(), 1)

	kresp, err := c.KillTask(ctx, &hostv1.KillTaskRequest{TaskId: id})
	require.NoError(t, err)
	require.Equal(t, []string{id}, kresp.GetKilledTaskIds())
	requireFamilyEnded(t, c, family, id)
	_, err = c.CreateTask(as(t.Context(), family), &hostv1.CreateTaskRequest{App: treeApp(t)})
	require.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	// A family token as an older gtask kept it, after its task ended.
	old, err := daemon.PutFamilyToken(s.d, "alice", id)
	require.NoError(t, err)
	requireFamilyEnded(t, c, old, id)

	// After a restart (which deletes the old one), both are refused alike;
	// other tokens still work.
	s.stop()
	s = serve(t, dataDir)
	c = s.client()
	requireFamilyEnded(t, c, family, id)
	requireFamilyEnded(t, c, old, id)
	_, err = c.GetTask(ctx, &hostv1.GetTaskRequest{TaskId: id})
	require.NoError(t, err)
	_, err = c.GetTask(as(t.Context(), "gtk_unknown"), &hostv1.GetTaskRequest{TaskId: id})
	require.Equal(t, "unknown token", status.Convert(err).Message())
}

// TestKillInterruptedByStop stops the daemon (Close) after a kill stored
// its intent and before it stored the end: the next start ends the
// tree KILLED, as the kill would have, and resumes none of it.
func TestKillInterruptedByStop(t *testing.T) {
	dataDir := t.TempDir()
	s := serve(t, dataDir)
	c := s.client()
	ctx := as(t.Context(), s.token("alice"))

	resp, err := c.CreateTask(ctx, &hostv1.CreateTaskRequest{App: treeApp(t), ParamsJson: `{"depth": 1, "hang": true}`})
	require.NoError(t, err)
	root := resp.GetTask().GetTaskId()
	tree := waitComputing(ctx, t, c, root, 2)
	child := tree[1].GetTaskId()
	family := familyToken(t, dataDir, root)

	reached, release := make(chan struct{}), make(chan struct{})
	daemon.AfterKillIntent(s.d, func() {
		close(reached)
		<-release
	})
	killErr := make(chan error, 1)
	go func() {
		_, err := c.KillTask(ctx, &hostv1.KillTaskRequest{TaskId: root})
		killErr <- err
	}()
	<-reached
	// Close does not wait for the kill (its context has ended): the store
	// closes under it.
	stopNow, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, s.d.Close(stopNow))
	close(release)
	require.Equal(t, codes.Unavailable, status.Code(<-killErr), "the kill, its daemon closed under it")
	s.stop()
	require.Empty(t, processesOf(t, dataDir), "processes left after Close")

	s = serve(t, dataDir)
	c = s.client()
	require.Empty(t, processesOf(t, dataDir), "the start runs a task it was killing")
	for _, id := range []string{root, child} {
		got, err := c.GetTask(ctx, &hostv1.GetTaskRequest{TaskId: id})
		require.NoError(t, err)
		task := got.GetTask()
		require.Equal(t, hostv1.TaskState_TASK_STATE_KILLED, task.GetState(), id)
		require.EqualValues(t, 1, task.GetStarts(), "%s resumed", id)
		want := "killed by alice"
		if id == child {
			want = fmt.Sprintf("its parent %s was killed", root)
		}
		require.Equal(t, want, task.GetReason())

		evs, err := watch(ctx, c, &hostv1.WatchTaskRequest{TaskId: id})
		require.NoError(t, err)
		var own []*hostv1.Event
		for _, ev := range evs {
			if ev.GetSeq() == 0 {
				own = append(own, ev)
			}
		}
		require.Equal(t, []string{"task_queued", "run_started", "task_killed", "task_ended"}, kindsOf(own), id)
		for _, ev := range own[2:] {
			require.Equal(t, want, ev.GetReason())
			require.Equal(t, hostv1.TaskState_TASK_STATE_KILLED, ev.GetState())
		}
	}
	requireFamilyEnded(t, c, family, root)
	kresp, err := c.KillTask(ctx, &hostv1.KillTaskRequest{TaskId: root})
	require.NoError(t, err)
	require.Empty(t, kresp.GetKilledTaskIds())
	_, err = c.CreateTask(ctx, &hostv1.CreateTaskRequest{App: treeApp(t), ParentId: root})
	require.Equal(t, codes.FailedPrecondition, status.Code(err), "%v", err)
}

// TestUploadSweep sweeps the uploads at times to come: an upload serves
// any number of tasks until its TTL, then it is gone, but not from the
// tasks that took it; files no record names go once old.
func TestUploadSweep(t *testing.T) {
	dataDir := t.TempDir()
	s := serve(t, dataDir) // the default TTL, 24 h
	c := s.client()
	ctx := as(t.Context(), s.token("alice"))
	uploads := filepath.Join(dataDir, "uploads")

	up := upload(ctx, t, c, "org2.csv", orgCSV(t, 2))
	want, err := os.ReadFile(orgCSV(t, 2))
	require.NoError(t, err)
	var ids []string
	for range 2 { // reusable
		resp, err := c.CreateTask(ctx, &hostv1.CreateTaskRequest{
			App: averageApp(t), ParamsJson: `{"column":"age"}`,
			Inputs: []*hostv1.Input{
				{Name: "a.csv", Source: &hostv1.Input_Path{Path: orgCSV(t, 1)}},
				{Name: "b.csv", Source: &hostv1.Input_UploadId{UploadId: up}},
			},
		})
		require.NoError(t, err)
		ids = append(ids, resp.GetTask().GetTaskId())
	}

	// Left by a crash: an old upload cut short, an old file without a
	// record; and a young one, maybe an upload about to be stored.
	long := time.Now().Add(-2 * daemon.DefaultUploadTTL)
	for _, name := range []string{"u-cut.part", "u-orphan", "u-young"} {
		path := filepath.Join(uploads, name)
		require.NoError(t, os.WriteFile(path, []byte("x"), 0o600))
		if name != "u-young" {
			require.NoError(t, os.Chtimes(path, long, long))
		}
	}
	n, err := daemon.SweepUploads(s.d, time.Now())
	require.NoError(t, err)
	require.Zero(t, n)
	requireFiles(t, uploads, up, "u-young")

	n, err = daemon.SweepUploads(s.d, time.Now().Add(daemon.DefaultUploadTTL+time.Minute))
	require.NoError(t, err)
	require.Equal(t, 1, n)
	requireFiles(t, uploads)
	_, err = c.CreateTask(ctx, &hostv1.CreateTaskRequest{App: treeApp(t),
		Inputs: []*hostv1.Input{{Name: "b.csv", Source: &hostv1.Input_UploadId{UploadId: up}}}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "inputs[0]: no upload "+up+" of yours: unknown, or removed (uploads are kept 24h0m0s after their upload): upload the file again")

	// The tasks that took it keep it.
	for _, id := range ids {
		staged, err := os.ReadFile(filepath.Join(dataDir, "staged", id, "b.csv"))
		require.NoError(t, err)
		require.Equal(t, want, staged)
		task := s.wait(ctx, id)
		require.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, task.GetState(), task.GetReason())
		out, err := results(ctx, c, id)
		require.NoError(t, err)
		require.JSONEq(t, `{"average": 53.25}`, string(out["result.json"]))
	}
}

// requireFiles checks the names of the files in dir.
func requireFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	require.ElementsMatch(t, names, got)
}

// TestUploadSweepRacesCreateTask sweeps an upload away while a
// CreateTask takes it: either the task is created, with its input whole,
// or CreateTask is refused; never a task without its input.
func TestUploadSweepRacesCreateTask(t *testing.T) {
	dataDir := t.TempDir()
	s := serve(t, dataDir)
	c := s.client()
	ctx := as(t.Context(), s.token("alice"))
	want, err := os.ReadFile(orgCSV(t, 1))
	require.NoError(t, err)

	staged := func() int {
		m, err := filepath.Glob(filepath.Join(dataDir, "staged", "*", "in.csv"))
		require.NoError(t, err)
		return len(m)
	}
	created, refused := 0, 0
	for i := range 8 {
		up := upload(ctx, t, c, "in.csv", orgCSV(t, 1))
		swept := make(chan error, 1)
		go func() {
			// Half of the sweeps wait until CreateTask has linked the
			// upload, to land between the link and the task's commit.
			for n, until := staged(), time.Now().Add(10*time.Second); i%2 == 1 && staged() == n && time.Now().Before(until); {
				time.Sleep(100 * time.Microsecond)
			}
			_, err := daemon.SweepUploads(s.d, time.Now().Add(2*daemon.DefaultUploadTTL))
			swept <- err
		}()
		resp, err := c.CreateTask(ctx, &hostv1.CreateTaskRequest{App: treeApp(t), ParamsJson: `{}`,
			Inputs: []*hostv1.Input{{Name: "in.csv", Source: &hostv1.Input_UploadId{UploadId: up}}}})
		require.NoError(t, <-swept)
		if err != nil {
			require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			refused++
			continue
		}
		created++
		id := resp.GetTask().GetTaskId()
		in, err := os.ReadFile(filepath.Join(dataDir, "staged", id, "in.csv"))
		require.NoError(t, err, "a task stored without its input")
		require.Equal(t, want, in)
	}
	t.Logf("created %d tasks, refused %d", created, refused)
	requireFiles(t, filepath.Join(dataDir, "uploads"))
	require.Equal(t, created, staged(), "a refused task's staged inputs are left")

	// The sweep lands, for sure, after CreateTask has linked the upload
	// and before it stores the task: refused, and nothing left.
	up := upload(ctx, t, c, "in.csv", orgCSV(t, 1))
	daemon.AfterStage(s.d, func() {
		n, err := daemon.SweepUploads(s.d, time.Now().Add(2*daemon.DefaultUploadTTL))
		assert.NoError(t, err)
		assert.Equal(t, 1, n)
		linked, _ := filepath.Glob(filepath.Join(dataDir, "staged", "*", "in.csv"))
		assert.Len(t, linked, created+1, "CreateTask has linked the upload")
	})
	_, err = c.CreateTask(ctx, &hostv1.CreateTaskRequest{App: treeApp(t), ParamsJson: `{}`,
		Inputs: []*hostv1.Input{{Name: "in.csv", Source: &hostv1.Input_UploadId{UploadId: up}}}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "no upload "+up)
	require.Equal(t, created, staged(), "a refused task's staged inputs are left")
}

// TestUploadTTL: the daemon's own sweeps (at Start, then periodically)
// remove an upload once its TTL has passed.
func TestUploadTTL(t *testing.T) {
	dataDir := t.TempDir()
	s := serveConfig(t, daemon.Config{DataDir: dataDir, UploadTTL: 20 * time.Millisecond})
	c := s.client()
	ctx := as(t.Context(), s.token("alice"))

	up := upload(ctx, t, c, "in.csv", orgCSV(t, 1))
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(dataDir, "uploads", up))
		return os.IsNotExist(err)
	}, time.Minute, 10*time.Millisecond, "the upload outlives its TTL")
	_, err := c.CreateTask(ctx, &hostv1.CreateTaskRequest{App: treeApp(t),
		Inputs: []*hostv1.Input{{Name: "in.csv", Source: &hostv1.Input_UploadId{UploadId: up}}}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	require.Contains(t, status.Convert(err).Message(), "no upload "+up)

	// Kept for ever with a negative TTL.
	s.stop()
	s = serveConfig(t, daemon.Config{DataDir: dataDir, UploadTTL: -1})
	up = upload(ctx, t, s.client(), "in.csv", orgCSV(t, 1))
	n, err := daemon.SweepUploads(s.d, time.Now().Add(1000*time.Hour))
	require.NoError(t, err)
	require.Zero(t, n)
	requireFiles(t, filepath.Join(dataDir, "uploads"), up)
}
