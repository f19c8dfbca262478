package sdktest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/gtask/gtask/internal/testdriver"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/sdk"
)

// Defaults of the RunOptions.
const (
	// DefaultProviders is how many provider nodes compute at once when
	// Providers is not used: enough that a part rejected on one node (or
	// wanting a replica on another) has somewhere else to go.
	DefaultProviders = 3
	// DefaultAttemptTimeout bounds one attempt when AttemptTimeout is not
	// used.
	DefaultAttemptTimeout = 30 * time.Second
	// DefaultTimeout bounds a whole run when Timeout is not used (the
	// test's own deadline bounds it too).
	DefaultTimeout = 5 * time.Minute
)

// Fault is what the harness does to one attempt at a part instead of, or
// after, computing it with the app's Compute.
type Fault int

// The faults.
const (
	// NoFault: the attempt is computed honestly.
	NoFault Fault = iota
	// Error: Compute fails (the app's Compute does not run). The part is
	// given out again, as a host does after a provider's error.
	Error
	// Wrong: the result file's bytes are altered (each byte inverted; an
	// empty file gets one byte) before Verify. The app's Verify should
	// reject it.
	Wrong
	// Missing: the result file never reaches the requestor: Verify finds
	// no file. The SDK should reject it.
	Missing
	// Hang: Compute blocks until its per-attempt deadline (AttemptTimeout),
	// then fails: set AttemptTimeout short in a test that injects it.
	Hang
)

func (f Fault) String() string {
	switch f {
	case NoFault:
		return "none"
	case Error:
		return "error"
	case Wrong:
		return "wrong"
	case Missing:
		return "missing"
	case Hang:
		return "hang"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

func (f Fault) driver() testdriver.Fault {
	switch f {
	case Error:
		return testdriver.FaultError
	case Wrong:
		return testdriver.FaultWrong
	case Missing:
		return testdriver.FaultMissing
	case Hang:
		return testdriver.FaultHang
	}
	return testdriver.NoFault
}

// FaultPlan decides the fault of the attempt-th attempt (1 for the first;
// replicas count) at part, NoFault for none. It is called from one
// goroutine.
type FaultPlan func(part, attempt int) Fault

// At injects f into the attempt-th attempt at part, and nothing else.
func At(part, attempt int, f Fault) FaultPlan {
	return func(p, a int) Fault {
		if p == part && a == attempt {
			return f
		}
		return NoFault
	}
}

// Rate injects a fault into each attempt with probability p, the kind
// chosen among kinds (default Error, Wrong and Missing: Hang costs a whole
// AttemptTimeout). The choice depends only on seed, the part and the
// attempt number, never on the order attempts happen to run in, so a seed
// that fails a test fails it again.
func Rate(p float64, seed uint64, kinds ...Fault) FaultPlan {
	if len(kinds) == 0 {
		kinds = []Fault{Error, Wrong, Missing}
	}
	return func(part, attempt int) Fault {
		r := rand.New(rand.NewPCG(seed, uint64(part)<<32|uint64(uint32(attempt))))
		if r.Float64() >= p {
			return NoFault
		}
		return kinds[r.IntN(len(kinds))]
	}
}

// RunOption configures Run.
type RunOption func(*runConfig)

type runConfig struct {
	inputs         []string
	providers      int
	sdkOpts        []sdk.Option
	plans          []FaultPlan
	attemptTimeout time.Duration
	timeout        time.Duration
	maxSubtasks    int
}

// Inputs copies files into the task's task_inputs/ (by base name) before
// CreateTask. Default: none.
func Inputs(files ...string) RunOption {
	return func(c *runConfig) { c.inputs = append(c.inputs, files...) }
}

// Providers sets how many provider nodes compute at once; slot i starts
// as node "node-i". A node whose attempt failed (a compute error or a
// rejected result) gets no more subtasks of the task, as a host bans a
// provider: its slot goes on as a fresh node (numbered on from the last
// slot: "node-3", "node-4", ... by default), so
// a failed part is always computed again elsewhere. Default:
// DefaultProviders (3).
func Providers(n int) RunOption { return func(c *runConfig) { c.providers = max(n, 1) } }

// SDKOptions passes options to the SDK, as sdk.Main would get them.
// Default: none.
func SDKOptions(opts ...sdk.Option) RunOption {
	return func(c *runConfig) { c.sdkOpts = append(c.sdkOpts, opts...) }
}

// Faults injects faults: each attempt gets the first fault any plan
// decides. Default: none.
func Faults(plans ...FaultPlan) RunOption {
	return func(c *runConfig) { c.plans = append(c.plans, plans...) }
}

// AttemptTimeout bounds one attempt's Compute; an attempt over it fails and
// its part is given out again. Default: DefaultAttemptTimeout (30s).
func AttemptTimeout(d time.Duration) RunOption {
	return func(c *runConfig) { c.attemptTimeout = d }
}

// Timeout bounds the whole run; the test fails when it is over. Default:
// DefaultTimeout (5 minutes), or less when the test's context ends sooner.
func Timeout(d time.Duration) RunOption { return func(c *runConfig) { c.timeout = d } }

// MaxSubtasks sets CreateTask's max_subtasks_count, which Split sees as
// Task.MaxParts. Default: 0 (no limit).
func MaxSubtasks(n int) RunOption { return func(c *runConfig) { c.maxSubtasks = n } }

// Result is what a run produced.
type Result struct {
	// OutputsDir is the task's task_outputs/: what Merge wrote.
	OutputsDir string
	// Files holds the content of every file under OutputsDir, by path
	// relative to it (with forward slashes).
	Files map[string][]byte
	// Subtasks lists every subtask handed out, in order.
	Subtasks []Subtask
}

// Subtask is one attempt at a part and what became of it.
type Subtask struct {
	// Part is the part's index in what Split returned; Attempt counts the
	// subtasks given out for it, this one included (1 for the first).
	Part, Attempt int
	// ID is the subtask id; Node the provider node that computed it.
	ID, Node string
	// Fault is the fault injected.
	Fault Fault
	// ComputeErr is why computing it failed (an injected Error or Hang, an
	// error or a panic of the app's Compute); nil when its result reached
	// Verify.
	ComputeErr error
	// Verdict and Reason are Verify's last answer; Verdict is 0 (not a
	// verdict) when Verify was not called.
	Verdict requestor.Verdict
	Reason  string
}

// Attempts returns the subtasks of part, in the order they were handed
// out.
func (r *Result) Attempts(part int) []Subtask {
	var out []Subtask
	for _, s := range r.Subtasks {
		if s.Part == part {
			out = append(out, s)
		}
	}
	return out
}

// Log is a table of the subtasks, one per line, for test messages.
func (r *Result) Log() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "part\tattempt\tnode\tfault\tverdict\treason")
	for _, s := range r.Subtasks {
		verdict, reason := s.Verdict.String(), s.Reason
		if s.ComputeErr != nil {
			verdict, reason = "compute error", s.ComputeErr.Error()
		} else if !s.Verdict.Valid() {
			verdict = "-"
		}
		fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\n", s.Part, s.Attempt, s.Node, s.Fault, verdict, reason)
	}
	w.Flush()
	return b.String()
}

