package requestor

import (
	"context"
	"encoding/json"
	"fmt"
)

// Handler is what an app implements to serve RequestorApp. Its methods mirror
// the RPCs one to one, in plain Go types. The server validates every id and
// JSON field before a method runs (see taskapi.ValidateID), so a Handler
// never sees an empty id, a path separator in one, or malformed JSON.
//
// Errors: return one of the sentinel errors below (wrapped with %w to add
// detail), a *taskapi.FieldError for a bad parameter, or a status error made
// with google.golang.org/grpc/status; anything else reaches the caller as
// codes.Internal. A panic also becomes codes.Internal and the server goes on.
//
// A Handler must be safe for concurrent use: one server serves many tasks at
// once, and a host may call for several subtasks of one task concurrently.
type Handler interface {
	// CreateTask creates task taskID in {work dir}/taskID. maxSubtasks is 0
	// when the host sets no limit. params is nil when the host sent none.
	CreateTask(ctx context.Context, taskID string, maxSubtasks int, params json.RawMessage) (Task, error)
	// NextSubtask returns the next subtask for node nodeID, or nil when there
	// is none for it now (not an error).
	NextSubtask(ctx context.Context, taskID, subtaskID, nodeID string) (*Subtask, error)
	// Verify judges the result of subtaskID, found in
	// {task dir}/subtask_outputs/subtaskID/. Returning the zero Verdict is a
	// bug in the app and reaches the host as codes.Internal, never as SUCCESS.
	Verify(ctx context.Context, taskID, subtaskID string) (Verdict, string, error)
	// DiscardSubtasks drops the named results and those depending on them,
	// and returns exactly the ids it dropped.
	DiscardSubtasks(ctx context.Context, taskID string, subtaskIDs []string) ([]string, error)
	// RunBenchmark scores this machine for the app; higher is better.
	RunBenchmark(ctx context.Context) (float64, error)
	// HasPendingSubtasks reports whether NextSubtask would hand out a
	// subtask now.
	HasPendingSubtasks(ctx context.Context, taskID string) (bool, error)
	// AbortTask stops taskID: verifications in flight are cancelled.
	AbortTask(ctx context.Context, taskID string) error
	// AbortSubtask stops subtaskID and frees its part.
	AbortSubtask(ctx context.Context, taskID, subtaskID string) error
	// Shutdown is called once when the server stops (by the Shutdown RPC, a
	// signal or Server.Shutdown), after the last call has returned, so that
	// the app can close what it holds. Its error is logged, and returned by
	// Server.Serve and Server.Shutdown so that main can exit non-zero.
	Shutdown(ctx context.Context) error
}

// Task is what CreateTask answers.
type Task struct {
	// EnvID names the providers' environment, e.g. taskapi.DockerCPUEnvID().
	EnvID string
	// Prerequisites is the environment's prerequisites as JSON (for docker,
	// {"image": "...", "tag": "..."}); nil when there are none. The server
	// refuses to send invalid JSON (codes.Internal).
	Prerequisites json.RawMessage
	// MinMemoryMiB is the least memory a provider needs; 0 for no
	// requirement.
	MinMemoryMiB float64
}

// Subtask is what NextSubtask answers when it hands out work.
type Subtask struct {
	// Params is passed unchanged to the provider's Compute; nil sends an
	// empty string. The server refuses to send invalid JSON.
	Params json.RawMessage
	// Resources names files in {task dir}/subtask_inputs/ the host copies to
	// the provider.
	Resources []string
}

// Verdict is the outcome of verifying one result. Its zero value is not a
// verdict: unlike the wire enum, where 0 is SUCCESS, a Verdict that was never
// set cannot pass as success.
type Verdict int

// The verdicts. See VerifyReply.VerifyResult in golem_task_api.proto.
const (
	verdictUnset Verdict = iota
	// Success: the result is right.
	Success
	// Failure: the result is wrong; the part may be computed again elsewhere.
	Failure
	// AwaitingData: the result can't be judged until other results are in.
	AwaitingData
	// Inconclusive: the result can't be judged alone; compute a replica.
	Inconclusive
)

func (v Verdict) String() string {
	switch v {
	case Success:
		return "SUCCESS"
	case Failure:
		return "FAILURE"
	case AwaitingData:
		return "AWAITING_DATA"
	case Inconclusive:
		return "INCONCLUSIVE"
	}
	return fmt.Sprintf("Verdict(%d)", int(v))
}

// Valid reports whether v is one of the four verdicts.
func (v Verdict) Valid() bool { return v >= Success && v <= Inconclusive }
