package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/gtask/gtask/host"
)

// sigtermStatus is the exit status of an app that died of SIGTERM.
const sigtermStatus = 128 + 15

// maxReadyLine bounds the stdout line looked at for the readiness line.
const maxReadyLine = 1024

// instance is one container. Its goroutine, watch, is counted in the
// launcher's wait group; it removes the container once it has exited and
// then closes done.
type instance struct {
	l       *Launcher
	id      string
	what    string // for errors: image, role, container name, log
	addr    string // set by start before the instance is handed out
	logf    *os.File
	logPath string

	// ready receives the address of the first readiness line; it has room
	// for it, so that the copy never waits.
	ready chan string

	mu         sync.Mutex
	terminated bool // Stop sent SIGTERM; guarded by mu

	done   chan struct{}
	status int64 // exit status; set before done is closed
	err    error // Wait's answer; set before done is closed
}

// watch copies the container's output to the log until it exits, then
// removes the container and closes done.
func (in *instance) watch(att types.HijackedResponse, waitC <-chan container.WaitResponse, waitErr <-chan error, stopWait context.CancelFunc) {
	defer in.l.wg.Done()
	defer stopWait()
	copied := make(chan struct{})
	go func() { // owned by watch, which waits for it below
		defer close(copied)
		out := &stdoutScanner{w: in.logf, ready: in.ready}
		_, _ = stdcopy.StdCopy(out, in.logf, att.Reader)
		out.flush()
	}()
	var exitErr error
	select {
	case w := <-waitC:
		in.status = w.StatusCode
		if w.Error != nil && w.Error.Message != "" {
			exitErr = errors.New(w.Error.Message)
		}
	case err := <-waitErr:
		in.status, exitErr = -1, fmt.Errorf("waiting for the container: %w", err)
	}
	t := time.NewTimer(drainTimeout)
	select {
	case <-copied:
	case <-t.C:
	}
	t.Stop()
	att.Close()
	<-copied
	rctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	rmErr := in.l.c.ContainerRemove(rctx, in.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	cancel()
	if rmErr != nil && !cerrdefs.IsNotFound(rmErr) {
		exitErr = errors.Join(exitErr, fmt.Errorf("removing the container: %w", rmErr))
	}
	in.logf.Close()
	switch {
	case exitErr != nil:
		in.err = fmt.Errorf("host/docker: %s: %w", in.what, exitErr)
	case in.status != 0:
		in.err = fmt.Errorf("host/docker: %s: exit status %d", in.what, in.status)
	}
	close(in.done)
}

// abandon ends an instance whose watch never started: the container is
// removed and the log closed.
func (in *instance) abandon(cause error) {
	defer in.l.wg.Done()
	rctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	_ = in.l.c.ContainerRemove(rctx, in.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	cancel()
	in.logf.Close()
	in.err = cause
	close(in.done)
}

// await waits for the app to serve: its readiness line for a gtask app,
// its health answering SERVING for any other. The container exiting
// meanwhile ends the wait at once.
func (in *instance) await(ctx context.Context, role host.Role, gtaskApp bool) error {
	if gtaskApp {
		select {
		case _, ok := <-in.ready:
			if ok {
				return nil
			}
			<-in.done
			return in.exitedEarly()
		case <-in.done:
			return in.exitedEarly()
		case <-ctx.Done():
			return fmt.Errorf("no readiness line yet: %w", context.Cause(ctx))
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watched := make(chan struct{})
	go func() { // owned by await, which waits for it
		defer close(watched)
		select {
		case <-in.done:
			cancel(errExited)
		case <-ctx.Done():
		}
	}()
	defer func() {
		cancel(nil)
		<-watched
	}()
	var err error
	switch role {
	case host.RoleRequestor:
		var c *host.RequestorClient
		if c, err = host.DialRequestor(ctx, in.addr); err == nil {
			c.Close()
		}
	default:
		var c *host.ProviderClient
		if c, err = host.DialProvider(ctx, in.addr); err == nil {
			c.Close()
		}
	}
	if errors.Is(context.Cause(ctx), errExited) {
		<-in.done
		return in.exitedEarly()
	}
	return err
}

var errExited = errors.New("the container exited")

func (in *instance) exitedEarly() error {
	if in.err != nil {
		return fmt.Errorf("exited before serving: %w", in.err)
	}
	return errors.New("exited before serving, with status 0")
}

func (in *instance) Addr() string { return in.addr }

// Stop sends SIGTERM to the app and waits for the container to exit; when
// ctx ends first, it kills it. An app that exits 0 or dies of the SIGTERM
// stopped cleanly.
func (in *instance) Stop(ctx context.Context) error {
	select {
	case <-in.done:
		return in.stopResult()
	default:
	}
	in.mu.Lock()
	in.terminated = true
	in.mu.Unlock()
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineTimeout)
	err := in.l.c.ContainerKill(kctx, in.id, "SIGTERM")
	cancel()
	if err != nil && !gone(err) {
		in.Kill()
		return fmt.Errorf("host/docker: %s: SIGTERM failed (%v), killed", in.what, err)
	}
	select {
	case <-in.done:
		return in.stopResult()
	case <-ctx.Done():
		in.Kill()
		return fmt.Errorf("host/docker: %s did not stop in time, killed: %w", in.what, context.Cause(ctx))
	}
}

func (in *instance) stopResult() error {
	in.mu.Lock()
	terminated := in.terminated
	in.mu.Unlock()
	if terminated && in.status == sigtermStatus {
		return nil
	}
	return in.err
}

// Kill kills the container at once and waits until it is removed.
func (in *instance) Kill() error {
	select {
	case <-in.done:
		return nil
	default:
	}
	kctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	err := in.l.c.ContainerKill(kctx, in.id, "SIGKILL")
	if err != nil && !gone(err) {
		// Removal by force kills too.
		err = in.l.c.ContainerRemove(kctx, in.id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
	cancel()
	<-in.done
	if err != nil && !gone(err) {
		return fmt.Errorf("host/docker: killing %s: %w", in.what, err)
	}
	return nil
}

// gone tells whether err says the container is not running any more.
func gone(err error) bool {
	return cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err)
}

func (in *instance) Done() <-chan struct{} { return in.done }

// Wait returns the app's exit error: nil for exit status 0.
func (in *instance) Wait() error {
	<-in.done
	return in.err
}

// stdoutScanner passes the app's stdout to the log, and the address of
// its first readiness line to ready. The log gets every byte, as it comes.
type stdoutScanner struct {
	w     *os.File
	ready chan string
	line  []byte // the current line's start, up to maxReadyLine
	long  bool   // the current line is longer than maxReadyLine
	found bool
}

func (s *stdoutScanner) Write(p []byte) (int, error) {
	// A failed write (a full disk) loses log, never the app: the copy
	// goes on.
	_, _ = s.w.Write(p)
	for rest := p; !s.found && len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		chunk := rest
		if i >= 0 {
			chunk = rest[:i+1]
		}
		rest = rest[len(chunk):]
		if !s.long {
			if len(s.line)+len(chunk) > maxReadyLine {
				s.long, s.line = true, s.line[:0]
			} else {
				s.line = append(s.line, chunk...)
			}
		}
		if i >= 0 {
			if !s.long {
				if _, addr, ok := host.ReadyAddr(string(s.line)); ok {
					s.ready <- addr
					s.found = true
				}
			}
			s.line, s.long = s.line[:0], false
		}
	}
	return len(p), nil
}

// flush ends the output: a reader of ready learns there is no line.
func (s *stdoutScanner) flush() { close(s.ready) }
