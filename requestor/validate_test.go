package requestor_test

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	taskapipb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/requestor"
)

// idField is one id field of one request. The tests send base with the
// field overridden on the wire (a later occurrence of a singular field
// wins; a repeated field gets one more element), so that any bytes, invalid
// UTF-8 included, reach the server as a host would send them.
type idField struct {
	method string
	base   proto.Message
	num    protowire.Number
	name   string // as the error names it
}

func (f idField) frame(t *testing.T, value string) []byte {
	b, err := proto.Marshal(f.base)
	require.NoError(t, err)
	b = protowire.AppendTag(b, f.num, protowire.BytesType)
	return protowire.AppendString(b, value)
}

func invokeRaw(ctx context.Context, conn grpc.ClientConnInterface, method string, frame []byte) error {
	return conn.Invoke(ctx, method, frame, &emptypb.Empty{}, grpc.ForceCodecV2(rawCodec{}))
}

// idFields lists every task and subtask id field of RequestorApp's requests.
func idFields() []idField {
	return []idField{
		{taskapipb.RequestorApp_CreateTask_FullMethodName, &taskapipb.CreateTaskRequest{TaskId: "t", TaskParamsJson: "{}"}, 1, "task_id"},
		{taskapipb.RequestorApp_NextSubtask_FullMethodName, &taskapipb.NextSubtaskRequest{TaskId: "t", SubtaskId: "s", OpaqueNodeId: "n"}, 1, "task_id"},
		{taskapipb.RequestorApp_NextSubtask_FullMethodName, &taskapipb.NextSubtaskRequest{TaskId: "t", SubtaskId: "s", OpaqueNodeId: "n"}, 2, "subtask_id"},
		{taskapipb.RequestorApp_Verify_FullMethodName, &taskapipb.VerifyRequest{TaskId: "t", SubtaskId: "s"}, 1, "task_id"},
		{taskapipb.RequestorApp_Verify_FullMethodName, &taskapipb.VerifyRequest{TaskId: "t", SubtaskId: "s"}, 2, "subtask_id"},
		{taskapipb.RequestorApp_DiscardSubtasks_FullMethodName, &taskapipb.DiscardSubtasksRequest{TaskId: "t", SubtaskIds: []string{"s0"}}, 1, "task_id"},
		{taskapipb.RequestorApp_DiscardSubtasks_FullMethodName, &taskapipb.DiscardSubtasksRequest{TaskId: "t", SubtaskIds: []string{"s0"}}, 2, "subtask_ids[1]"},
		{taskapipb.RequestorApp_HasPendingSubtasks_FullMethodName, &taskapipb.HasPendingSubtasksRequest{TaskId: "t"}, 1, "task_id"},
		{taskapipb.RequestorApp_AbortTask_FullMethodName, &taskapipb.AbortTaskRequest{TaskId: "t"}, 1, "task_id"},
		{taskapipb.RequestorApp_AbortSubtask_FullMethodName, &taskapipb.AbortSubtaskRequest{TaskId: "t", SubtaskId: "s"}, 1, "task_id"},
		{taskapipb.RequestorApp_AbortSubtask_FullMethodName, &taskapipb.AbortSubtaskRequest{TaskId: "t", SubtaskId: "s"}, 2, "subtask_id"},
	}
}

func TestIDValidation(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		reason string // a substring of the message; "" means accepted
	}{
		{"empty", "", "must not be empty"},
		{"dot", ".", `"." is not allowed`},
		{"dotdot", "..", `".." is not allowed`},
		{"slash", "a/b", "path separator '/' at byte 1"},
		{"backslash", `a\b`, `path separator '\\' at byte 1`},
		{"NUL", "a\x00b", "control character U+0000 at byte 1"},
		{"control char", "a\x1bb", "control character U+001B at byte 1"},
		{"129 bytes", strings.Repeat("x", 129), "is 129 bytes long; at most 128"},
		{"invalid UTF-8", "a\xffb", "is not valid UTF-8"},
		{"128 bytes", strings.Repeat("x", 128), ""},
		{"unicode", "задача-日本-🚀", ""},
		{"dots inside", "v1.2..3", ""},
	}
	h := okHandler()
	hs := start(t, h)
	for _, f := range idFields() {
		for _, tt := range tests {
			t.Run(f.method[strings.LastIndex(f.method, "/")+1:]+"/"+f.name+"/"+tt.name, func(t *testing.T) {
				before := h.calls.Load()
				err := invokeRaw(callCtx(t), hs.conn, f.method, f.frame(t, tt.id))
				if tt.reason == "" {
					require.NoError(t, err)
					assert.Equal(t, before+1, h.calls.Load(), "the handler ran once")
					return
				}
				st := requireCode(t, codes.InvalidArgument, err)
				assert.True(t, strings.HasPrefix(st.Message(), f.name+": "), "the message names the field: %q", st.Message())
				assert.Contains(t, st.Message(), tt.reason)
				assert.Equal(t, before, h.calls.Load(), "the handler was not called")
			})
		}
	}
}

