package testdriver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/taskapi"
)

// Sentinel errors, wrapped with %w by the errors Run returns.
var (
	// ErrStuck: the task cannot progress: nothing is being computed, and
	// either HasPendingSubtasks answers true while NextSubtask gives none of
	// the nodes a subtask, or some results wait for data that can no longer
	// come. Waiting would not help: the requestor changes state only when
	// it is called.
	ErrStuck = errors.New("the task is stuck")
	// ErrBadOutput: a provider named an output that is not a regular file
	// inside its work dir. The attempt counts as failed (AbortSubtask).
	ErrBadOutput = errors.New("bad output path")
	// ErrInjected is the error of an attempt given FaultError.
	ErrInjected = errors.New("injected compute error")
)

// RestartRequestor, returned by Config.OnEvent, makes the driver kill the
// requestor with SIGKILL (when it still runs) and start a new one over the
// same work dir before the loop goes on, as fs.SkipDir steers a walk. After
// a RequestorDied event it is the only answer that lets the run continue:
// the call that failed is then made again to the new requestor.
var RestartRequestor = errors.New("restart the requestor")

// Fault is what the driver does to one attempt instead of, or after,
// computing it honestly.
type Fault int

// The faults.
const (
	// NoFault computes the attempt and hands the result over unchanged.
	NoFault Fault = iota
	// FaultError fails the attempt as if Compute had returned an error; no
	// provider runs. The driver calls AbortSubtask, as for a real error.
	FaultError
	// FaultWrong computes the attempt, then alters the result file's bytes
	// (each byte inverted; an empty file gets one byte) before Verify.
	FaultWrong
	// FaultMissing computes the attempt but copies no result back: Verify
	// finds subtask_outputs/{subtask}/ empty.
	FaultMissing
	// FaultHang makes Compute never answer: the attempt waits for its
	// deadline (Config.ComputeTimeout; without one, for the run's end),
	// then fails as a compute error.
	FaultHang
)

