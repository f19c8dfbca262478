package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	hostclient "github.com/gtask/gtask/client"
	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// The commands of this file talk to a running `gtask serve`.

const daemonExitStatus = `Exit status:
  0    done
  2    bad input: flags, no token, a token the daemon refused, an unknown task
  3    the daemon could not be reached, or failed
  130  interrupted (SIGINT or SIGTERM)`

// hostFlags are --host and --token, which every client command has.
type hostFlags struct {
	host  string
	token string
}

func addHostFlags(cmd *cobra.Command, h *hostFlags) {
	host := os.Getenv(hostclient.EnvHost)
	if host == "" {
		host = hostclient.DefaultHost
	}
	cmd.Flags().StringVar(&h.host, "host", host, "the daemon's gRPC address (default: $GTASK_HOST, or "+hostclient.DefaultHost+")")
	cmd.Flags().StringVar(&h.token, "token", os.Getenv(hostclient.EnvToken), "the token to call the daemon with (default: $GTASK_TOKEN)")
}

// noTokenHelp says how to get a token.
const noTokenHelp = "no token: pass --token or set GTASK_TOKEN. 'gtask serve' prints the admin token on its first start; " +
	"an admin makes more with 'gtask token create --user NAME'"

// dial connects to the daemon; a missing token is bad input.
func (h hostFlags) dial(ctx context.Context) (*hostclient.Client, error) {
	if strings.TrimSpace(h.token) == "" {
		return nil, badInput("%s", noTokenHelp)
	}
	c, err := hostclient.Dial(ctx, h.host, h.token)
	if err != nil {
		return nil, badInput("--host %s: %s", h.host, strings.TrimPrefix(err.Error(), "client: "))
	}
	return c, nil
}

// callError turns an error of a call to the daemon into gtask's exit
// status and a message that says what to do.
func callError(ctx context.Context, h hostFlags, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return &exitError{ExitInterrupted, errors.New("interrupted")}
	}
	msg := strings.TrimPrefix(err.Error(), "client: ")
	if st, ok := grpcstatus.FromError(err); ok {
		// The status's own "rpc error: code = X desc = " says nothing
		// people need; the code's name stays where it helps.
		msg = strings.Replace(msg, "rpc error: code = "+st.Code().String()+" desc = ", "", 1)
	}
	var ue *hostclient.UnreachableError
	if errors.As(err, &ue) {
		return &exitError{ExitHostError, errors.New(msg)}
	}
	switch grpcstatus.Code(err) {
	case codes.Unauthenticated:
		return badInput("the daemon at %s refused the token: %s (check --token or GTASK_TOKEN)", h.host, msg)
	case codes.NotFound, codes.InvalidArgument, codes.PermissionDenied, codes.FailedPrecondition,
		codes.AlreadyExists, codes.OutOfRange:
		return badInput("%s", msg)
	case codes.Unavailable:
		return hostError("cannot reach the gtask daemon at %s: %s (is 'gtask serve' running? --host or GTASK_HOST names it)", h.host, msg)
	case codes.OK:
		// Not a call's error: the client's own (a file it could not write).
		return hostError("%s", msg)
	}
	return hostError("the gtask daemon at %s: %s", h.host, msg)
}

// withClient runs fn with a client of the daemon and maps its error.
func withClient(ctx context.Context, h hostFlags, fn func(*hostclient.Client) error) error {
	c, err := h.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	err = fn(c)
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return callError(ctx, h, err)
}

// ---- submit ----

type submitFlags struct {
	hostFlags
	params         string
	inputs         []string
	inputsByPath   bool
	runtime        string
	parent         string
	providers      int
	subtasks       int
	timeout        time.Duration
	subtaskTimeout time.Duration
	maxAttempts    int
	backups        bool
	wait           bool
}