func TestIDValidationWithClient(t *testing.T) {
	h := okHandler()
	hs := start(t, h)
	tests := []struct {
		name string
		call func(context.Context, taskapipb.RequestorAppClient) error
		want string
	}{
		{"first bad subtask id is named", func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.DiscardSubtasks(ctx, &taskapipb.DiscardSubtasksRequest{TaskId: "t", SubtaskIds: []string{"ok", "", "../x"}})
			return err
		}, "subtask_ids[1]: must not be empty"},
		{"fields are checked in proto order", func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.AbortSubtask(ctx, &taskapipb.AbortSubtaskRequest{TaskId: "..", SubtaskId: ""})
			return err
		}, `task_id: ".." is not allowed: ids are used as directory names`},
		{"missing ids", func(ctx context.Context, c taskapipb.RequestorAppClient) error {
			_, err := c.Verify(ctx, &taskapipb.VerifyRequest{})
			return err
		}, "task_id: must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := requireCode(t, codes.InvalidArgument, tt.call(callCtx(t), hs.client))
			assert.Equal(t, tt.want, st.Message())
		})
	}
	assert.Zero(t, h.calls.Load(), "the handler was not called")
}

// TestNodeIDValidation: opaque_node_id is not a path, so path rules don't
// apply, but it must be a usable, printable key.
func TestNodeIDValidation(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		reason string // "" means accepted
	}{
		{"empty", "", "must not be empty"},
		{"NUL", "n\x00", "control character U+0000 at byte 1"},
		{"escape", "n\x1b[31m", "control character U+001B at byte 1"},
		{"DEL", "n\x7f", "control character U+007F at byte 1"},
		{"newline", "n\nforged log line", "control character U+000A at byte 1"},
		{"129 bytes", strings.Repeat("n", 129), "is 129 bytes long; at most 128"},
		{"invalid UTF-8", "n\xff", "is not valid UTF-8"},
		{"dot", ".", ""},
		{"dotdot", "..", ""},
		{"slash", "0x1234/slot-2", ""},
		{"backslash", `a\b`, ""},
		{"unicode", "節点-🚀", ""},
		{"128 bytes", strings.Repeat("n", 128), ""},
		{"hex address", "0x7e1e1e0a5bC4ba7b0A1b2C3d4E5f60718293a4b5", ""},
	}
	var gotNode string
	h := &fakeHandler{nextSubtask: func(_ context.Context, _, _, nodeID string) (*requestor.Subtask, error) {
		gotNode = nodeID
		return nil, nil
	}}
	hs := start(t, h)
	f := idField{taskapipb.RequestorApp_NextSubtask_FullMethodName, &taskapipb.NextSubtaskRequest{TaskId: "t", SubtaskId: "s"}, 3, "opaque_node_id"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.calls.Load()
			err := invokeRaw(callCtx(t), hs.conn, f.method, f.frame(t, tt.id))
			if tt.reason == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.id, gotNode, "the app gets the node id unchanged")
				return
			}
			st := requireCode(t, codes.InvalidArgument, err)
			assert.True(t, strings.HasPrefix(st.Message(), "opaque_node_id: "), st.Message())
			assert.Contains(t, st.Message(), tt.reason)
			assert.Equal(t, before, h.calls.Load(), "the handler was not called")
		})
	}
}

func TestCreateTaskValidation(t *testing.T) {
	tests := []struct {
		name       string
		params     string
		max        int32
		wantMsg    []string // substrings of an INVALID_ARGUMENT message; nil means accepted
		wantParams json.RawMessage
		wantMax    int
	}{
		{name: "empty params mean none", params: "", wantParams: nil},
		{name: "params as sent", params: " [1, 2] ", wantParams: json.RawMessage(" [1, 2] ")},
		{name: "max passed on", params: "{}", max: 1000, wantParams: json.RawMessage("{}"), wantMax: 1000},
		{name: "truncated JSON", params: `{"a":`, wantMsg: []string{"task_params_json: is not valid JSON", "byte offset 5"}},
		{name: "trailing garbage", params: `{"a":1} x`, wantMsg: []string{"task_params_json: is not valid JSON", "after top-level value", "byte offset 9"}},
		{name: "single quotes", params: `{'a':1}`, wantMsg: []string{"task_params_json: is not valid JSON", "byte offset 2"}},
		{name: "invalid UTF-8 in a string", params: "\"a\xffb\"", wantMsg: []string{"task_params_json: is not valid JSON", "invalid UTF-8 (at byte offset 2)"}},
		{name: "negative max", params: "{}", max: -1, wantMsg: []string{"max_subtasks_count: is -1; it must not be negative"}},
		{name: "most negative max", params: "{}", max: math.MinInt32, wantMsg: []string{"max_subtasks_count"}},
	}
	var gotParams json.RawMessage
	var gotMax int
	h := &fakeHandler{createTask: func(_ context.Context, _ string, max int, params json.RawMessage) (requestor.Task, error) {
		gotParams, gotMax = params, max
		return requestor.Task{EnvID: "docker_cpu"}, nil
	}}
	hs := start(t, h)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.calls.Load()
			// Raw, so that invalid UTF-8 reaches the server.
			frame, err := proto.Marshal(&taskapipb.CreateTaskRequest{TaskId: "t", MaxSubtasksCount: tt.max})
			require.NoError(t, err)
			frame = protowire.AppendTag(frame, 3, protowire.BytesType)
			frame = protowire.AppendString(frame, tt.params)
			err = invokeRaw(callCtx(t), hs.conn, taskapipb.RequestorApp_CreateTask_FullMethodName, frame)
			if tt.wantMsg == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.wantParams, gotParams)
				if tt.wantParams == nil {
					assert.Nil(t, gotParams)
				}
				assert.Equal(t, tt.wantMax, gotMax)
				return
			}
			st := requireCode(t, codes.InvalidArgument, err)
			for _, want := range tt.wantMsg {
				assert.Contains(t, st.Message(), want)
			}
			assert.Equal(t, before, h.calls.Load(), "the handler was not called")
		})
	}
}
