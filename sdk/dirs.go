package sdk

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gtask/gtask/taskapi"
)

// RequestorDir is a task's directory on the requestor side:
//
//	{work dir}/{task id}/
//	    task_inputs/      the task creator's files, present before CreateTask
//	    subtask_inputs/   files Split prepares for providers
//	    task_outputs/     the merged result files, and nothing else
//	    subtask_outputs/  {subtask id}/{result file}, put there by the host
//	    .gtask/           the SDK's own state (never in task_outputs)
type RequestorDir struct {
	// Root is the task's directory, absolute.
	Root string

	// outputs, when set, replaces task_outputs/: the merge staging
	// directory the SDK hands to Merge.
	outputs string
}

// Inputs is task_inputs/.
func (d RequestorDir) Inputs() string { return filepath.Join(d.Root, taskapi.TaskInputsDir()) }

// SubtaskInputs is subtask_inputs/.
func (d RequestorDir) SubtaskInputs() string {
	return filepath.Join(d.Root, taskapi.SubtaskInputsDir())
}

// Outputs is task_outputs/. In the RequestorDir that Merge gets, it is a
// staging directory under .gtask/ instead, whose entries the SDK moves into
// task_outputs/ (emptied first) once Merge returns nil: task_outputs/ then
// holds what Merge wrote and nothing else, and never a half-merged result.
func (d RequestorDir) Outputs() string {
	if d.outputs != "" {
		return d.outputs
	}
	return filepath.Join(d.Root, taskapi.TaskOutputsDir())
}

// SubtaskOutputs is subtask_outputs/.
func (d RequestorDir) SubtaskOutputs() string {
	return filepath.Join(d.Root, taskapi.SubtaskOutputsDir())
}

// SubtaskOutput is subtask_outputs/{subtaskID}/, where the host puts that
// subtask's result file.
func (d RequestorDir) SubtaskOutput(subtaskID string) string {
	return filepath.Join(d.SubtaskOutputs(), subtaskID)
}

// State is .gtask/, the SDK's own files: the task's state store
// (state.db), the merge staging directory (merge/) and status.json. Apps
// must not write there.
func (d RequestorDir) State() string { return filepath.Join(d.Root, ".gtask") }

// Create makes the four directories of the layout (and the state dir) where
// they are missing.
func (d RequestorDir) Create() error {
	for _, p := range []string{d.Inputs(), d.SubtaskInputs(), filepath.Join(d.Root, taskapi.TaskOutputsDir()), d.SubtaskOutputs(), d.State()} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("task dir: %w", err)
		}
	}
	return nil
}

// ProviderDir is a provider's task work dir:
//
//	{provider work dir}/
//	    subtask_inputs/   the subtask's resources, copied by the host
//	    {subtask id}/     where Compute writes its result (Subtask.OutputPath)
type ProviderDir struct {
	// Root is the provider's task work dir, absolute.
	Root string
}

// SubtaskInputs is subtask_inputs/.
func (d ProviderDir) SubtaskInputs() string {
	return filepath.Join(d.Root, taskapi.SubtaskInputsDir())
}

// Input is the path of resource name in subtask_inputs/.
func (d ProviderDir) Input(name string) string { return filepath.Join(d.SubtaskInputs(), name) }

func (d ProviderDir) subtaskOutput(subtaskID, name string) (string, error) {
	if name == "" || !filepath.IsLocal(name) {
		return "", fmt.Errorf("output file name %q: want a plain relative name", name)
	}
	dir := filepath.Join(d.Root, subtaskID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("subtask output dir: %w", err)
	}
	return filepath.Join(dir, name), nil
}
