package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/internal/taskstore"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/taskapi"
)

// The causes of a cancelled verification or merge; the caller of the
// cancelled Verify receives them (codes.Canceled, as the proto says).
var (
	errAbortedTask    = status.Error(codes.Canceled, "cancelled: the task was aborted")
	errAbortedSubtask = status.Error(codes.Canceled, "cancelled: the subtask was aborted or discarded")
	errShuttingDown   = status.Error(codes.Canceled, "cancelled: the requestor is shutting down")
	errClosed         = status.Error(codes.Unavailable, "the requestor is shut down")
)

// storeFile is the name of a task's state store in RequestorDir.State().
const storeFile = "state.db"

// taskInfoFile, in RequestorDir.State(), tells hosts sharing the file
// system what the task is made of (taskInfo), from CreateTask on.
const taskInfoFile = "task.json"

// taskInfo is the content of taskInfoFile: {"parts": N}, the number of
// parts Split returned.
type taskInfo struct {
	Parts int `json:"parts"`
}

// NewRequestor returns the requestor.Handler of app for the requestor work
// dir workDir: task T lives in workDir/T (see RequestorDir), its state in
// workDir/T/.gtask/state.db. One Handler serves any number of tasks at once,
// each with its own store; a task created by an earlier process over the
// same work dir is opened from disk by the first call that names it. log
// nil discards. See the package doc for the semantics of every call.
func NewRequestor[P, S any](app App[P, S], workDir string, log *slog.Logger, opts ...Option) requestor.Handler {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if abs, err := filepath.Abs(workDir); err == nil {
		workDir = abs
	}
	h := &requestorHandler[P, S]{app: app, workDir: workDir, log: log, opts: o, tasks: map[string]*taskEntry[P, S]{}}
	h.envID = o.envID
	if h.envID == "" {
		h.envID = taskapi.DockerCPUEnvID()
	}
	if o.prerequisites != nil {
		// Marshalled once; an error reaches the host at CreateTask, since
		// NewRequestor has no error to return.
		h.prereq, h.prereqErr = json.Marshal(o.prerequisites)
	}
	h.ctx, h.cancel = context.WithCancelCause(context.Background())
	return h
}

type requestorHandler[P, S any] struct {
	app       App[P, S]
	workDir   string
	log       *slog.Logger
	opts      options
	envID     string
	prereq    json.RawMessage
	prereqErr error

	// ctx is the parent of every app call that outlives a request
	// (verifications, merges); Shutdown cancels it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	tasks  map[string]*taskEntry[P, S]
	closed bool

	closeOnce sync.Once
	closeErr  error // set once by closeOnce
}

// taskEntry is one task's open state. It is in requestorHandler.tasks from
// the first call that names the task until Shutdown.
type taskEntry[P, S any] struct {
	// ready is closed once the entry is loaded (store open, params
	// decoded) or failed to (err set).
	ready chan struct{}
	err   error

	store *taskstore.Store
	task  *Task[P]
	dir   RequestorDir

	// ctx is cancelled by AbortTask (and, through its parent, Shutdown):
	// it ends the task's verifications and merge.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu        sync.Mutex
	verifying map[string]map[*flight]struct{} // verifications in flight, by subtask
	status    taskstore.TaskState             // the state status.json says

	mergeMu sync.Mutex // one merge at a time
}

// flight is one verification in flight, cancelled by AbortSubtask.
type flight struct{ cancel context.CancelCauseFunc }

func (h *requestorHandler[P, S]) newEntry(id string) *taskEntry[P, S] {
	e := &taskEntry[P, S]{ready: make(chan struct{}), dir: RequestorDir{Root: filepath.Join(h.workDir, id)},
		verifying: map[string]map[*flight]struct{}{}}
	e.ctx, e.cancel = context.WithCancelCause(h.ctx)
	return e
}

func storePath(d RequestorDir) string { return filepath.Join(d.State(), storeFile) }

// claim registers a new entry for task id unless this process has one. It
// returns the entry and whether it is new (then the caller loads or creates
// it, and closes its ready channel or forgets it).
func (h *requestorHandler[P, S]) claim(id string) (*taskEntry[P, S], bool, error) {
	// The server checks ids before a Handler sees them; a Handler driven
	// directly (tests, in-process hosts) must not be walked out of its
	// work dir either.
	if err := taskapi.ValidateID("task_id", id); err != nil {
		return nil, false, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false, errClosed
	}
	if e, ok := h.tasks[id]; ok {
		return e, false, nil
	}
	e := h.newEntry(id)
	h.tasks[id] = e
	return e, true, nil
}

// forget removes a failed entry, so that a later call starts afresh.
func (h *requestorHandler[P, S]) forget(id string, e *taskEntry[P, S], err error) {
	h.mu.Lock()
	if h.tasks[id] == e {
		delete(h.tasks, id)
	}
	h.mu.Unlock()
	e.err = err
	e.cancel(err)
	close(e.ready)
}

