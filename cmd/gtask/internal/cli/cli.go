package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// The exit statuses of gtask. Scripts tell the cases apart by them, so they
// never change meaning.
const (
	// ExitOK: the task finished; every part was verified and the results
	// merged into the output directory.
	ExitOK = 0
	// ExitFailed: the task ran and failed (or was aborted by the host),
	// e.g. a part failed more often than --max-attempts allows.
	ExitFailed = 1
	// ExitBadInput: the command line, the params, an input file or APP
	// is wrong, or the app refused the params (InvalidArgument); nothing
	// ran, or the task was refused before any part was computed.
	ExitBadInput = 2
	// ExitHostError: gtask itself could not do its part (a work dir it
	// could not create, an app that would not start, ...).
	ExitHostError = 3
	// ExitInterrupted: SIGINT or SIGTERM; the task was aborted and every
	// process it started was gone before gtask exited. 130 is what shells
	// report for a command killed by SIGINT.
	ExitInterrupted = 130
)

// exitError is an error that chooses gtask's exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func badInput(format string, args ...any) error {
	return &exitError{ExitBadInput, fmt.Errorf(format, args...)}
}

func hostError(format string, args ...any) error {
	return &exitError{ExitHostError, fmt.Errorf(format, args...)}
}

// Main runs gtask with args (without the program name), writing to stdout
// and stderr, and returns the exit status. A cancelled ctx is an
// interruption: main cancels it on SIGINT and SIGTERM.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		fmt.Fprintln(stderr, "gtask:", ee.err)
		return ee.code
	}
	// cobra's own errors: an unknown command or flag, a wrong number of
	// arguments, a flag value that does not parse.
	fmt.Fprintln(stderr, "gtask:", err)
	fmt.Fprintln(stderr, "Run 'gtask --help' or 'gtask run --help' for usage.")
	return ExitBadInput
}

// newRootCommand builds the command tree afresh for each Main, so that no
// flag state outlives one run (tests call Main many times).
func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "gtask",
		Short: "Run Golem Task API apps",
		Long: `gtask runs Golem Task API apps: it creates a task, computes its parts on
one-shot providers, verifies every result and merges them.

Exit status:
  0    the task finished: every part verified, the results merged
  1    the task failed
  2    bad input: flags, params, input files or APP (nothing was computed)
  3    host error: gtask could not do its own part
  130  interrupted (SIGINT or SIGTERM): the task was aborted, no process left`,
		SilenceErrors: true,
		SilenceUsage:  true,
		// A bare `gtask` has nothing to do; say how to use it.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	// Help asked for goes to stdout, as usual; errors to stderr, so that
	// stdout holds nothing but events under --json.
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(newRunCommand(stdout, stderr))
	root.AddCommand(newImageCommand(stdout, stderr))
	root.AddCommand(newGCCommand(stdout, stderr))
	root.AddCommand(newServeCommand(stdout, stderr))
	root.AddCommand(newTokenCommand(stdout, stderr))
	root.AddCommand(newSubmitCommand(stdout, stderr))
	root.AddCommand(newLsCommand(stdout, stderr))
	root.AddCommand(newGetCommand(stdout, stderr))
	root.AddCommand(newWatchCommand(stdout, stderr))
	root.AddCommand(newLogsCommand(stdout, stderr))
	root.AddCommand(newKillCommand(stdout, stderr))
	root.AddCommand(newResultsCommand(stdout, stderr))
	root.AddCommand(newWaitCommand(stdout, stderr))
	return root
}
