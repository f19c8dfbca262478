package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/requestor"
)

// recorder hands the requests a fake received to the test. The channel (not
// a shared variable) is what orders the handler's write before the test's
// read: the race detector does not see the socket in between.
type recorder[T proto.Message] chan T

func newRecorder[T proto.Message]() recorder[T] { return make(recorder[T], 1) }

func (r recorder[T]) record(m T) { r <- proto.Clone(m).(T) }

func (r recorder[T]) requireRequest(t *testing.T, want T) {
	t.Helper()
	select {
	case got := <-r:
		require.True(t, proto.Equal(want, got), "request on the wire:\nwant %v\n got %v", want, got)
	default:
		require.Fail(t, "the server received no request")
	}
}

func dialRequestor(t *testing.T, f *fakeRequestor) *host.RequestorClient {
	t.Helper()
	c, err := host.DialRequestor(testCtx(t), serveRequestor(t, f, nil))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, c.Close()) })
	return c
}

func dialProvider(t *testing.T, f *fakeProvider) *host.ProviderClient {
	t.Helper()
	c, err := host.DialProvider(testCtx(t), serveProvider(t, f))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, c.Close()) })
	return c
}

func TestCreateTask(t *testing.T) {
	tests := []struct {
		name        string
		maxSubtasks int
		params      json.RawMessage
		reply       *pb.CreateTaskReply
		wantReq     *pb.CreateTaskRequest
		want        requestor.Task
	}{{
		name:    "nil params and empty reply",
		reply:   &pb.CreateTaskReply{EnvId: "docker_cpu"},
		wantReq: &pb.CreateTaskRequest{TaskId: "t1"},
		want:    requestor.Task{EnvID: "docker_cpu"},
	}, {
		name:        "empty params send nothing",
		maxSubtasks: 3,
		params:      json.RawMessage{},
		reply:       &pb.CreateTaskReply{EnvId: "e", PrerequisitesJson: ""},
		wantReq:     &pb.CreateTaskRequest{TaskId: "t1", MaxSubtasksCount: 3},
		want:        requestor.Task{EnvID: "e"},
	}, {
		name:        "everything set",
		maxSubtasks: 7,
		params:      json.RawMessage(`{"frames": [1, 2], "name": "ü"}`),
		reply: &pb.CreateTaskReply{
			EnvId:             "docker_gpu",
			PrerequisitesJson: `{"image": "golemfactory/blender", "tag": "1.0"}`,
			InfRequirements:   &pb.Infrastructure{MinMemoryMib: 512.5},
		},
		wantReq: &pb.CreateTaskRequest{TaskId: "t1", MaxSubtasksCount: 7, TaskParamsJson: `{"frames": [1, 2], "name": "ü"}`},
		want: requestor.Task{
			EnvID:         "docker_gpu",
			Prerequisites: json.RawMessage(`{"image": "golemfactory/blender", "tag": "1.0"}`),
			MinMemoryMiB:  512.5,
		},
	}, {
		// The server, not the client, judges the count.
		name:        "negative count passes through",
		maxSubtasks: -1,
		reply:       &pb.CreateTaskReply{},
		wantReq:     &pb.CreateTaskRequest{TaskId: "t1", MaxSubtasksCount: -1},
		want:        requestor.Task{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newRecorder[*pb.CreateTaskRequest]()
			c := dialRequestor(t, &fakeRequestor{
				createTask: func(_ context.Context, r *pb.CreateTaskRequest) (*pb.CreateTaskReply, error) {
					got.record(r)
					return tt.reply, nil
				},
			})
			task, err := c.CreateTask(testCtx(t), "t1", tt.maxSubtasks, tt.params)
			require.NoError(t, err)
			got.requireRequest(t, tt.wantReq)
			assert.Equal(t, tt.want, task)
		})
	}
}

func TestCreateTaskCountOutsideInt32(t *testing.T) {
	if strconv.IntSize == 32 {
		t.Skip("every int fits int32")
	}
	c := dialRequestor(t, &fakeRequestor{
		createTask: func(context.Context, *pb.CreateTaskRequest) (*pb.CreateTaskReply, error) {
			panic("CreateTask must not be called with a count the wire can't carry")
		},
	})
	for _, n := range []int{math.MaxInt32 + 1, math.MinInt32 - 1} {
		_, err := c.CreateTask(testCtx(t), "t1", n, nil)
		require.Error(t, err)
		assert.Equal(t, codes.InvalidArgument, status.Code(err))
		assert.Contains(t, err.Error(), "max_subtasks_count")
	}
}