func (f Fault) String() string {
	switch f {
	case NoFault:
		return "none"
	case FaultError:
		return "error"
	case FaultWrong:
		return "wrong"
	case FaultMissing:
		return "missing"
	case FaultHang:
		return "hang"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// Config describes one task run. Bin and WorkDir and TaskID are required;
// the zero value of every other field works.
type Config struct {
	// Bin is the app's executable, serving both roles (package appmain's
	// command line). Used by Run only.
	Bin string
	// Args are extra arguments put before --work-dir and the role, e.g.
	// --listen. Used by Run only.
	Args []string
	// Env is added to the driver's own environment for every child. Used by
	// Run only.
	Env []string
	// Log receives the children's stderr, each line prefixed with the
	// child's name ("requestor#1", "provider node-0 SUBTASK"). Default:
	// discarded. Used by Run only.
	Log io.Writer

	// WorkDir is the requestor's work dir. The driver creates
	// {WorkDir}/{TaskID}/ with the contract's four directories.
	WorkDir string
	// TaskID names the task.
	TaskID string
	// Params are the task's parameters; nil sends none.
	Params json.RawMessage
	// Inputs are files copied into task_inputs/ (by base name) before
	// CreateTask.
	Inputs []string
	// MaxSubtasks is CreateTask's max_subtasks_count; 0 lets the app choose.
	MaxSubtasks int
	// Providers is how many subtasks are computed at once, each slot on a
	// node of its own: slot i starts as node "node-i". Default 1.
	Providers int
	// KeepFailedNodes keeps a slot's node after one of its attempts failed
	// (a compute error, or a FAILURE verdict). By default such a node gets
	// no more subtasks of the task, as a host bans a provider that failed
	// it: its slot goes on as a fresh node ("node-P", "node-P+1", ... with
	// P = Providers), so a failed part is computed again elsewhere.
	KeepFailedNodes bool
	// ComputeTimeout bounds each attempt (provider start, Compute, exit); an
	// attempt over it fails as a compute error. Default: none (the run's
	// ctx bounds it).
	ComputeTimeout time.Duration
	// ScratchDir is where providers' task work dirs are made, one fresh
	// prov-{subtask id}/ per attempt, removed after it. Default: a temp dir
	// removed when the run ends.
	ScratchDir string
	// Fault, when set, picks the fault of each attempt as it is handed out.
	// Default: no faults.
	Fault func(Assignment) Fault
	// OnEvent, when set, is called after each step of the loop (see
	// EventKind), always from the one goroutine that calls the requestor, so
	// it needs no locking and may call Event.Requestor. Returning nil goes
	// on; RestartRequestor restarts the requestor; any other error ends the
	// run with it.
	OnEvent func(Event) error
}

// Assignment is one subtask as NextSubtask handed it out.
type Assignment struct {
	// Slot is the provider slot computing it, and Node that slot's node id.
	Slot int
	Node string
	// SubtaskID is the fresh id the driver chose.
	SubtaskID string
	// Part is the "part" field of the subtask params, as the SDK sends them
	// ({"part": N, "params": ...}); -1 when the params have none.
	Part int
	// Attempt counts the subtasks handed out for Part so far, this one
	// included (replicas too): 1 for the first. 0 when Part is -1.
	Attempt int
	// Params and Resources are NextSubtask's answer.
	Params    json.RawMessage
	Resources []string
}

// EventKind says which step an Event follows.
type EventKind int

// The steps of the loop, in the order they happen for one subtask.
const (
	// RequestorStarted: a requestor process serves and is dialled; N is 1
	// for the first, 2 after the first restart, and so on.
	RequestorStarted EventKind = iota + 1
	// TaskCreated: CreateTask answered.
	TaskCreated
	// SubtaskAssigned: NextSubtask handed out Assignment.
	SubtaskAssigned
	// SubtaskComputed: the attempt ended: Err is its compute error (nil when
	// the result was copied back), Fault what was injected.
	SubtaskComputed
	// SubtaskAborted: AbortSubtask answered for an attempt whose compute
	// failed.
	SubtaskAborted
	// SubtaskVerified: Verify answered Verdict and Reason; Again is true
	// for a re-verification of a result that was AWAITING_DATA.
	SubtaskVerified
	// RequestorDied: a call failed and the requestor process has exited;
	// Err is the call's error. Return RestartRequestor to go on.
	RequestorDied
	// TaskDone: the loop ended (nothing pending, in flight or awaiting
	// data); the requestor still runs.
	TaskDone
)

func (k EventKind) String() string {
	switch k {
	case RequestorStarted:
		return "RequestorStarted"
	case TaskCreated:
		return "TaskCreated"
	case SubtaskAssigned:
		return "SubtaskAssigned"
	case SubtaskComputed:
		return "SubtaskComputed"
	case SubtaskAborted:
		return "SubtaskAborted"
	case SubtaskVerified:
		return "SubtaskVerified"
	case RequestorDied:
		return "RequestorDied"
	case TaskDone:
		return "TaskDone"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one step of the loop, for Config.OnEvent.
type Event struct {
	Kind EventKind
	// N counts the events of this Kind in this run, this one included, so
	// that "the second verification" is Kind == SubtaskVerified && N == 2.
	N int
	// Assignment is set for the Subtask* kinds.
	Assignment Assignment
	// Fault is the fault injected into the attempt (SubtaskComputed).
	Fault Fault
	// Err: the compute error (SubtaskComputed) or the failed call's error
	// (RequestorDied).
	Err error
	// Verdict, Reason and Again: Verify's answer (SubtaskVerified).
	Verdict requestor.Verdict
	Reason  string
	Again   bool
	// Requestor is the live requestor, valid only during the call of
	// OnEvent (nil for RequestorDied): a test may call it to check the
	// state, e.g. that Verify still answers SUCCESS after a restart.
	Requestor Requestor
}

// Record is what happened to one subtask.
type Record struct {
	Assignment
	// Fault is the fault injected.
	Fault Fault
	// ComputeErr is the attempt's compute error; nil when its result was
	// handed to Verify.
	ComputeErr error
	// Verdict and Reason are Verify's last answer; Verdict is 0 (not a
	// verdict) when Verify was never called or answered FailedPrecondition
	// because the task had ended meanwhile (Reason then says so).
	Verdict requestor.Verdict
	Reason  string
	// Verifications counts the Verify calls for it.
	Verifications int
}

// Outcome is what a run did. Run returns it even with an error, describing
// the run up to the error.
type Outcome struct {
	// TaskDir is {WorkDir}/{TaskID}; OutputsDir its task_outputs/.
	TaskDir    string
	OutputsDir string
	// Outputs lists the regular files under OutputsDir, relative to it,
	// sorted.
	Outputs []string
	// Status is {task dir}/.gtask/status.json, where the SDK publishes the
	// task's state; nil when there is none.
	Status json.RawMessage
	// Finished says the task ended well: HasPendingSubtasks answered false
	// with nothing in flight, and the status says "finished" (or, without a
	// status file, task_outputs is not empty).
	Finished bool
	// Subtasks records every subtask handed out, in order.
	Subtasks []*Record
	// Verdicts counts the subtasks by their last verdict.
	Verdicts map[requestor.Verdict]int
	// ComputeErrors counts the attempts whose compute failed (injected
	// faults included).
	ComputeErrors int
	// Restarts counts the requestor restarts.
	Restarts int
}

// Requestor is the part of the RequestorApp service the loop calls.
// *host.RequestorClient has these methods, and so has requestor.Handler, so
// the same loop drives a process over gRPC or a Handler in process.
type Requestor interface {
	CreateTask(ctx context.Context, taskID string, maxSubtasks int, params json.RawMessage) (requestor.Task, error)
	NextSubtask(ctx context.Context, taskID, subtaskID, nodeID string) (*requestor.Subtask, error)
	Verify(ctx context.Context, taskID, subtaskID string) (requestor.Verdict, string, error)
	HasPendingSubtasks(ctx context.Context, taskID string) (bool, error)
	AbortSubtask(ctx context.Context, taskID, subtaskID string) error
}

// Backend is where the loop's requestor and providers run: processes for
// Run, anything else for RunWith (package sdktest runs them in process).
type Backend interface {
	// Requestor is the requestor serving now.
	Requestor() Requestor
	// RestartRequestor kills the requestor (when it still runs) without
	// letting it clean up, and starts a new one over the same work dir.
	RestartRequestor(ctx context.Context) error
	// RequestorDied reports whether err, the error of a call to the
	// requestor, means the requestor is gone (so a restart could help).
	RequestorDied(ctx context.Context, err error) bool
	// Compute computes a's subtask of task taskID on a fresh provider whose
	// task work dir is dir (its subtask_inputs/ holds the resources), and
	// returns the result's path relative to dir. It returns when the
	// provider is gone; ctx's end must stop it.
	Compute(ctx context.Context, a Assignment, dir, taskID string) (string, error)
}

// RunWith drives cfg's task on b, as Run does with processes, and leaves b
// open: the caller closes it. Bin, Args, Env and Log are not used.
func RunWith(ctx context.Context, cfg Config, b Backend) (*Outcome, error) {
	if cfg.WorkDir == "" || cfg.TaskID == "" {
		return nil, errors.New("testdriver: Config.WorkDir and Config.TaskID are required")
	}
	if err := taskapi.ValidateID("TaskID", cfg.TaskID); err != nil {
		return nil, fmt.Errorf("testdriver: %w", err)
	}
	if cfg.Providers <= 0 {
		cfg.Providers = 1
	}
	r := &run{
		cfg:      cfg,
		b:        b,
		taskDir:  filepath.Join(cfg.WorkDir, cfg.TaskID),
		counts:   map[EventKind]int{},
		attempts: map[int]int{},
		byID:     map[string]*Record{},
		busy:     make([]bool, cfg.Providers),
		nodes:    make([]string, cfg.Providers),
		done:     make(chan attemptResult, cfg.Providers),
		out: &Outcome{
			TaskDir:  filepath.Join(cfg.WorkDir, cfg.TaskID),
			Verdicts: map[requestor.Verdict]int{},
		},
	}
	r.out.OutputsDir = filepath.Join(r.taskDir, taskapi.TaskOutputsDir())
	for i := range r.nodes {
		r.nodes[i] = fmt.Sprintf("node-%d", i)
	}
	scratch := cfg.ScratchDir
	if scratch == "" {
		dir, err := os.MkdirTemp("", "gtask-testdriver-")
		if err != nil {
			return nil, fmt.Errorf("testdriver: scratch dir: %w", err)
		}
		defer os.RemoveAll(dir)
		scratch = dir
	}
	r.scratch = scratch

	// Workers are owned by this call: on any return they are cancelled and
	// waited for, so no provider outlives RunWith.
	wctx, cancel := context.WithCancel(ctx)
	defer r.wg.Wait()
	defer cancel()
	r.wctx = wctx

	err := r.loop(ctx)
	if err == nil {
		err = r.finish()
	}
	if err != nil {
		return r.out, fmt.Errorf("testdriver: task %s: %w", cfg.TaskID, err)
	}
	return r.out, nil
}

// run is the state of one RunWith. Only the loop's goroutine touches it;
// workers get their inputs by value and answer on done.
type run struct {
	cfg     Config
	b       Backend
	taskDir string
	scratch string
	out     *Outcome

	counts   map[EventKind]int
	attempts map[int]int // subtasks handed out per part
	byID     map[string]*Record
	busy     []bool
	nodes    []string // each slot's node now
	newNodes int      // nodes made to replace failed ones
	inflight int
	awaiting []string // subtasks whose last verdict is AWAITING_DATA

	wctx context.Context
	wg   sync.WaitGroup
	// done receives the workers' results; its buffer holds one per slot,
	// so a worker never blocks on it even when the loop has returned.
	done chan attemptResult
}

type attemptResult struct {
	a     Assignment
	fault Fault
	err   error
}

func (r *run) loop(ctx context.Context) error {
	if err := r.prepare(); err != nil {
		return err
	}
	if err := r.emit(ctx, Event{Kind: RequestorStarted}); err != nil {
		return err
	}
	if err := r.create(ctx); err != nil {
		return err
	}
	for {
		pending, err := r.schedule(ctx)
		if err != nil {
			return err
		}
		if r.inflight == 0 {
			if len(r.awaiting) > 0 {
				// Nothing else will finish to trigger their re-verification;
				// one more pass may still settle them (the requestor may have
				// all it needs since their last Verify).
				changed, err := r.reverify(ctx, "")
				if err != nil {
					return err
				}
				if changed {
					continue
				}
				return fmt.Errorf("%w: subtasks %s await data, but nothing is pending or being computed", ErrStuck, strings.Join(r.awaiting, ", "))
			}
			if pending {
				return fmt.Errorf("%w: HasPendingSubtasks answers true, but NextSubtask gives none of the %d node(s) a subtask and nothing is being computed", ErrStuck, r.cfg.Providers)
			}
			return r.emit(ctx, Event{Kind: TaskDone})
		}
		select {
		case res := <-r.done:
			r.inflight--
			r.busy[res.a.Slot] = false
			if err := r.handle(ctx, res); err != nil {
				return err
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// prepare makes the task dir and copies the inputs, as a host does before
// CreateTask.
func (r *run) prepare() error {
	for _, d := range []string{taskapi.TaskInputsDir(), taskapi.SubtaskInputsDir(), taskapi.TaskOutputsDir(), taskapi.SubtaskOutputsDir()} {
		if err := os.MkdirAll(filepath.Join(r.taskDir, d), 0o755); err != nil {
			return err
		}
	}
	for _, in := range r.cfg.Inputs {
		dst := filepath.Join(r.taskDir, taskapi.TaskInputsDir(), filepath.Base(in))
		if err := copyFile(in, dst); err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
	return nil
}

func (r *run) create(ctx context.Context) error {
	retried := false
	err := r.call(ctx, "CreateTask", func(req Requestor) error {
		_, err := req.CreateTask(ctx, r.cfg.TaskID, r.cfg.MaxSubtasks, r.cfg.Params)
		// A requestor that died after storing the task but before answering
		// knows it after the restart; that is the one AlreadyExists a host
		// may take as success.
		if retried && status.Code(err) == codes.AlreadyExists {
			return nil
		}
		retried = true
		return err
	})
	if err != nil {
		return err
	}
	return r.emit(ctx, Event{Kind: TaskCreated})
}

// schedule hands out subtasks to the free slots, each slot asked at most
// once, and reports the last HasPendingSubtasks answer (false when no slot
// was free).
func (r *run) schedule(ctx context.Context) (bool, error) {
	pending := false
	for slot := range r.busy {
		if r.busy[slot] {
			continue
		}
		if err := r.call(ctx, "HasPendingSubtasks", func(req Requestor) (err error) {
			pending, err = req.HasPendingSubtasks(ctx, r.cfg.TaskID)
			return err
		}); err != nil {
			return false, err
		}
		if !pending {
			return false, nil
		}
		a, ok, err := r.next(ctx, slot)
		if err != nil {
			return false, err
		}
		if ok {
			if err := r.start(ctx, a); err != nil {
				return false, err
			}
		}
	}
	return pending, nil
}

// next asks for a subtask for slot.
func (r *run) next(ctx context.Context, slot int) (Assignment, bool, error) {
	node := r.nodes[slot]
	var sub *requestor.Subtask
	id := uuid.NewString()
	err := r.call(ctx, "NextSubtask", func(req Requestor) error {
		var err error
		sub, err = req.NextSubtask(ctx, r.cfg.TaskID, id, node)
		return err
	}, func(req Requestor) error {
		// The requestor died during NextSubtask: it may have stored the
		// subtask before dying. Abort it so that its part is not held by a
		// subtask nobody computes, then ask again with a fresh id.
		err := req.AbortSubtask(ctx, r.cfg.TaskID, id)
		if status.Code(err) == codes.NotFound {
			err = nil
		}
		id = uuid.NewString()
		return err
	})
	if err != nil || sub == nil {
		return Assignment{}, false, err
	}
	a := Assignment{
		Slot: slot, Node: node, SubtaskID: id, Part: partOf(sub.Params),
		Params: sub.Params, Resources: sub.Resources,
	}
	if a.Part >= 0 {
		r.attempts[a.Part]++
		a.Attempt = r.attempts[a.Part]
	}
	return a, true, nil
}

// partOf reads the part number the SDK puts in its subtask params.
func partOf(params json.RawMessage) int {
	var p struct {
		Part *int `json:"part"`
	}
	if json.Unmarshal(params, &p) != nil || p.Part == nil {
		return -1
	}
	return *p.Part
}

// start records a and starts computing it on its slot.
func (r *run) start(ctx context.Context, a Assignment) error {
	fault := NoFault
	if r.cfg.Fault != nil {
		fault = r.cfg.Fault(a)
	}
	rec := &Record{Assignment: a, Fault: fault}
	r.out.Subtasks = append(r.out.Subtasks, rec)
	r.byID[a.SubtaskID] = rec
	r.busy[a.Slot] = true
	r.inflight++
	r.wg.Go(func() {
		r.done <- attemptResult{a: a, fault: fault, err: r.compute(r.wctx, a, fault)}
	})
	return r.emit(ctx, Event{Kind: SubtaskAssigned, Assignment: a})
}

// compute runs on a worker goroutine: it touches only its arguments, the
// file system and the backend's Compute.
func (r *run) compute(ctx context.Context, a Assignment, fault Fault) error {
	if r.cfg.ComputeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cfg.ComputeTimeout)
		defer cancel()
	}
	switch fault {
	case FaultError:
		return ErrInjected
	case FaultHang:
		<-ctx.Done()
		return fmt.Errorf("hung (injected): %w", context.Cause(ctx))
	}
	dir := filepath.Join(r.scratch, "prov-"+a.SubtaskID)
	defer os.RemoveAll(dir)
	for _, res := range a.Resources {
		if !filepath.IsLocal(res) {
			return fmt.Errorf("resource %q: not a relative path inside subtask_inputs", res)
		}
		src := filepath.Join(r.taskDir, taskapi.SubtaskInputsDir(), res)
		if err := copyFile(src, filepath.Join(dir, taskapi.SubtaskInputsDir(), res)); err != nil {
			return fmt.Errorf("resource: %w", err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, taskapi.SubtaskInputsDir()), 0o755); err != nil {
		return err
	}
	rel, err := r.b.Compute(ctx, a, dir, r.cfg.TaskID)
	if err != nil {
		return err
	}
	src, err := checkOutput(dir, rel)
	if err != nil {
		return err
	}
	if fault == FaultMissing {
		return nil
	}
	dst := filepath.Join(r.taskDir, taskapi.SubtaskOutputsDir(), a.SubtaskID, filepath.Base(rel))
	if err := copyFile(src, dst); err != nil {
		return fmt.Errorf("copying the result back: %w", err)
	}
	if fault == FaultWrong {
		return corrupt(dst)
	}
	return nil
}

// handle acts on a finished attempt: AbortSubtask after a compute error,
// else Verify and, after it, the re-verification of the results awaiting
// data.
func (r *run) handle(ctx context.Context, res attemptResult) error {
	rec := r.byID[res.a.SubtaskID]
	rec.ComputeErr = res.err
	if err := r.emit(ctx, Event{Kind: SubtaskComputed, Assignment: res.a, Fault: res.fault, Err: res.err}); err != nil {
		return err
	}
	if res.err != nil {
		r.out.ComputeErrors++
		r.ban(rec)
		err := r.call(ctx, "AbortSubtask", func(req Requestor) error {
			return req.AbortSubtask(ctx, r.cfg.TaskID, res.a.SubtaskID)
		})
		if r.late(err) {
			rec.Reason = "not aborted: " + err.Error()
			return nil
		}
		if err != nil {
			return err
		}
		return r.emit(ctx, Event{Kind: SubtaskAborted, Assignment: res.a})
	}
	if _, err := r.verify(ctx, rec, false); err != nil {
		return err
	}
	_, err := r.reverify(ctx, res.a.SubtaskID)
	return err
}

// verify calls Verify for rec and keeps the awaiting list.
func (r *run) verify(ctx context.Context, rec *Record, again bool) (requestor.Verdict, error) {
	var v requestor.Verdict
	var reason string
	err := r.call(ctx, "Verify", func(req Requestor) (err error) {
		v, reason, err = req.Verify(ctx, r.cfg.TaskID, rec.SubtaskID)
		return err
	})
	if r.late(err) {
		// A result that came in after the task ended has nothing to be
		// judged for.
		rec.Reason = "not verified: " + err.Error()
		r.awaiting = slices.DeleteFunc(r.awaiting, func(id string) bool { return id == rec.SubtaskID })
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if rec.Verdict.Valid() {
		if r.out.Verdicts[rec.Verdict]--; r.out.Verdicts[rec.Verdict] == 0 {
			delete(r.out.Verdicts, rec.Verdict)
		}
	}
	r.out.Verdicts[v]++
	rec.Verdict, rec.Reason = v, reason
	rec.Verifications++
	r.awaiting = slices.DeleteFunc(r.awaiting, func(id string) bool { return id == rec.SubtaskID })
	switch v {
	case requestor.AwaitingData:
		r.awaiting = append(r.awaiting, rec.SubtaskID)
	case requestor.Failure:
		r.ban(rec)
	}
	return v, r.emit(ctx, Event{Kind: SubtaskVerified, Assignment: rec.Assignment, Verdict: v, Reason: reason, Again: again})
}

// ban gives rec's slot a fresh node when rec's node failed, unless
// KeepFailedNodes.
func (r *run) ban(rec *Record) {
	if r.cfg.KeepFailedNodes || r.nodes[rec.Slot] != rec.Node {
		return
	}
	r.nodes[rec.Slot] = fmt.Sprintf("node-%d", r.cfg.Providers+r.newNodes)
	r.newNodes++
}

// late reports whether err is a FailedPrecondition answered because the
// task has ended (its status.json says so): the answer to a call for a
// result still in flight when the task failed or finished.
func (r *run) late(err error) bool {
	if status.Code(err) != codes.FailedPrecondition {
		return false
	}
	st, rerr := os.ReadFile(r.statusPath())
	if rerr != nil {
		return false
	}
	var s struct {
		State string `json:"state"`
	}
	return json.Unmarshal(st, &s) == nil && s.State != ""
}

func (r *run) statusPath() string { return filepath.Join(r.taskDir, ".gtask", "status.json") }

// reverify verifies again every result awaiting data except the one with
// id except, and reports whether any verdict changed.
func (r *run) reverify(ctx context.Context, except string) (bool, error) {
	changed := false
	for _, id := range slices.Clone(r.awaiting) {
		if id == except {
			continue
		}
		v, err := r.verify(ctx, r.byID[id], true)
		if err != nil {
			return false, err
		}
		changed = changed || v != requestor.AwaitingData
	}
	return changed, nil
}

// call makes one call to the requestor. When the requestor died during it,
// RequestorDied is emitted; if the hook restarts the requestor, each of
// recover runs against the new one and the call is made again.
func (r *run) call(ctx context.Context, what string, f func(Requestor) error, recover ...func(Requestor) error) error {
	for {
		err := f(r.b.Requestor())
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !r.b.RequestorDied(ctx, err) {
			return err
		}
		restarted, herr := r.emitOnce(ctx, Event{Kind: RequestorDied, Err: err})
		if !restarted {
			return errors.Join(fmt.Errorf("the requestor died during %s: %w", what, err), herr)
		}
		for _, rec := range recover {
			if err := r.call(ctx, what+" (recovering)", rec); err != nil {
				return err
			}
		}
	}
}

// emit calls the hook with ev and restarts the requestor when it asks.
func (r *run) emit(ctx context.Context, ev Event) error {
	_, err := r.emitOnce(ctx, ev)
	return err
}

func (r *run) emitOnce(ctx context.Context, ev Event) (restarted bool, err error) {
	r.counts[ev.Kind]++
	ev.N = r.counts[ev.Kind]
	if r.cfg.OnEvent == nil {
		return false, nil
	}
	if ev.Kind != RequestorDied {
		ev.Requestor = r.b.Requestor()
	}
	err = r.cfg.OnEvent(ev)
	if !errors.Is(err, RestartRequestor) {
		if err != nil {
			err = fmt.Errorf("OnEvent(%s #%d): %w", ev.Kind, ev.N, err)
		}
		return false, err
	}
	if err := r.b.RestartRequestor(ctx); err != nil {
		return false, fmt.Errorf("restarting the requestor: %w", err)
	}
	r.out.Restarts++
	return true, r.emit(ctx, Event{Kind: RequestorStarted})
}

// finish fills in the outputs and the status once the loop has ended.
func (r *run) finish() error {
	err := filepath.WalkDir(r.out.OutputsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(r.out.OutputsDir, p)
			if err != nil {
				return err
			}
			r.out.Outputs = append(r.out.Outputs, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing the outputs: %w", err)
	}
	st, err := os.ReadFile(r.statusPath())
	switch {
	case err == nil:
		r.out.Status = st
		r.out.Finished = statusFinished(st)
	case errors.Is(err, fs.ErrNotExist):
		r.out.Finished = len(r.out.Outputs) > 0
	default:
		return fmt.Errorf("reading the status: %w", err)
	}
	return nil
}

// statusFinished reads the state the SDK publishes in status.json.
func statusFinished(st []byte) bool {
	var s struct {
		State string `json:"state"`
	}
	return json.Unmarshal(st, &s) == nil && s.State == "finished"
}
