package requestor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	taskapipb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/taskapi"
)

func assertProto(t *testing.T, want, got proto.Message) {
	t.Helper()
	assert.True(t, proto.Equal(want, got), "want\n%v\ngot\n%v", prototext.Format(want), prototext.Format(got))
}

func requireCode(t *testing.T, want codes.Code, err error) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	require.True(t, ok, "want a status error, got %v", err)
	require.Equal(t, want, st.Code(), "status: %v", err)
	return st
}

func TestCreateTask(t *testing.T) {
	type args struct {
		taskID string
		max    int
		params json.RawMessage
	}
	tests := []struct {
		name      string
		req       *taskapipb.CreateTaskRequest
		wantArgs  args
		task      requestor.Task
		wantReply *taskapipb.CreateTaskReply
	}{
		{
			name:     "everything set",
			req:      &taskapipb.CreateTaskRequest{TaskId: "t1", MaxSubtasksCount: 3, TaskParamsJson: `{"frames": [1, 2]}`},
			wantArgs: args{"t1", 3, json.RawMessage(`{"frames": [1, 2]}`)},
			task:     requestor.Task{EnvID: "docker_cpu", Prerequisites: json.RawMessage(`{"image":"golem/blender","tag":"1.0"}`), MinMemoryMiB: 512},
			wantReply: &taskapipb.CreateTaskReply{
				EnvId:             "docker_cpu",
				PrerequisitesJson: `{"image":"golem/blender","tag":"1.0"}`,
				InfRequirements:   &taskapipb.Infrastructure{MinMemoryMib: 512},
			},
		},
		{
			name:      "no params, no limit, no prerequisites",
			req:       &taskapipb.CreateTaskRequest{TaskId: "t2"},
			wantArgs:  args{"t2", 0, nil},
			task:      requestor.Task{EnvID: "docker_gpu"},
			wantReply: &taskapipb.CreateTaskReply{EnvId: "docker_gpu", InfRequirements: &taskapipb.Infrastructure{}},
		},
		{
			name:      "empty prerequisites are none",
			req:       &taskapipb.CreateTaskRequest{TaskId: "t3", TaskParamsJson: "null"},
			wantArgs:  args{"t3", 0, json.RawMessage("null")},
			task:      requestor.Task{EnvID: "x", Prerequisites: json.RawMessage{}, MinMemoryMiB: 0.5},
			wantReply: &taskapipb.CreateTaskReply{EnvId: "x", InfRequirements: &taskapipb.Infrastructure{MinMemoryMib: 0.5}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got args
			h := &fakeHandler{createTask: func(_ context.Context, taskID string, max int, params json.RawMessage) (requestor.Task, error) {
				got = args{taskID, max, params}
				return tt.task, nil
			}}
			hs := start(t, h)
			reply, err := hs.client.CreateTask(callCtx(t), tt.req)
			require.NoError(t, err)
			assert.Equal(t, tt.wantArgs, got)
			if tt.wantArgs.params == nil {
				assert.Nil(t, got.params, "empty task_params_json reaches the app as nil")
			}
			assertProto(t, tt.wantReply, reply)
		})
	}
}