// get returns task id's entry, opening its store from disk when this
// process has not seen the task yet (after a restart).
func (h *requestorHandler[P, S]) get(ctx context.Context, id string) (*taskEntry[P, S], error) {
	e, fresh, err := h.claim(id)
	if err != nil {
		return nil, err
	}
	if fresh {
		if err := h.load(e, id); err != nil {
			h.forget(id, e, err)
			return nil, err
		}
		close(e.ready)
	}
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if e.err != nil {
		return nil, e.err
	}
	return e, nil
}

// load opens the store of a task created earlier, repairs status.json, and
// completes a merge a crash interrupted.
func (h *requestorHandler[P, S]) load(e *taskEntry[P, S], id string) error {
	st, err := taskstore.Open(storePath(e.dir))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("task %q: %w", id, ErrUnknownTask)
	}
	if err != nil {
		return fmt.Errorf("task %q: %w", id, err)
	}
	rec, err := st.Task()
	if err == nil {
		var p P
		// Not validated again: the params passed when the task was
		// created, and Validate may depend on things that changed since.
		p, err = decodeParams[P]("task_params_json", rec.Params, false)
		e.task = &Task[P]{ID: id, Params: p, MaxParts: rec.MaxParts, Dir: e.dir, Log: h.log.With("task", id)}
	}
	if err != nil {
		st.Close()
		return fmt.Errorf("task %q: %w", id, err)
	}
	e.store = st
	h.log.Info("task opened from disk", "task", id, "state", rec.State, "accepted", rec.Accepted, "parts", rec.Parts)
	h.syncStatus(e)
	if rec.State == taskstore.TaskMerging {
		if err := h.merge(e); err != nil {
			// The task stays merging; the next Verify of its last
			// subtask, or the next restart, tries again.
			h.log.Error("merge after restart failed", "task", id, "err", err)
		}
	}
	return nil
}

func (h *requestorHandler[P, S]) CreateTask(ctx context.Context, taskID string, maxSubtasks int, params json.RawMessage) (requestor.Task, error) {
	if h.prereqErr != nil {
		return requestor.Task{}, fmt.Errorf("the app's prerequisites (WithEnvironment): %w", h.prereqErr)
	}
	p, err := decodeParams[P]("task_params_json", params, true)
	if err != nil {
		return requestor.Task{}, err
	}
	var e *taskEntry[P, S]
	for e == nil {
		c, fresh, err := h.claim(taskID)
		if err != nil {
			return requestor.Task{}, err
		}
		if fresh {
			e = c
			break
		}
		// Another call has the task in hand: it exists, unless that call
		// finds it does not (then the entry is forgotten: claim again).
		select {
		case <-c.ready:
		case <-ctx.Done():
			return requestor.Task{}, ctx.Err()
		}
		if c.err == nil {
			return requestor.Task{}, fmt.Errorf("task %q: %w", taskID, ErrTaskExists)
		}
	}
	if err := h.create(ctx, e, taskID, maxSubtasks, p, params); err != nil {
		h.forget(taskID, e, fmt.Errorf("task %q: %w", taskID, ErrUnknownTask))
		return requestor.Task{}, err
	}
	close(e.ready)
	return requestor.Task{EnvID: h.envID, Prerequisites: h.prereq, MinMemoryMiB: h.opts.minMemoryMiB}, nil
}