func TestNextSubtask(t *testing.T) {
	tests := []struct {
		name  string
		reply *pb.NextSubtaskReply
		want  *requestor.Subtask
	}{{
		name:  "oneof unset means nothing now",
		reply: &pb.NextSubtaskReply{},
		want:  nil,
	}, {
		name: "subtask with params and resources",
		reply: &pb.NextSubtaskReply{SubtaskOneof: &pb.NextSubtaskReply_Subtask{Subtask: &pb.SubtaskReply{
			SubtaskParamsJson: `{"frame": 3}`,
			Resources:         []string{"scene.blend", "tex/a.png"},
		}}},
		want: &requestor.Subtask{Params: json.RawMessage(`{"frame": 3}`), Resources: []string{"scene.blend", "tex/a.png"}},
	}, {
		name:  "empty subtask",
		reply: &pb.NextSubtaskReply{SubtaskOneof: &pb.NextSubtaskReply_Subtask{Subtask: &pb.SubtaskReply{}}},
		want:  &requestor.Subtask{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newRecorder[*pb.NextSubtaskRequest]()
			c := dialRequestor(t, &fakeRequestor{
				nextSubtask: func(_ context.Context, r *pb.NextSubtaskRequest) (*pb.NextSubtaskReply, error) {
					got.record(r)
					return tt.reply, nil
				},
			})
			sub, err := c.NextSubtask(testCtx(t), "t1", "s1", "node-7")
			require.NoError(t, err)
			got.requireRequest(t, &pb.NextSubtaskRequest{TaskId: "t1", SubtaskId: "s1", OpaqueNodeId: "node-7"})
			assert.Equal(t, tt.want, sub)
		})
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		result  pb.VerifyReply_VerifyResult
		want    requestor.Verdict
		wantBad bool
	}{
		{result: pb.VerifyReply_SUCCESS, want: requestor.Success},
		{result: pb.VerifyReply_FAILURE, want: requestor.Failure},
		{result: pb.VerifyReply_AWAITING_DATA, want: requestor.AwaitingData},
		{result: pb.VerifyReply_INCONCLUSIVE, want: requestor.Inconclusive},
		{result: 4, wantBad: true},
		{result: -1, wantBad: true},
		{result: 99, wantBad: true},
	}
	for _, tt := range tests {
		t.Run(tt.result.String(), func(t *testing.T) {
			got := newRecorder[*pb.VerifyRequest]()
			c := dialRequestor(t, &fakeRequestor{
				verify: func(_ context.Context, r *pb.VerifyRequest) (*pb.VerifyReply, error) {
					got.record(r)
					return &pb.VerifyReply{Result: tt.result, Reason: "because " + tt.result.String()}, nil
				},
			})
			verdict, reason, err := c.Verify(testCtx(t), "t1", "s1")
			got.requireRequest(t, &pb.VerifyRequest{TaskId: "t1", SubtaskId: "s1"})
			if tt.wantBad {
				require.ErrorIs(t, err, host.ErrBadReply)
				assert.Contains(t, err.Error(), fmt.Sprint(int32(tt.result)))
				assert.False(t, verdict.Valid(), "no verdict may be guessed")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, verdict)
			assert.Equal(t, "because "+tt.result.String(), reason)
		})
	}
}

func TestDiscardSubtasks(t *testing.T) {
	tests := []struct {
		name  string
		ids   []string
		reply []string
	}{
		{name: "some discarded", ids: []string{"s1", "s2", "s3"}, reply: []string{"s3", "s1", "s9"}},
		{name: "none", ids: nil, reply: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newRecorder[*pb.DiscardSubtasksRequest]()
			c := dialRequestor(t, &fakeRequestor{
				discardSubtasks: func(_ context.Context, r *pb.DiscardSubtasksRequest) (*pb.DiscardSubtasksReply, error) {
					got.record(r)
					return &pb.DiscardSubtasksReply{DiscardedSubtaskIds: tt.reply}, nil
				},
			})
			ids, err := c.DiscardSubtasks(testCtx(t), "t1", tt.ids)
			require.NoError(t, err)
			got.requireRequest(t, &pb.DiscardSubtasksRequest{TaskId: "t1", SubtaskIds: tt.ids})
			assert.Equal(t, tt.reply, ids)
		})
	}
}

