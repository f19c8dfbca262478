// Package spawn is the one-shot provider cycle as a host sees it, shared by
// the benchmarks that measure gtask against a floor: start the app, read its
// readiness line, call Compute once, wait for it to exit 0.
package spawn

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/internal/readyline"
)

// Cycle runs args (the binary and its arguments) in dir with its stderr
// going to logf, as a host's per-run log does, and drives it through one
// Compute. The same client code drives gtask and the floor, so that only
// the binaries differ.
func Cycle(args []string, dir string, logf *os.File) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := filepath.Base(args[0])
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	fail := func(err error) error {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("%s: %w (log %s)", name, err, logf.Name())
	}
	addr, err := readyAddr(out)
	if err != nil {
		return fail(err)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 5 * time.Millisecond, Multiplier: 1.6, MaxDelay: 100 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		return fail(err)
	}
	_, err = pb.NewProviderAppClient(conn).Compute(ctx,
		&pb.ComputeRequest{TaskId: "t", SubtaskId: "s", SubtaskParamsJson: "{}"},
		grpc.WaitForReady(true))
	conn.Close()
	if err != nil {
		return fail(fmt.Errorf("Compute: %w", err))
	}
	_, _ = io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %w (log %s)", name, err, logf.Name())
	}
	return nil
}

func readyAddr(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no readiness line: %w", err)
	}
	_, addr, ok := readyline.Parse(line)
	if !ok {
		return "", errors.New("unexpected first line: " + line)
	}
	return readyline.Dialable(addr)
}

// Parallel runs one, n times in all, p at a time, and returns how long each
// run took and the first error. one is told which of the p workers runs it
// (0 to p-1), so that a caller can give each worker a directory of its own.
func Parallel(n, p int, one func(worker int) error) ([]time.Duration, error) {
	var (
		mu    sync.Mutex
		lats  = make([]time.Duration, 0, n)
		first error
		wg    sync.WaitGroup
	)
	next := make(chan struct{}, n)
	for range n {
		next <- struct{}{}
	}
	close(next)
	for w := range p {
		wg.Go(func() {
			for range next {
				t := time.Now()
				err := one(w)
				d := time.Since(t)
				mu.Lock()
				lats = append(lats, d)
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return lats, first
}
