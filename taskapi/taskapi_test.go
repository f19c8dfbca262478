package taskapi_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoimpl"
	"google.golang.org/protobuf/types/descriptorpb"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/taskapi"
)

func TestConstants(t *testing.T) {
	// The literals are the contract (PROTOCOL.md); the functions return
	// them, and each must be what the proto's file option says, since the
	// proto is where the contract is decided.
	constants, envs := pb.File_golem_task_api_constants_proto, pb.File_golem_task_api_envs_proto
	tests := []struct {
		name string
		got  func() string
		want string
		// file and ext are the option's; prefix is what the function adds.
		file   protoreflect.FileDescriptor
		ext    *protoimpl.ExtensionInfo
		prefix string
	}{
		{"TaskInputsDir", taskapi.TaskInputsDir, "task_inputs", constants, pb.E_TASK_INPUTS_DIR, ""},
		{"SubtaskInputsDir", taskapi.SubtaskInputsDir, "subtask_inputs", constants, pb.E_SUBTASK_INPUTS_DIR, ""},
		{"TaskOutputsDir", taskapi.TaskOutputsDir, "task_outputs", constants, pb.E_TASK_OUTPUTS_DIR, ""},
		{"SubtaskOutputsDir", taskapi.SubtaskOutputsDir, "subtask_outputs", constants, pb.E_SUBTASK_OUTPUTS_DIR, ""},
		{"ContainerWorkDir", taskapi.ContainerWorkDir, "/golem/work", constants, pb.E_WORK_DIR, "/"},
		{"DockerCPUEnvID", taskapi.DockerCPUEnvID, "docker_cpu", envs, pb.E_DOCKER_CPU_ENV_ID, ""},
		{"DockerGPUEnvID", taskapi.DockerGPUEnvID, "docker_gpu", envs, pb.E_DOCKER_GPU_ENV_ID, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.got())
			opts, ok := tt.file.Options().(*descriptorpb.FileOptions)
			require.True(t, ok)
			fromProto, ok := proto.GetExtension(opts, tt.ext).(string)
			require.True(t, ok)
			assert.Equal(t, tt.prefix+fromProto, tt.got(), "the proto's option")
		})
	}
	assert.Equal(t, 128, taskapi.MaxIDLen)
}

func TestValidateID(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		wantErr string // a substring of the reason; "" means valid
	}{
		{"simple", "task-1", ""},
		{"uuid", "6f1c1d0e-4f7a-4c3e-9a51-1b2f6a0e7c11", ""},
		{"dots inside", "a.b..c", ""},
		{"leading dot", ".hidden", ""},
		{"unicode", "задача-日本-🚀", ""},
		{"128 bytes", strings.Repeat("a", 128), ""},
		{"128 bytes of multibyte runes", strings.Repeat("é", 64), ""},
		{"empty", "", "must not be empty"},
		{"dot", ".", `"." is not allowed`},
		{"dotdot", "..", `".." is not allowed`},
		{"slash", "a/b", `path separator '/' at byte 1`},
		{"leading slash", "/etc", `path separator '/' at byte 0`},
		{"backslash", `a\b`, `path separator '\\' at byte 1`},
		{"NUL", "a\x00b", "control character U+0000 at byte 1"},
		{"control char", "a\x01b", "control character U+0001 at byte 1"},
		{"newline", "a\nb", "control character U+000A"},
		{"tab", "a\tb", "control character U+0009"},
		{"DEL", "a\x7fb", "control character U+007F"},
		{"C1 control", "a\u0085b", "control character U+0085"},
		{"129 bytes", strings.Repeat("a", 129), "is 129 bytes long; at most 128"},
		{"invalid UTF-8", "a\xffb", "not valid UTF-8"},
		{"truncated UTF-8", "\xe6\x97", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := taskapi.ValidateID("task_id", tt.id)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			var fe *taskapi.FieldError
			require.True(t, errors.As(err, &fe), "want a *FieldError, got %T", err)
			assert.Equal(t, "task_id", fe.Field)
			assert.Contains(t, fe.Reason, tt.wantErr)
			assert.True(t, strings.HasPrefix(err.Error(), "task_id: "), err.Error())
		})
	}
}

func TestValidateJSON(t *testing.T) {
	tests := []struct {
		name    string
		s       string
		wantErr []string // substrings of the message; nil means valid
	}{
		{"empty means none", "", nil},
		{"object", `{"a": [1, 2.5, "x", null, true]}`, nil},
		{"scalar", `42`, nil},
		{"string", `"x"`, nil},
		{"surrounding space", " {} \n", nil},
		{"unicode", `{"名前":"🚀"}`, nil},
		{"unterminated", `{"a": 1`, []string{"not valid JSON", "byte offset 7"}},
		{"bad token", `{"a": x}`, []string{"invalid character 'x'", "byte offset 7"}},
		{"trailing garbage", `{"a":1} x`, []string{"after top-level value", "byte offset 9"}},
		{"two values", `1 2`, []string{"after top-level value", "byte offset 3"}},
		{"only space", "   ", []string{"not valid JSON", "byte offset 3"}},
		{"invalid UTF-8 in a string", "{\"a\":\"\xff\"}", []string{"invalid UTF-8", "byte offset 6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := taskapi.ValidateJSON("task_params_json", tt.s)
			if tt.wantErr == nil {
				require.NoError(t, err)
				return
			}
			var fe *taskapi.FieldError
			require.True(t, errors.As(err, &fe), "want a *FieldError, got %v", err)
			assert.Equal(t, "task_params_json", fe.Field)
			for _, want := range tt.wantErr {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestFieldErrorMessage(t *testing.T) {
	err := &taskapi.FieldError{Field: "subtask_ids[2]", Reason: "must not be empty"}
	assert.Equal(t, "subtask_ids[2]: must not be empty", err.Error())
}
