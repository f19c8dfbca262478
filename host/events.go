package host

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// EventKind says which step of a run an Event records.
type EventKind string

// The steps of a run. For one subtask they come in this order:
// subtask_assigned, then chaos_injected when chaos sabotaged the attempt,
// then compute_failed (followed by node_banned and subtask_aborted) or
// subtask_computed, then one or more verify_error and subtask_verified
// (a FAILURE followed by node_banned). A node is banned once: a node
// banned already is not banned again for another failed attempt.
const (
	// EventTaskStarted: Run began; Task names the task, Reason says what
	// the run is set up to do.
	EventTaskStarted EventKind = "task_started"
	// EventTaskResumed: a Run with RunConfig.Resume began, in place of
	// task_started, as task_started does: it goes on with a task an earlier
	// Run over the same work dir created and did not see to its end (its
	// host died). Its events follow the earlier run's in events.jsonl, Seq
	// going on from the last whole line there.
	EventTaskResumed EventKind = "task_resumed"
	// EventRequestorStarted: a requestor serves and is dialled (or, a
	// DirectInstance, connected in process); Attempt is 1 for the first, 2
	// after the first restart, and so on.
	EventRequestorStarted EventKind = "requestor_started"
	// EventRequestorDied: the requestor exited during a call (Reason says
	// which and why); a restart follows unless the restarts are used up.
	EventRequestorDied EventKind = "requestor_died"
	// EventTaskCreated: CreateTask answered: Env is the environment, Parts
	// the total number of parts when the app publishes it (0 = unknown).
	// In a resumed run whose task exists already, Reason says so, and Env
	// is the one the task was created with.
	EventTaskCreated EventKind = "task_created"
	// EventSubtaskAssigned: NextSubtask handed out Subtask for Node on Slot;
	// Part and Attempt say which part and which attempt at it, when known.
	EventSubtaskAssigned EventKind = "subtask_assigned"
	// EventChaosInjected: the host sabotaged this attempt on purpose
	// (RunConfig.Chaos); Chaos says how, Reason in detail.
	EventChaosInjected EventKind = "chaos_injected"
	// EventSubtaskComputed: the attempt's output, Bytes long, was checked
	// and copied back into subtask_outputs/; Took is the attempt's time so
	// far.
	EventSubtaskComputed EventKind = "subtask_computed"
	// EventComputeFailed: the attempt failed before its output reached
	// verification; Fail says how (crash, timeout, error, bad_output, ...),
	// Code is the gRPC code of a Compute error, Reason says exactly what
	// happened.
	EventComputeFailed EventKind = "compute_failed"
	// EventSubtaskVerified: Verify answered Verdict and Reason; Again is
	// true for a re-verification of a result that awaited data or was
	// inconclusive.
	EventSubtaskVerified EventKind = "subtask_verified"
	// EventVerifyError: Verify failed (the check, not the result): Try is
	// the try that failed, Code and Reason the error.
	EventVerifyError EventKind = "verify_error"
	// EventSubtaskAborted: AbortSubtask answered for a failed attempt, so
	// that its part can be computed again.
	EventSubtaskAborted EventKind = "subtask_aborted"
	// EventNodeBanned: Node failed this task and gets none of it any more;
	// its Slot goes on as NewNode. When the slot had gone on as another
	// node already (node_replaced, before the verdict that failed Node
	// came), NewNode is empty: Node is banned all the same.
	EventNodeBanned EventKind = "node_banned"
	// EventNodeReplaced: the app had nothing for Node although subtasks
	// were pending (with redundancy, a node may hold a replica of every
	// computable part), so its Slot goes on as NewNode.
	EventNodeReplaced EventKind = "node_replaced"
	// EventBackupStarted: a slot with nothing else to do started computing
	// a copy of Subtask, a slow one, on its Node (see Backups): Backup
	// numbers the copy, Attempt is the subtask's, Reason says why. The
	// events of the copy's attempt carry the same Backup.
	EventBackupStarted EventKind = "backup_started"
	// EventSubtaskSuperseded: another copy of Subtask (the subtask or a
	// backup of it) was computed first, so this one was called off, or its
	// result dropped; it is neither a failure nor a ban. Took is how long it
	// had computed, Reason names the node that won.
	EventSubtaskSuperseded EventKind = "subtask_superseded"
	// EventTaskFinished, EventTaskFailed and EventTaskAborted end every
	// run that got as far as task_started (or task_resumed): Reason says
	// why, Summary what happened.
	EventTaskFinished EventKind = "task_finished"
	EventTaskFailed   EventKind = "task_failed"
	EventTaskAborted  EventKind = "task_aborted"
	// EventTaskStopped ends a run stopped with ErrStopped, in place of
	// those three: the task has not ended, and a Run with
	// RunConfig.Resume goes on with it (task_resumed).
	EventTaskStopped EventKind = "task_stopped"
)

