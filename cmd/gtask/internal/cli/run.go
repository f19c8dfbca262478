package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc/codes"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/internal/appbuild"
	"github.com/gtask/gtask/taskapi"
)

// runFlags are the flags of `gtask run`.
type runFlags struct {
	params         string
	inputs         []string
	subtasks       int
	providers      int
	runtime        string
	out            string
	workDir        string
	keep           bool
	timeout        time.Duration
	subtaskTimeout time.Duration
	maxAttempts    int
	backups        bool
	backupAfter    float64
	json           bool
	chaos          string
	referenceApp   bool
	taskID         string
	progress       string
	// The docker runtime's.
	image           string
	memory          string
	cpus            float64
	providerNetwork bool
}

const runLong = `Run one task of APP on this machine: create the task, compute its parts on
one-shot provider processes, verify every result, merge them, and copy the
task's outputs to --out.

APP is either
  - a directory holding a Go main package (a gtask app, e.g. ./examples/mandelbrot):
    gtask builds it with 'go build' into its cache (e.g. ~/.cache/gtask/bin)
    on every run; the go command relinks only when something changed;
  - an executable that follows the Task API process contract
    (APP [--work-dir DIR] requestor|provider PORT).
Either is taken for a gtask app (--work-dir, PORT 0, a readiness line on
stdout); --reference-app runs any other Task API app the reference way (its
work dir as its current directory, a free port chosen by gtask, health
polling).

--runtime process, the default, starts the requestor and each provider as a
child process. --runtime docker runs them in containers of the Docker Engine
(DOCKER_HOST, or the local one): the requestor in a long-lived one, each
provider in a fresh one-shot one, with its work dir mounted at /golem/work,
as a non-root user, every capability dropped, a read-only root file system
but for /golem/work and a small /tmp, memory and CPU limits (--memory,
--cpus; a task's min_memory_mib raises the memory), and no network beyond
the host (unless --provider-network). APP is built into an image
(gtask-app/NAME:latest, as 'gtask image build' does), or --image names one
already in the engine, in place of APP. Every container is removed when its
run ends; leftovers of a gtask that was killed are removed by the next run
with docker and by 'gtask gc'. The inline runtime runs an app's Go handlers
inside the host process, so the app must be compiled into the host: Go
programs get it from host.InlineLauncher, but an APP named on the command
line cannot be loaded that way.

Progress goes to stderr: a live bar on a terminal, a line per notable event
elsewhere (--progress chooses). --json writes the run's events to stdout as
JSON lines, one object per event, and nothing else.

Ctrl-C (SIGINT) or SIGTERM aborts the task: AbortTask, every process gtask
started is killed, the work dir is kept and gtask says where the logs are.

Chaos (--chaos) sabotages attempts on purpose, to show that the task still
ends right: crash (kill the provider mid-compute), hang (stall it until
--subtask-timeout, or until a backup overtakes it), wrong (invert the
result's bytes), garbage (replace it with random bytes), each a rate from
0 to 1; seed makes it reproducible.
At most one attempt per part is sabotaged. The summary says what was
injected and how much of it was recovered.

Backups: once the app has nothing left to hand out, an idle slot computes a
copy of the slowest subtask still computing, if it has taken more than
--backup-after times the run's median attempt (and 1s at least), so that
one slow or stalled provider does not hold up the end. The first copy
computed is the one verified; the other is stopped, and is no failure.
--backups=false turns them off, for an app whose Compute does something
beyond writing its output that must not happen twice.

Exit status:
  0    the task finished: every part verified, the results merged into --out
  1    the task failed (or the host aborted it: too many failures, --timeout)
  2    bad input: flags, params, input files, APP, or params the app refused
  3    host error: gtask could not do its own part
  130  interrupted: SIGINT or SIGTERM; the task was aborted, no process left`

const runExample = `  gtask run ./examples/mandelbrot
  gtask run ./examples/mandelbrot --params '{"width": 1920, "height": 1080}' --providers 8
  gtask run ./examples/average --params '{"column": "age"}' --input org1.csv --input org2.csv
  gtask run ./examples/montecarlo --params @params.json --chaos crash=0.1,wrong=0.1,seed=7
  gtask run ./examples/mandelbrot --json | jq -c 'select(.kind == "compute_failed")'
  gtask run --runtime docker ./examples/mandelbrot --cpus 0.5 --memory 256m
  gtask run --runtime docker --image mandelbrot:v1`