func TestNextSubtask(t *testing.T) {
	tests := []struct {
		name      string
		subtask   *requestor.Subtask
		wantReply *taskapipb.NextSubtaskReply
	}{
		{
			name:    "a subtask",
			subtask: &requestor.Subtask{Params: json.RawMessage(`{"frame":7}`), Resources: []string{"scene.blend", "tex/a.png"}},
			wantReply: &taskapipb.NextSubtaskReply{SubtaskOneof: &taskapipb.NextSubtaskReply_Subtask{Subtask: &taskapipb.SubtaskReply{
				SubtaskParamsJson: `{"frame":7}`,
				Resources:         []string{"scene.blend", "tex/a.png"},
			}}},
		},
		{
			name:    "a subtask without params or resources",
			subtask: &requestor.Subtask{},
			wantReply: &taskapipb.NextSubtaskReply{SubtaskOneof: &taskapipb.NextSubtaskReply_Subtask{
				Subtask: &taskapipb.SubtaskReply{},
			}},
		},
		{
			name:      "nothing for this node",
			subtask:   nil,
			wantReply: &taskapipb.NextSubtaskReply{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			h := &fakeHandler{nextSubtask: func(_ context.Context, taskID, subtaskID, nodeID string) (*requestor.Subtask, error) {
				got = []string{taskID, subtaskID, nodeID}
				return tt.subtask, nil
			}}
			hs := start(t, h)
			reply, err := hs.client.NextSubtask(callCtx(t), &taskapipb.NextSubtaskRequest{TaskId: "t1", SubtaskId: "s1", OpaqueNodeId: "node-9"})
			require.NoError(t, err)
			assert.Equal(t, []string{"t1", "s1", "node-9"}, got)
			assertProto(t, tt.wantReply, reply)
			if tt.subtask == nil {
				assert.Nil(t, reply.GetSubtaskOneof(), "the oneof stays unset")
			}
		})
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		verdict  requestor.Verdict
		reason   string
		want     taskapipb.VerifyReply_VerifyResult
		wantCode codes.Code
	}{
		{requestor.Success, "all pixels match", taskapipb.VerifyReply_SUCCESS, codes.OK},
		{requestor.Failure, "frame is black", taskapipb.VerifyReply_FAILURE, codes.OK},
		{requestor.AwaitingData, "need the neighbours", taskapipb.VerifyReply_AWAITING_DATA, codes.OK},
		{requestor.Inconclusive, "", taskapipb.VerifyReply_INCONCLUSIVE, codes.OK},
		{requestor.Verdict(0), "forgot to decide", 0, codes.Internal},
		{requestor.Verdict(99), "", 0, codes.Internal},
		{requestor.Verdict(-1), "", 0, codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.verdict.String(), func(t *testing.T) {
			var got []string
			h := &fakeHandler{verify: func(_ context.Context, taskID, subtaskID string) (requestor.Verdict, string, error) {
				got = []string{taskID, subtaskID}
				return tt.verdict, tt.reason, nil
			}}
			hs := start(t, h)
			reply, err := hs.client.Verify(callCtx(t), &taskapipb.VerifyRequest{TaskId: "t1", SubtaskId: "s1"})
			assert.Equal(t, []string{"t1", "s1"}, got)
			if tt.wantCode != codes.OK {
				st := requireCode(t, tt.wantCode, err)
				assert.Contains(t, st.Message(), "app returned no verdict")
				assert.Nil(t, reply, "never a reply that reads as SUCCESS")
				return
			}
			require.NoError(t, err)
			assertProto(t, &taskapipb.VerifyReply{Result: tt.want, Reason: tt.reason}, reply)
		})
	}
}

func TestDiscardSubtasks(t *testing.T) {
	tests := []struct {
		name    string
		ids     []string
		answer  []string
		wantIDs []string
	}{
		{"some, with a dependant", []string{"s1", "s2"}, []string{"s2", "s1", "s3"}, []string{"s2", "s1", "s3"}},
		{"empty list answers empty", nil, nil, nil},
		{"nothing discarded", []string{"s1"}, []string{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotTask string
			var gotIDs []string
			called := false
			h := &fakeHandler{discardSubtasks: func(_ context.Context, taskID string, ids []string) ([]string, error) {
				called = true
				gotTask, gotIDs = taskID, ids
				return tt.answer, nil
			}}
			hs := start(t, h)
			reply, err := hs.client.DiscardSubtasks(callCtx(t), &taskapipb.DiscardSubtasksRequest{TaskId: "t1", SubtaskIds: tt.ids})
			require.NoError(t, err)
			require.True(t, called, "an empty list still reaches the app (it answers NOT_FOUND for an unknown task)")
			assert.Equal(t, "t1", gotTask)
			assert.ElementsMatch(t, tt.ids, gotIDs)
			assertProto(t, &taskapipb.DiscardSubtasksReply{DiscardedSubtaskIds: tt.wantIDs}, reply)
		})
	}
}