// FailKind says how an attempt failed.
type FailKind string

// The ways an attempt fails. Each is a failed attempt of its part.
const (
	// FailStart: the provider could not be started or dialled.
	FailStart FailKind = "start"
	// FailResources: the subtask's resources could not be copied to the
	// provider (the requestor named a file it does not have, say).
	FailResources FailKind = "resources"
	// FailCrash: the provider exited (or was killed) before it answered.
	FailCrash FailKind = "crash"
	// FailTimeout: the attempt ran past RunConfig.SubtaskTimeout.
	FailTimeout FailKind = "timeout"
	// FailError: Compute answered an error; Event.Code is its gRPC code.
	FailError FailKind = "error"
	// FailBadOutput: the output Compute named is not one the host copies
	// back: not a relative path inside the provider's task dir, missing, a
	// symlink, a directory, or over RunConfig.MaxOutputSize.
	FailBadOutput FailKind = "bad_output"
	// FailCopy: the host could not write the output into subtask_outputs/.
	FailCopy FailKind = "copy"
	// FailRejected: Verify answered FAILURE.
	FailRejected FailKind = "rejected"
	// FailVerifyError: Verify kept failing (RunConfig.VerifyTries times),
	// so the subtask was aborted.
	FailVerifyError FailKind = "verify_error"
)

// Event is one step of a run, as RunConfig.OnEvent receives it and as the
// run's events.jsonl holds it (one JSON object per line). Fields that do
// not apply to a Kind are left out of the JSON.
type Event struct {
	// Seq numbers the run's events from 1, without gaps; a resumed run's
	// go on from the earlier run's (see RunConfig.Resume).
	Seq int64 `json:"seq"`
	// Time is when the event happened, in UTC.
	Time time.Time `json:"time"`
	Kind EventKind `json:"kind"`
	Task string    `json:"task"`

	Subtask string `json:"subtask,omitempty"`
	// Part is the part's index when the app says it (gtask apps send
	// {"part": N, ...} as subtask params); absent when unknown.
	Part *int `json:"part,omitempty"`
	// Attempt counts the subtasks handed out for this part so far, this
	// one included (replicas too); for requestor_started, the requestor's
	// start number.
	Attempt int    `json:"attempt,omitempty"`
	Slot    *int   `json:"slot,omitempty"`
	Node    string `json:"node,omitempty"`
	NewNode string `json:"new_node,omitempty"`
	// Backup numbers a backup's events (see Backups): 1 for the first
	// backup of Subtask; absent for the subtask NextSubtask handed out.
	Backup int `json:"backup,omitempty"`

	Env   string `json:"env,omitempty"`
	Parts int    `json:"parts,omitempty"`

	// Bytes is the size of the output copied back.
	Bytes int64 `json:"bytes,omitempty"`
	// Took is how long the attempt (or the verification) took.
	Took time.Duration `json:"took_ns,omitempty"`

	Fail    FailKind  `json:"fail,omitempty"`
	Code    string    `json:"code,omitempty"`
	Verdict string    `json:"verdict,omitempty"`
	Again   bool      `json:"again,omitempty"`
	Try     int       `json:"try,omitempty"`
	Chaos   ChaosKind `json:"chaos,omitempty"`
	Reason  string    `json:"reason,omitempty"`

	// Progress is the run's state just after this event.
	Progress Progress `json:"progress"`
	// Summary ends the run: set on task_finished, task_failed and
	// task_aborted only.
	Summary *Summary `json:"summary,omitempty"`
}

// Progress is the state of a run at one event: what a progress bar shows.
type Progress struct {
	// Parts is the task's number of parts; 0 when the app does not publish
	// it (see RunConfig).
	Parts int `json:"parts,omitempty"`
	// Done counts the parts accepted.
	Done int `json:"done"`
	// Computing counts the attempts in flight, Verifying the results
	// waiting for, or in, verification (awaiting data included).
	Computing int `json:"computing"`
	Verifying int `json:"verifying"`
	// Failed counts the failed attempts, Retried the subtasks handed out
	// for a part after one of its attempts failed.
	Failed  int `json:"failed"`
	Retried int `json:"retried"`
	// Injected counts the attempts chaos sabotaged.
	Injected int `json:"injected,omitempty"`
}

// Outcome is how a task ended.
type Outcome string

// The outcomes.
const (
	// Finished: the task's results are in its task_outputs/.
	Finished Outcome = "finished"
	// Failed: the app failed the task (it refused it at CreateTask, a part
	// ran out of attempts, its merge failed), as it said.
	Failed Outcome = "failed"
	// Aborted: the host aborted the task (AbortTask): too many failed
	// attempts, RunConfig.Timeout, a task that could not progress, or the
	// end of Run's ctx.
	Aborted Outcome = "aborted"
	// Stopped: the run stopped without ending the task, because Run's ctx
	// ended with ErrStopped: the task is as the app stored it, for a Run
	// with RunConfig.Resume to go on with.
	Stopped Outcome = "stopped"
)