// Run runs one whole task of app in process, as a host would with real
// processes, and returns its result: CreateTask with params (encoded as
// JSON, as a host sends them), every part computed with the app's Compute
// on a fresh provider dir and checked with its Verify (faults injected as
// the options say, parts given out again as the verdicts say), and Merge.
// No sockets and no processes: the SDK's own requestor and provider
// Handlers are called directly, on temp dirs that t removes.
//
// It fails the test (t.Fatalf) when the task does not finish, with the log
// of every subtask; it never returns then.
func Run[P, S any](t testing.TB, app sdk.App[P, S], params P, opts ...RunOption) *Result {
	t.Helper()
	c := runConfig{providers: DefaultProviders, attemptTimeout: DefaultAttemptTimeout, timeout: DefaultTimeout}
	for _, o := range opts {
		o(&c)
	}
	raw, err := json.Marshal(params)
	if err != nil {
		t.Fatalf("sdktest: encoding the task params: %v", err)
	}
	root := t.TempDir()
	workDir := filepath.Join(root, "requestor")
	if err := os.Mkdir(workDir, 0o755); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	b := &inProcess[P, S]{app: app, workDir: workDir, log: log, opts: c.sdkOpts}
	b.req = b.newRequestor()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		if err := b.req.Shutdown(ctx); err != nil {
			t.Errorf("sdktest: the requestor's Shutdown: %v", err)
		}
	}()

	cfg := testdriver.Config{
		WorkDir:        workDir,
		TaskID:         "sdktest",
		Params:         raw,
		Inputs:         c.inputs,
		MaxSubtasks:    c.maxSubtasks,
		Providers:      c.providers,
		ComputeTimeout: c.attemptTimeout,
		ScratchDir:     filepath.Join(root, "providers"),
	}
	if len(c.plans) > 0 {
		cfg.Fault = func(a testdriver.Assignment) testdriver.Fault {
			for _, plan := range c.plans {
				if f := plan(a.Part, a.Attempt); f != NoFault {
					return f.driver()
				}
			}
			return testdriver.NoFault
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), c.timeout)
	defer cancel()
	out, err := testdriver.RunWith(ctx, cfg, b)
	res := result(out)
	if err != nil {
		t.Fatalf("sdktest: the task did not finish: %v\n%s", err, res.Log())
	}
	if !out.Finished {
		t.Fatalf("sdktest: the task did not finish (status %s)\n%s", statusText(out.Status), res.Log())
	}
	res.Files = map[string][]byte{}
	for _, name := range out.Outputs {
		content, err := os.ReadFile(filepath.Join(out.OutputsDir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatalf("sdktest: reading the outputs: %v", err)
		}
		res.Files[name] = content
	}
	return res
}