func TestRunBenchmark(t *testing.T) {
	for _, score := range []float64{0, 123.5, 1e6} {
		t.Run(fmt.Sprint(score), func(t *testing.T) {
			hs := start(t, &fakeHandler{runBenchmark: func(context.Context) (float64, error) { return score, nil }})
			reply, err := hs.client.RunBenchmark(callCtx(t), &taskapipb.RunBenchmarkRequest{})
			require.NoError(t, err)
			assertProto(t, &taskapipb.RunBenchmarkReply{Score: float32(score)}, reply)
		})
	}
}

func TestHasPendingSubtasks(t *testing.T) {
	for _, pending := range []bool{true, false} {
		t.Run(fmt.Sprint(pending), func(t *testing.T) {
			var got string
			hs := start(t, &fakeHandler{hasPendingSubtasks: func(_ context.Context, taskID string) (bool, error) {
				got = taskID
				return pending, nil
			}})
			reply, err := hs.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t1"})
			require.NoError(t, err)
			assert.Equal(t, "t1", got)
			assertProto(t, &taskapipb.HasPendingSubtasksReply{HasPendingSubtasks: pending}, reply)
		})
	}
}

func TestAbortTaskAndSubtask(t *testing.T) {
	var gotTask string
	var gotSub []string
	hs := start(t, &fakeHandler{
		abortTask: func(_ context.Context, taskID string) error { gotTask = taskID; return nil },
		abortSubtask: func(_ context.Context, taskID, subtaskID string) error {
			gotSub = []string{taskID, subtaskID}
			return nil
		},
	})
	reply, err := hs.client.AbortTask(callCtx(t), &taskapipb.AbortTaskRequest{TaskId: "t1"})
	require.NoError(t, err)
	assertProto(t, &taskapipb.AbortTaskReply{}, reply)
	assert.Equal(t, "t1", gotTask)

	sreply, err := hs.client.AbortSubtask(callCtx(t), &taskapipb.AbortSubtaskRequest{TaskId: "t2", SubtaskId: "s2"})
	require.NoError(t, err)
	assertProto(t, &taskapipb.AbortSubtaskReply{}, sreply)
	assert.Equal(t, []string{"t2", "s2"}, gotSub)
}

func TestBadRepliesAreInternal(t *testing.T) {
	tests := []struct {
		name    string
		h       *fakeHandler
		call    func(ctx context.Context, c taskapipb.RequestorAppClient) error
		wantMsg string
	}{
		{
			name: "prerequisites not JSON",
			h: &fakeHandler{createTask: func(context.Context, string, int, json.RawMessage) (requestor.Task, error) {
				return requestor.Task{EnvID: "docker_cpu", Prerequisites: json.RawMessage(`{"image":`)}, nil
			}},
			call: func(ctx context.Context, c taskapipb.RequestorAppClient) error {
				_, err := c.CreateTask(ctx, &taskapipb.CreateTaskRequest{TaskId: "t1"})
				return err
			},
			wantMsg: "prerequisites_json: is not valid JSON",
		},
		{
			name: "subtask params not JSON",
			h: &fakeHandler{nextSubtask: func(context.Context, string, string, string) (*requestor.Subtask, error) {
				return &requestor.Subtask{Params: json.RawMessage(`frame=7`)}, nil
			}},
			call: func(ctx context.Context, c taskapipb.RequestorAppClient) error {
				_, err := c.NextSubtask(ctx, &taskapipb.NextSubtaskRequest{TaskId: "t1", SubtaskId: "s1", OpaqueNodeId: "n"})
				return err
			},
			wantMsg: "subtask_params_json: is not valid JSON",
		},
		{
			name: "subtask params with trailing garbage",
			h: &fakeHandler{nextSubtask: func(context.Context, string, string, string) (*requestor.Subtask, error) {
				return &requestor.Subtask{Params: json.RawMessage(`{} {}`)}, nil
			}},
			call: func(ctx context.Context, c taskapipb.RequestorAppClient) error {
				_, err := c.NextSubtask(ctx, &taskapipb.NextSubtaskRequest{TaskId: "t1", SubtaskId: "s1", OpaqueNodeId: "n"})
				return err
			},
			wantMsg: "byte offset 4",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := start(t, tt.h)
			st := requireCode(t, codes.Internal, tt.call(callCtx(t), hs.client))
			assert.Contains(t, st.Message(), tt.wantMsg)
		})
	}
}

func TestHandlerErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode codes.Code
		wantMsg  string
	}{
		{"unknown task", fmt.Errorf("task %q: %w", "t1", requestor.ErrUnknownTask), codes.NotFound, `task "t1": unknown task`},
		{"unknown subtask", fmt.Errorf("subtask %q: %w", "s1", requestor.ErrUnknownSubtask), codes.NotFound, `subtask "s1": unknown subtask`},
		{"task exists", fmt.Errorf("task %q: %w", "t1", requestor.ErrTaskExists), codes.AlreadyExists, `task "t1": task already exists`},
		{"subtask exists", fmt.Errorf("subtask %q: %w", "s1", requestor.ErrSubtaskExists), codes.AlreadyExists, `subtask "s1": subtask already exists`},
		{"invalid params", fmt.Errorf("frames: %w", requestor.ErrInvalidParams), codes.InvalidArgument, "frames: invalid parameters"},
		{"task aborted", fmt.Errorf("task %q: %w", "t1", requestor.ErrTaskAborted), codes.FailedPrecondition, `task "t1": task was aborted`},
		{"wrong state", fmt.Errorf("subtask %q is verified: %w", "s1", requestor.ErrWrongState), codes.FailedPrecondition, `subtask "s1" is verified: not allowed in this state`},
		{"bare sentinel", requestor.ErrUnknownTask, codes.NotFound, "unknown task"},
		{"field error", &taskapi.FieldError{Field: "frames", Reason: "must not be empty"}, codes.InvalidArgument, "frames: must not be empty"},
		{"wrapped field error", fmt.Errorf("params: %w", &taskapi.FieldError{Field: "scale", Reason: "too big"}), codes.InvalidArgument, "params: scale: too big"},
		{"cancelled", fmt.Errorf("verifying: %w", context.Canceled), codes.Canceled, "verifying: context canceled"},
		{"deadline", fmt.Errorf("verifying: %w", context.DeadlineExceeded), codes.DeadlineExceeded, "verifying: context deadline exceeded"},
		{"status error", status.Error(codes.Unavailable, "shutting down"), codes.Unavailable, "shutting down"},
		{"plain error", errors.New("disk full"), codes.Internal, "disk full"},
		{"wrapped plain error", fmt.Errorf("writing %s: %w", "x", errors.New("disk full")), codes.Internal, "writing x: disk full"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := start(t, &fakeHandler{hasPendingSubtasks: func(context.Context, string) (bool, error) { return true, tt.err }})
			_, err := hs.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t1"})
			st := requireCode(t, tt.wantCode, err)
			assert.Equal(t, tt.wantMsg, st.Message())
		})
	}
}

