package host

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/taskapi"
)

// The defaults of RunConfig.
const (
	// DefaultSubtaskTimeout bounds one attempt: starting the provider,
	// Compute, and copying the output back.
	DefaultSubtaskTimeout = 5 * time.Minute
	// DefaultMaxOutputSize is the largest output a provider may hand back.
	DefaultMaxOutputSize int64 = 1 << 30
	// DefaultVerifyConcurrency is how many Verify calls run at once.
	// Verification is usually much cheaper than computing; two at once keep
	// the queue short without taking cores from the providers.
	DefaultVerifyConcurrency = 2
	// DefaultVerifyTimeout bounds one Verify call.
	DefaultVerifyTimeout = 5 * time.Minute
	// DefaultVerifyTries is how many times Verify is called for one result
	// whose check keeps failing before the subtask is aborted.
	DefaultVerifyTries = 3
	// DefaultRequestorRestarts is how many times a requestor that died is
	// started again over the same work dir.
	DefaultRequestorRestarts = 3
	// AttemptsPerPart and MinMaxAttempts make the default of
	// RunConfig.MaxAttempts: AttemptsPerPart failed attempts per part on
	// average, and never fewer than MinMaxAttempts in all, so that a small
	// task survives a burst of failures (a bad node, say).
	AttemptsPerPart = 3
	MinMaxAttempts  = 48
	// DefaultBackupAfter and DefaultBackupMinWait make a subtask slow, for
	// backups (see Backups): computing for longer than DefaultBackupAfter
	// times the median computed attempt, and for DefaultBackupMinWait at
	// least.
	DefaultBackupAfter   = 2.0
	DefaultBackupMinWait = time.Second
	// DefaultBackupsPerSubtask is how many backups one subtask may get.
	DefaultBackupsPerSubtask = 1
)

// Time limits of the run's own steps.
const (
	// requestorStartTimeout bounds a requestor's start and dial: a
	// race-built binary on a loaded machine can take seconds to start.
	requestorStartTimeout = time.Minute
	// callTimeout bounds every requestor call but Verify (which has
	// RunConfig.VerifyTimeout): they are bookkeeping, quick unless the
	// requestor hangs.
	callTimeout = 2 * time.Minute
	// stopGrace is how long the requestor may take to stop before it is
	// killed, and the bound of the last calls to it (AbortTask).
	stopGrace = 10 * time.Second
	// providerExitGrace is how long a provider that has answered may take
	// to exit before it is killed.
	providerExitGrace = 5 * time.Second
	// timeoutStopGrace is how long a provider that ran out of
	// SubtaskTimeout may take to stop once asked before it is killed.
	timeoutStopGrace = 2 * time.Second
	// deathWait is how long, after a call failed with Unavailable, the run
	// waits to see the server's exit: a server killed mid-call is seen by
	// the client before its exit is reaped.
	deathWait = 2 * time.Second
)

// ErrRequestorDied is wrapped by Run's error when the requestor exited and
// was not started again: RunConfig.RequestorRestarts were used up, or the
// restart failed.
var ErrRequestorDied = errors.New("the requestor died")

// ErrStopped, as the cause that ends Run's ctx (context.WithCancelCause),
// stops a run without ending its task, for a host that stops now and goes
// on later (a daemon's restart): every provider is killed and the
// requestor stopped, as at any end of ctx, but AbortTask is not called, so
// the task stays as the app stored it for a Run with RunConfig.Resume. Run
// then returns an error wrapping the cause, and a Result whose Outcome is
// Stopped; the last event is task_stopped.
var ErrStopped = errors.New("the run was stopped, to be resumed")

// RunConfig describes one task run. Only Launcher is required; the zero
// value of every other field works, as each field's doc says.
type RunConfig struct {
	// Launcher starts the app's requestor and providers. Required.
	Launcher Launcher
	// TaskID names the task. Default: "task-" and a fresh UUID.
	TaskID string
	// WorkDir is the host's dir for this run, one per run:
	//
	//	requestor/         the requestor's work dir; the task is in requestor/{TaskID}/,
	//	                   its results in requestor/{TaskID}/task_outputs/
	//	providers/{S}/     the task work dir of the provider computing subtask S,
	//	                   removed once the attempt is over (a backup's:
	//	                   providers/{S}.backup{N}/, see Backups)
	//	logs/              requestor.log and provider-{S}.log (a backup's:
	//	                   provider-{S}.backup{N}.log): what each app wrote
	//	events.jsonl       the run's events, one JSON object per line
	//	created.json       CreateTask's answer (the providers' environment),
	//	                   for a run that resumes the task (Resume)
	//	input-{N}.tmp      input N while it is copied into task_inputs/
	//
	// Default: a new directory in os.TempDir(), kept after the run.
	WorkDir string
	// Params are the task's parameters (task_params_json). Default: none.
	Params json.RawMessage
	// Inputs are files copied into the task's task_inputs/, by base name,
	// before CreateTask; each appears there whole or not at all (it is
	// copied under another name, then renamed). Default: none.
	Inputs []string
	// MaxSubtasks is CreateTask's max_subtasks_count. Default 0: the app
	// chooses.
	MaxSubtasks int
	// Providers is how many subtasks are computed at once, each on a slot
	// of its own; slot i starts as node "node-i". Default:
	// runtime.NumCPU().
	Providers int
	// SubtaskTimeout bounds each attempt: starting the provider, Compute,
	// copying the output back. An attempt over it is killed and fails as
	// a timeout. Default: DefaultSubtaskTimeout (5 min).
	SubtaskTimeout time.Duration
	// Timeout bounds the whole task; when it passes, the task is aborted.
	// Default 0: no limit (ctx may still end the run).
	Timeout time.Duration
	// MaxAttempts bounds the failed attempts of the whole task: the
	// MaxAttempts-th aborts it. Failures that chaos caused do not count.
	// Default: AttemptsPerPart (3) times the number of parts, when the app
	// publishes it (gtask apps do), and at least MinMaxAttempts (48).
	MaxAttempts int
	// MaxOutputSize is the largest output a provider may hand back, in
	// bytes; a larger one is a failed attempt. Default:
	// DefaultMaxOutputSize (1 GiB).
	MaxOutputSize int64
	// VerifyConcurrency is how many Verify calls run at once, beside the
	// providers: verification never holds up a provider slot. Default:
	// DefaultVerifyConcurrency (2).
	VerifyConcurrency int
	// VerifyTimeout bounds one Verify call; a call over it is a Verify
	// error. Default: DefaultVerifyTimeout (5 min).
	VerifyTimeout time.Duration
	// VerifyTries is how many times Verify is called for a result whose
	// check keeps failing (an error, not a verdict) before the subtask is
	// aborted, as a failed attempt. Default: DefaultVerifyTries (3).
	VerifyTries int
	// RequestorRestarts is how many times a requestor that died is started
	// again over the same work dir (a gtask app's state survives a crash);
	// negative means never. Default: DefaultRequestorRestarts (3).
	RequestorRestarts int
	// Gate, when set, is called by an attempt's worker before the
	// provider is started (and its resources copied) and before the
	// attempt's deadline (SubtaskTimeout) starts: it waits for a provider
	// slot of a pool shared with other runs (see SlotPool) and returns a
	// release func, called once the attempt is over (its provider gone).
	// It returns an error only when ctx ends; the attempt then ends
	// without counting as a failure. The subtask was handed out before
	// the wait: a run holds at most Providers subtasks, computing or
	// waiting at the gate. A Gate that fails with ctx still alive breaks
	// its contract; the attempt then fails as a start failure (FailStart).
	// An attempt waiting at the gate counts as computing in Progress; its
	// Took starts once it has a slot. Default: none (Providers alone
	// bounds the run).
	Gate func(ctx context.Context) (release func(), err error)
	// Chaos, when set, makes the host sabotage attempts on purpose (see
	// Chaos). Default: none.
	Chaos *Chaos
	// Backups says when a slot with nothing else to do computes a copy of
	// a slow subtask (see Backups). Default: on, with its defaults.
	Backups Backups
	// Resume says an earlier Run over this WorkDir (same TaskID) created
	// the task and its host died: inputs are not copied again (only those
	// missing from task_inputs/, which the earlier run did not get to),
	// CreateTask answering AlreadyExists means the task is there (the app
	// reopens its state from the work dir; the providers' environment is
	// read from created.json), and events.jsonl is appended to, Seq going
	// on from its last whole line (a last line the host did not finish
	// writing is dropped). The run's first event is task_resumed instead
	// of task_started; Progress.Done and Counts.Done go on from the last
	// event recorded (the parts accepted before), the other counts, the
	// attempt numbers, Timeout and MaxAttempts are the resumed run's own.
	// Parts accepted before are not computed again; what was in flight
	// when the host died is up to the app (a gtask app hands it out again
	// at once). Default: false.
	Resume bool
	// OnEvent, when set, receives every event, in Seq order and never
	// concurrently, synchronously: the run waits for it, so it must be
	// fast. Default: none (the events are still written to events.jsonl).
	OnEvent func(Event)
}

