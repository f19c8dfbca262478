package sdk

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/gtask/gtask/requestor"
)

// App is the domain code of a task application: the whole of what an author
// writes. P is the type of the task's parameters (decoded from the task's
// JSON params), S the type of one part's parameters (what a provider needs
// to compute it). Both travel as JSON.
//
// Split, Verify and Merge run in the requestor process; Compute runs in a
// one-shot provider process, possibly on another machine, and sees nothing
// but its Subtask.
type App[P, S any] interface {
	// Split divides the task into parts, once, at CreateTask. It may write
	// files for providers into t.Dir.SubtaskInputs() and name them in
	// Part.Resources. An error wrapping ErrInvalidParams (or a
	// *taskapi.FieldError) refuses the task with codes.InvalidArgument.
	// The parts are stored with the task; changes Split makes to t.Params
	// are not (after a restart the params are decoded again).
	Split(ctx context.Context, t *Task[P]) ([]Part[S], error)
	// Compute computes one part on a provider and returns the path of its
	// single result file, which must lie inside s.Dir (use s.OutputPath).
	Compute(ctx context.Context, s *Subtask[S]) (string, error)
	// Verify judges one result, r.File, the one file the host put in
	// subtask_outputs/{subtask id}/. Return Accept(), Reject(...) for a
	// wrong result (the part is computed again), Inconclusive(...) (the
	// result is accepted once another node's agrees with it), or
	// AwaitData(...) (Verify runs again later); an error means the check
	// itself failed (codes.Internal) and the host may call Verify again.
	// ctx ends when the task or subtask is aborted. Verify is never called
	// again for a result that has a final verdict.
	Verify(ctx context.Context, r *Result[P, S]) (Verdict, error)
	// Merge combines the accepted results, one per part in part order, into
	// t.Dir.Outputs(). It runs once, after the last part is accepted; what it
	// writes appears in task_outputs only when it returns nil, and an error
	// fails the task. A crash before it completes makes it run again, over
	// the same results, at the next start.
	Merge(ctx context.Context, t *Task[P], results []*Result[P, S]) error
}

// Benchmarker is an optional interface of an App: RunBenchmark scores this
// machine for the app, on either side; higher is better. Without it,
// RunBenchmark answers codes.Unimplemented.
type Benchmarker interface {
	RunBenchmark(ctx context.Context) (float64, error)
}

// Part is one piece of a task, as Split returns it.
type Part[S any] struct {
	// Params is what the provider computing this part receives.
	Params S
	// Resources names files in the task's subtask_inputs/ that the host
	// copies to the provider before Compute.
	Resources []string
	// DependsOn lists the indices of parts whose accepted results this part
	// needs: it is not handed out before they are accepted, and discarding
	// one of them discards this part's result too. Indices refer to the
	// slice Split returned and must be smaller than this part's own index.
	DependsOn []int
}

// Task is a task as the requestor side sees it.
type Task[P any] struct {
	// ID is the task id (a valid directory name).
	ID string
	// Params are the task's parameters, decoded from task_params_json.
	Params P
	// MaxParts is the host's max_subtasks_count; 0 means no limit. Split
	// should return at most this many parts when it is set.
	MaxParts int
	// Dir is the task's directory with the contract's layout.
	Dir RequestorDir
	// Log is the task's logger.
	Log *slog.Logger
}

// Subtask is one part being computed on a provider.
type Subtask[S any] struct {
	TaskID string
	// ID is the subtask id, fresh for each attempt at a part.
	ID string
	// Part is the index of the part in the slice Split returned.
	Part int
	// Params are the part's parameters.
	Params S
	// Dir is the provider's task work dir; its SubtaskInputs() holds the
	// part's resources.
	Dir ProviderDir
	// Log is the provider's logger.
	Log *slog.Logger
}

// OutputPath returns the path for a result file named name in this
// subtask's own output directory ({provider dir}/{subtask id}/), creating
// the directory. Compute writes its result there and returns the path.
func (s *Subtask[S]) OutputPath(name string) (string, error) {
	return s.Dir.subtaskOutput(s.ID, name)
}

// Result is one computed result, as Verify and Merge see it.
type Result[P, S any] struct {
	Task *Task[P]
	// SubtaskID is the subtask that computed it.
	SubtaskID string
	// NodeID is the provider node that computed it.
	NodeID string
	// Part is the index of the part it computes, and Params its parameters.
	Part   int
	Params S
	// File is the absolute path of the result file, in
	// subtask_outputs/{SubtaskID}/.
	File string
}

// Verdict is the outcome of Verify. Its zero value is not a verdict: Verify
// must return one made by Accept, Reject, Inconclusive or AwaitData.
type Verdict struct {
	Result requestor.Verdict
	Reason string
}

// Accept says the result is right.
func Accept() Verdict { return Verdict{Result: requestor.Success, Reason: "accepted"} }

// Reject says the result is wrong, and why; the part will be computed again
// on another node, up to the attempt limit.
func Reject(format string, args ...any) Verdict {
	return Verdict{Result: requestor.Failure, Reason: fmt.Sprintf(format, args...)}
}

// Inconclusive says the result cannot be judged alone; the host computes a
// replica of the part on another node.
func Inconclusive(format string, args ...any) Verdict {
	return Verdict{Result: requestor.Inconclusive, Reason: fmt.Sprintf(format, args...)}
}

// AwaitData says the result cannot be judged until other results are in;
// the host verifies it again after its next verification.
func AwaitData(format string, args ...any) Verdict {
	return Verdict{Result: requestor.AwaitingData, Reason: fmt.Sprintf(format, args...)}
}