// TestEveryRPCPassesErrors checks each adapter, not only one, hands the
// handler's error on.
func TestEveryRPCPassesErrors(t *testing.T) {
	fail := fmt.Errorf("task %q: %w", "t1", requestor.ErrTaskAborted)
	h := &fakeHandler{
		createTask: func(context.Context, string, int, json.RawMessage) (requestor.Task, error) {
			return requestor.Task{EnvID: "x"}, fail
		},
		nextSubtask: func(context.Context, string, string, string) (*requestor.Subtask, error) {
			return &requestor.Subtask{}, fail
		},
		verify: func(context.Context, string, string) (requestor.Verdict, string, error) {
			return requestor.Success, "", fail
		},
		discardSubtasks:    func(context.Context, string, []string) ([]string, error) { return []string{"s1"}, fail },
		runBenchmark:       func(context.Context) (float64, error) { return 1, fail },
		hasPendingSubtasks: func(context.Context, string) (bool, error) { return true, fail },
		abortTask:          func(context.Context, string) error { return fail },
		abortSubtask:       func(context.Context, string, string) error { return fail },
	}
	hs := start(t, h)
	for name, call := range allCalls("t1") {
		t.Run(name, func(t *testing.T) {
			st := requireCode(t, codes.FailedPrecondition, call(callCtx(t), hs.client))
			assert.Equal(t, `task "t1": task was aborted`, st.Message())
		})
	}
	assert.EqualValues(t, 8, h.calls.Load())
}

// allCalls makes one valid call of each RPC but Shutdown, for taskID.
func allCalls(taskID string) map[string]func(context.Context, taskapipb.RequestorAppClient) error {
	return map[string]func(context.Context, taskapipb.RequestorAppClient) error{
		"CreateTask": func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.CreateTask(ctx, &taskapipb.CreateTaskRequest{TaskId: taskID})
			return err
		},
		"NextSubtask": func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.NextSubtask(ctx, &taskapipb.NextSubtaskRequest{TaskId: taskID, SubtaskId: "s1", OpaqueNodeId: "n1"})
			return err
		},
		"Verify": func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.Verify(ctx, &taskapipb.VerifyRequest{TaskId: taskID, SubtaskId: "s1"})
			return err
		},
		"DiscardSubtasks": func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.DiscardSubtasks(ctx, &taskapipb.DiscardSubtasksRequest{TaskId: taskID, SubtaskIds: []string{"s1"}})
			return err
		},
		"RunBenchmark": func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.RunBenchmark(ctx, &taskapipb.RunBenchmarkRequest{})
			return err
		},
		"HasPendingSubtasks": func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.HasPendingSubtasks(ctx, &taskapipb.HasPendingSubtasksRequest{TaskId: taskID})
			return err
		},
		"AbortTask": func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.AbortTask(ctx, &taskapipb.AbortTaskRequest{TaskId: taskID})
			return err
		},
		"AbortSubtask": func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.AbortSubtask(ctx, &taskapipb.AbortSubtaskRequest{TaskId: taskID, SubtaskId: "s1"})
			return err
		},
	}
}

// TestCallerCancels: the handler's ctx is the call's, so a caller giving up
// reaches the app, and an app returning ctx's error is not INTERNAL.
func TestCallerCancels(t *testing.T) {
	entered := make(chan struct{})
	gotErr := make(chan error, 1)
	hs := start(t, &fakeHandler{verify: func(ctx context.Context, _, _ string) (requestor.Verdict, string, error) {
		close(entered)
		<-ctx.Done()
		gotErr <- ctx.Err()
		return 0, "", ctx.Err()
	}})
	ctx, cancel := context.WithCancel(callCtx(t))
	go func() {
		<-entered
		cancel()
	}()
	_, err := hs.client.Verify(ctx, &taskapipb.VerifyRequest{TaskId: "t1", SubtaskId: "s1"})
	requireCode(t, codes.Canceled, err)
	assert.ErrorIs(t, <-gotErr, context.Canceled)
}

func TestPanicIsInternalAndServerGoesOn(t *testing.T) {
	hs := start(t, &fakeHandler{hasPendingSubtasks: func(_ context.Context, taskID string) (bool, error) {
		if taskID == "boom" {
			panic("the app exploded")
		}
		return true, nil
	}})
	_, err := hs.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "boom"})
	st := requireCode(t, codes.Internal, err)
	assert.Contains(t, st.Message(), "the app exploded")

	for range 3 {
		reply, err := hs.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "fine"})
		require.NoError(t, err)
		assert.True(t, reply.GetHasPendingSubtasks())
	}
}