// Backups is the policy of backup attempts: when the app has nothing
// pending (HasPendingSubtasks answered false) and a slot is idle, a
// subtask computing for long is computed again, on that slot's node, so
// that a slow or stalled provider does not hold up the end of the task.
//
// A subtask is slow once its attempt has computed (from its slot's start,
// after any Gate) for After times the median time of the run's computed
// attempts, and for MinWait at least; before any attempt was computed
// there is no median, and no backup. The slowest subtask is backed up
// first, each at most PerSubtask times.
//
// A backup is a copy of the same subtask (its id and params; the requestor
// knows only the node it assigned it to) on a node that has computed no
// subtask of the same part, so that replicas stay on nodes of their own as
// the app chose them (see sdk.WithRedundancy), in a provider dir of its own,
// providers/{S}.backup{N}/, logging to provider-{S}.backup{N}.log. The
// first copy whose output passes the host's checks wins: its output goes
// to subtask_outputs/{S}/ and to verification, once, and the other copies
// are killed and end as subtask_superseded, which is neither a failure
// nor a ban. A copy that fails while another still computes is a failed
// attempt of its node, as any, but the subtask is aborted (AbortSubtask)
// only once every copy has failed. Chaos never sabotages a backup.
//
// Backups suit apps whose Compute only computes (the Task API's model);
// turn them off (Off) for an app whose Compute has effects outside its
// output that must not happen twice.
type Backups struct {
	// Off turns backups off.
	Off bool
	// After is how many times the median computed attempt a subtask may
	// take before it is slow. Default: DefaultBackupAfter (2).
	After float64
	// MinWait is the least time a subtask computes before it is slow.
	// Default: DefaultBackupMinWait (1 s).
	MinWait time.Duration
	// PerSubtask is how many backups one subtask may get. Default:
	// DefaultBackupsPerSubtask (1).
	PerSubtask int
}

// Result is how a run ended.
type Result struct {
	TaskID  string
	Outcome Outcome
	// Reason says why the task failed or was aborted.
	Reason string
	// WorkDir is the run's dir (RunConfig.WorkDir), TaskDir the task's dir
	// in it, OutputsDir the task's task_outputs/, Outputs the regular
	// files in it, relative to it, sorted.
	WorkDir    string
	TaskDir    string
	OutputsDir string
	Outputs    []string
	// EventsPath is the run's events.jsonl.
	EventsPath string
	Counts     Counts
	Duration   time.Duration
}

// Summary is the Result in the form the last event carries.
func (r *Result) Summary() Summary {
	return Summary{Outcome: r.Outcome, Reason: r.Reason, Counts: r.Counts, Duration: r.Duration}
}

// Run runs one task to its end with cfg.Launcher: CreateTask once, then,
// on cfg.Providers slots, NextSubtask (a fresh UUID and the slot's node
// id), the resources copied to a fresh provider, Compute under a deadline,
// the output checked and copied back, and the result verified beside the
// computing; verdicts are acted on (FAILURE: the part goes to another node;
// INCONCLUSIVE: a replica is computed elsewhere; AWAITING_DATA: verified
// again after a later verification), a node whose attempt failed gets no
// more of the task, and too many failures abort it. Every step is an Event.
//
// A task that ends, well or not, is a Result: Outcome Finished, Failed (the
// app failed it) or Aborted (the host's policy did). Run returns an error
// for a configuration it cannot run, for host-side problems (the requestor
// died for good, the events cannot be written, ...) and when ctx ends; then
// the task was aborted too (AbortTask), and Result, when not nil, says how
// far it got. Whatever happens, every provider and the requestor are
// stopped before Run returns.
func Run(ctx context.Context, cfg RunConfig) (*Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("host: run: %w", err)
	}
	r, err := newRun(cfg)
	if err != nil {
		return nil, fmt.Errorf("host: task %s: %w", cfg.TaskID, err)
	}
	defer func() {
		// Whatever happened, a panic included, the events recorded so far
		// reach the file.
		r.rec.flush()
		r.events.Close()
	}()
	res, err := r.run(ctx)
	if err != nil {
		err = fmt.Errorf("host: task %s: %w", cfg.TaskID, err)
	}
	return res, err
}

func (c *RunConfig) setDefaults() error {
	if c.Launcher == nil {
		return errors.New("RunConfig.Launcher is required")
	}
	if c.TaskID == "" {
		c.TaskID = "task-" + uuid.NewString()
	}
	if err := taskapi.ValidateID("TaskID", c.TaskID); err != nil {
		return err
	}
	if c.Chaos != nil {
		if err := c.Chaos.Validate(); err != nil {
			return err
		}
	}
	if c.WorkDir == "" {
		dir, err := os.MkdirTemp("", "gtask-run-")
		if err != nil {
			return err
		}
		c.WorkDir = dir
	}
	abs, err := filepath.Abs(c.WorkDir)
	if err != nil {
		return err
	}
	c.WorkDir = abs
	if c.Providers <= 0 {
		c.Providers = runtime.NumCPU()
	}
	if c.SubtaskTimeout <= 0 {
		c.SubtaskTimeout = DefaultSubtaskTimeout
	}
	if c.MaxOutputSize <= 0 {
		c.MaxOutputSize = DefaultMaxOutputSize
	}
	if c.VerifyConcurrency <= 0 {
		c.VerifyConcurrency = DefaultVerifyConcurrency
	}
	if c.VerifyTimeout <= 0 {
		c.VerifyTimeout = DefaultVerifyTimeout
	}
	if c.VerifyTries <= 0 {
		c.VerifyTries = DefaultVerifyTries
	}
	if c.Backups.After <= 0 {
		c.Backups.After = DefaultBackupAfter
	}
	if c.Backups.MinWait <= 0 {
		c.Backups.MinWait = DefaultBackupMinWait
	}
	if c.Backups.PerSubtask <= 0 {
		c.Backups.PerSubtask = DefaultBackupsPerSubtask
	}
	switch {
	case c.RequestorRestarts == 0:
		c.RequestorRestarts = DefaultRequestorRestarts
	case c.RequestorRestarts < 0:
		c.RequestorRestarts = 0
	}
	return nil
}

// run is the state of one Run. The loop's goroutine owns it, except what
// is marked otherwise: compute and verify workers read their attempt's
// fixed fields and answer on the computed and verified channels.
type run struct {
	cfg      RunConfig
	reqDir   string // the requestor's work dir
	taskDir  string
	provRoot string
	logDir   string
	// Paths every attempt or turn of the loop needs, made once.
	inputsName string // "subtask_inputs", in a provider's dir
	inputsDir  string // the task's subtask_inputs/
	outputsDir string // the task's subtask_outputs/
	statusPath string // the task's .gtask/status.json
	events     *os.File
	rec        *recorder // safe for concurrent use
	req        *requestorConn
	// provLauncher starts the providers: cfg.Launcher, or what its ForEnv
	// gave for the task's environment. Set before the first attempt.
	provLauncher Launcher
	started      time.Time
	created      bool // CreateTask succeeded

	slots       []slot
	newNodes    int             // nodes made to replace others
	banned      map[string]bool // nodes banned from the task (see ban)
	drained     bool            // HasPendingSubtasks last answered false: fill asks it first
	seq         int             // subtasks handed out
	parts       map[[32]byte]*partState
	computing   int
	queue       []verifyJob
	verifying   int                 // Verify calls in flight
	inVerify    map[string]*attempt // results queued, in verification, or awaiting data
	awaiting    map[string]*attempt // last verdict AWAITING_DATA or INCONCLUSIVE
	failures    int                 // failed attempts counted against maxAttempts
	maxAttempts int

	// Workers, one per slot and one per verification at once, take their
	// work from attempts and verifyJobs, which have room for all of it;
	// they live as long as the loop, rather than one per attempt, so that
	// an attempt costs no goroutine's start and stack growth. They run
	// under wctx, which the end of the loop cancels, and are waited for by
	// wg once their channels are closed, so none outlives Run.
	wctx       context.Context
	wcancel    context.CancelFunc
	wg         sync.WaitGroup
	attempts   chan *attempt
	verifyJobs chan verifyJob
	// computed and verified have room for every worker that can be
	// running (one per slot, one per verification), so a worker never
	// blocks on them, even after the loop has stopped reading.
	computed chan computeResult
	verified chan verifyResult

	// tooks are the times of the computed attempts, for the median that
	// says which subtask is slow (see Backups); sorted when tooksSorted.
	tooks       []time.Duration
	tooksSorted bool
}

type slot struct {
	node string
	busy bool
	a    *attempt // the attempt it computes, while busy
}

// partState is what the run knows of one part, keyed by its subtask
// params (the same for every attempt at it).
type partState struct {
	index int // the part's index, -1 when unknown
	// nodes are the nodes that computed, or compute, a subtask of the part
	// (replicas included): a backup goes to none of them, so that
	// replicas stay on nodes of their own, as the app chose.
	nodes    map[string]bool
	assigned int
	failures int
	retries  int
	accepted bool
	// chaos: an attempt at this part was chosen for sabotage; injected:
	// sabotaged attempts not recovered yet.
	chaos    bool
	injected int
}