func newSubmitCommand(stdout, stderr io.Writer) *cobra.Command {
	var f submitFlags
	cmd := &cobra.Command{
		Use:   "submit APP [flags]",
		Short: "Submit a task of APP to the gtask daemon",
		Long: `Submit a task of APP to the daemon ('gtask serve') and print its id on stdout.

APP is a Go package directory or an executable on the daemon's machine (a
relative path that exists here is made absolute), or with --runtime docker
an image in the engine (NAME:TAG). The --input files are uploaded to the
daemon (--inputs-by-path sends their paths instead, for a daemon on this
machine to read). --wait then waits for the task to end, as 'gtask wait'.

` + daemonExitStatus + `
With --wait: 0 the task finished, 1 it failed, was aborted or killed.`,
		Example: `  gtask submit ./examples/average --params '{"column": "age"}' --input org1.csv --input org2.csv
  id=$(gtask submit ./examples/mandelbrot) && gtask watch "$id"`,
		Args: exactArgs(1, "APP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return submit(cmd.Context(), args[0], f, stdout, stderr)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.params, "params", "", "the task's params: JSON, or @FILE to read them from FILE (default: none, the app's defaults)")
	fl.StringArrayVar(&f.inputs, "input", nil, "a file put into the task's task_inputs/ (repeatable)")
	fl.BoolVar(&f.inputsByPath, "inputs-by-path", false, "send the inputs' paths for the daemon to read, not their contents (a daemon on this machine)")
	fl.StringVar(&f.runtime, "runtime", "process", "where the app runs: process or docker")
	fl.StringVar(&f.parent, "parent", "", "the parent task, for a child task")
	fl.IntVar(&f.providers, "providers", 0, "the most provider slots the task may hold at once (default: as many as the daemon shares it)")
	fl.IntVar(&f.subtasks, "subtasks", 0, "the most parts the app may split the task into (default: the app chooses)")
	fl.DurationVar(&f.timeout, "timeout", 0, "abort the task when it runs longer (default: no limit)")
	fl.DurationVar(&f.subtaskTimeout, "subtask-timeout", 0, "fail an attempt that takes longer (default: the daemon's, 5m)")
	fl.IntVar(&f.maxAttempts, "max-attempts", 0, "abort the task at this many failed attempts (default: the daemon's)")
	fl.BoolVar(&f.backups, "backups", true, "at the end of the task, compute a copy of a slow subtask on an idle slot; the first copy computed wins (see 'gtask run --help')")
	fl.BoolVar(&f.wait, "wait", false, "wait for the task to end, as 'gtask wait'")
	addHostFlags(cmd, &f.hostFlags)
	return cmd
}

func submit(ctx context.Context, app string, f submitFlags, stdout, stderr io.Writer) error {
	for name, v := range map[string]int{"providers": f.providers, "subtasks": f.subtasks, "max-attempts": f.maxAttempts} {
		if v < 0 {
			return badInput("--%s is %d; it must be at least 0 (0: the default)", name, v)
		}
	}
	if f.timeout < 0 || f.subtaskTimeout < 0 {
		return badInput("timeouts must not be negative")
	}
	var rt hostv1.Runtime
	switch f.runtime {
	case "process":
		rt = hostv1.Runtime_RUNTIME_PROCESS
	case runtimeDocker:
		rt = hostv1.Runtime_RUNTIME_DOCKER
	default:
		return badInput("--runtime %q: want process or docker", f.runtime)
	}
	params, err := readParams(f.params)
	if err != nil {
		return err
	}
	inputs, err := checkInputs(f.inputs)
	if err != nil {
		return err
	}
	return withClient(ctx, f.hostFlags, func(c *hostclient.Client) error {
		t, err := c.Submit(ctx, hostclient.SubmitRequest{
			App: app, Params: params, Inputs: inputs, InputsByPath: f.inputsByPath,
			Runtime: rt, Parent: f.parent, Providers: f.providers, MaxSubtasks: f.subtasks,
			Timeout: f.timeout, SubtaskTimeout: f.subtaskTimeout, MaxAttempts: f.maxAttempts,
			NoBackups: !f.backups,
		})
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, t.GetTaskId())
		if !f.wait {
			return nil
		}
		return waitTask(ctx, c, t.GetTaskId(), stderr)
	})
}

// ---- ls ----

type lsFlags struct {
	hostFlags
	states []string
	app    string
	parent string
	json   bool
}