func TestRunBenchmark(t *testing.T) {
	// Scores a float32 holds exactly: the wire is float32.
	for _, score := range []float32{0, 1234.5, -3.25, math.MaxFloat32} {
		t.Run(fmt.Sprint(score), func(t *testing.T) {
			bench := func(context.Context, *pb.RunBenchmarkRequest) (*pb.RunBenchmarkReply, error) {
				return &pb.RunBenchmarkReply{Score: score}, nil
			}
			got, err := dialRequestor(t, &fakeRequestor{runBenchmark: bench}).RunBenchmark(testCtx(t))
			require.NoError(t, err)
			assert.Equal(t, float64(score), got)

			got, err = dialProvider(t, &fakeProvider{runBenchmark: bench}).RunBenchmark(testCtx(t))
			require.NoError(t, err)
			assert.Equal(t, float64(score), got)
		})
	}
}

func TestHasPendingSubtasks(t *testing.T) {
	for _, pending := range []bool{true, false} {
		t.Run(fmt.Sprint(pending), func(t *testing.T) {
			got := newRecorder[*pb.HasPendingSubtasksRequest]()
			c := dialRequestor(t, &fakeRequestor{
				hasPendingSubtasks: func(_ context.Context, r *pb.HasPendingSubtasksRequest) (*pb.HasPendingSubtasksReply, error) {
					got.record(r)
					return &pb.HasPendingSubtasksReply{HasPendingSubtasks: pending}, nil
				},
			})
			has, err := c.HasPendingSubtasks(testCtx(t), "t1")
			require.NoError(t, err)
			got.requireRequest(t, &pb.HasPendingSubtasksRequest{TaskId: "t1"})
			assert.Equal(t, pending, has)
		})
	}
}

func TestAbortsAndShutdown(t *testing.T) {
	abortTask := newRecorder[*pb.AbortTaskRequest]()
	abortSubtask := newRecorder[*pb.AbortSubtaskRequest]()
	shutdown := newRecorder[*pb.ShutdownRequest]()
	c := dialRequestor(t, &fakeRequestor{
		abortTask: func(_ context.Context, r *pb.AbortTaskRequest) (*pb.AbortTaskReply, error) {
			abortTask.record(r)
			return &pb.AbortTaskReply{}, nil
		},
		abortSubtask: func(_ context.Context, r *pb.AbortSubtaskRequest) (*pb.AbortSubtaskReply, error) {
			abortSubtask.record(r)
			return &pb.AbortSubtaskReply{}, nil
		},
		shutdown: func(_ context.Context, r *pb.ShutdownRequest) (*pb.ShutdownReply, error) {
			shutdown.record(r)
			return &pb.ShutdownReply{}, nil
		},
	})
	ctx := testCtx(t)
	require.NoError(t, c.AbortTask(ctx, "t1"))
	abortTask.requireRequest(t, &pb.AbortTaskRequest{TaskId: "t1"})
	require.NoError(t, c.AbortSubtask(ctx, "t1", "s2"))
	abortSubtask.requireRequest(t, &pb.AbortSubtaskRequest{TaskId: "t1", SubtaskId: "s2"})
	require.NoError(t, c.Shutdown(ctx))
	shutdown.requireRequest(t, &pb.ShutdownRequest{})
}

func TestCompute(t *testing.T) {
	tests := []struct {
		name    string
		params  json.RawMessage
		wantReq *pb.ComputeRequest
	}{
		{name: "nil params", params: nil, wantReq: &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1"}},
		{name: "params", params: json.RawMessage(`{"frame":3}`), wantReq: &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1", SubtaskParamsJson: `{"frame":3}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := newRecorder[*pb.ComputeRequest]()
			c := dialProvider(t, &fakeProvider{
				compute: func(_ context.Context, r *pb.ComputeRequest) (*pb.ComputeReply, error) {
					got.record(r)
					return &pb.ComputeReply{OutputFilepath: "s1/out.png"}, nil
				},
			})
			out, err := c.Compute(testCtx(t), "t1", "s1", tt.params)
			require.NoError(t, err)
			got.requireRequest(t, tt.wantReq)
			assert.Equal(t, "s1/out.png", out)
		})
	}
}

func TestProviderShutdown(t *testing.T) {
	got := newRecorder[*pb.ShutdownRequest]()
	c := dialProvider(t, &fakeProvider{
		shutdown: func(_ context.Context, r *pb.ShutdownRequest) (*pb.ShutdownReply, error) {
			got.record(r)
			return &pb.ShutdownReply{}, nil
		},
	})
	require.NoError(t, c.Shutdown(testCtx(t)))
	got.requireRequest(t, &pb.ShutdownRequest{})
}