func result(out *testdriver.Outcome) *Result {
	res := &Result{}
	if out == nil {
		return res
	}
	res.OutputsDir = out.OutputsDir
	for _, rec := range out.Subtasks {
		res.Subtasks = append(res.Subtasks, Subtask{
			Part: rec.Part, Attempt: rec.Attempt, ID: rec.SubtaskID, Node: rec.Node,
			Fault: fromDriver(rec.Fault), ComputeErr: rec.ComputeErr,
			Verdict: rec.Verdict, Reason: rec.Reason,
		})
	}
	return res
}

func fromDriver(f testdriver.Fault) Fault {
	switch f {
	case testdriver.FaultError:
		return Error
	case testdriver.FaultWrong:
		return Wrong
	case testdriver.FaultMissing:
		return Missing
	case testdriver.FaultHang:
		return Hang
	}
	return NoFault
}

func statusText(st json.RawMessage) string {
	if st == nil {
		return "unknown"
	}
	return string(st)
}

// inProcess is the driver's Backend over the SDK's Handlers, called
// directly. Panics in the app are recovered into errors, as the servers
// do, so that a panicking Compute fails its attempt, not the test binary.
type inProcess[P, S any] struct {
	app     sdk.App[P, S]
	workDir string
	log     *slog.Logger
	opts    []sdk.Option
	req     requestor.Handler
}

func (b *inProcess[P, S]) newRequestor() requestor.Handler {
	return sdk.NewRequestor(b.app, b.workDir, b.log.With("role", "requestor"), b.opts...)
}

func (b *inProcess[P, S]) Requestor() testdriver.Requestor {
	return recovering{h: b.req, log: b.log.With("role", "requestor")}
}

// RestartRequestor replaces the requestor Handler by a new one over the
// same work dir. Run does not use it; it keeps the Backend complete.
func (b *inProcess[P, S]) RestartRequestor(ctx context.Context) error {
	err := b.req.Shutdown(ctx)
	b.req = b.newRequestor()
	return err
}

func (b *inProcess[P, S]) RequestorDied(context.Context, error) bool { return false }

func (b *inProcess[P, S]) Compute(ctx context.Context, a testdriver.Assignment, dir, taskID string) (out string, err error) {
	log := b.log.With("role", "provider", "node", a.Node, "subtask", a.SubtaskID)
	defer recoverInto(&err, "Compute", log)
	p := sdk.NewProvider(b.app, dir, log, b.opts...)
	return p.Compute(ctx, taskID, a.SubtaskID, a.Params)
}

// recovering calls a requestor Handler, turning a panic into an error.
type recovering struct {
	h   requestor.Handler
	log *slog.Logger
}

func (r recovering) CreateTask(ctx context.Context, taskID string, maxSubtasks int, params json.RawMessage) (_ requestor.Task, err error) {
	defer recoverInto(&err, "CreateTask", r.log)
	return r.h.CreateTask(ctx, taskID, maxSubtasks, params)
}

func (r recovering) NextSubtask(ctx context.Context, taskID, subtaskID, nodeID string) (_ *requestor.Subtask, err error) {
	defer recoverInto(&err, "NextSubtask", r.log)
	return r.h.NextSubtask(ctx, taskID, subtaskID, nodeID)
}

func (r recovering) Verify(ctx context.Context, taskID, subtaskID string) (_ requestor.Verdict, _ string, err error) {
	defer recoverInto(&err, "Verify", r.log)
	return r.h.Verify(ctx, taskID, subtaskID)
}

func (r recovering) HasPendingSubtasks(ctx context.Context, taskID string) (_ bool, err error) {
	defer recoverInto(&err, "HasPendingSubtasks", r.log)
	return r.h.HasPendingSubtasks(ctx, taskID)
}

func (r recovering) AbortSubtask(ctx context.Context, taskID, subtaskID string) (err error) {
	defer recoverInto(&err, "AbortSubtask", r.log)
	return r.h.AbortSubtask(ctx, taskID, subtaskID)
}

// recoverInto turns a panic into *err, as the servers do, and logs its
// stack: the error stays one line, for the subtask log.
func recoverInto(err *error, what string, log *slog.Logger) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%s panicked: %v", what, p)
		log.Error("panic", "in", what, "panic", p, "stack", string(debug.Stack()))
	}
}

// testWriter sends the SDK's logs to the test's log, shown when the test
// fails or with -v.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = testWriter{}