func newLsCommand(stdout, _ io.Writer) *cobra.Command {
	var f lsFlags
	cmd := &cobra.Command{
		Use:   "ls [flags]",
		Short: "List your tasks on the gtask daemon, newest first",
		Long: `List your tasks on the daemon, newest first: a table of id, state, app,
progress (parts done of all) and age; --json prints each task as a JSON
object on a line of its own.

` + daemonExitStatus,
		Example: `  gtask ls --state running
  gtask ls --parent mandelbrot-20260102-150405-3f2a --json | jq -r .taskId`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return listTasks(cmd.Context(), f, stdout)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringSliceVar(&f.states, "state", nil, "only tasks in these states: queued, running, finished, failed, aborted, killed (repeatable, or comma-separated)")
	fl.StringVar(&f.app, "app", "", "only tasks of this app")
	fl.StringVar(&f.parent, "parent", "", "only children of this task")
	fl.BoolVar(&f.json, "json", false, "one JSON object per task and line")
	addHostFlags(cmd, &f.hostFlags)
	return cmd
}

func listTasks(ctx context.Context, f lsFlags, stdout io.Writer) error {
	filter := hostclient.ListFilter{App: f.app, Parent: f.parent}
	for _, s := range f.states {
		st, err := parseState(s)
		if err != nil {
			return err
		}
		filter.States = append(filter.States, st)
	}
	return withClient(ctx, f.hostFlags, func(c *hostclient.Client) error {
		var tw *tabwriter.Writer
		if !f.json {
			tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tAPP\tPROGRESS\tAGE")
		}
		now := time.Now()
		for t, err := range c.List(ctx, filter) {
			if err != nil {
				if tw != nil {
					tw.Flush()
				}
				return err
			}
			if f.json {
				if err := writeJSONLine(stdout, t); err != nil {
					return err
				}
				continue
			}
			age := "-"
			if t.GetCreateTime() != nil {
				age = fmtAge(now.Sub(t.GetCreateTime().AsTime()))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.GetTaskId(), stateName(t.GetState()), appName(t.GetApp()), progressText(t.GetProgress()), age)
		}
		if tw != nil {
			return tw.Flush()
		}
		return nil
	})
}

// parseState reads a state as people write it: running, RUNNING or
// TASK_STATE_RUNNING.
func parseState(s string) (hostv1.TaskState, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(name, "TASK_STATE_") {
		name = "TASK_STATE_" + name
	}
	v, ok := hostv1.TaskState_value[name]
	if !ok || v == 0 {
		return 0, badInput("--state %q: want queued, running, finished, failed, aborted or killed", s)
	}
	return hostv1.TaskState(v), nil
}

// stateName is a state for people: "running".
func stateName(s hostv1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
}

// appName shortens an app's path to its base name; an image stays whole.
func appName(app string) string {
	if strings.ContainsAny(app, `/\`) {
		return filepath.Base(app)
	}
	return app
}

// progressText is "3/8" (parts done of all), "2" while the parts are
// unknown, "-" without progress.
func progressText(p *hostv1.Progress) string {
	switch {
	case p == nil:
		return "-"
	case p.GetParts() > 0:
		return fmt.Sprintf("%d/%d", p.GetDone(), p.GetParts())
	}
	return fmt.Sprint(p.GetDone())
}

// fmtAge is a task's age for a table: 45s, 12m, 3h, 2d.
func fmtAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(0, int(d.Seconds())))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// writeJSONLine writes m as protojson on one line.
func writeJSONLine(w io.Writer, m proto.Message) error {
	b, err := protojson.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// ---- get ----

type getFlags struct {
	hostFlags
	json bool
}

func newGetCommand(stdout, _ io.Writer) *cobra.Command {
	var f getFlags
	cmd := &cobra.Command{
		Use:   "get ID [flags]",
		Short: "Show a task of the gtask daemon",
		Long:  "Show what the daemon knows of task ID; --json prints it as JSON.\n\n" + daemonExitStatus,
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withClient(ctx, f.hostFlags, func(c *hostclient.Client) error {
				t, err := c.Get(ctx, args[0])
				if err != nil {
					return err
				}
				if f.json {
					b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(t)
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(stdout, "%s\n", b)
					return err
				}
				_, err = io.WriteString(stdout, taskText(t))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&f.json, "json", false, "print the task as JSON")
	addHostFlags(cmd, &f.hostFlags)
	return cmd
}

// taskText is a task for people, a field per line.
func taskText(t *hostv1.Task) string {
	var b strings.Builder
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "%-10s %s\n", k+":", v)
		}
	}
	line("task", t.GetTaskId())
	state := stateName(t.GetState())
	if t.GetReason() != "" {
		state += ": " + t.GetReason()
	}
	line("state", state)
	line("app", t.GetApp())
	line("owner", t.GetOwner())
	line("parent", t.GetParentId())
	line("children", strings.Join(t.GetChildIds(), " "))
	line("params", t.GetParamsJson())
	for _, ts := range []struct {
		k string
		v interface{ AsTime() time.Time }
	}{{"created", t.GetCreateTime()}, {"started", t.GetStartTime()}, {"ended", t.GetEndTime()}} {
		if ts.v != nil && !ts.v.AsTime().IsZero() && ts.v.AsTime().Unix() != 0 {
			line(ts.k, ts.v.AsTime().Local().Format(time.RFC3339))
		}
	}
	if p := t.GetProgress(); p != nil {
		line("progress", fmt.Sprintf("%s done, %d computing, %d verifying, %d failed, %d retried",
			progressText(p), p.GetComputing(), p.GetVerifying(), p.GetFailed(), p.GetRetried()))
	}
	if t.GetStarts() > 1 {
		line("starts", fmt.Sprintf("%d (resumed after a restart of the daemon)", t.GetStarts()))
	}
	line("runs", strings.Join(t.GetRuns(), " "))
	line("outputs", strings.Join(t.GetOutputs(), " "))
	return b.String()
}

// ---- watch ----

type watchFlags struct {
	hostFlags
	tree   bool
	cursor int64
	json   bool
}

func newWatchCommand(stdout, _ io.Writer) *cobra.Command {
	var f watchFlags
	cmd := &cobra.Command{
		Use:   "watch ID [flags]",
		Short: "Follow a task's events",
		Long: `Print task ID's events (with --tree, its descendants' too), those stored
first, then each as it happens, until the task (every task of the tree) has
ended: a line per event, or with --json a JSON object per line. Each line
starts with the event's cursor: --cursor N resumes after event N.

` + daemonExitStatus,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if f.cursor < 0 {
				return badInput("--cursor is %d; it must be at least 0 (0: from the first event)", f.cursor)
			}
			return withClient(ctx, f.hostFlags, func(c *hostclient.Client) error {
				return c.Watch(ctx, args[0], f.tree, f.cursor, func(ev *hostv1.Event) error {
					if f.json {
						return writeJSONLine(stdout, ev)
					}
					_, err := fmt.Fprintln(stdout, eventText(ev))
					return err
				})
			})
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.tree, "tree", false, "the task's descendants' events too")
	fl.Int64Var(&f.cursor, "cursor", 0, "only events after this cursor (default: from the first)")
	fl.BoolVar(&f.json, "json", false, "one JSON object per event and line")
	addHostFlags(cmd, &f.hostFlags)
	return cmd
}

// eventText is an event on a line: its cursor, time, task, kind, what it
// is about, and the task's state and progress after it.
func eventText(ev *hostv1.Event) string {
	var b strings.Builder
	ts := "--:--:--.---"
	if ev.GetTime() != nil {
		ts = ev.GetTime().AsTime().Local().Format("15:04:05.000")
	}
	fmt.Fprintf(&b, "%d %s %s %s", ev.GetCursor(), ts, ev.GetTaskId(), ev.GetKind())
	if ev.GetSubtaskId() != "" {
		fmt.Fprintf(&b, " subtask=%s", ev.GetSubtaskId())
	}
	if ev.GetPart() >= 0 && ev.GetSubtaskId() != "" {
		fmt.Fprintf(&b, " part=%d", ev.GetPart())
	}
	if ev.GetAttempt() > 0 {
		fmt.Fprintf(&b, " attempt=%d", ev.GetAttempt())
	}
	if ev.GetBackup() > 0 {
		fmt.Fprintf(&b, " backup=%d", ev.GetBackup())
	}
	for _, kv := range [][2]string{{"node", ev.GetNode()}, {"verdict", ev.GetVerdict()}, {"fail", ev.GetFail()}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	if ev.GetReason() != "" {
		fmt.Fprintf(&b, " reason=%q", ev.GetReason())
	}
	if ev.GetState() != hostv1.TaskState_TASK_STATE_UNSPECIFIED {
		fmt.Fprintf(&b, " [%s %s]", stateName(ev.GetState()), progressText(ev.GetProgress()))
	}
	return b.String()
}

// ---- logs ----

type logsFlags struct {
	hostFlags
	follow bool
	offset int64
}

func newLogsCommand(stdout, _ io.Writer) *cobra.Command {
	var f logsFlags
	cmd := &cobra.Command{
		Use:   "logs ID [RUN] [flags]",
		Short: "Print a run's log of a task",
		Long: `Print the log of one run of task ID: RUN is "requestor" (the default) or
"provider-SUBTASK" ('gtask get ID' lists the runs). -f follows the log
while the run writes, until it ends.

` + daemonExitStatus,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return fmt.Errorf("logs takes ID and optionally RUN, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			run := "requestor"
			if len(args) == 2 {
				run = args[1]
			}
			if f.offset < 0 {
				return badInput("--offset is %d; it must be at least 0", f.offset)
			}
			return withClient(ctx, f.hostFlags, func(c *hostclient.Client) error {
				return c.Logs(ctx, args[0], run, f.offset, f.follow, stdout)
			})
		},
	}
	cmd.Flags().BoolVarP(&f.follow, "follow", "f", false, "go on while the run writes, until it ends")
	cmd.Flags().Int64Var(&f.offset, "offset", 0, "start at this byte of the log")
	addHostFlags(cmd, &f.hostFlags)
	return cmd
}

// ---- kill ----

func newKillCommand(stdout, stderr io.Writer) *cobra.Command {
	var f hostFlags
	cmd := &cobra.Command{
		Use:   "kill ID",
		Short: "Kill a task and its whole tree",
		Long: `Kill task ID and every task of its tree, grandchildren included, and print
the tasks killed, one per line, once every process of the tree is gone.
Tasks that had already ended keep their state.

` + daemonExitStatus,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withClient(ctx, f, func(c *hostclient.Client) error {
				killed, err := c.Kill(ctx, args[0])
				if err != nil {
					return err
				}
				if len(killed) == 0 {
					fmt.Fprintf(stderr, "gtask: killed nothing: task %s and its tree had already ended\n", args[0])
				}
				for _, id := range killed {
					fmt.Fprintln(stdout, id)
				}
				return nil
			})
		},
	}
	addHostFlags(cmd, &f)
	return cmd
}

// ---- results ----

type resultsFlags struct {
	hostFlags
	out string
}

func newResultsCommand(stdout, stderr io.Writer) *cobra.Command {
	var f resultsFlags
	cmd := &cobra.Command{
		Use:   "results ID [flags]",
		Short: "Copy a finished task's outputs here",
		Long: `Copy the outputs of task ID, which must have finished, into --out (new or
empty), and print their paths. A file name that would land outside --out
is refused.

` + daemonExitStatus,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := f.out
			if out == "" {
				out = filepath.Join("gtask-out", args[0])
			}
			if err := checkOutDir(out); err != nil {
				return err
			}
			return withClient(ctx, f.hostFlags, func(c *hostclient.Client) error {
				names, err := c.Results(ctx, args[0], out)
				for _, n := range names {
					fmt.Fprintln(stdout, filepath.Join(out, filepath.FromSlash(n)))
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(stderr, "outputs:  %s\n", out)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&f.out, "out", "", "where the outputs are copied (default ./gtask-out/ID); must not exist or be empty")
	addHostFlags(cmd, &f.hostFlags)
	return cmd
}

// ---- wait ----

func newWaitCommand(_, stderr io.Writer) *cobra.Command {
	var f hostFlags
	cmd := &cobra.Command{
		Use:   "wait ID",
		Short: "Wait for a task to end",
		Long: `Wait until task ID has ended and say how. It rides out a restart of the
daemon (the task resumes; wait polls until the daemon answers again), but
gives up on a daemon that has not answered for 2 minutes.

Exit status:
  0    the task finished
  1    the task failed, was aborted or killed
  2    bad input: flags, no token, a token the daemon refused, an unknown task
  3    the daemon could not be reached
  130  interrupted (SIGINT or SIGTERM); the task goes on`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withClient(ctx, f, func(c *hostclient.Client) error {
				return waitTask(ctx, c, args[0], stderr)
			})
		},
	}
	addHostFlags(cmd, &f)
	return cmd
}

// waitTask waits for the task to end and turns its state into the exit
// status: 0 finished, 1 failed, aborted or killed.
func waitTask(ctx context.Context, c *hostclient.Client, id string, stderr io.Writer) error {
	t, err := c.Wait(ctx, id)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("task %s %s", t.GetTaskId(), stateName(t.GetState()))
	if t.GetReason() != "" {
		what += ": " + t.GetReason()
	}
	if t.GetState() == hostv1.TaskState_TASK_STATE_FINISHED {
		fmt.Fprintf(stderr, "gtask: %s\n", what)
		return nil
	}
	return &exitError{ExitFailed, errors.New(what)}
}

// exactArgs wants n arguments, named what.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %s, got %d arguments: %q", cmd.Name(), what, len(args), args)
		}
		return nil
	}
}