// Counts are what happened in a run, in numbers.
type Counts struct {
	// Parts is the number of parts (0 when unknown), Done how many were
	// accepted.
	Parts int `json:"parts,omitempty"`
	Done  int `json:"done"`
	// Assigned counts the subtasks handed out, Computed those whose output
	// reached verification.
	Assigned int `json:"assigned"`
	Computed int `json:"computed"`
	// Accepted, Rejected, Inconclusive and AwaitingData count Verify's
	// answers by verdict (re-verifications included).
	Accepted     int `json:"accepted"`
	Rejected     int `json:"rejected"`
	Inconclusive int `json:"inconclusive,omitempty"`
	AwaitingData int `json:"awaiting_data,omitempty"`
	// Failed counts the failed attempts, FailedBy the same by kind.
	Failed   int              `json:"failed"`
	FailedBy map[FailKind]int `json:"failed_by,omitempty"`
	// Retried counts the subtasks handed out for a part after one of its
	// attempts failed.
	Retried int `json:"retried"`
	// VerifyErrors counts the Verify calls that failed.
	VerifyErrors int `json:"verify_errors,omitempty"`
	// Banned counts the nodes banned from the task.
	Banned int `json:"banned,omitempty"`
	// RequestorRestarts counts the restarts of a requestor that died.
	RequestorRestarts int `json:"requestor_restarts,omitempty"`
	// Backups counts the backups started (see Backups), BackupWins those
	// that were computed first, Superseded the copies, subtasks or
	// backups, that another copy beat.
	Backups    int `json:"backups,omitempty"`
	BackupWins int `json:"backup_wins,omitempty"`
	Superseded int `json:"superseded,omitempty"`
	// Injected counts the attempts chaos sabotaged, by kind; Recovered
	// those whose part was accepted afterwards.
	Injected  map[ChaosKind]int `json:"injected,omitempty"`
	Recovered int               `json:"recovered,omitempty"`
}

// InjectedTotal is the number of attempts chaos sabotaged.
func (c Counts) InjectedTotal() int {
	n := 0
	for _, v := range c.Injected {
		n += v
	}
	return n
}

func (c Counts) clone() Counts {
	c.FailedBy = maps.Clone(c.FailedBy)
	c.Injected = maps.Clone(c.Injected)
	return c
}

// Summary is how a run ended: the payload of its last event.
type Summary struct {
	Outcome Outcome `json:"outcome"`
	Reason  string  `json:"reason,omitempty"`
	Counts  Counts  `json:"counts"`
	// Duration is the run's time from task_started.
	Duration time.Duration `json:"duration_ns"`
}

// String says in one line what happened, for people: the outcome, the
// parts, the attempts and, with chaos, what was injected and recovered.
func (s Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s", s.Outcome, s.Duration.Round(time.Millisecond))
	if s.Reason != "" {
		fmt.Fprintf(&b, " (%s)", s.Reason)
	}
	c := s.Counts
	if c.Parts > 0 {
		fmt.Fprintf(&b, ": %d/%d parts", c.Done, c.Parts)
	} else {
		fmt.Fprintf(&b, ": %d parts", c.Done)
	}
	fmt.Fprintf(&b, ", %d subtasks (%d computed, %d accepted, %d rejected)", c.Assigned, c.Computed, c.Accepted, c.Rejected)
	fmt.Fprintf(&b, ", %d failed attempts", c.Failed)
	if len(c.FailedBy) > 0 {
		fmt.Fprintf(&b, " (%s)", byKind(c.FailedBy))
	}
	fmt.Fprintf(&b, ", %d retried", c.Retried)
	if c.Banned > 0 {
		fmt.Fprintf(&b, ", %d nodes banned", c.Banned)
	}
	if c.RequestorRestarts > 0 {
		fmt.Fprintf(&b, ", %d requestor restarts", c.RequestorRestarts)
	}
	if c.Backups > 0 {
		fmt.Fprintf(&b, ", backups %d (%d won)", c.Backups, c.BackupWins)
	}
	if n := c.InjectedTotal(); n > 0 {
		fmt.Fprintf(&b, "; chaos: injected %d (%s), recovered %d", n, byKind(c.Injected), c.Recovered)
	}
	return b.String()
}

// byKind writes a count map as "a 1, b 2", in key order.
func byKind[K ~string](m map[K]int) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// recorder numbers, stamps, writes and delivers a run's events, and keeps
// the run's counts, which each event's Progress is read from. Its mutex
// makes events leave in Seq order and never concurrently, from whichever
// goroutine records them.
type recorder struct {
	mu      sync.Mutex
	task    string
	seq     int64
	counts  Counts
	gauges  struct{ computing, verifying int }
	w       *bufio.Writer
	onEvent func(Event)
	err     error // the first write error; later events are not written
}