// attempt is one subtask. Its first block is fixed before the workers see
// it; the rest is the loop's.
type attempt struct {
	seq       int
	id        string
	slot      int
	node      string
	no        int // attempt number of its part
	part      *partState
	key       [32]byte // the part's key in run.parts
	params    json.RawMessage
	resources []string
	chaos     ChaosKind
	rng       *rand.Rand // chaos's draws, used by the compute worker only
	// backup numbers the copies of one subtask: 0 for the one NextSubtask
	// handed out, N for its Nth backup (see Backups).
	backup int
	copies *copies
	// ctx is the attempt's own, under the workers'; cancel ends it with
	// errSuperseded when another copy of the subtask won.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// began is when the attempt's worker started computing it (after the
	// Gate), in UnixNano; 0 before. Set by the worker, read by the loop.
	began atomic.Int64

	injected bool // chaos took effect on it
	verdict  requestor.Verdict
	tries    int  // failed Verify calls in a row
	queued   bool // in the verify queue
	inFlight bool // a Verify call runs
	dirty    bool // verify again: a verification completed meanwhile
}

// copies are the copies of one subtask (see Backups): the attempt that
// NextSubtask handed out and its backups.
type copies struct {
	// The workers': the first copy whose output passes the checks wins
	// and cancels the others.
	mu      sync.Mutex
	won     *attempt   // the copy that won; nil until one has
	members []*attempt // every copy started so far

	// The loop's.
	live      int  // copies computing
	backups   int  // backups started
	succeeded bool // a copy's output went to verification
	aborted   bool // every copy failed: the subtask was aborted
}

// errSuperseded ends an attempt whose subtask another copy computed first.
var errSuperseded = errors.New("another copy of the subtask was computed first")

type verifyJob struct {
	a     *attempt
	again bool
}

type computeResult struct {
	a         *attempt
	name      string // the output's base name in subtask_outputs/{id}/
	bytes     int64
	took      time.Duration
	fail      FailKind
	code      string
	reason    string
	injected  ChaosKind
	chaosNote string
	cancelled bool // the run is ending; nothing to report
	// superseded: another copy of the subtask won (see Backups); winner
	// is its node.
	superseded bool
	winner     string
}

type verifyResult struct {
	a       *attempt
	again   bool
	verdict requestor.Verdict
	reason  string
	took    time.Duration
	err     error
	// timedOut: the call ran out of VerifyTimeout.
	timedOut bool
}

func newRun(cfg RunConfig) (*run, error) {
	r := &run{
		cfg:        cfg,
		reqDir:     filepath.Join(cfg.WorkDir, "requestor"),
		provRoot:   filepath.Join(cfg.WorkDir, "providers"),
		logDir:     filepath.Join(cfg.WorkDir, "logs"),
		slots:      make([]slot, cfg.Providers),
		parts:      map[[32]byte]*partState{},
		inVerify:   map[string]*attempt{},
		awaiting:   map[string]*attempt{},
		banned:     map[string]bool{},
		attempts:   make(chan *attempt, cfg.Providers),
		verifyJobs: make(chan verifyJob, cfg.VerifyConcurrency),
		computed:   make(chan computeResult, cfg.Providers),
		verified:   make(chan verifyResult, cfg.VerifyConcurrency),
	}
	r.taskDir = filepath.Join(r.reqDir, cfg.TaskID)
	r.inputsName = taskapi.SubtaskInputsDir()
	r.inputsDir = filepath.Join(r.taskDir, r.inputsName)
	r.outputsDir = filepath.Join(r.taskDir, taskapi.SubtaskOutputsDir())
	r.statusPath = filepath.Join(r.taskDir, ".gtask", "status.json")
	for i := range r.slots {
		r.slots[i].node = fmt.Sprintf("node-%d", i)
	}
	if err := r.prepare(); err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.WorkDir, eventsFile)
	if !cfg.Resume {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			return nil, err
		}
		r.events = f
		r.rec = newRecorder(cfg.TaskID, f, cfg.OnEvent)
	} else {
		f, last, err := openEventsToResume(path)
		if err != nil {
			return nil, err
		}
		r.events = f
		r.rec = newRecorder(cfg.TaskID, f, cfg.OnEvent)
		if last != nil {
			r.rec.seq = last.Seq
			r.rec.counts.Done = last.Progress.Done
		}
	}
	r.req = &requestorConn{r: r}
	return r, nil
}

// The files of a run's work dir.
const (
	eventsFile  = "events.jsonl"
	createdFile = "created.json"
)

