package taskapi

// The constants of the contract are file options of constants.proto and
// envs.proto, which stay the one place they are decided: TestConstants
// reads each from the compiled descriptors and fails when one here differs.
// They are literals here rather than read from the descriptors at run time
// because the first such read unmarshals the descriptor options (a fifth of
// a millisecond), and every gtask app pays it at start-up: for a one-shot
// provider, whose start is on the host's hot path, that was 5% of its life.
const (
	taskInputsDir     = "task_inputs"
	subtaskInputsDir  = "subtask_inputs"
	taskOutputsDir    = "task_outputs"
	subtaskOutputsDir = "subtask_outputs"
	workDir           = "golem/work" // as the proto has it, without the leading slash
	dockerCPUEnvID    = "docker_cpu"
	dockerGPUEnvID    = "docker_gpu"
)

// TaskInputsDir is "task_inputs": the task creator's resources in a requestor
// task dir.
func TaskInputsDir() string {
	return taskInputsDir
}

// SubtaskInputsDir is "subtask_inputs": files prepared for providers, in a
// requestor task dir and in a provider task work dir.
func SubtaskInputsDir() string {
	return subtaskInputsDir
}

// TaskOutputsDir is "task_outputs": the merged result files of a task.
func TaskOutputsDir() string {
	return taskOutputsDir
}

// SubtaskOutputsDir is "subtask_outputs": subtask S's result file lives in
// subtask_outputs/S/ of the requestor task dir.
func SubtaskOutputsDir() string {
	return subtaskOutputsDir
}

// ContainerWorkDir is "/golem/work": where the work dir is mounted inside a
// container, and the default work dir of a gtask app. The proto publishes it
// without the leading slash ("golem/work"); this adds it.
func ContainerWorkDir() string {
	return "/" + workDir
}

// DockerCPUEnvID is "docker_cpu", the standard Docker environment.
func DockerCPUEnvID() string {
	return dockerCPUEnvID
}

// DockerGPUEnvID is "docker_gpu", the GPU-enabled Docker environment.
func DockerGPUEnvID() string {
	return dockerGPUEnvID
}