func newRunCommand(stdout, stderr io.Writer) *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:     "run [flags] APP | --runtime docker --image NAME:TAG",
		Short:   "Run one task of APP on this machine",
		Long:    runLong,
		Example: runExample,
		Args: func(_ *cobra.Command, args []string) error {
			switch {
			case len(args) == 1 && f.image != "":
				return fmt.Errorf("run takes APP or --image, not both: APP %q, --image %q", args[0], f.image)
			case len(args) == 1:
				return nil
			case len(args) == 0 && f.image != "":
				return nil
			case len(args) == 0:
				return errors.New("run needs APP: a Go package directory or an executable (or, with --runtime docker, --image NAME:TAG)")
			}
			return fmt.Errorf("run takes one APP, got %d arguments: %q", len(args), args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			appArg := f.image
			if len(args) == 1 {
				appArg = args[0]
			}
			return runTask(cmd.Context(), appArg, f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.params, "params", "", "the task's params: JSON, or @FILE to read them from FILE (default: none, the app's defaults)")
	fl.StringArrayVar(&f.inputs, "input", nil, "a file copied into the task's task_inputs/ (repeatable)")
	fl.IntVar(&f.subtasks, "subtasks", 0, "the most parts the app may split the task into, CreateTask's max_subtasks_count (default: the app chooses)")
	fl.IntVar(&f.providers, "providers", 0, "provider slots: how many subtasks are computed at once (default: the number of CPUs)")
	fl.StringVar(&f.runtime, "runtime", "process", "where the app runs: process or docker (inline: see above)")
	fl.StringVar(&f.out, "out", "", "where the task's outputs are copied (default ./gtask-out/TASK_ID); must not exist or be empty")
	fl.StringVar(&f.workDir, "work-dir", "", "the run's work dir (requestor/, logs/, events.jsonl), new or empty, kept after the run (default: a temporary dir, removed after a finished run unless --keep)")
	fl.BoolVar(&f.keep, "keep", false, "keep the temporary work dir (logs, events, subtask files) after a finished run")
	fl.DurationVar(&f.timeout, "timeout", 0, "abort the task when it runs longer (default: no limit)")
	fl.DurationVar(&f.subtaskTimeout, "subtask-timeout", 0, "fail an attempt (provider start, Compute, copying its output) that takes longer (default 5m)")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0, "abort the task at this many failed attempts, chaos's not counted (default: 3 per part, at least 48)")
	fl.BoolVar(&f.backups, "backups", true, "at the end of the task, compute a copy of a slow subtask on an idle slot; the first copy computed wins (see above)")
	fl.Float64Var(&f.backupAfter, "backup-after", host.DefaultBackupAfter, "a subtask is slow, for --backups, after this many times the median attempt (at least 1)")
	fl.BoolVar(&f.json, "json", false, "write the run's events to stdout as JSON lines, and nothing else")
	fl.StringVar(&f.chaos, "chaos", "", "inject faults at these rates, e.g. crash=0.1,hang=0.05,wrong=0.1,garbage=0.05,seed=7")
	fl.BoolVar(&f.referenceApp, "reference-app", false, "APP is a Task API app that is not a gtask app: no --work-dir, a port chosen by gtask, readiness by health polling")
	fl.StringVar(&f.taskID, "task-id", "", "the task's id (default: APP's name, the time and a random suffix)")
	fl.StringVar(&f.progress, "progress", progressAuto, "progress on stderr: auto (bar on a terminal, else lines), bar, lines or off")
	fl.StringVar(&f.image, "image", "", "docker: run this image, already in the engine, in place of APP")
	fl.StringVar(&f.memory, "memory", "", "docker: each container's memory limit, e.g. 512m or 2g (default 2g; a task's min_memory_mib raises it)")
	fl.Float64Var(&f.cpus, "cpus", 0, "docker: how many cores each container may use (default 1)")
	fl.BoolVar(&f.providerNetwork, "provider-network", false, "docker: let the containers reach networks beyond the host")
	return cmd
}