// countingApp keeps per-task counters under a mutex, as a real app would
// keep its state, to check that concurrent calls neither get lost nor mixed.
type countingApp struct {
	mu       sync.Mutex
	next     map[string]int
	verified map[string]int
	subtasks map[string]bool
}

func TestConcurrentCalls(t *testing.T) {
	const calls, tasks = 1000, 50
	app := &countingApp{next: map[string]int{}, verified: map[string]int{}, subtasks: map[string]bool{}}
	h := &fakeHandler{
		nextSubtask: func(_ context.Context, taskID, subtaskID, _ string) (*requestor.Subtask, error) {
			app.mu.Lock()
			defer app.mu.Unlock()
			app.next[taskID]++
			app.subtasks[subtaskID] = true
			params, _ := json.Marshal(map[string]string{"task": taskID, "subtask": subtaskID})
			return &requestor.Subtask{Params: params}, nil
		},
		verify: func(_ context.Context, taskID, subtaskID string) (requestor.Verdict, string, error) {
			app.mu.Lock()
			defer app.mu.Unlock()
			app.verified[taskID]++
			return requestor.Failure, taskID + "/" + subtaskID, nil
		},
	}
	hs := start(t, h)

	errs := make(chan error, calls)
	var wg sync.WaitGroup
	for i := range calls {
		// Pairs of calls, a NextSubtask and a Verify, go to each task in turn.
		taskID, subtaskID := fmt.Sprintf("task-%d", (i/2)%tasks), fmt.Sprintf("sub-%d", i)
		wg.Go(func() {
			ctx := callCtx(t)
			if i%2 == 0 {
				reply, err := hs.client.NextSubtask(ctx, &taskapipb.NextSubtaskRequest{TaskId: taskID, SubtaskId: subtaskID, OpaqueNodeId: "n"})
				if err == nil {
					want := fmt.Sprintf(`{"subtask":%q,"task":%q}`, subtaskID, taskID)
					if got := reply.GetSubtask().GetSubtaskParamsJson(); got != want {
						err = fmt.Errorf("NextSubtask %s/%s answered %s", taskID, subtaskID, got)
					}
				}
				errs <- err
				return
			}
			reply, err := hs.client.Verify(ctx, &taskapipb.VerifyRequest{TaskId: taskID, SubtaskId: subtaskID})
			if err == nil && (reply.GetResult() != taskapipb.VerifyReply_FAILURE || reply.GetReason() != taskID+"/"+subtaskID) {
				err = fmt.Errorf("Verify %s/%s answered %v", taskID, subtaskID, reply)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	app.mu.Lock()
	defer app.mu.Unlock()
	require.Len(t, app.next, tasks)
	require.Len(t, app.verified, tasks)
	for i := range tasks {
		id := fmt.Sprintf("task-%d", i)
		assert.Equal(t, calls/tasks/2, app.next[id], id)
		assert.Equal(t, calls/tasks/2, app.verified[id], id)
	}
	assert.Len(t, app.subtasks, calls/2)
	assert.EqualValues(t, calls, h.calls.Load())
}

func TestLogsAppFailures(t *testing.T) {
	var buf lockedBuffer
	hs := start(t, &fakeHandler{hasPendingSubtasks: func(context.Context, string) (bool, error) {
		return false, errors.New("state store is corrupt")
	}}, requestor.WithLogger(newTextLogger(&buf)))
	_, err := hs.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t1"})
	requireCode(t, codes.Internal, err)
	out := buf.String()
	assert.Contains(t, out, "app failed")
	assert.Contains(t, out, "state store is corrupt")
	assert.True(t, strings.Contains(out, "HasPendingSubtasks"), out)
}