// prepare makes the run's dirs and the task's, and copies the inputs, as
// the contract wants them before CreateTask.
func (r *run) prepare() error {
	dirs := []string{r.provRoot, r.logDir}
	for _, d := range []string{taskapi.TaskInputsDir(), taskapi.SubtaskInputsDir(), taskapi.TaskOutputsDir(), taskapi.SubtaskOutputsDir()} {
		dirs = append(dirs, filepath.Join(r.taskDir, d))
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	names := map[string]string{}
	for _, in := range r.cfg.Inputs {
		name := filepath.Base(in)
		if prev, ok := names[name]; ok {
			return fmt.Errorf("inputs %s and %s have the same name; task_inputs/ holds files by name", prev, in)
		}
		names[name] = in
		dst := filepath.Join(r.taskDir, taskapi.TaskInputsDir(), name)
		if r.cfg.Resume {
			if _, err := os.Lstat(dst); err == nil {
				continue // copied by the earlier run
			}
		}
		if err := copyInput(in, dst, r.cfg.WorkDir); err != nil {
			return fmt.Errorf("input: %w", err)
		}
	}
	return nil
}

// copyInput copies the input src to dst through a temporary file in
// tmpDir, on dst's file system but out of the app's sight, so that dst is
// there whole or not at all: a resumed run takes a dst that is there for
// the earlier run's copy.
func copyInput(src, dst, tmpDir string) error {
	tmp := filepath.Join(tmpDir, "input-"+filepath.Base(dst)+".tmp")
	if err := copyFile(src, tmp); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// created is what the run keeps of CreateTask's answer in created.json, so
// that a run resuming the task, whose CreateTask answers AlreadyExists,
// knows the providers' environment.
type created struct {
	EnvID         string          `json:"env_id"`
	Prerequisites json.RawMessage `json:"prerequisites,omitempty"`
	MinMemoryMiB  float64         `json:"min_memory_mib,omitempty"`
}

// saveCreated writes task, CreateTask's answer, to created.json, whole or
// not at all.
func (r *run) saveCreated(task requestor.Task) error {
	raw, err := json.Marshal(created{EnvID: task.EnvID, Prerequisites: task.Prerequisites, MinMemoryMiB: task.MinMemoryMiB})
	if err != nil {
		return err
	}
	path := filepath.Join(r.cfg.WorkDir, createdFile)
	if err := os.WriteFile(path+".tmp", raw, 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// loadCreated reads created.json; ok is false when there is none.
func (r *run) loadCreated() (task requestor.Task, ok bool, err error) {
	raw, err := os.ReadFile(filepath.Join(r.cfg.WorkDir, createdFile))
	if errors.Is(err, fs.ErrNotExist) {
		return task, false, nil
	}
	if err != nil {
		return task, false, err
	}
	var c created
	if err := json.Unmarshal(raw, &c); err != nil {
		return task, false, fmt.Errorf("%s: %w", createdFile, err)
	}
	return requestor.Task{EnvID: c.EnvID, Prerequisites: c.Prerequisites, MinMemoryMiB: c.MinMemoryMiB}, true, nil
}

// run drives the task and always stops what it started.
func (r *run) run(ctx context.Context) (*Result, error) {
	r.started = time.Now()
	first := EventTaskStarted
	if r.cfg.Resume {
		first = EventTaskResumed
	}
	r.emit(Event{Kind: first, Reason: r.describe()})
	r.wctx, r.wcancel = context.WithCancel(ctx)
	for range r.cfg.Providers {
		r.wg.Go(func() {
			for a := range r.attempts {
				r.computed <- r.computeCopy(a)
			}
		})
	}
	for range r.cfg.VerifyConcurrency {
		r.wg.Go(func() {
			for job := range r.verifyJobs {
				r.verified <- r.verify(r.wctx, job)
			}
		})
	}

	outcome, reason, runErr := r.begin(ctx)
	if runErr == nil && outcome == "" {
		outcome, reason, runErr = r.loop(ctx)
	}
	// Every provider is killed (their contexts end) and every worker gone
	// before the task is aborted and the requestor stopped.
	r.wcancel()
	close(r.attempts)
	close(r.verifyJobs)
	r.wg.Wait()
	if runErr != nil && ctx.Err() != nil {
		// Whatever call it cut short, the end of ctx is the reason.
		runErr = context.Cause(ctx)
		outcome, reason = Aborted, fmt.Sprintf("cancelled: %v", runErr)
		if errors.Is(runErr, ErrStopped) {
			outcome, reason = Stopped, runErr.Error() // not aborted: see ErrStopped
		}
	}
	if runErr != nil && outcome == "" {
		outcome, reason = Aborted, runErr.Error()
	}
	if outcome == Aborted && r.created && r.req.alive() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
		err := r.req.call(actx, "AbortTask", func(c *RequestorClient) error { return c.AbortTask(actx, r.cfg.TaskID) })
		cancel()
		if err != nil && !r.late(err) {
			runErr = errors.Join(runErr, err)
		}
	}
	// A requestor slow to stop is killed; that is no failure of the task.
	r.req.stop(ctx)
	runErr = errors.Join(runErr, r.rec.writeErr())
	r.computing = 0
	clear(r.inVerify)

	res := &Result{
		TaskID: r.cfg.TaskID, Outcome: outcome, Reason: reason,
		WorkDir: r.cfg.WorkDir, TaskDir: r.taskDir,
		OutputsDir: filepath.Join(r.taskDir, taskapi.TaskOutputsDir()),
		EventsPath: r.events.Name(),
		Duration:   time.Since(r.started),
	}
	res.Outputs, _ = listFiles(res.OutputsDir)
	res.Counts = r.rec.snapshot()
	kind := map[Outcome]EventKind{
		Finished: EventTaskFinished, Failed: EventTaskFailed, Aborted: EventTaskAborted, Stopped: EventTaskStopped,
	}[outcome]
	sum := res.Summary()
	r.emit(Event{Kind: kind, Reason: reason, Summary: &sum})
	// The last event's write error, too.
	if err := r.rec.writeErr(); err != nil && runErr == nil {
		runErr = err
	}
	return res, runErr
}

// describe says what the run is set up to do, for task_started.
func (r *run) describe() string {
	s := fmt.Sprintf("%d provider slots, %s per attempt", r.cfg.Providers, r.cfg.SubtaskTimeout)
	if b := r.cfg.Backups; b.Off {
		s += ", no backups"
	} else {
		s += fmt.Sprintf(", backups after %g times the median attempt (%s at least)", b.After, b.MinWait)
	}
	if r.cfg.Chaos != nil {
		s += ", chaos " + r.cfg.Chaos.String()
	}
	return s
}

// begin starts the requestor and creates the task. It returns an outcome
// when the app refused the task.
func (r *run) begin(ctx context.Context) (Outcome, string, error) {
	if err := r.req.start(ctx); err != nil {
		return "", "", err
	}
	var task requestor.Task
	retried, exists := false, false
	err := r.req.call(ctx, "CreateTask", func(c *RequestorClient) error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		var err error
		task, err = c.CreateTask(cctx, r.cfg.TaskID, r.cfg.MaxSubtasks, r.cfg.Params)
		// A resumed task is there already, and so is the task of a
		// requestor that died after storing it but before answering: the
		// AlreadyExists answers that are success.
		if (retried || r.cfg.Resume) && status.Code(err) == codes.AlreadyExists {
			err, exists = nil, true
		}
		retried = true
		return err
	})
	switch {
	case err == nil:
	case ctx.Err() != nil || errors.Is(err, ErrRequestorDied):
		return "", "", err
	default:
		// The app refused the task: bad params, say. That is the task's
		// failure, not the host's.
		code, msg := statusOf(err)
		return Failed, fmt.Sprintf("CreateTask refused the task (%s): %s", code, msg), nil
	}
	r.created = true
	createdNote := ""
	switch {
	case exists && r.cfg.Resume:
		// The answer is the one the task was created with.
		saved, ok, err := r.loadCreated()
		if err != nil {
			return "", "", err
		}
		if ok {
			task = saved
		} else if _, isEnv := r.cfg.Launcher.(EnvLauncher); isEnv {
			// The host died between CreateTask's answer and its record.
			return "", "", fmt.Errorf("the task exists, but %s, which says the providers' environment, does not: it cannot be resumed", createdFile)
		}
		createdNote = "the task exists already: resumed"
	case !exists:
		if err := r.saveCreated(task); err != nil {
			return "", "", fmt.Errorf("recording CreateTask's answer: %w", err)
		}
	}
	r.provLauncher = r.cfg.Launcher
	if el, ok := r.cfg.Launcher.(EnvLauncher); ok {
		env := Env{ID: task.EnvID, Prerequisites: task.Prerequisites, MinMemoryMiB: task.MinMemoryMiB}
		l, err := el.ForEnv(ctx, env)
		if err != nil {
			if ctx.Err() != nil {
				return "", "", context.Cause(ctx)
			}
			// The requestor holds the task: it is told the task is over.
			actx, cancel := context.WithTimeout(ctx, stopGrace)
			_ = r.req.call(actx, "AbortTask", func(c *RequestorClient) error { return c.AbortTask(actx, r.cfg.TaskID) })
			cancel()
			return Failed, fmt.Sprintf("the app asks for environment %q, which this launcher cannot give: %v", task.EnvID, err), nil
		}
		r.provLauncher = l
	}
	parts := readParts(r.taskDir)
	r.maxAttempts = r.cfg.MaxAttempts
	if r.maxAttempts <= 0 {
		r.maxAttempts = max(AttemptsPerPart*parts, MinMaxAttempts)
	}
	r.rec.update(func(c *Counts) { c.Parts = parts })
	r.emit(Event{Kind: EventTaskCreated, Env: task.EnvID, Parts: parts, Reason: createdNote})
	return "", "", nil
}

// loop hands out subtasks and acts on what comes back until the task has
// ended (Finished or Failed as the app says), the host gives up on it
// (Aborted), or something the host cannot help goes wrong (an error).
func (r *run) loop(ctx context.Context) (Outcome, string, error) {
	var deadline <-chan time.Time
	if r.cfg.Timeout > 0 {
		t := time.NewTimer(r.cfg.Timeout - time.Since(r.started))
		defer t.Stop()
		deadline = t.C
	}
	// backupDue fires when a computing subtask becomes slow, so that an
	// idle slot backs it up (see Backups).
	backupTimer := time.NewTimer(time.Hour)
	backupTimer.Stop()
	defer backupTimer.Stop()
	// idlePass: with nothing else going on, the results awaiting data were
	// all verified once more, and nothing changed since. A second idle
	// pass could change nothing either: the task is stuck.
	idlePass := false
	for {
		if err := r.rec.writeErr(); err != nil {
			return "", "", err
		}
		if o, reason, ok := r.ended(); ok {
			r.settle(ctx)
			return o, reason, nil
		}
		if r.failures >= r.maxAttempts {
			return Aborted, fmt.Sprintf("%d failed attempts, the most the task may have (MaxAttempts)", r.failures), nil
		}
		r.dispatch()
		pending, got, err := r.fill(ctx)
		if r.late(err) {
			// The app ended the task in a Verify still in flight (asking
			// for a subtask is what found out): its verdict counts.
			r.settle(ctx)
			return r.over(err.Error())
		}
		if err != nil {
			return "", "", err
		}
		if got {
			idlePass = false
		}
		var backupDue <-chan time.Time
		if now := time.Now(); !r.cfg.Backups.Off {
			if due := r.backUp(now); !due.IsZero() {
				backupTimer.Reset(due.Sub(now))
				backupDue = backupTimer.C
			}
		}
		if r.computing == 0 && r.verifying == 0 && len(r.queue) == 0 {
			switch {
			case len(r.awaiting) > 0 && !idlePass:
				// Nothing else will complete to trigger their
				// re-verification; the requestor may have all it needs.
				for _, a := range r.sortedAwaiting() {
					r.enqueue(a, true)
				}
				idlePass = true
				continue
			case len(r.awaiting) > 0:
				return Aborted, fmt.Sprintf("stuck: subtasks %s wait for data, but nothing is pending, computing or verifying",
					strings.Join(idsOf(r.sortedAwaiting()), ", ")), nil
			case pending:
				return Aborted, fmt.Sprintf("stuck: HasPendingSubtasks answers true, but NextSubtask gives none of the %d provider slots a subtask", len(r.slots)), nil
			}
			return r.over("")
		}
		var (
			comp     computeResult
			ver      verifyResult
			computed bool
		)
		// What is ready is taken at once; only when the loop has to wait
		// are the events of its last turns flushed (see recorder.emit).
		select {
		case comp = <-r.computed:
			computed = true
		case ver = <-r.verified:
		case <-deadline:
			return Aborted, r.timeoutReason(), nil
		case <-ctx.Done():
			return "", "", context.Cause(ctx)
		default:
			r.rec.flush()
			select {
			case comp = <-r.computed:
				computed = true
			case ver = <-r.verified:
			case <-backupDue:
				continue
			case <-deadline:
				return Aborted, r.timeoutReason(), nil
			case <-ctx.Done():
				return "", "", context.Cause(ctx)
			}
		}
		if computed {
			idlePass = false
			if err := r.onComputed(ctx, comp); err != nil {
				if r.late(err) {
					continue // the loop's next turn sees the end
				}
				return "", "", err
			}
			continue
		}
		progressed, err := r.onVerified(ctx, ver)
		if progressed {
			idlePass = false
		}
		if err != nil && !r.late(err) {
			return "", "", err
		}
	}
}

func (r *run) timeoutReason() string {
	return fmt.Sprintf("the task's time limit (Timeout) of %s passed", r.cfg.Timeout)
}

// settle waits for the verifications in flight when the task has ended
// and acts on their answers, so that the verdicts that ended it count: the
// app writes its end before it answers the Verify that brought it about,
// and the loop may see the end first.
//
// The copies that another copy beat are being called off (see Backups):
// they are waited for too, so that what they got to (chaos injected, say)
// is counted.
func (r *run) settle(ctx context.Context) {
	for r.verifying > 0 || r.callingOff() {
		r.rec.flush()
		select {
		case res := <-r.verified:
			_, _ = r.onVerified(ctx, res) // the task has ended: nothing left to fail
		case res := <-r.computed:
			if res.a.copies.succeeded {
				_ = r.onComputed(ctx, res) // superseded: counted, no call
			} else {
				r.release(res.a) // nothing to act on any more
			}
		case <-ctx.Done():
			return
		}
	}
}

// callingOff reports whether a copy another copy beat is still computing.
func (r *run) callingOff() bool {
	for _, s := range r.slots {
		if s.a != nil && s.a.copies.succeeded {
			return true
		}
	}
	return false
}

// fill hands out subtasks to the free slots and reports the last
// HasPendingSubtasks answer and whether any slot got a subtask.
//
// A slot asks NextSubtask straight away, since a subtask handed out means
// one was pending: that spares a HasPendingSubtasks call per subtask.
// Only an empty answer is looked into with HasPendingSubtasks (nothing
// pending, or nothing for this node). Once HasPendingSubtasks answered
// false, it is asked first again, as long as it says so, so that the slots
// idle at the end of a task do not ask for subtasks there are none of.
func (r *run) fill(ctx context.Context) (pending, got bool, err error) {
	for i := range r.slots {
		if r.slots[i].busy {
			continue
		}
		var a *attempt
		asked := false
		if !r.drained {
			if a, err = r.next(ctx, i); err != nil {
				return pending, got, err
			}
			asked = true
		}
		if a == nil {
			if pending, err = r.hasPending(ctx); err != nil || !pending {
				r.drained = err == nil
				return pending, got, err
			}
			r.drained = false
			if !asked {
				if a, err = r.next(ctx, i); err != nil {
					return pending, got, err
				}
			}
		}
		if a == nil {
			// Pending, but nothing for this node: it holds a live subtask
			// of every computable part (a replica, say). A new node may
			// take one.
			r.replaceNode(i, EventNodeReplaced, fmt.Sprintf("the app has nothing for %s while subtasks are pending", r.slots[i].node))
			if a, err = r.next(ctx, i); err != nil {
				return pending, got, err
			}
			if a == nil {
				continue
			}
		}
		pending = true
		r.start(a)
		got = true
	}
	return pending, got, nil
}

func (r *run) hasPending(ctx context.Context) (bool, error) {
	var pending bool
	err := r.req.call(ctx, "HasPendingSubtasks", func(c *RequestorClient) error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		var err error
		pending, err = c.HasPendingSubtasks(cctx, r.cfg.TaskID)
		return err
	})
	return pending, err
}

// next asks for a subtask for slot's node, with a fresh id.
func (r *run) next(ctx context.Context, i int) (*attempt, error) {
	node := r.slots[i].node
	id := uuid.NewString()
	var sub *requestor.Subtask
	tried := false
	err := r.req.call(ctx, "NextSubtask", func(c *RequestorClient) error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		if tried {
			// The requestor died during NextSubtask and may have stored
			// the subtask: abort it, so that its part is not held by a
			// subtask nobody computes, and ask with a fresh id.
			if err := c.AbortSubtask(cctx, r.cfg.TaskID, id); err != nil && status.Code(err) != codes.NotFound {
				return err
			}
			id = uuid.NewString()
		}
		tried = true
		var err error
		sub, err = c.NextSubtask(cctx, r.cfg.TaskID, id, node)
		return err
	})
	if err != nil || sub == nil {
		return nil, err
	}
	r.seq++
	key := sha256.Sum256(sub.Params)
	p := r.parts[key]
	if p == nil {
		p = &partState{index: partIndex(sub.Params), nodes: map[string]bool{}}
		r.parts[key] = p
	}
	p.assigned++
	return &attempt{
		seq: r.seq, id: id, slot: i, node: node, no: p.assigned, part: p, key: key,
		params: sub.Params, resources: sub.Resources,
	}, nil
}