func newRecorder(task string, w io.Writer, onEvent func(Event)) *recorder {
	return &recorder{
		task:    task,
		w:       bufio.NewWriter(w),
		onEvent: onEvent,
		counts:  Counts{FailedBy: map[FailKind]int{}, Injected: map[ChaosKind]int{}},
	}
}

// update changes the counts under the recorder's lock, so that the next
// event's Progress includes the change.
func (r *recorder) update(f func(c *Counts)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.counts)
}

// setGauges sets the numbers of attempts computing and results verifying.
func (r *recorder) setGauges(computing, verifying int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gauges.computing, r.gauges.verifying = computing, verifying
}

// snapshot returns a copy of the counts.
func (r *recorder) snapshot() Counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts.clone()
}

// emit records ev: it numbers and stamps it, writes it as one JSON line,
// and passes it to the hook. The line is buffered when ev is one of the
// kinds every subtask makes (assigned, computed, verified), which the run's
// loop flushes (see flush) before it waits for anything, so that at a high
// rate a write carries many lines; any other event is flushed at once, with
// whatever is buffered before it. So a `tail -f` or a crash of the host
// misses at most the events of the loop's current turn, and the last event
// of a run is on disk before Run returns.
func (r *recorder) emit(ev Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	ev.Seq = r.seq
	ev.Time = time.Now().UTC()
	ev.Task = r.task
	c := r.counts
	ev.Progress = Progress{
		Parts: c.Parts, Done: c.Done,
		Computing: r.gauges.computing, Verifying: r.gauges.verifying,
		Failed: c.Failed, Retried: c.Retried, Injected: c.InjectedTotal(),
	}
	if ev.Summary != nil {
		s := *ev.Summary
		s.Counts = s.Counts.clone()
		ev.Summary = &s
	}
	if r.err == nil {
		line, err := json.Marshal(ev)
		if err == nil {
			line = append(line, '\n')
			_, err = r.w.Write(line)
		}
		if err == nil && !batched(ev.Kind) {
			err = r.w.Flush()
		}
		if err != nil {
			r.err = fmt.Errorf("writing event %d (%s): %w", ev.Seq, ev.Kind, err)
		}
	}
	if r.onEvent != nil {
		r.onEvent(ev)
	}
}

// batched reports whether events of kind may wait in the buffer for the
// next flush: the kinds every subtask makes, which set the rate of writes.
func batched(kind EventKind) bool {
	switch kind {
	case EventSubtaskAssigned, EventSubtaskComputed, EventSubtaskVerified:
		return true
	}
	return false
}

// flush writes the buffered events to the file.
func (r *recorder) flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil || r.w.Buffered() == 0 {
		return
	}
	if err := r.w.Flush(); err != nil {
		r.err = fmt.Errorf("writing events up to %d: %w", r.seq, err)
	}
}

// writeErr returns the first error writing the events, if any.
func (r *recorder) writeErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func intp(i int) *int { return &i }

// openEventsToResume opens the events.jsonl at path for a resumed run to
// append to, creating it if need be, and returns its last event, nil when
// it has none. A last line without its newline, which the host did not
// finish writing when it died, is cut off first; a last whole line that is
// not an event is an error, since Seq could not go on from it.
func openEventsToResume(path string) (*os.File, *Event, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	end, line, err := lastLine(f)
	if err == nil {
		err = f.Truncate(end)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("resuming %s: %w", path, err)
	}
	if line == nil {
		return f, nil, nil
	}
	var ev Event
	if err := json.Unmarshal(line, &ev); err != nil || ev.Seq <= 0 {
		f.Close()
		if err == nil {
			err = errors.New("it has no seq")
		}
		return nil, nil, fmt.Errorf("resuming %s: its last line is no event: %w", path, err)
	}
	return f, &ev, nil
}

// lastLine finds, in f, the end of its last whole line (just after its
// newline; 0 when there is none) and that line, without its newline (nil
// when there is none). It reads f from its end, no more than it needs.
func lastLine(f *os.File) (end int64, line []byte, err error) {
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err
	}
	size := st.Size()
	for window := int64(64 << 10); ; window *= 2 {
		start := max(size-window, 0)
		buf := make([]byte, size-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, nil, err
		}
		nl := bytes.LastIndexByte(buf, '\n')
		if nl < 0 {
			if start == 0 {
				return 0, nil, nil
			}
			continue
		}
		prev := bytes.LastIndexByte(buf[:nl], '\n')
		if prev < 0 && start > 0 {
			continue // the line begins before the window
		}
		return start + int64(nl) + 1, buf[prev+1 : nl], nil
	}
}
