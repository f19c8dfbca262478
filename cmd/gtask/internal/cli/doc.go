// Package cli is the gtask command: Main takes the arguments and the two
// streams and returns the exit status, so that tests run the whole command
// in process and only package main exits.
//
// `gtask run APP` runs one task of APP on this machine through host.Run:
// it builds APP when it is a Go package directory, checks the flags, the
// params and the inputs before it starts anything, shows the run's events
// as a progress bar or log lines on stderr (or as JSON lines on stdout with
// --json), copies the task's outputs to --out, and turns the outcome into
// the exit status:
//
//	code := cli.Main(ctx, []string{"run", "./examples/mandelbrot", "--out", "out"}, os.Stdout, os.Stderr)
//	// code is cli.ExitOK, and out/mandelbrot.png is the render; a cancelled
//	// ctx (SIGINT in main) aborts the task and gives cli.ExitInterrupted.
//
// The command tree is built afresh by every Main: no flag or state outlives
// a call.
package cli
