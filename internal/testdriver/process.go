package testdriver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/host"
)

// Time limits of the children. They are generous: a race-built binary on a
// loaded two-core machine can take seconds to start.
const (
	// startTimeout bounds a child's start, up to its readiness line and a
	// SERVING health answer.
	startTimeout = 60 * time.Second
	// exitTimeout bounds the wait for a child to exit once it should (after
	// Shutdown, or a provider after its one answer) before it is killed.
	exitTimeout = 30 * time.Second
	// deathTimeout bounds the wait, after a failed call, for the requestor
	// to be seen exited.
	deathTimeout = 5 * time.Second
)

// Run drives one whole task through real requestor and provider processes
// of cfg.Bin over gRPC, as a host does, and returns what happened. It
// returns an error when the run could not go on (a call failed, the task is
// stuck, ctx ended, a hook said so), always with the Outcome so far. A task
// the app failed (HasPendingSubtasks false without a result) is no error:
// Outcome.Finished says so.
//
// The requestor is always stopped before Run returns: by Shutdown after the
// loop (waiting for its exit), or killed with its process group on error.
// So is every provider.
func Run(ctx context.Context, cfg Config) (*Outcome, error) {
	if cfg.Bin == "" {
		return nil, errors.New("testdriver: Config.Bin is required")
	}
	b := &procBackend{cfg: cfg, log: newLockedWriter(cfg.Log)}
	if err := b.startRequestor(ctx); err != nil {
		return nil, fmt.Errorf("testdriver: %w", err)
	}
	out, err := RunWith(ctx, cfg, b)
	if cerr := b.close(ctx, err == nil); cerr != nil && err == nil {
		err = fmt.Errorf("testdriver: %w", cerr)
	}
	return out, err
}

// procBackend runs the requestor and the providers as child processes.
// Only the loop's goroutine touches the requestor; Compute runs on workers
// and touches nothing shared but log.
type procBackend struct {
	cfg    Config
	log    *lockedWriter
	starts int
	req    *child
	client *host.RequestorClient
}

func (b *procBackend) Requestor() Requestor { return b.client }

func (b *procBackend) startRequestor(ctx context.Context) error {
	b.starts++
	c, err := startChild(ctx, b.cfg, b.log, fmt.Sprintf("requestor#%d", b.starts), b.cfg.WorkDir, appmain.RoleRequestor)
	if err != nil {
		return err
	}
	client, err := c.dialRequestor(ctx)
	if err != nil {
		c.kill()
		return err
	}
	b.req, b.client = c, client
	return nil
}

func (b *procBackend) RestartRequestor(ctx context.Context) error {
	b.client.Close()
	b.req.kill()
	return b.startRequestor(ctx)
}