// partIndex reads the part number gtask apps put in their subtask params
// ({"part": N, "params": ...}); -1 when there is none.
func partIndex(params json.RawMessage) int {
	var p struct {
		Part *int `json:"part"`
	}
	if json.Unmarshal(params, &p) != nil || p.Part == nil || *p.Part < 0 {
		return -1
	}
	return *p.Part
}

// start records a, a subtask NextSubtask handed out, and starts computing
// it on its slot.
func (r *run) start(a *attempt) {
	p := a.part
	if !p.chaos {
		if kind, rng := r.cfg.Chaos.decide(a.key, a.no); kind != "" {
			p.chaos = true
			a.chaos, a.rng = kind, rng
		}
	}
	a.ctx, a.cancel = context.WithCancelCause(r.wctx)
	a.copies = &copies{members: []*attempt{a}}
	p.nodes[a.node] = true
	r.rec.update(func(c *Counts) { c.Assigned++ })
	r.countRetries(p)
	r.launch(a, r.subtaskEvent(EventSubtaskAssigned, a))
}

// launch starts computing a on its slot, once ev says so.
func (r *run) launch(a *attempt, ev Event) {
	a.copies.live++
	r.slots[a.slot].busy, r.slots[a.slot].a = true, a
	r.computing++
	r.emit(ev)
	r.attempts <- a // never blocks: a worker per slot, and this slot's is idle
}

// backUp starts the backups the policy calls for (see Backups) on the idle
// slots, and returns when the next one may be due; zero when none can be,
// until something changes: a slot frees, an attempt is computed, the app
// has subtasks pending again.
func (r *run) backUp(now time.Time) time.Time {
	if r.cfg.Backups.Off || !r.drained {
		return time.Time{}
	}
	med, ok := r.medianTook()
	if !ok {
		return time.Time{}
	}
	slow := max(r.cfg.Backups.MinWait, time.Duration(r.cfg.Backups.After*float64(med)))
	var next time.Time
	for i := range r.slots {
		if r.slots[i].busy || r.banned[r.slots[i].node] {
			continue
		}
		// The copy computing for the longest whose subtask may have
		// another backup, on a node that has computed none of its part.
		var (
			slowest *attempt
			since   time.Time
		)
		for j := range r.slots {
			a := r.slots[j].a
			if a == nil || a.copies.succeeded || a.copies.backups >= r.cfg.Backups.PerSubtask ||
				a.part.nodes[r.slots[i].node] {
				continue
			}
			began := a.began.Load()
			if began == 0 {
				continue // at the Gate still
			}
			if t := time.Unix(0, began); slowest == nil || t.Before(since) {
				slowest, since = a, t
			}
		}
		if slowest == nil {
			continue // another idle slot's node may take one
		}
		if due := since.Add(slow); due.After(now) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		if !r.startBackup(slowest, i, now.Sub(since), med) {
			return next
		}
	}
	return next
}

// startBackup starts a backup of a's subtask on slot i, unless another
// copy has won already, and reports whether it did.
func (r *run) startBackup(a *attempt, i int, took, med time.Duration) bool {
	g := a.copies
	b := &attempt{
		seq: a.seq, id: a.id, slot: i, node: r.slots[i].node, no: a.no, part: a.part, key: a.key,
		params: a.params, resources: a.resources, backup: g.backups + 1, copies: g,
	}
	// Its context is made before it joins the copies, whose winner
	// cancels the others.
	b.ctx, b.cancel = context.WithCancelCause(r.wctx)
	g.mu.Lock()
	won := g.won != nil
	if !won {
		g.members = append(g.members, b)
	}
	g.mu.Unlock()
	if won {
		b.cancel(nil)
		return false
	}
	g.backups++
	a.part.nodes[b.node] = true
	r.rec.update(func(c *Counts) { c.Backups++ })
	ev := r.subtaskEvent(EventBackupStarted, b)
	ev.Reason = fmt.Sprintf("subtask %s has computed for %s on %s; the run's median attempt takes %s",
		a.id, took.Round(time.Millisecond), a.node, med.Round(time.Millisecond))
	r.launch(b, ev)
	return true
}

// medianTook is the median time of the run's computed attempts.
func (r *run) medianTook() (time.Duration, bool) {
	if len(r.tooks) == 0 {
		return 0, false
	}
	if !r.tooksSorted {
		slices.Sort(r.tooks)
		r.tooksSorted = true
	}
	return r.tooks[len(r.tooks)/2], true
}

func (r *run) subtaskEvent(kind EventKind, a *attempt) Event {
	ev := Event{Kind: kind, Subtask: a.id, Attempt: a.no, Slot: intp(a.slot), Node: a.node, Backup: a.backup}
	if a.part.index >= 0 {
		ev.Part = intp(a.part.index)
	}
	return ev
}

// runName names a's provider dir and log: its subtask's id, and for a
// backup ".backup{N}".
func (a *attempt) runName() string {
	if a.backup == 0 {
		return a.id
	}
	return fmt.Sprintf("%s.backup%d", a.id, a.backup)
}

