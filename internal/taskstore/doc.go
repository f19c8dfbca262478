// Package taskstore is the crash-safe state of one task of the SDK's
// requestor: its parts, its subtasks and their state machine, in one bbolt
// file per task ({task dir}/.gtask/state.db). The SDK (package sdk) adapts
// it to the RequestorApp calls; the semantics it implements are written down
// in the sdk package doc, and this package's tests check every transition.
//
// # API
//
//	Create(path, Task, []Part) (*Store, error)   // the task and all its parts, in one transaction
//	Open(path) (*Store, error)                   // after a restart; detaches COMPUTING subtasks
//	(*Store).Next(subtaskID, nodeID)             // *Assignment, or nil: nothing for that node now
//	(*Store).HasPending()                        // is a part computable now?
//	(*Store).BeginVerify(subtaskID)              // read only: a final answer, or what to check
//	(*Store).RecordVerify(subtaskID, Check)      // the app's check (or a re-count) -> Answer
//	(*Store).Discard(ids)                        // drop results, cascading to dependants
//	(*Store).AbortSubtask(id), AbortTask()
//	(*Store).Finish(), Fail(reason)              // after the merge
//	(*Store).Results(fn)                         // accepted results, in part order, for Merge
//	(*Store).Task(), Part(i), Subtask(id)        // inspection
//
// The app's own check runs between BeginVerify and RecordVerify, outside any
// transaction, so that a slow Verify holds no lock; RecordVerify checks the
// state again and answers a subtask that got a final verdict meanwhile with
// that verdict.
//
// Errors are gRPC status errors (requestor's sentinels and this package's
// ErrTaskFinished, ErrTaskFailed, ErrSubtaskAborted), wrapped with the task
// and subtask, so that they keep their codes through the requestor server.
//
// # Durability
//
// Every method that changes state runs in one bbolt read-write
// transaction, committed with fsync before it returns; a call that turns
// out to change nothing rolls back and pays no fsync. Create writes a
// temporary file and renames it, so a task exists only once all its parts
// are stored.
//
// # Cost
//
// No call scans the parts. What Create writes per part (the parts, the
// reverse dependency index, the runs of parts without dependencies) is never
// written again; calls write only small buckets that hold what has been
// touched: part states, subtasks, the ready index of computable parts that
// were handed out before or whose dependencies were just accepted, and the
// live subtasks with the parts each node holds. Parts never handed out are
// taken in order by a cursor over the runs. So Next and HasPending are
// O(log n) (Next also skips the few ready parts the asking node already
// holds a replica of), and a subtask's commits write the same number of
// pages whether the task has a thousand parts or a million.
package taskstore