func (h *requestorHandler[P, S]) create(ctx context.Context, e *taskEntry[P, S], id string, maxSubtasks int, p P, raw json.RawMessage) error {
	if _, err := os.Lstat(storePath(e.dir)); err == nil {
		return fmt.Errorf("task %q: %w", id, ErrTaskExists)
	}
	if err := e.dir.Create(); err != nil {
		return fmt.Errorf("task %q: %w", id, err)
	}
	e.task = &Task[P]{ID: id, Params: p, MaxParts: maxSubtasks, Dir: e.dir, Log: h.log.With("task", id)}
	parts, err := h.app.Split(ctx, e.task)
	if err != nil {
		return fmt.Errorf("task %q: split: %w", id, err)
	}
	switch {
	case len(parts) == 0:
		return fmt.Errorf("%w: task %q splits into no parts", ErrInvalidParams, id)
	case maxSubtasks > 0 && len(parts) > maxSubtasks:
		return fmt.Errorf("task %q: Split returned %d parts; max_subtasks_count is %d", id, len(parts), maxSubtasks)
	}
	sparts := make([]taskstore.Part, len(parts))
	for i, part := range parts {
		for _, r := range part.Resources {
			if !filepath.IsLocal(r) {
				return fmt.Errorf("task %q: part %d: resource %q is not a file name inside subtask_inputs/", id, i, r)
			}
		}
		js, err := json.Marshal(part.Params)
		if err != nil {
			return fmt.Errorf("task %q: part %d: encoding its params: %w", id, i, err)
		}
		sparts[i] = taskstore.Part{Params: js, Resources: part.Resources, DependsOn: part.DependsOn}
	}
	st, err := taskstore.Create(storePath(e.dir), taskstore.Task{
		ID: id, Params: raw, MaxParts: maxSubtasks,
		Redundancy: h.opts.redundancy, MaxAttempts: h.opts.maxAttempts,
	}, sparts)
	if err != nil {
		return fmt.Errorf("task %q: %w", id, err)
	}
	e.store = st
	// The store's rename is durable; so must be the directories holding
	// it, created just now, or a crash could take the task with them.
	if err := errors.Join(syncDir(e.dir.Root), syncDir(h.workDir)); err != nil {
		return fmt.Errorf("task %q: %w", id, err)
	}
	// A host shows progress as parts done out of parts in all; the store
	// is not its to read, so the count is published beside status.json.
	// It is a convenience: a failed write is logged, not the task's end.
	info, _ := json.Marshal(taskInfo{Parts: len(parts)})
	if err := writeAtomic(filepath.Join(e.dir.State(), taskInfoFile), info); err != nil {
		h.log.Warn("writing task.json failed", "task", id, "err", err)
	}
	h.log.Info("task created", "task", id, "parts", len(parts))
	return nil
}

func (h *requestorHandler[P, S]) NextSubtask(ctx context.Context, taskID, subtaskID, nodeID string) (*requestor.Subtask, error) {
	e, err := h.get(ctx, taskID)
	if err != nil {
		return nil, err
	}
	a, err := e.store.Next(subtaskID, nodeID)
	if err != nil || a == nil {
		return nil, err
	}
	return &requestor.Subtask{Params: wireParams(a.Part, a.Params), Resources: a.Resources}, nil
}

func (h *requestorHandler[P, S]) HasPendingSubtasks(ctx context.Context, taskID string) (bool, error) {
	e, err := h.get(ctx, taskID)
	if err != nil {
		return false, err
	}
	return e.store.HasPending()
}

func (h *requestorHandler[P, S]) Verify(ctx context.Context, taskID, subtaskID string) (requestor.Verdict, string, error) {
	e, err := h.get(ctx, taskID)
	if err != nil {
		return 0, "", err
	}
	plan, err := e.store.BeginVerify(subtaskID)
	if err != nil {
		return 0, "", err
	}
	if plan.Answer != nil {
		if plan.Merging {
			return h.mergeThenAnswer(e, subtaskID)
		}
		return plan.Answer.Verdict, plan.Answer.Reason, nil
	}
	var c taskstore.Check // zero: re-count the subtask's vote
	if plan.Check {
		if c, err = h.check(ctx, e, subtaskID, plan); err != nil {
			return 0, "", err
		}
	}
	ans, err := e.store.RecordVerify(subtaskID, c)
	switch {
	case errors.Is(err, ErrTaskAborted):
		// Aborted after this verification began.
		return 0, "", fmt.Errorf("verifying subtask %q: %w", subtaskID, errAbortedTask)
	case errors.Is(err, ErrSubtaskAborted):
		return 0, "", fmt.Errorf("verifying subtask %q: %w", subtaskID, errAbortedSubtask)
	case err != nil:
		return 0, "", err
	}
	h.syncStatus(e)
	if ans.Merge {
		return h.mergeThenAnswer(e, subtaskID)
	}
	return ans.Verdict, ans.Reason, nil
}

// mergeThenAnswer completes the merge of a task whose last part is
// accepted, then answers subtaskID's (final) verdict, which then tells the
// task's outcome.
func (h *requestorHandler[P, S]) mergeThenAnswer(e *taskEntry[P, S], subtaskID string) (requestor.Verdict, string, error) {
	if err := h.merge(e); err != nil {
		return 0, "", err
	}
	plan, err := e.store.BeginVerify(subtaskID)
	if err != nil {
		return 0, "", err
	}
	if plan.Answer == nil {
		return 0, "", fmt.Errorf("subtask %q: no verdict after the merge", subtaskID)
	}
	return plan.Answer.Verdict, plan.Answer.Reason, nil
}