// runTask is `gtask run`: it checks everything it can before it starts
// anything, runs the task, and reports.
func runTask(ctx context.Context, appArg string, f runFlags, stdout, stderr io.Writer) error {
	cfg, err := checkFlags(f)
	if err != nil {
		return err
	}
	params, err := readParams(f.params)
	if err != nil {
		return err
	}
	inputs, err := checkInputs(f.inputs)
	if err != nil {
		return err
	}
	if cfg.Chaos, err = host.ParseChaos(f.chaos); err != nil {
		return badInput("--chaos %s", strings.TrimPrefix(err.Error(), "chaos: "))
	}
	mode := f.progress
	if mode == progressAuto {
		mode = progressLines
		if isTerminal(stderr) {
			mode = progressBar
		}
	}

	var announce io.Writer
	if mode != progressOff {
		announce = stderr
	}
	var name string
	if f.runtime == runtimeDocker {
		d, err := dockerLauncher(ctx, appArg, f, announce)
		if err != nil {
			return err
		}
		// Whatever happens, nothing of the run is left in the engine.
		defer d.Close(context.Background())
		cfg.Launcher, name = d.launcher, d.name
	} else {
		a, err := resolveApp(ctx, appArg, appbuild.DefaultCacheDir(), announce)
		if err != nil {
			if ctx.Err() != nil {
				return &exitError{ExitInterrupted, errors.New("interrupted while building APP")}
			}
			return err
		}
		cfg.Launcher, name = host.ProcessLauncher{Bin: a.Bin, GtaskApp: !f.referenceApp}, a.Name
	}
	taskID := f.taskID
	if taskID == "" {
		taskID = newTaskID(name)
	}
	if err := taskapi.ValidateID("--task-id", taskID); err != nil {
		return fieldError(err)
	}
	outDir := f.out
	if outDir == "" {
		outDir = filepath.Join("gtask-out", taskID)
	}
	if err := checkOutDir(outDir); err != nil {
		return err
	}

	workDir, temporary := f.workDir, f.workDir == ""
	if temporary {
		if workDir, err = os.MkdirTemp("", "gtask-"+taskID+"-"); err != nil {
			return hostError("work dir: %w", err)
		}
	} else if err := checkWorkDir(workDir); err != nil {
		return err
	}

	cfg.TaskID = taskID
	cfg.WorkDir = workDir
	cfg.Params = params
	cfg.Inputs = inputs

	rep := newReporter(stderr, mode)
	defer rep.close()
	var enc *json.Encoder
	if f.json {
		enc = json.NewEncoder(stdout)
	}
	var encErr error
	created := false
	cfg.OnEvent = func(ev host.Event) {
		// The runner delivers events one at a time, and Run returns only
		// after the last, so these variables need no lock.
		if enc != nil && encErr == nil {
			encErr = enc.Encode(ev)
		}
		created = created || ev.Kind == host.EventTaskCreated
		rep.event(ev)
	}
	if mode != progressOff {
		rep.notice("running %s as task %s (work dir %s)", appArg, taskID, workDir)
	}
	stopNotice := context.AfterFunc(ctx, func() {
		rep.notice("interrupted: aborting the task and stopping its processes (the work dir is kept: %s)", workDir)
	})
	res, runErr := host.Run(ctx, cfg)
	stopNotice()
	rep.close()
	// A signal that comes once the task has finished interrupts nothing:
	// the result is whole, and is delivered.
	finished := runErr == nil && res != nil && res.Outcome == host.Finished
	return report(reportArgs{
		res: res, err: runErr, interrupted: ctx.Err() != nil && !finished, created: created,
		encErr: encErr, stderr: stderr,
		outDir: outDir, workDir: workDir, temporary: temporary, keep: f.keep,
	})
}

// checkFlags checks the flags that need no file system and turns them into
// the runner's config.
func checkFlags(f runFlags) (host.RunConfig, error) {
	var cfg host.RunConfig
	nonNegative := func(name string, v int) error {
		if v < 0 {
			return badInput("--%s is %d; it must be at least 0 (0: the default)", name, v)
		}
		return nil
	}
	for _, err := range []error{
		nonNegative("subtasks", f.subtasks),
		nonNegative("providers", f.providers),
		nonNegative("max-attempts", f.maxAttempts),
	} {
		if err != nil {
			return cfg, err
		}
	}
	if f.timeout < 0 || f.subtaskTimeout < 0 {
		return cfg, badInput("timeouts must not be negative")
	}
	switch f.runtime {
	case "process":
		if f.image != "" || f.memory != "" || f.cpus != 0 || f.providerNetwork {
			return cfg, badInput("--image, --memory, --cpus and --provider-network are the docker runtime's: add --runtime docker")
		}
	case runtimeDocker:
		if f.referenceApp {
			return cfg, badInput("--reference-app is the process runtime's: with --runtime docker, an image gtask did not build is run the reference way by itself")
		}
		if f.cpus < 0 {
			return cfg, badInput("--cpus is %g; it must be more than 0 (0: the default)", f.cpus)
		}
	case "inline":
		return cfg, badInput("--runtime inline runs an app's Go handlers inside the host process, so it needs the app " +
			"compiled into the host: an APP given on the command line cannot be; use --runtime process, " +
			"or host.InlineLauncher from Go")
	default:
		return cfg, badInput("--runtime %q: want process or docker (inline: see --help)", f.runtime)
	}
	switch f.progress {
	case progressAuto, progressBar, progressLines, progressOff:
	default:
		return cfg, badInput("--progress %q: want auto, bar, lines or off", f.progress)
	}
	cfg.MaxSubtasks = f.subtasks
	cfg.Providers = f.providers
	cfg.MaxAttempts = f.maxAttempts
	cfg.Timeout = f.timeout
	cfg.SubtaskTimeout = f.subtaskTimeout
	if f.backupAfter < 1 {
		return cfg, badInput("--backup-after is %g; it must be at least 1 (a subtask faster than the median attempt is not slow)", f.backupAfter)
	}
	cfg.Backups = host.Backups{Off: !f.backups, After: f.backupAfter}
	return cfg, nil
}

