package requestor

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel errors a Handler returns, wrapped with %w for detail, e.g.
//
//	return fmt.Errorf("task %q: %w", id, requestor.ErrUnknownTask)
//
// Each carries its gRPC code, which the caller receives with the whole
// wrapped message.
var (
	// ErrUnknownTask: the task id is not known (codes.NotFound).
	ErrUnknownTask = status.Error(codes.NotFound, "unknown task")
	// ErrUnknownSubtask: the subtask id is not known (codes.NotFound).
	ErrUnknownSubtask = status.Error(codes.NotFound, "unknown subtask")
	// ErrTaskExists: CreateTask for a task that exists (codes.AlreadyExists).
	ErrTaskExists = status.Error(codes.AlreadyExists, "task already exists")
	// ErrSubtaskExists: NextSubtask with a subtask id already used
	// (codes.AlreadyExists).
	ErrSubtaskExists = status.Error(codes.AlreadyExists, "subtask already exists")
	// ErrInvalidParams: the app's parameters are wrong (codes.InvalidArgument).
	ErrInvalidParams = status.Error(codes.InvalidArgument, "invalid parameters")
	// ErrTaskAborted: a call for a task after AbortTask
	// (codes.FailedPrecondition).
	ErrTaskAborted = status.Error(codes.FailedPrecondition, "task was aborted")
	// ErrWrongState: a call not legal in the task's or subtask's state
	// (codes.FailedPrecondition).
	ErrWrongState = status.Error(codes.FailedPrecondition, "not allowed in this state")
)