// TestErrorCodesKept checks that every method returns the server's status
// code and message through its wrap.
func TestErrorCodesKept(t *testing.T) {
	for _, code := range []codes.Code{
		codes.NotFound, codes.InvalidArgument, codes.FailedPrecondition, codes.AlreadyExists,
		codes.Canceled, codes.Internal, codes.Unimplemented,
	} {
		t.Run(code.String(), func(t *testing.T) {
			fail := status.Errorf(code, "the app says %s", code)
			rc := dialRequestor(t, &fakeRequestor{
				createTask: func(context.Context, *pb.CreateTaskRequest) (*pb.CreateTaskReply, error) { return nil, fail },
				nextSubtask: func(context.Context, *pb.NextSubtaskRequest) (*pb.NextSubtaskReply, error) {
					return nil, fail
				},
				verify: func(context.Context, *pb.VerifyRequest) (*pb.VerifyReply, error) { return nil, fail },
				discardSubtasks: func(context.Context, *pb.DiscardSubtasksRequest) (*pb.DiscardSubtasksReply, error) {
					return nil, fail
				},
				runBenchmark: func(context.Context, *pb.RunBenchmarkRequest) (*pb.RunBenchmarkReply, error) {
					return nil, fail
				},
				hasPendingSubtasks: func(context.Context, *pb.HasPendingSubtasksRequest) (*pb.HasPendingSubtasksReply, error) {
					return nil, fail
				},
				abortTask: func(context.Context, *pb.AbortTaskRequest) (*pb.AbortTaskReply, error) { return nil, fail },
				abortSubtask: func(context.Context, *pb.AbortSubtaskRequest) (*pb.AbortSubtaskReply, error) {
					return nil, fail
				},
				shutdown: func(context.Context, *pb.ShutdownRequest) (*pb.ShutdownReply, error) { return nil, fail },
			})
			pc := dialProvider(t, &fakeProvider{
				compute:      func(context.Context, *pb.ComputeRequest) (*pb.ComputeReply, error) { return nil, fail },
				runBenchmark: func(context.Context, *pb.RunBenchmarkRequest) (*pb.RunBenchmarkReply, error) { return nil, fail },
				shutdown:     func(context.Context, *pb.ShutdownRequest) (*pb.ShutdownReply, error) { return nil, fail },
			})
			ctx := testCtx(t)
			calls := []struct {
				method string
				call   func() error
			}{
				{"CreateTask", func() error { _, err := rc.CreateTask(ctx, "t1", 0, nil); return err }},
				{"NextSubtask", func() error {
					sub, err := rc.NextSubtask(ctx, "t1", "s1", "n")
					assert.Nil(t, sub)
					return err
				}},
				{"Verify", func() error { _, _, err := rc.Verify(ctx, "t1", "s1"); return err }},
				{"DiscardSubtasks", func() error { _, err := rc.DiscardSubtasks(ctx, "t1", []string{"s1"}); return err }},
				{"RunBenchmark", func() error { _, err := rc.RunBenchmark(ctx); return err }},
				{"HasPendingSubtasks", func() error { _, err := rc.HasPendingSubtasks(ctx, "t1"); return err }},
				{"AbortTask", func() error { return rc.AbortTask(ctx, "t1") }},
				{"AbortSubtask", func() error { return rc.AbortSubtask(ctx, "t1", "s1") }},
				{"Shutdown", func() error { return rc.Shutdown(ctx) }},
				{"Compute", func() error { _, err := pc.Compute(ctx, "t1", "s1", nil); return err }},
				{"RunBenchmark", func() error { _, err := pc.RunBenchmark(ctx); return err }},
				{"Shutdown", func() error { return pc.Shutdown(ctx) }},
			}
			for _, c := range calls {
				err := c.call()
				require.Error(t, err, c.method)
				assert.Equal(t, code, status.Code(err), c.method)
				st, ok := status.FromError(err)
				require.True(t, ok, "%s: status.FromError must see through the wrap", c.method)
				assert.Equal(t, code, st.Code(), c.method)
				assert.Contains(t, st.Message(), "the app says "+code.String(), c.method)
				assert.True(t, strings.HasPrefix(err.Error(), c.method+": "), "the error names the method: %v", err)
			}
		})
	}
}

func TestCloseTwice(t *testing.T) {
	rc, err := host.DialRequestor(testCtx(t), serveRequestor(t, &fakeRequestor{}, nil))
	require.NoError(t, err)
	require.NoError(t, rc.Close())
	require.NoError(t, rc.Close())
	_, err = rc.HasPendingSubtasks(testCtx(t), "t1")
	assert.Equal(t, codes.Canceled, status.Code(err), "a call after Close fails: %v", err)

	pc, err := host.DialProvider(testCtx(t), serveProvider(t, &fakeProvider{}))
	require.NoError(t, err)
	require.NoError(t, pc.Close())
	require.NoError(t, pc.Close())
}
