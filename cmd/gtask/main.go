// Command gtask runs Golem Task API apps: `gtask run APP` runs one task of
// APP on this machine. See `gtask --help`, and README.md for the flags,
// the exit statuses and chaos.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/gtask/gtask/cmd/gtask/internal/cli"
)

func main() {
	// SIGINT and SIGTERM cancel ctx: the runner aborts the task and stops
	// every process before Main returns, and Main says it was interrupted.
	// Once that has begun, a second signal gets the default behaviour and
	// kills gtask at once; its children die with it (parent death signal).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