// computeCopy computes a on its worker and says how it ended, among the
// copies of its subtask: an attempt another copy beat (its context
// cancelled by that copy, or a failure after that copy won) is
// superseded, whatever it got to.
func (r *run) computeCopy(a *attempt) computeResult {
	res := r.compute(a.ctx, a)
	a.cancel(nil)
	if res.cancelled && r.wctx.Err() == nil {
		// Not the run's end: only a winning copy cancels a copy's context.
		res.cancelled, res.superseded = false, true
	}
	g := a.copies
	g.mu.Lock()
	if g.won != nil && g.won != a && !res.cancelled {
		res.superseded = true
		res.winner = g.won.node
	}
	g.mu.Unlock()
	if res.superseded {
		res.fail, res.code, res.reason = "", "", ""
	}
	return res
}

// compute runs one attempt on a worker goroutine: it reads a's fixed
// fields and touches only the file system, the launcher and the provider.
func (r *run) compute(ctx context.Context, a *attempt) (res computeResult) {
	res.a = a
	if r.cfg.Gate != nil {
		release, err := r.cfg.Gate(ctx)
		if err != nil {
			if ctx.Err() != nil {
				res.cancelled = true
				return res
			}
			res.fail, res.reason = FailStart, fmt.Sprintf("waiting for a provider slot (Gate): %v", err)
			return res
		}
		// Deferred first, so run last: once every other deferred step,
		// the provider's stop included, is done.
		defer release()
	}
	start := time.Now()
	defer func() { res.took = time.Since(start) }()
	actx, cancel := context.WithTimeout(ctx, r.cfg.SubtaskTimeout)
	defer cancel()
	fail := func(kind FailKind, format string, args ...any) computeResult {
		res.cancelled = ctx.Err() != nil
		res.fail, res.reason = kind, fmt.Sprintf(format, args...)
		if kind != FailTimeout && actx.Err() != nil && ctx.Err() == nil {
			// Whatever failed, it failed because time ran out.
			res.fail, res.reason = FailTimeout, fmt.Sprintf("no output within %s (SubtaskTimeout): %s", r.cfg.SubtaskTimeout, res.reason)
		}
		return res
	}

	a.began.Store(start.UnixNano())
	dir := filepath.Join(r.provRoot, a.runName())
	// The provider's output, when it answered one; removeDir takes it only
	// when it is a name in dir itself.
	var output string
	defer func() { removeDir(dir, output, r.inputsName) }()
	inputs := filepath.Join(dir, r.inputsName)
	if err := mkdir(dir); err != nil {
		return fail(FailResources, "making the provider's dir: %v", err)
	}
	if err := mkdir(inputs); err != nil {
		return fail(FailResources, "making the provider's dir: %v", err)
	}
	for _, name := range a.resources {
		if err := copyResource(r.inputsDir, name, inputs); err != nil {
			return fail(FailResources, "%v", err)
		}
	}

	inst, err := r.provLauncher.Start(actx, RoleProvider, dir, filepath.Join(r.logDir, "provider-"+a.runName()+".log"))
	if err != nil {
		return fail(FailStart, "starting the provider: %v", err)
	}
	// A provider that answered exits by itself (stop waits for it); any
	// other is killed.
	stopped := false
	stop := func(answered bool) {
		if stopped {
			return
		}
		stopped = true
		switch {
		case !answered && a.chaos == "" && ctx.Err() == nil && (actx.Err() != nil || res.fail == FailTimeout):
			// Out of time: asked to stop (SIGTERM; a container's graceful
			// stop), then killed if it does not within timeoutStopGrace.
			// The server may see the deadline, and answer
			// DeadlineExceeded, a moment before actx ends: the attempt's
			// failure, set before this deferred call, says so then.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeoutStopGrace)
			if inst.Stop(sctx) != nil {
				inst.Kill()
			}
			cancel()
		case !answered:
			inst.Kill()
		case announcedApp(inst):
			// A gtask app is on its way out already: asking it to stop
			// (SIGTERM) would only cost it a signal's handling, a tenth
			// of its life. It is killed if it does not exit in time.
			t := time.NewTimer(providerExitGrace)
			defer t.Stop()
			select {
			case <-inst.Done():
			case <-t.C:
				inst.Kill()
			case <-ctx.Done():
				inst.Kill()
			}
		default:
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), providerExitGrace)
			if inst.Stop(sctx) != nil {
				inst.Kill()
			}
			cancel()
		}
	}
	defer stop(false)
	pc, err := providerClient(actx, inst)
	if err != nil {
		return fail(FailStart, "%v", err)
	}
	defer pc.Close()

	switch a.chaos {
	case ChaosCrash, ChaosHang:
		// Owned by this worker, which always receives its reply before it
		// returns.
		replies := make(chan struct{}, 1)
		go func() {
			pc.Compute(actx, r.cfg.TaskID, a.id, a.params)
			replies <- struct{}{}
		}()
		if a.chaos == ChaosCrash {
			inst.Kill()
			<-replies
			res.injected, res.chaosNote = ChaosCrash, "the host killed the provider during Compute"
			return fail(FailCrash, "the provider was killed during Compute (chaos)")
		}
		<-actx.Done()
		inst.Kill()
		<-replies
		res.injected, res.chaosNote = ChaosHang, "the host ignored the provider until its deadline, as if it had stalled"
		if ctx.Err() != nil {
			res.chaosNote = "the host ignored the provider, as if it had stalled, until the attempt was called off"
		}
		return fail(FailTimeout, "no answer within %s (SubtaskTimeout; chaos: the provider stalled)", r.cfg.SubtaskTimeout)
	}
	rel, err := pc.Compute(actx, r.cfg.TaskID, a.id, a.params)
	if err != nil {
		return r.computeFailed(ctx, actx, inst, err, fail)
	}
	output = rel
	// The provider is gone before its output is taken: nothing of it
	// changes the file after the checks (see copyOutput).
	pc.Close()
	stop(true)

	// The first copy of the subtask whose output passes the checks wins;
	// the copies take their turns, so that one output at most lands in
	// subtask_outputs/{id}/.
	g := a.copies
	g.mu.Lock()
	if g.won != nil {
		g.mu.Unlock()
		res.superseded = true
		return res
	}
	name, n, err := copyOutput(dir, rel, filepath.Join(r.outputsDir, a.id), r.cfg.MaxOutputSize)
	if err == nil {
		g.won = a
		for _, o := range g.members {
			if o != a {
				o.cancel(errSuperseded)
			}
		}
	}
	g.mu.Unlock()
	if bad, ok := errors.AsType[*badOutput](err); ok {
		return fail(FailBadOutput, "%s", bad.reason)
	}
	if err != nil {
		return fail(FailCopy, "%v", err)
	}
	res.name, res.bytes = name, n
	dst := filepath.Join(r.outputsDir, a.id, name)
	switch a.chaos {
	case ChaosWrong:
		if err := invertFile(dst); err != nil {
			return fail(FailCopy, "chaos: %v", err)
		}
		res.injected, res.chaosNote = ChaosWrong, fmt.Sprintf("the host inverted every byte of %s before Verify", name)
	case ChaosGarbage:
		if err := garbleFile(dst, a.rng); err != nil {
			return fail(FailCopy, "chaos: %v", err)
		}
		res.injected, res.chaosNote = ChaosGarbage, fmt.Sprintf("the host replaced %s with random bytes before Verify", name)
	}
	return res
}

// computeFailed tells how a Compute call failed: the deadline, the
// provider's exit, or an error it answered.
func (r *run) computeFailed(ctx, actx context.Context, inst Instance, err error,
	fail func(FailKind, string, ...any) computeResult) computeResult {
	if ctx.Err() != nil {
		return fail(FailError, "the run ended")
	}
	// The server may see the deadline, which travels with the call, a
	// moment before the host does.
	if actx.Err() != nil || status.Code(err) == codes.DeadlineExceeded {
		return fail(FailTimeout, "no answer within %s (SubtaskTimeout)", r.cfg.SubtaskTimeout)
	}
	// A provider exits by itself once it has answered, so only an error
	// saying the call was cut off can mean that it died; any other is its
	// answer, however fast it exited after.
	if c := status.Code(err); (c == codes.Unavailable || c == codes.Canceled) && exited(inst, err) {
		werr := inst.Wait()
		if werr == nil {
			return fail(FailCrash, "the provider exited during Compute without answering")
		}
		return fail(FailCrash, "the provider exited during Compute: %v", werr)
	}
	code, msg := statusOf(err)
	res := fail(FailError, "Compute answered %s: %s", code, msg)
	res.code = code.String()
	return res
}

// exited reports whether the server behind inst is gone, given err, the
// error of a call to it.
func exited(inst Instance, err error) bool {
	if c := status.Code(err); c == codes.Unavailable || c == codes.Canceled {
		t := time.NewTimer(deathWait)
		defer t.Stop()
		select {
		case <-inst.Done():
			return true
		case <-t.C:
			return false
		}
	}
	select {
	case <-inst.Done():
		return true
	default:
		return false
	}
}