// readParams reads --params: JSON, or @FILE. Empty means no params.
func readParams(arg string) (json.RawMessage, error) {
	if arg == "" {
		return nil, nil
	}
	what, text := "--params", arg
	if name, ok := strings.CutPrefix(arg, "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, badInput("--params: %w", err)
		}
		what, text = "--params "+arg, string(b)
		if strings.TrimSpace(text) == "" {
			return nil, badInput("%s: the file is empty", what)
		}
	}
	text = strings.TrimSpace(text)
	if err := taskapi.ValidateJSON(what, text); err != nil {
		return nil, fieldError(err)
	}
	return json.RawMessage(text), nil
}

// fieldError is a bad-input error from taskapi's validation, phrased for a
// flag: "--params is not valid JSON: ...".
func fieldError(err error) error {
	var fe *taskapi.FieldError
	if errors.As(err, &fe) {
		return badInput("%s %s", fe.Field, fe.Reason)
	}
	return badInput("%w", err)
}

// checkInputs checks that each --input is a regular file and returns
// their absolute paths. Two inputs with one base name would land on one
// file in task_inputs/, so that is refused too.
func checkInputs(inputs []string) ([]string, error) {
	var abs []string
	seen := map[string]string{}
	for _, in := range inputs {
		st, err := os.Stat(in)
		if err != nil {
			return nil, badInput("--input %s: %w", in, unwrapPathError(err))
		}
		if !st.Mode().IsRegular() {
			return nil, badInput("--input %s is not a regular file", in)
		}
		base := filepath.Base(in)
		if prev, ok := seen[base]; ok {
			return nil, badInput("--input %s and %s would both be task_inputs/%s", prev, in, base)
		}
		seen[base] = in
		p, err := filepath.Abs(in)
		if err != nil {
			return nil, badInput("--input %s: %w", in, err)
		}
		abs = append(abs, p)
	}
	return abs, nil
}

// checkWorkDir makes --work-dir, or checks that it is empty: it is one
// run's, and the runner would mix a second run's files into the first's.
func checkWorkDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return hostError("--work-dir: %w", err)
		}
		return nil
	case err != nil:
		return badInput("--work-dir %s: %w", dir, unwrapPathError(err))
	case len(entries) > 0:
		return badInput("--work-dir %s is not empty; it holds one run: name a new directory", dir)
	}
	return nil
}

// checkOutDir refuses an --out that holds anything, before the task runs,
// so that outputs of two runs never mix and nothing is overwritten.
func checkOutDir(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return badInput("--out %s: %w", dir, unwrapPathError(err))
	case len(entries) > 0:
		return badInput("--out %s is not empty; name a new directory", dir)
	}
	return nil
}

// newTaskID is the default task id: APP's name, the local time and a random
// suffix, e.g. mandelbrot-20260102-150405-3f2a. Readable in a directory
// listing, sorted by time, and unique.
func newTaskID(name string) string {
	var b [2]byte
	_, _ = rand.Read(b[:])
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, name)
	return fmt.Sprintf("%s-%s-%s", name, time.Now().Format("20060102-150405"), hex.EncodeToString(b[:]))
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// reportArgs is what report needs to know about a finished run.
type reportArgs struct {
	res         *host.Result
	err         error
	interrupted bool // a signal ended the run
	created     bool // the task_created event came: CreateTask succeeded
	encErr      error
	stderr      io.Writer
	outDir      string
	workDir     string
	temporary   bool
	keep        bool
}

