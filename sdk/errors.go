package sdk

import (
	"github.com/gtask/gtask/internal/taskstore"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
)

// Sentinel errors of the SDK. Each is a gRPC status error: wrapped with %w,
// it keeps its code on the wire, and errors.Is matches it in process (two
// status errors match when their code and message are equal, so
// ErrInvalidParams also matches provider.ErrInvalidParams).
//
// An app returns ErrInvalidParams (wrapped, to say which parameter) from
// Split or a Validate method; the SDK itself returns the others from the
// Handlers it makes, and hosts see their codes and messages.
var (
	// ErrInvalidParams: the task's or subtask's parameters are wrong
	// (codes.InvalidArgument). Decoding errors and Validate errors wrap it.
	ErrInvalidParams = requestor.ErrInvalidParams
	// ErrUnknownTask: no task with this id was ever created in the work dir
	// (codes.NotFound).
	ErrUnknownTask = requestor.ErrUnknownTask
	// ErrUnknownSubtask: no subtask with this id was handed out for the task
	// (codes.NotFound).
	ErrUnknownSubtask = requestor.ErrUnknownSubtask
	// ErrTaskExists: CreateTask for a task whose state store exists
	// (codes.AlreadyExists).
	ErrTaskExists = requestor.ErrTaskExists
	// ErrSubtaskExists: NextSubtask with a subtask id the task already used
	// (codes.AlreadyExists).
	ErrSubtaskExists = requestor.ErrSubtaskExists
	// ErrTaskAborted: a call for a task after AbortTask
	// (codes.FailedPrecondition).
	ErrTaskAborted = requestor.ErrTaskAborted
	// ErrWrongState: a call not legal in the subtask's state, e.g.
	// AbortSubtask of an accepted result (codes.FailedPrecondition).
	ErrWrongState = requestor.ErrWrongState
	// ErrSubtaskAborted: Verify of a subtask that was aborted or discarded
	// (codes.FailedPrecondition).
	ErrSubtaskAborted = taskstore.ErrSubtaskAborted
	// ErrTaskFinished: a call that would change a task whose results are
	// merged into task_outputs (codes.FailedPrecondition). The message reads
	// `task "T": task is finished`.
	ErrTaskFinished = taskstore.ErrTaskFinished
	// ErrTaskFailed: a call that would change a task that failed
	// (codes.FailedPrecondition). The message reads
	// `task "T": task failed: <reason>`.
	ErrTaskFailed = taskstore.ErrTaskFailed
	// ErrNoBenchmark: RunBenchmark of an app that is not a Benchmarker
	// (codes.Unimplemented).
	ErrNoBenchmark = provider.ErrNoBenchmark
)