// check runs the app's Verify on subtaskID's result, with a context that
// AbortTask, AbortSubtask, Shutdown and the caller cancel. The store is not
// held meanwhile: the app may take its time.
func (h *requestorHandler[P, S]) check(ctx context.Context, e *taskEntry[P, S], subtaskID string, plan taskstore.VerifyPlan) (taskstore.Check, error) {
	vctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(e.ctx, func() { cancel(context.Cause(e.ctx)) })
	defer stop()
	defer e.track(subtaskID, cancel)()

	file, reject, err := findResult(e.dir, subtaskID)
	if err != nil {
		return taskstore.Check{}, err
	}
	if reject != "" {
		return taskstore.Check{Verdict: requestor.Failure, Reason: reject}, nil
	}
	hash, err := hashFile(file)
	if err != nil {
		return taskstore.Check{}, fmt.Errorf("subtask %q: %w", subtaskID, err)
	}
	var s S
	if err := json.Unmarshal(plan.Params, &s); err != nil {
		return taskstore.Check{}, fmt.Errorf("subtask %q: the params of part %d: %w", subtaskID, plan.Part, err)
	}
	r := &Result[P, S]{Task: e.task, SubtaskID: subtaskID, NodeID: plan.Node, Part: plan.Part, Params: s, File: file}
	v, err := h.app.Verify(vctx, r)
	if vctx.Err() != nil {
		return taskstore.Check{}, fmt.Errorf("verifying subtask %q: %w", subtaskID, context.Cause(vctx))
	}
	if err != nil {
		return taskstore.Check{}, fmt.Errorf("verifying subtask %q: %w", subtaskID, err)
	}
	if !v.Result.Valid() {
		return taskstore.Check{}, fmt.Errorf("verifying subtask %q: the app's Verify returned no verdict (%v); use Accept, Reject, Inconclusive or AwaitData", subtaskID, v.Result)
	}
	return taskstore.Check{Verdict: v.Result, Reason: v.Reason, Hash: hash, File: filepath.Base(file)}, nil
}

// track registers a verification of subtaskID in flight and returns its
// unregistering.
func (e *taskEntry[P, S]) track(subtaskID string, cancel context.CancelCauseFunc) func() {
	f := &flight{cancel: cancel}
	e.mu.Lock()
	if e.verifying[subtaskID] == nil {
		e.verifying[subtaskID] = map[*flight]struct{}{}
	}
	e.verifying[subtaskID][f] = struct{}{}
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		delete(e.verifying[subtaskID], f)
		if len(e.verifying[subtaskID]) == 0 {
			delete(e.verifying, subtaskID)
		}
		e.mu.Unlock()
	}
}

// cancelVerify cancels the verifications of the given subtasks in flight.
func (e *taskEntry[P, S]) cancelVerify(cause error, ids ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, id := range ids {
		for f := range e.verifying[id] {
			f.cancel(cause)
		}
	}
}

func (h *requestorHandler[P, S]) DiscardSubtasks(ctx context.Context, taskID string, subtaskIDs []string) ([]string, error) {
	e, err := h.get(ctx, taskID)
	if err != nil {
		return nil, err
	}
	out, err := e.store.Discard(subtaskIDs)
	if err != nil {
		return nil, err
	}
	e.cancelVerify(errAbortedSubtask, out...)
	if out == nil {
		out = []string{}
	}
	return out, nil
}

func (h *requestorHandler[P, S]) RunBenchmark(ctx context.Context) (float64, error) {
	return runBenchmark(ctx, h.app)
}

func (h *requestorHandler[P, S]) AbortTask(ctx context.Context, taskID string) error {
	e, err := h.get(ctx, taskID)
	if err != nil {
		return err
	}
	aborted, err := e.store.AbortTask()
	if err != nil {
		return err
	}
	if aborted {
		// After the abort is durable: a verification that completes
		// meanwhile finds the task aborted and records nothing.
		e.cancel(errAbortedTask)
		h.syncStatus(e)
	}
	return nil
}

func (h *requestorHandler[P, S]) AbortSubtask(ctx context.Context, taskID, subtaskID string) error {
	e, err := h.get(ctx, taskID)
	if err != nil {
		return err
	}
	if err := e.store.AbortSubtask(subtaskID); err != nil {
		return err
	}
	e.cancelVerify(errAbortedSubtask, subtaskID)
	// The abort may have used up the part's last attempt.
	h.syncStatus(e)
	return nil
}

// Shutdown cancels every verification and merge in flight and closes every
// open store. It is safe to call more than once, concurrently; every call
// returns the first one's error.
func (h *requestorHandler[P, S]) Shutdown(ctx context.Context) error {
	h.closeOnce.Do(func() { h.closeErr = h.shutdown(ctx) })
	return h.closeErr
}

func (h *requestorHandler[P, S]) shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	entries := make([]*taskEntry[P, S], 0, len(h.tasks))
	for _, e := range h.tasks {
		entries = append(entries, e)
	}
	h.mu.Unlock()
	h.cancel(errShuttingDown)

	var errs []error
	for _, e := range entries {
		select {
		case <-e.ready:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("task %s: still opening: %w", e.dir.Root, ctx.Err()))
			continue
		}
		if e.err == nil && e.store != nil {
			if err := e.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing the store of %s: %w", e.dir.Root, err))
			}
		}
	}
	return errors.Join(errs...)
}
