// Package sdk is what a Golem Task API app is written with. The author
// writes the domain code, an App: how a task splits into parts, how one part
// is computed, how a result is checked, how the results merge. The SDK does
// the rest, the same way for every app: the gRPC services of both roles, the
// work-dir layout, typed parameters, a crash-safe state store per task, the
// state machine of parts and subtasks, attempts, verification by
// redundancy, dependencies, and merging into task_outputs.
//
// # A worked example
//
// An app that sums the squares of 1..N, in parts of at most 100 numbers:
//
//	type Params struct {
//		N int `json:"n"`
//	}
//
//	func (p Params) Validate() error {
//		if p.N < 1 {
//			return fmt.Errorf("n is %d; it must be at least 1", p.N)
//		}
//		return nil
//	}
//
//	type Range struct {
//		From int `json:"from"`
//		To   int `json:"to"` // inclusive
//	}
//
//	type squares struct{}
//
//	func (squares) Split(ctx context.Context, t *sdk.Task[Params]) ([]sdk.Part[Range], error) {
//		var parts []sdk.Part[Range]
//		for from := 1; from <= t.Params.N; from += 100 {
//			parts = append(parts, sdk.Part[Range]{Params: Range{from, min(from+99, t.Params.N)}})
//		}
//		return parts, nil
//	}
//
//	func (squares) Compute(ctx context.Context, s *sdk.Subtask[Range]) (string, error) {
//		sum := 0
//		for i := s.Params.From; i <= s.Params.To; i++ {
//			sum += i * i
//		}
//		out, err := s.OutputPath("sum.txt")
//		if err != nil {
//			return "", err
//		}
//		return out, os.WriteFile(out, []byte(strconv.Itoa(sum)), 0o644)
//	}
//
//	func (squares) Verify(ctx context.Context, r *sdk.Result[Params, Range]) (sdk.Verdict, error) {
//		b, err := os.ReadFile(r.File)
//		if err != nil {
//			return sdk.Verdict{}, err // the check failed, not the result: codes.Internal
//		}
//		if _, err := strconv.Atoi(string(b)); err != nil {
//			return sdk.Reject("not a number: %q", b), nil
//		}
//		return sdk.Accept(), nil
//	}
//
//	func (squares) Merge(ctx context.Context, t *sdk.Task[Params], results []*sdk.Result[Params, Range]) error {
//		total := 0
//		for _, r := range results { // one per part, in part order
//			b, err := os.ReadFile(r.File)
//			if err != nil {
//				return err
//			}
//			n, _ := strconv.Atoi(string(b))
//			total += n
//		}
//		return os.WriteFile(filepath.Join(t.Dir.Outputs(), "total.txt"), []byte(strconv.Itoa(total)), 0o644)
//	}
//
//	func main() { sdk.Main(squares{}) }
//
// The binary serves `requestor PORT` and `provider PORT` (see appmain for the
// flags, TLS and signals). Example runs the same app in process, playing the
// host.
//
// # Parameters
//
// The task's task_params_json is decoded into P, a part's params into S,
// with encoding/json and unknown fields refused: a typo'd field is
// codes.InvalidArgument naming it ("task_params_json: unknown field
// \"frmaes\""), a value of the wrong type names its field ("field
// \"frames.count\": got a JSON string, want int"). When *P has a method
// SetDefaults(), it runs before decoding: fields the JSON leaves out keep
// their defaults, an explicit zero is kept, and empty params give the
// defaults whole; without it, empty params give the zero P. When P (or *P)
// has a method Validate() error, it runs after decoding and its error is
// codes.InvalidArgument too: return a plain error from Validate (the SDK
// adds ErrInvalidParams and the field), whereas Split wraps ErrInvalidParams
// itself. Split may refuse a
// task the same way, by returning an error wrapping ErrInvalidParams (or a
// *taskapi.FieldError); any other error of Split is codes.Internal. A task
// that splits into no parts is InvalidArgument; more parts than
// max_subtasks_count (when not 0) is the app's bug (Internal).
//
// On the wire a part's params travel as {"part": N, "params": <S as JSON>};
// the provider decodes that back into Subtask.Part and Subtask.Params, with
// the same rules (and S's Validate) for subtask_params_json.
//
// # The work dir
//
// Task T lives in {work dir}/T (RequestorDir): CreateTask makes its
// task_inputs/, subtask_inputs/, task_outputs/, subtask_outputs/ and .gtask/
// where they are missing. The SDK's own files are in .gtask/, never in
// task_outputs/: state.db (the task's bbolt store), merge/ (Merge's staging
// dir), task.json ({"parts": N}, the number of parts Split returned,
// written atomically once the parts are stored, so that a host sharing the
// file system can show progress) and status.json (the outcome, below).
//
// # Parts and subtasks
//
// Split runs once, at CreateTask; its parts are stored, with the task's
// params and options, in one transaction before CreateTask replies. A second
// CreateTask for T (in this process or after a restart) is ErrTaskExists
// (AlreadyExists); any call for a task never created is ErrUnknownTask
// (NotFound).
//
// A part is WAITING, COMPUTING, VERIFYING, SUCCESS, FAILURE or ABORTED; a
// subtask (one attempt at a part, on one node) is COMPUTING from
// NextSubtask until Verify answers, VERIFYING while Verify answered
// AWAITING_DATA or INCONCLUSIVE, then SUCCESS, FAILURE or ABORTED.
//
// NextSubtask hands out a computable part: one that is not accepted, whose
// dependencies (Part.DependsOn) are all accepted, and that has fewer live
// subtasks than it needs (one, or k with redundancy). Parts that were handed
// out before and need computing again come first, then fresh parts in
// order. When nothing is computable for the node, NextSubtask answers an
// empty reply: no subtask, no error. A subtask id used before in the task is
// ErrSubtaskExists (AlreadyExists).
//
// HasPendingSubtasks is true when a part is computable now, and then the
// next NextSubtask hands out a subtask to any node that does not already
// hold a live subtask of that part; without redundancy (and without an
// INCONCLUSIVE verdict in flight) that is any node at all. It is false
// while every remaining part is being computed or verified, or waits for
// its dependencies, and once the task has ended. Both calls cost O(log n)
// in the number of parts, never a scan.
//
// # Verification
//
// The host puts subtask S's result in subtask_outputs/S/ before it calls
// Verify. The SDK expects exactly one regular file there: none, several, or
// anything but a regular file is a rejection (FAILURE, saying so), not an
// error. It then runs the app's Verify (outside any store transaction, with
// a context that AbortTask, AbortSubtask and Shutdown cancel: the call then
// answers CANCELED), hashes the file (sha256), records the outcome durably
// and answers:
//   - Accept: SUCCESS (with redundancy, once a majority agrees; below).
//   - Reject: FAILURE. The part is computable again, on any node.
//   - AwaitData: AWAITING_DATA. The subtask stays VERIFYING, still counted
//     against its part, until Verify is called again, which runs the app's
//     Verify again.
//   - Inconclusive: INCONCLUSIVE. The result is kept as a vote, and the part
//     needs one more result, from another node, that agrees with it by
//     content hash; the SDK computes that replica like a redundant one.
//   - an error: the check itself failed; codes.Internal (or the code of a
//     status error the app returned), nothing is recorded and the host may
//     call Verify again. A zero Verdict is the app's bug: Internal, never
//     SUCCESS.
//
// Verify is idempotent: a subtask with a final verdict (SUCCESS or FAILURE)
// gets the same verdict and reason on every later Verify, without the app
// running again, also after a restart, so a host that crashed before it
// read the reply can simply ask again. A VERIFYING subtask whose vote is in
// is not checked by the app again: its part's votes are counted again, and
// while they have not changed the answer is the same. Verify of an ABORTED
// subtask is ErrSubtaskAborted (FailedPrecondition); of a subtask left
// unjudged when its task failed, ErrTaskFailed.
//
// # Attempts
//
// A subtask that ends FAILURE (rejected, or outvoted) or ABORTED (by
// AbortSubtask) makes its part computable again, and counts as a failed
// attempt of the part; so does each extra replica asked for by
// disagreement or INCONCLUSIVE. When a part reaches K failed attempts
// (WithMaxAttempts, default 3) the task fails: the Verify that used the
// last attempt answers FAILURE with a reason ending "part N failed K times;
// task failed" (an AbortSubtask that used it just returns), live subtasks
// are ABORTED, and HasPendingSubtasks turns false. With redundancy k a part is thus computed
// at most k-1+K times. Discards and restarts cost no attempt, and the count
// is never reset.
//
// # Redundancy
//
// WithRedundancy(k) computes each part on k distinct nodes (by
// opaque_node_id: a node never holds two live subtasks of one part) and
// compares the results by sha256 of the file. The app's Verify still judges
// each result first (a rejected one is replaced). Until k results are in,
// Verify answers AWAITING_DATA; once at least k are in, a strict majority of
// all the results so far decides: its subtasks become SUCCESS (the first of
// them is the one Merge gets), the others FAILURE. Without a majority the
// Verify that found the tie answers INCONCLUSIVE and the part wants one more
// replica, until a majority emerges or the part runs out of attempts. A host
// learns the final verdict of an AWAITING_DATA or INCONCLUSIVE subtask by
// calling Verify again after a later verification.
//
// # Dependencies and DiscardSubtasks
//
// A part whose DependsOn lists earlier parts is computable only once they
// are all accepted. DiscardSubtasks drops the named results (subtasks that
// are SUCCESS, or VERIFYING with a result in): an accepted part loses its
// result (all its agreeing subtasks), and, transitively, every part that
// depends on a dropped part loses its accepted result and its live
// subtasks, since they were made from the dropped data. Dropped subtasks
// become ABORTED, their parts computable again (once their dependencies are
// accepted again), without counting an attempt. It answers exactly the ids
// it dropped: the named ones that held a result and those the cascade
// reached; unknown ids and subtasks without a result are ignored.
// DiscardSubtasks on a finished task is ErrTaskFinished.
//
// # Aborting
//
// AbortSubtask stops one subtask: a verification of it in flight is
// cancelled (that Verify answers CANCELED), it becomes ABORTED and its part
// computable again (counting an attempt). Aborting a FAILURE or ABORTED
// subtask does nothing; an accepted one is ErrWrongState (discard it
// instead).
//
// AbortTask marks the task aborted (durably), then cancels its
// verifications and merge in flight (CANCELED) and marks its live subtasks
// ABORTED. Every later call for the task answers ErrTaskAborted
// (FailedPrecondition), except HasPendingSubtasks (false) and AbortTask (a
// no-op), also after a restart. AbortTask of a task that already finished
// or failed changes nothing: its outcome stands.
//
// # Merge
//
// When the last part is accepted, the Verify that accepted it runs Merge
// before it replies (once: a concurrent Verify that needs the merge waits
// for it; other calls answer meanwhile as for a task with nothing left to
// hand out). Merge
// writes into t.Dir.Outputs(), which is a staging dir (.gtask/merge/); when
// Merge returns nil the SDK empties task_outputs/, moves the staged files
// in, and marks the task finished, durably. So task_outputs/ holds the
// result files and nothing else, and never a half-merged result. A crash
// before the task is marked finished reruns Merge on the next start (Merge
// must therefore be idempotent over its inputs, as writing files is). An
// error from Merge fails the task with the reason "merging the results:
// <error>"; the accepted verdicts stand.
//
// # Finished or failed: how a host tells
//
// A task ends finished, failed or aborted. A host tells which by any of:
//   - The last Verify's reason: the Verify that accepted the last part
//     answers SUCCESS with a reason ending "; task finished" (or, when Merge
//     failed, "; task failed: <reason>"); the Verify that used up a part's
//     attempts answers FAILURE with a reason ending "part N failed K times;
//     task failed". Retries give the same text.
//   - NextSubtask (or DiscardSubtasks) after the end answers
//     FailedPrecondition with the message `task "T": task is finished`
//     (ErrTaskFinished), `task "T": task failed: <reason>` (ErrTaskFailed) or
//     `task "T": task was aborted` (ErrTaskAborted), while for a running
//     task it answers a subtask or an empty reply. HasPendingSubtasks is
//     false in all three cases.
//   - {task dir}/.gtask/status.json, for hosts that share the file system:
//     {"state": "finished"|"failed"|"aborted", "reason": "..."}, written
//     atomically (temporary file and rename) once the task has ended, absent
//     before. ReadStatus reads it.
//
// # Crash safety and restarts
//
// Each task has its own bbolt store, .gtask/state.db; every state change is
// committed (fsync) before the call that made it replies, so kill -9 at any
// moment loses nothing a host was told. Restarted over the same work dir,
// the requestor opens a task's store on the first call that names it, with
// no CreateTask: accepted results, votes, attempts and aborts are all
// there. Subtasks that were COMPUTING at the crash are detached: their parts
// are computable again at once (no attempt counted), because the host that
// was computing them may be gone too; a host that is not gone may still
// Verify them, and the result is used if the part still needs one (else it
// is answered, "not used", and dropped). A merge the crash interrupted runs
// again. The store keeps the cost of every call independent of the number
// of parts: parts never handed out are found by a cursor, not an index
// written per part.
//
// # Many tasks
//
// One requestor Handler serves any number of tasks at once, each with its
// own store and its own lock: nothing is shared between tasks, and the
// Handler holds no package-level state. Handler.Shutdown cancels what is in
// flight and closes every store.
//
// # The provider
//
// NewProvider's Compute decodes the subtask's params, calls App.Compute
// with Subtask.Dir the provider's task work dir, and answers its returned
// path relative to that dir (Compute may return it absolute or relative); a
// path outside the dir is an error. RunBenchmark, on either side, calls the
// App's Benchmarker, or answers ErrNoBenchmark (Unimplemented).
//
// # Errors
//
// The SDK's sentinel errors are in one var block (ErrInvalidParams, ...),
// each a gRPC status error that keeps its code when wrapped, as the
// requestor and provider servers answer it.
package sdk