func (b *procBackend) RequestorDied(ctx context.Context, err error) bool {
	// A server killed mid-call is seen by the client as UNAVAILABLE
	// (connection reset or refused); the process may not have been reaped
	// yet, so that code is worth a short wait. Any other code came from a
	// live server, unless the process is already gone.
	if status.Code(err) != codes.Unavailable {
		select {
		case <-b.req.exited:
			return true
		default:
			return false
		}
	}
	t := time.NewTimer(deathTimeout)
	defer t.Stop()
	select {
	case <-b.req.exited:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// close stops the requestor: Shutdown and a wait for its exit when
// graceful, else (or when that fails) a kill.
func (b *procBackend) close(ctx context.Context, graceful bool) error {
	defer b.client.Close()
	if !graceful {
		b.req.kill()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), exitTimeout)
	defer cancel()
	if err := b.client.Shutdown(ctx); err != nil {
		b.req.kill()
		return fmt.Errorf("requestor Shutdown: %w", err)
	}
	if err := b.req.wait(ctx); err != nil {
		return fmt.Errorf("requestor after Shutdown: %w", err)
	}
	return nil
}

func (b *procBackend) Compute(ctx context.Context, a Assignment, dir, taskID string) (string, error) {
	c, err := startChild(ctx, b.cfg, b.log, fmt.Sprintf("provider %s %s", a.Node, a.SubtaskID), dir, appmain.RoleProvider)
	if err != nil {
		return "", err
	}
	// The provider dies with the attempt: its deadline, or the run's end.
	defer context.AfterFunc(ctx, c.kill)()
	pc, err := host.DialProvider(ctx, c.addr)
	if err != nil {
		c.kill()
		return "", err
	}
	rel, err := pc.Compute(ctx, taskID, a.SubtaskID, a.Params)
	pc.Close()
	if err != nil {
		c.kill()
		return "", err
	}
	wctx, cancel := context.WithTimeout(ctx, exitTimeout)
	defer cancel()
	if err := c.wait(wctx); err != nil {
		// The contract says a provider exits 0 after its one answer; one
		// that does not breaks it, and its result is not trusted.
		return "", fmt.Errorf("provider after Compute: %w", err)
	}
	return rel, nil
}

// child is one app process.
type child struct {
	name   string
	cmd    *exec.Cmd
	addr   string        // from the readiness line
	exited chan struct{} // closed when Wait has returned
	err    error         // Wait's error; set before exited is closed
}

// startChild starts cfg.Bin in role over workDir and waits for its
// readiness line.
func startChild(ctx context.Context, cfg Config, log *lockedWriter, name, workDir, role string) (*child, error) {
	args := append(slices.Clone(cfg.Args), "--work-dir", workDir, role, "0")
	cmd := exec.Command(cfg.Bin, args...)
	cmd.Env = append(os.Environ(), cfg.Env...)
	ready := make(chan string, 1)
	cmd.Stdout = &readyWriter{ready: ready}
	cmd.Stderr = &prefixWriter{w: log, prefix: "[" + name + "] ", start: true}
	// Grandchildren holding the pipes must not hold up Wait.
	cmd.WaitDelay = time.Second
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, exited: make(chan struct{})}
	// The waiter is owned by c: kill and wait join it through exited.
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case c.addr = <-ready:
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("%s exited before serving: %v", name, c.err)
	case <-t.C:
		c.kill()
		return nil, fmt.Errorf("%s printed no readiness line within %v", name, startTimeout)
	case <-ctx.Done():
		c.kill()
		return nil, fmt.Errorf("starting %s: %w", name, context.Cause(ctx))
	}
}

func (c *child) dialRequestor(ctx context.Context) (*host.RequestorClient, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	return host.DialRequestor(ctx, c.addr)
}

// kill kills the child's process group with SIGKILL and waits for it.
func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	killGroup(c.cmd)
	<-c.exited
}

// wait waits for the child to exit by itself and reports a non-zero exit;
// when ctx ends first, it kills the child.
func (c *child) wait(ctx context.Context) error {
	select {
	case <-c.exited:
		if c.err != nil {
			return fmt.Errorf("%s: %w", c.name, c.err)
		}
		return nil
	case <-ctx.Done():
		c.kill()
		return fmt.Errorf("%s did not exit: %w", c.name, context.Cause(ctx))
	}
}

// readyWriter is a child's stdout: it passes on the first readiness line's
// address and discards everything else.
type readyWriter struct {
	buf  []byte
	sent bool
	// ready has room for the one address; it is sent once.
	ready chan<- string
}

func (w *readyWriter) Write(p []byte) (int, error) {
	if w.sent {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if _, addr, ok := host.ReadyAddr(line); ok {
			w.sent, w.buf = true, nil
			w.ready <- addr
			return len(p), nil
		}
	}
}

// lockedWriter serialises the writes of several children to one writer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func newLockedWriter(w io.Writer) *lockedWriter {
	if w == nil {
		w = io.Discard
	}
	return &lockedWriter{w: w}
}

// prefixWriter prefixes each line of one child's stderr with its name.
type prefixWriter struct {
	w      *lockedWriter
	prefix string
	start  bool // at the start of a line
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	var out []byte
	for len(b) > 0 {
		if p.start {
			out = append(out, p.prefix...)
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out, b, p.start = append(out, b...), nil, false
			break
		}
		out, b, p.start = append(out, b[:i+1]...), b[i+1:], true
	}
	p.w.mu.Lock()
	defer p.w.mu.Unlock()
	if _, err := p.w.w.Write(out); err != nil {
		return 0, err
	}
	return n, nil
}