// onComputed acts on an attempt that ended: a failure is answered with
// AbortSubtask (so that its part can be computed again) and a ban of its
// node; an output goes to verification.
//
// With backups (see Backups), a is one copy of its subtask: one another
// copy beat is superseded, and a failed one aborts the subtask only once
// no copy computes any more and none was computed.
func (r *run) onComputed(ctx context.Context, res computeResult) error {
	a := res.a
	g := a.copies
	r.release(a)
	if res.cancelled {
		return nil
	}
	if res.injected != "" {
		a.injected = true
		if a.part.accepted {
			// A copy superseded after its part was accepted.
			r.rec.update(func(c *Counts) { c.Recovered++ })
		} else {
			a.part.injected++
		}
		r.rec.update(func(c *Counts) { c.Injected[res.injected]++ })
		ev := r.subtaskEvent(EventChaosInjected, a)
		ev.Chaos, ev.Reason = res.injected, res.chaosNote
		r.emit(ev)
	}
	switch {
	case res.superseded:
		r.rec.update(func(c *Counts) { c.Superseded++ })
		ev := r.subtaskEvent(EventSubtaskSuperseded, a)
		ev.Took, ev.Reason = res.took, fmt.Sprintf("the copy on %s was computed first", res.winner)
		r.emit(ev)
	case res.fail != "":
		ev := r.subtaskEvent(EventComputeFailed, a)
		ev.Fail, ev.Code, ev.Reason, ev.Took = res.fail, res.code, res.reason, res.took
		r.countFailure(a, res.fail)
		r.emit(ev)
		r.ban(a, fmt.Sprintf("its attempt at subtask %s failed (%s)", a.id, res.fail))
	default:
		g.succeeded = true
		r.tooks = append(r.tooks, res.took)
		r.tooksSorted = false
		r.rec.update(func(c *Counts) {
			c.Computed++
			if a.backup > 0 {
				c.BackupWins++
			}
		})
		ev := r.subtaskEvent(EventSubtaskComputed, a)
		ev.Bytes, ev.Took = res.bytes, res.took
		r.emit(ev)
		r.enqueue(a, false)
		return nil
	}
	if g.live > 0 || g.succeeded || g.aborted {
		return nil
	}
	// Every copy has ended, and none was computed.
	g.aborted = true
	return r.abortSubtask(ctx, a)
}

// release frees the slot and the counts of a, an attempt that ended.
func (r *run) release(a *attempt) {
	r.computing--
	a.copies.live--
	r.slots[a.slot].busy, r.slots[a.slot].a = false, nil
}

// countFailure counts a failed attempt; those chaos caused do not count
// against MaxAttempts.
func (r *run) countFailure(a *attempt, kind FailKind) {
	a.part.failures++
	if !a.injected {
		r.failures++
	}
	r.rec.update(func(c *Counts) {
		c.Failed++
		c.FailedBy[kind]++
	})
	r.countRetries(a.part)
}

// countRetries counts p's retries: its subtasks beyond the first, each
// paid for by a failure. Counted from the totals rather than at hand-out,
// because the app may hand out a part again (its failure stored) before the
// run has read the verdict that failed it. With redundancy the first
// replicas count too until as many retries are handed out, a passing
// overestimate.
func (r *run) countRetries(p *partState) {
	n := min(p.failures, p.assigned-1)
	if n > p.retries {
		r.rec.update(func(c *Counts) { c.Retried += n - p.retries })
		p.retries = n
	}
}

// ban bans a's node, which failed the task, unless it is banned already,
// and gives a's slot a new node when the slot still holds it. The slot may
// have moved on before the failure was known: a node's verdict comes after
// its attempt, and meanwhile the app, which records the failure before it
// answers Verify, may have had nothing more for the node (node_replaced).
// The node is banned then all the same, with no new node for its slot.
// A node id names one node for the whole run (new nodes get fresh ids), so
// a banned node never gets a subtask of the task again.
func (r *run) ban(a *attempt, reason string) {
	if r.banned[a.node] {
		return
	}
	r.banned[a.node] = true
	r.rec.update(func(c *Counts) { c.Banned++ })
	if r.slots[a.slot].node == a.node {
		r.replaceNode(a.slot, EventNodeBanned, reason)
		return
	}
	reason += fmt.Sprintf("; its slot went on as %s already", r.slots[a.slot].node)
	r.emit(Event{Kind: EventNodeBanned, Slot: intp(a.slot), Node: a.node, Reason: reason})
}

func (r *run) replaceNode(i int, kind EventKind, reason string) {
	old := r.slots[i].node
	r.slots[i].node = fmt.Sprintf("node-%d", len(r.slots)+r.newNodes)
	r.newNodes++
	r.emit(Event{Kind: kind, Slot: intp(i), Node: old, NewNode: r.slots[i].node, Reason: reason})
}

func (r *run) abortSubtask(ctx context.Context, a *attempt) error {
	r.drop(a)
	err := r.req.call(ctx, "AbortSubtask", func(c *RequestorClient) error {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return c.AbortSubtask(cctx, r.cfg.TaskID, a.id)
	})
	if err != nil {
		return err
	}
	r.emit(r.subtaskEvent(EventSubtaskAborted, a))
	return nil
}

// enqueue queues a for a Verify call, unless it is queued already.
func (r *run) enqueue(a *attempt, again bool) {
	if a.queued {
		return
	}
	a.queued = true
	r.inVerify[a.id] = a
	r.queue = append(r.queue, verifyJob{a: a, again: again})
}

// drop forgets a's verification: it has a final verdict, or was aborted.
func (r *run) drop(a *attempt) {
	delete(r.inVerify, a.id)
	delete(r.awaiting, a.id)
	a.dirty = false
}

// dispatch starts queued verifications while fewer than VerifyConcurrency
// run.
func (r *run) dispatch() {
	for r.verifying < r.cfg.VerifyConcurrency && len(r.queue) > 0 {
		job := r.queue[0]
		r.queue = r.queue[1:]
		a := job.a
		a.queued, a.inFlight = false, true
		r.verifying++
		r.verifyJobs <- job // never blocks: fewer than VerifyConcurrency run
	}
}

// verify runs one Verify call on a worker goroutine.
func (r *run) verify(ctx context.Context, job verifyJob) verifyResult {
	res := verifyResult{a: job.a, again: job.again}
	start := time.Now()
	vctx, cancel := context.WithTimeout(ctx, r.cfg.VerifyTimeout)
	defer cancel()
	res.err = r.req.call(vctx, "Verify", func(c *RequestorClient) error {
		var err error
		res.verdict, res.reason, err = c.Verify(vctx, r.cfg.TaskID, job.a.id)
		return err
	})
	res.timedOut = res.err != nil && ctx.Err() == nil &&
		(vctx.Err() != nil || status.Code(res.err) == codes.DeadlineExceeded)
	res.took = time.Since(start)
	return res
}

// onVerified acts on a Verify answer, and reports whether it changed
// anything (a fresh result judged, or a verdict that changed).
func (r *run) onVerified(ctx context.Context, res verifyResult) (bool, error) {
	a := res.a
	r.verifying--
	a.inFlight = false
	if ctx.Err() != nil {
		return false, nil
	}
	if res.err != nil {
		if r.late(res.err) {
			// The task ended meanwhile: nothing left to judge it for.
			r.drop(a)
			return true, res.err
		}
		a.tries++
		r.rec.update(func(c *Counts) { c.VerifyErrors++ })
		ev := r.subtaskEvent(EventVerifyError, a)
		code, msg := statusOf(res.err)
		if res.timedOut {
			msg = fmt.Sprintf("no answer within %s (VerifyTimeout)", r.cfg.VerifyTimeout)
		}
		ev.Try, ev.Code, ev.Reason, ev.Took = a.tries, code.String(), msg, res.took
		r.emit(ev)
		if errors.Is(res.err, ErrRequestorDied) {
			return false, res.err
		}
		if a.tries < r.cfg.VerifyTries {
			r.enqueue(a, res.again)
			return false, nil
		}
		r.countFailure(a, FailVerifyError)
		return true, r.abortSubtask(ctx, a)
	}
	a.tries = 0
	prev := a.verdict
	a.verdict = res.verdict
	ev := r.subtaskEvent(EventSubtaskVerified, a)
	ev.Verdict, ev.Reason, ev.Again, ev.Took = res.verdict.String(), res.reason, res.again, res.took
	r.rec.update(func(c *Counts) {
		switch res.verdict {
		case requestor.Success:
			c.Accepted++
			if !a.part.accepted {
				c.Done++
			}
			c.Recovered += a.part.injected
		case requestor.Failure:
			c.Rejected++
		case requestor.AwaitingData:
			c.AwaitingData++
		case requestor.Inconclusive:
			c.Inconclusive++
		}
	})
	switch res.verdict {
	case requestor.Success:
		a.part.accepted = true
		a.part.injected = 0
		r.drop(a)
		r.emit(ev)
	case requestor.Failure:
		r.drop(a)
		r.countFailure(a, FailRejected)
		r.emit(ev)
		r.ban(a, fmt.Sprintf("its result for subtask %s was rejected", a.id))
	default:
		// AWAITING_DATA or INCONCLUSIVE: the final verdict comes from a
		// later Verify, after another verification.
		r.awaiting[a.id] = a
		r.emit(ev)
		if a.dirty {
			a.dirty = false
			r.enqueue(a, true)
		}
	}
	progressed := !res.again || res.verdict != prev
	if progressed {
		for _, o := range r.sortedAwaiting() {
			switch {
			case o == a || o.queued:
			case o.inFlight:
				o.dirty = true // its answer may predate this one
			default:
				r.enqueue(o, true)
			}
		}
	}
	return progressed, nil
}