// report turns the run's end into the user's: the outputs copied to
// --out, the summary, the work dir removed or named, and the exit status.
func report(r reportArgs) error {
	w := r.stderr
	var code int
	var msg error
	refused := false
	switch {
	case r.interrupted:
		code, msg = ExitInterrupted, errors.New("interrupted: the task was aborted and its processes stopped")
	case r.err != nil:
		code, msg = ExitHostError, r.err
	case r.res == nil:
		code, msg = ExitHostError, errors.New("the runner returned no result")
	case r.res.Outcome == host.Failed && !r.created:
		// Refused at CreateTask, before any part was computed. Bad
		// params or inputs are the user's to fix; any other refusal
		// (the app failed) is the task's failure, with its logs.
		if invalidArgument(r.res.Reason) {
			code, msg, refused = ExitBadInput, fmt.Errorf("bad input: %s", r.res.Reason), true
		} else {
			code, msg = ExitFailed, fmt.Errorf("the app failed to create the task: %s", r.res.Reason)
		}
	case r.res.Outcome != host.Finished:
		code, msg = ExitFailed, fmt.Errorf("the task %s: %s", r.res.Outcome, r.res.Reason)
	}
	if r.res != nil && !refused {
		fmt.Fprint(w, summaryText(r.res))
	}
	if code == ExitOK {
		if err := copyOutputs(r.res.OutputsDir, r.outDir); err != nil {
			code, msg = ExitHostError, fmt.Errorf("copying the outputs to %s: %w", r.outDir, err)
		} else {
			fmt.Fprintf(w, "outputs:  %s\n", r.outDir)
		}
	}
	if r.encErr != nil && code == ExitOK {
		code, msg = ExitHostError, fmt.Errorf("writing events to stdout: %w", r.encErr)
	}
	if (code == ExitOK || refused) && r.temporary && !r.keep {
		if err := os.RemoveAll(r.workDir); err != nil {
			fmt.Fprintf(w, "gtask: removing the work dir: %v\n", err)
		}
	} else {
		fmt.Fprintf(w, "logs:     %s\n", filepath.Join(r.workDir, "logs"))
		fmt.Fprintf(w, "events:   %s\n", filepath.Join(r.workDir, "events.jsonl"))
	}
	if code == ExitOK {
		return nil
	}
	return &exitError{code, msg}
}

// invalidArgument reports whether reason, the runner's text for a refused
// CreateTask, names the InvalidArgument code. The Result carries the
// refusal as text only, so the code's name is looked for, not a format.
func invalidArgument(reason string) bool {
	return strings.Contains(reason, codes.InvalidArgument.String())
}

// summaryText says, for people, how the run went: the outcome, the parts,
// the attempts, the failures by kind, and what chaos injected and how much
// of it was recovered.
func summaryText(res *host.Result) string {
	var b strings.Builder
	c := res.Counts
	fmt.Fprintf(&b, "task %s %s in %s", res.TaskID, res.Outcome, fmtDuration(res.Duration))
	if res.Reason != "" {
		fmt.Fprintf(&b, ": %s", res.Reason)
	}
	b.WriteString("\n")
	if c.Parts > 0 {
		fmt.Fprintf(&b, "parts:    %d/%d done\n", c.Done, c.Parts)
	} else {
		fmt.Fprintf(&b, "parts:    %d done\n", c.Done)
	}
	fmt.Fprintf(&b, "attempts: %d (%d computed, %d accepted, %d rejected", c.Assigned, c.Computed, c.Accepted, c.Rejected)
	if c.Inconclusive > 0 {
		fmt.Fprintf(&b, ", %d inconclusive", c.Inconclusive)
	}
	b.WriteString(")\n")
	if c.Failed > 0 {
		fmt.Fprintf(&b, "failures: %d (%s), %d retried", c.Failed, countsText(c.FailedBy), c.Retried)
		if c.Banned > 0 {
			fmt.Fprintf(&b, ", %d nodes banned", c.Banned)
		}
		b.WriteString("\n")
	}
	if c.Backups > 0 {
		fmt.Fprintf(&b, "backups:  %d of slow subtasks, %d computed first\n", c.Backups, c.BackupWins)
	}
	if c.VerifyErrors > 0 {
		fmt.Fprintf(&b, "verify:   %d errors\n", c.VerifyErrors)
	}
	if c.RequestorRestarts > 0 {
		fmt.Fprintf(&b, "requestor restarted %d times\n", c.RequestorRestarts)
	}
	if n := c.InjectedTotal(); n > 0 {
		fmt.Fprintf(&b, "chaos:    injected %d (%s); recovered %d of %d (the part accepted afterwards)\n",
			n, countsText(c.Injected), c.Recovered, n)
	}
	return b.String()
}
