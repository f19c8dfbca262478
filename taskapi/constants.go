package taskapi

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoimpl"
	"google.golang.org/protobuf/types/descriptorpb"

	pb "github.com/gtask/gtask/gen/golem_task_api"
)

// The constants of the contract are file options of constants.proto and
// envs.proto. They are read from the compiled descriptors on every call (a
// map look-up) rather than retyped here, so that the proto stays the one
// place they are written.

func fileOption(fd protoreflect.FileDescriptor, ext *protoimpl.ExtensionInfo) string {
	opts, _ := fd.Options().(*descriptorpb.FileOptions)
	v, _ := proto.GetExtension(opts, ext).(string)
	return v
}

// TaskInputsDir is "task_inputs": the task creator's resources in a requestor
// task dir.
func TaskInputsDir() string {
	return fileOption(pb.File_golem_task_api_constants_proto, pb.E_TASK_INPUTS_DIR)
}

// SubtaskInputsDir is "subtask_inputs": files prepared for providers, in a
// requestor task dir and in a provider task work dir.
func SubtaskInputsDir() string {
	return fileOption(pb.File_golem_task_api_constants_proto, pb.E_SUBTASK_INPUTS_DIR)
}

// TaskOutputsDir is "task_outputs": the merged result files of a task.
func TaskOutputsDir() string {
	return fileOption(pb.File_golem_task_api_constants_proto, pb.E_TASK_OUTPUTS_DIR)
}

// SubtaskOutputsDir is "subtask_outputs": subtask S's result file lives in
// subtask_outputs/S/ of the requestor task dir.
func SubtaskOutputsDir() string {
	return fileOption(pb.File_golem_task_api_constants_proto, pb.E_SUBTASK_OUTPUTS_DIR)
}

// ContainerWorkDir is "/golem/work": where the work dir is mounted inside a
// container, and the default work dir of a gtask app. The proto publishes it
// without the leading slash ("golem/work"); this adds it.
func ContainerWorkDir() string {
	return "/" + fileOption(pb.File_golem_task_api_constants_proto, pb.E_WORK_DIR)
}

// DockerCPUEnvID is "docker_cpu", the standard Docker environment.
func DockerCPUEnvID() string {
	return fileOption(pb.File_golem_task_api_envs_proto, pb.E_DOCKER_CPU_ENV_ID)
}

// DockerGPUEnvID is "docker_gpu", the GPU-enabled Docker environment.
func DockerGPUEnvID() string {
	return fileOption(pb.File_golem_task_api_envs_proto, pb.E_DOCKER_GPU_ENV_ID)
}