func (r *run) sortedAwaiting() []*attempt {
	as := make([]*attempt, 0, len(r.awaiting))
	for _, a := range r.awaiting {
		as = append(as, a)
	}
	slices.SortFunc(as, func(x, y *attempt) int { return x.seq - y.seq })
	return as
}

func idsOf(as []*attempt) []string {
	ids := make([]string, len(as))
	for i, a := range as {
		ids[i] = a.id
	}
	return ids
}

// emit sets the gauges from the loop's state and records ev. Loop
// goroutine only.
func (r *run) emit(ev Event) {
	r.rec.setGauges(r.computing, len(r.inVerify))
	r.rec.emit(ev)
}

// statusOf returns the gRPC code and message of err, the error of a call
// (wrapped by the client with the method's name); for any other error,
// Unknown and its text.
func statusOf(err error) (codes.Code, string) {
	if se, ok := errors.AsType[interface {
		error
		GRPCStatus() *status.Status
	}](err); ok {
		st := se.GRPCStatus()
		return st.Code(), st.Message()
	}
	return codes.Unknown, err.Error()
}

// taskStatus is a gtask app's {task dir}/.gtask/status.json.
type taskStatus struct {
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// ended reads the task's status.json, which a gtask app writes once the
// task has ended, and says how it ended.
func (r *run) ended() (Outcome, string, bool) {
	raw, err := os.ReadFile(r.statusPath)
	if err != nil {
		return "", "", false
	}
	var st taskStatus
	if json.Unmarshal(raw, &st) != nil {
		return "", "", false
	}
	switch st.State {
	case "finished":
		return Finished, "", true
	case "failed":
		return Failed, st.Reason, true
	case "aborted":
		return Aborted, "the task was aborted", true
	}
	return "", "", false
}

// over tells how a task that has nothing left ended: as its status.json
// says, or, for an app that writes none, by its outputs. why is the
// requestor's word on it, if any.
func (r *run) over(why string) (Outcome, string, error) {
	if o, reason, ok := r.ended(); ok {
		return o, reason, nil
	}
	outs, err := listFiles(filepath.Join(r.taskDir, taskapi.TaskOutputsDir()))
	if err != nil {
		return "", "", err
	}
	if len(outs) > 0 {
		return Finished, "", nil
	}
	if why == "" {
		why = "the app has nothing left to hand out, but task_outputs is empty"
	}
	return Failed, why, nil
}

// late reports whether err is a FailedPrecondition answered because the
// task has ended: the answer to a call made just after the end.
func (r *run) late(err error) bool {
	if status.Code(err) != codes.FailedPrecondition {
		return false
	}
	if _, _, ok := r.ended(); ok {
		return true
	}
	// An app without status.json says so in the message.
	_, msg := statusOf(err)
	return strings.Contains(msg, "task is finished") || strings.Contains(msg, "task failed") || strings.Contains(msg, "aborted")
}

// readParts reads the number of parts a gtask app publishes in
// {task dir}/.gtask/task.json; 0 when there is none.
func readParts(taskDir string) int {
	raw, err := os.ReadFile(filepath.Join(taskDir, ".gtask", "task.json"))
	if err != nil {
		return 0
	}
	var info struct {
		Parts int `json:"parts"`
	}
	if json.Unmarshal(raw, &info) != nil || info.Parts < 0 {
		return 0
	}
	return info.Parts
}

// listFiles lists the regular files under dir, relative to it, sorted.
func listFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// requestorConn is the run's requestor: its instance and client, started
// again when it dies. It is safe for concurrent use: verify workers call
// through it too.
type requestorConn struct {
	r *run

	mu       sync.Mutex
	gen      int // bumped by each start
	inst     Instance
	client   *RequestorClient
	restarts int
	dead     error // set when it died for good
}

// start starts a requestor and dials it. Called with mu held, or before
// anyone else uses c.
func (c *requestorConn) start(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, requestorStartTimeout)
	defer cancel()
	inst, err := c.r.cfg.Launcher.Start(sctx, RoleRequestor, c.r.reqDir, filepath.Join(c.r.logDir, "requestor.log"))
	if err != nil {
		return fmt.Errorf("starting the requestor: %w", err)
	}
	client, err := requestorClient(sctx, inst, c.r.reqDir)
	if err != nil {
		inst.Kill()
		return err
	}
	c.inst, c.client = inst, client
	c.gen++
	c.r.rec.emit(Event{Kind: EventRequestorStarted, Attempt: c.gen})
	return nil
}

// announcer is an Instance that knows whether the app said it serves: a
// gtask app's process, once its readiness line was read. It was bound
// then, so its first call is queued by the kernel until it accepts, and
// asking its health first would only cost a round trip. Such an app
// follows gtask's process contract in full: as a provider, it exits by
// itself once it has answered its one call.
type announcer interface {
	announced() bool
}

// announcedApp reports whether inst is an announcer that announced itself.
func announcedApp(inst Instance) bool {
	a, ok := inst.(announcer)
	return ok && a.announced()
}

// dialOpts are the options of a dial of inst: no health wait for an
// instance that announced it serves.
func dialOpts(inst Instance, opts ...DialOption) []DialOption {
	if announcedApp(inst) {
		opts = append(opts, withoutHealthWait())
	}
	return opts
}

// requestorClient returns a client of the requestor inst: in process when
// inst is a DirectInstance, which serves from its start, otherwise dialled
// at its address with the TLS files of its work dir tlsDir.
func requestorClient(ctx context.Context, inst Instance, tlsDir string) (*RequestorClient, error) {
	if d, ok := inst.(DirectInstance); ok {
		return NewRequestorClient(d.Conn()), nil
	}
	return DialRequestor(ctx, inst.Addr(), dialOpts(inst, WithTLSDir(tlsDir))...)
}

// providerClient returns a client of the provider inst, as requestorClient
// does; a provider's work dir holds no TLS files.
func providerClient(ctx context.Context, inst Instance) (*ProviderClient, error) {
	if d, ok := inst.(DirectInstance); ok {
		return NewProviderClient(d.Conn()), nil
	}
	return DialProvider(ctx, inst.Addr(), dialOpts(inst)...)
}

func (c *requestorConn) alive() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client != nil && c.dead == nil
}

// call calls f with the requestor's client. When the call fails because
// the requestor died, a new requestor is started over the same work dir
// (up to RunConfig.RequestorRestarts times) and f is called again with it.
func (c *requestorConn) call(ctx context.Context, what string, f func(*RequestorClient) error) error {
	for {
		c.mu.Lock()
		client, inst, gen, dead := c.client, c.inst, c.gen, c.dead
		c.mu.Unlock()
		if dead != nil {
			return dead
		}
		if client == nil {
			return fmt.Errorf("%s: %w: no requestor runs", what, ErrRequestorDied)
		}
		err := f(client)
		if err == nil || ctx.Err() != nil || !exited(inst, err) {
			return err
		}
		if rerr := c.restart(ctx, gen, what, inst, err); rerr != nil {
			return rerr
		}
	}
}

// restart replaces the requestor of generation gen, which died during
// what, unless another caller did so already.
func (c *requestorConn) restart(ctx context.Context, gen int, what string, inst Instance, cause error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead != nil {
		return c.dead
	}
	if c.gen != gen {
		return nil
	}
	reason := fmt.Sprintf("the requestor exited during %s (%v): %v", what, inst.Wait(), cause)
	c.r.rec.emit(Event{Kind: EventRequestorDied, Reason: reason})
	c.client.Close()
	inst.Kill()
	c.client, c.inst = nil, nil
	if c.restarts >= c.r.cfg.RequestorRestarts {
		c.dead = fmt.Errorf("%w: %s; no restarts left (RequestorRestarts %d)", ErrRequestorDied, reason, c.r.cfg.RequestorRestarts)
		return c.dead
	}
	c.restarts++
	c.r.rec.update(func(cn *Counts) { cn.RequestorRestarts++ })
	if err := c.start(ctx); err != nil {
		c.dead = fmt.Errorf("%w: %s; restarting it failed: %w", ErrRequestorDied, reason, err)
		return c.dead
	}
	return nil
}

// stop stops the requestor gracefully, killing it after stopGrace, and
// closes the client. It returns once the requestor has exited.
func (c *requestorConn) stop(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inst == nil {
		return
	}
	c.client.Close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopGrace)
	defer cancel()
	if c.inst.Stop(sctx) != nil {
		c.inst.Kill() // to be sure it is gone, whatever Stop met
	}
	c.inst, c.client = nil, nil
}
