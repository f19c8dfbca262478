package taskstore

import (
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/requestor"
)

// Errors of the store besides requestor's sentinels (ErrUnknownSubtask,
// ErrSubtaskExists, ErrTaskAborted, ErrWrongState, ErrTaskExists), which it
// returns too. All are gRPC status errors so that they keep their code
// through the requestor server.
var (
	// ErrTaskFinished: a call that would change a finished task.
	ErrTaskFinished = status.Error(codes.FailedPrecondition, "task is finished")
	// ErrTaskFailed: a call that would change a failed task; the wrapping
	// message carries the task's failure reason.
	ErrTaskFailed = status.Error(codes.FailedPrecondition, "task failed")
	// ErrSubtaskAborted: Verify of a subtask that was aborted or discarded.
	ErrSubtaskAborted = status.Error(codes.FailedPrecondition, "subtask was aborted")
)

// State is the state of a part or of a subtask.
//
// A subtask is COMPUTING from NextSubtask until its Verify records an answer;
// VERIFYING while its answer is AWAITING_DATA or INCONCLUSIVE (its result is
// in but not judged yet); then SUCCESS, FAILURE or ABORTED, all final (only
// DiscardSubtasks moves a SUCCESS to ABORTED).
//
// A part is WAITING when no subtask of it is live (it is computable, or
// waits for its dependencies), COMPUTING or VERIFYING after the state of its
// live subtasks, SUCCESS once accepted, FAILURE when it used up its
// attempts, ABORTED when the task was aborted before it was accepted.
type State uint8

// The states.
const (
	Waiting State = iota + 1
	Computing
	Verifying
	Success
	Failure
	Aborted
)

func (s State) String() string {
	switch s {
	case Waiting:
		return "WAITING"
	case Computing:
		return "COMPUTING"
	case Verifying:
		return "VERIFYING"
	case Success:
		return "SUCCESS"
	case Failure:
		return "FAILURE"
	case Aborted:
		return "ABORTED"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// TaskState is where a task is in its life.
type TaskState uint8

// The task states. Active is the only one that hands out subtasks; Merging
// means every part is accepted and the merge has not completed yet (it
// reruns after a crash); the last three are final.
const (
	TaskActive TaskState = iota + 1
	TaskMerging
	TaskFinished
	TaskFailed
	TaskAborted
)

func (s TaskState) String() string {
	switch s {
	case TaskActive:
		return "active"
	case TaskMerging:
		return "merging"
	case TaskFinished:
		return "finished"
	case TaskFailed:
		return "failed"
	case TaskAborted:
		return "aborted"
	}
	return fmt.Sprintf("TaskState(%d)", int(s))
}

// Ended reports whether s is final: finished, failed or aborted.
func (s TaskState) Ended() bool { return s >= TaskFinished }

// Task is a task's record.
type Task struct {
	ID string `json:"id"`
	// Params are the task's parameters as CreateTask received them.
	Params   json.RawMessage `json:"params,omitempty"`
	MaxParts int             `json:"max_parts,omitempty"`
	// Redundancy is k: how many agreeing results accept a part. At least 1.
	Redundancy int `json:"redundancy"`
	// MaxAttempts is K: a part fails the task once it has failed K times.
	// At least 1.
	MaxAttempts int `json:"max_attempts"`
	// Parts is the number of parts; Accepted how many are accepted now.
	Parts    int       `json:"parts"`
	Accepted int       `json:"accepted"`
	State    TaskState `json:"state"`
	// Reason says why the task failed.
	Reason string `json:"reason,omitempty"`
}

// Part is one part as Create stores it.
type Part struct {
	// Params are the part's parameters as JSON, handed back by Next and
	// Results.
	Params    json.RawMessage
	Resources []string
	// DependsOn lists indices of earlier parts (smaller than the part's
	// own) that must be accepted before this one is computable.
	DependsOn []int
}

// Assignment is what Next hands out.
type Assignment struct {
	Part      int
	Params    json.RawMessage
	Resources []string
}

// Check is the app's judgement of one result, as RecordVerify records it.
type Check struct {
	// Verdict is the app's: Success (a vote for the result's hash),
	// Inconclusive (a vote that needs one more agreeing result), Failure,
	// or AwaitingData. The zero Verdict means the app did not run: the
	// subtask's earlier vote is re-counted (see VerifyPlan.Check).
	Verdict requestor.Verdict
	Reason  string
	// Hash identifies the result's content (hex sha256) for votes.
	Hash string
	// File is the result file's base name, for Results.
	File string
}

// Answer is what Verify replies.
type Answer struct {
	Verdict requestor.Verdict
	Reason  string
	// Merge is set when the task's last part is accepted and the task is
	// merging: the caller runs the merge and then Finish or Fail.
	Merge bool
}

// VerifyPlan is what BeginVerify says to do for a subtask.
type VerifyPlan struct {
	// Answer, when set, is the subtask's final answer: nothing to run.
	Answer *Answer
	// Check is true when the app must judge the result; false when the
	// subtask's vote is in already and RecordVerify only re-counts.
	Check  bool
	Part   int
	Params json.RawMessage
	Node   string
	// Merging is set when the task is merging (its merge must complete).
	Merging bool
}

// PartInfo describes a part, for tests and tools.
type PartInfo struct {
	State State
	// Live are the subtasks counted against the part now (COMPUTING or
	// VERIFYING); Votes how many of them have a result in.
	Live  []string
	Votes int
	// Want is how many live subtasks the part may have at once, Quorum how
	// many votes it needs before deciding.
	Want, Quorum int
	Attempts     int
	// Unmet is the number of dependencies not accepted.
	Unmet int
	// Accepted is the subtask whose result Merge uses, when accepted.
	Accepted string
	// Computable: NextSubtask may hand this part out now.
	Computable bool
}

// SubtaskInfo describes a subtask.
type SubtaskInfo struct {
	ID    string
	Part  int
	Node  string
	State State
	// Detached: the subtask was live when the store was reopened (or when
	// its part was accepted without it); its part no longer counts on it,
	// but a Verify of it is still honoured.
	Detached bool
	Verdict  requestor.Verdict
	Reason   string
	Hash     string
	File     string
}
