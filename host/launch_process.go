package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcessLauncher starts an app as a child process of the host, one process
// per Start, as the process contract says:
//
//	Bin [Args...] [--work-dir DIR] requestor|provider PORT
//
// with DIR as its current directory too. The zero value of the optional
// fields works: no extra arguments, the host's environment, and the
// reference convention (see GtaskApp).
//
// The child is in a process group of its own, and on Linux the kernel kills
// it when the host dies (parent death signal), so that no app outlives its
// host; Stop and Kill signal the whole group, so whatever the app started
// goes with it. When the app exits, what it left behind in its group is
// killed too: the app's life is the instance's.
//
// Its stderr goes straight to the log file; its stdout is read by the
// launcher, for the readiness line, and copied to the log a line at a time,
// each line in one write so that it does not interleave with stderr's. A
// line is held until its end, however long, up to 8 MiB; a longer one is
// copied in pieces, still all of it.
//
// Its instances' Stop sends SIGTERM to the group and waits; when Stop's ctx
// ends first it kills the group and returns an error wrapping ctx's cause.
// Stop returns nil when the app exits 0 or dies of that SIGTERM (a
// reference-convention app need not catch it), else Wait's error. Kill
// returns nil once the app is gone. Wait returns nil for exit status 0, else
// an error naming the app and its log and wrapping *exec.ExitError.
type ProcessLauncher struct {
	// Bin is the app's executable: a path, or a name looked up in PATH.
	// A relative path is taken relative to the host's current directory,
	// not the work dir. Required.
	Bin string
	// Args go before the contract's arguments, e.g. a script for an
	// interpreter as Bin. Default: none.
	Args []string
	// Env is added to the host's environment (a later entry wins).
	// Default: the host's environment alone.
	Env []string
	// GtaskApp says the app follows gtask's process contract: it takes
	// --work-dir, is given PORT 0 and prints the readiness line with the
	// port it bound, so Start returns as soon as that line is read. When
	// false the app follows the reference convention: it gets only the role
	// and a port the launcher chose free beforehand, finds its work dir as
	// its current directory, prints nothing the launcher relies on, and is
	// known to serve when its health answers SERVING. Default: false.
	GtaskApp bool
}

var (
	_ Launcher = ProcessLauncher{}
	_ Instance = (*procInstance)(nil)
)

// Time limits of the process launcher.
const (
	// drainTimeout bounds the wait for the app's stdout to reach its end
	// once the app and its group are dead: only a process that left the
	// group (a daemon of its own session) can still hold it, and it must not
	// hold the instance too.
	drainTimeout = time.Second
	// maxHeldLine is how much of one stdout line is held before it is
	// copied to the log in pieces: plenty for any log line, bounded for an
	// app that writes megabytes without a newline.
	maxHeldLine = 8 << 20
	// stdoutBuf is the read buffer on the app's stdout; a line up to this
	// long goes to the log straight from it, a longer one through a buffer
	// of its own. An app's stdout is mostly its readiness line (its log
	// goes to stderr, straight to the file): a small buffer spares each
	// start a large allocation, the most a provider's start allocated in
	// the host.
	stdoutBuf = 8 << 10
	// maxReadyLine bounds the lines parsed as a readiness line, which is
	// short; longer lines are not looked at.
	maxReadyLine = 1024
)

// errExited is the cause that ends a health poll when the app exits: the
// poll would otherwise go on until ctx ends.
var errExited = errors.New("the app exited")

// Start starts the app in role over workDir, logging to logPath, and
// returns once it serves (see Launcher.Start). A failed start's error names
// the binary and the log path, quotes the log's last line, and leaves
// nothing running.
func (l ProcessLauncher) Start(ctx context.Context, role Role, workDir, logPath string) (Instance, error) {
	what := fmt.Sprintf("%s as %s in %s", l.Bin, role, workDir)
	// Every error names the binary and the log, even one from before the
	// log was opened: the caller reports one shape of error.
	fail := func(err error) error {
		return fmt.Errorf("host: starting %s: %w (log %s)", what, err, logPath)
	}
	if l.Bin == "" {
		return nil, fail(errors.New("ProcessLauncher.Bin is empty"))
	}
	if err := checkRole(role); err != nil {
		return nil, fail(err)
	}
	if err := context.Cause(ctx); err != nil {
		return nil, fail(err)
	}
	dir, err := absWorkDir(workDir)
	if err != nil {
		return nil, fail(err)
	}
	bin := l.Bin
	if strings.ContainsRune(bin, filepath.Separator) || strings.ContainsRune(bin, '/') {
		// exec resolves a relative Path against cmd.Dir, the work dir,
		// where the user did not mean it.
		if bin, err = filepath.Abs(bin); err != nil {
			return nil, fail(err)
		}
	}
	logf, err := openLog(logPath)
	if err != nil {
		return nil, fail(err)
	}

	port := "0"
	args := slices.Clone(l.Args)
	if l.GtaskApp {
		args = append(args, "--work-dir", dir)
	} else if port, err = freePort(); err != nil {
		logf.Close()
		return nil, fail(err)
	}
	args = append(args, string(role), port)

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if len(l.Env) > 0 {
		cmd.Env = append(os.Environ(), l.Env...)
	}
	// The stdout pipe is the launcher's own rather than exec's, so that
	// Wait returns when the app exits, not when everything holding the pipe
	// has: the instance kills the leftovers of the group first (see wait).
	pr, pw, err := stdoutPipe()
	if err != nil {
		logf.Close()
		return nil, fail(fmt.Errorf("stdout pipe: %w", err))
	}
	cmd.Stdout, cmd.Stderr = pw, logf
	setProcAttr(cmd)
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		logf.Close()
		return nil, fail(err)
	}

	p := &procInstance{
		what:    fmt.Sprintf("%s (pid %d, log %s)", what, cmd.Process.Pid, logPath),
		cmd:     cmd,
		logf:    logf,
		done:    make(chan struct{}),
		ready:   make(chan readyLine, 1),
		drained: make(chan struct{}),
		gtask:   l.GtaskApp,
	}
	go p.copyStdout(pr)
	go p.wait(pr)

	if l.GtaskApp {
		err = p.awaitReadyLine(ctx, role)
	} else {
		p.addr = net.JoinHostPort("127.0.0.1", port)
		err = p.awaitHealth(ctx, role, dir)
	}
	if err != nil {
		p.Kill()
		return nil, startError(what, logPath, err)
	}
	return p, nil
}

// freePort returns a port nothing listens on now, for an app that must be
// told its port. Another process may take it before the app binds it; the
// app then fails to start, which is reported, not hidden.
func freePort() (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("choosing a free port: %w", err)
	}
	defer lis.Close()
	return strconv.Itoa(lis.Addr().(*net.TCPAddr).Port), nil
}

// readyLine is what the app's readiness line said.
type readyLine struct{ role, addr string }

// procInstance is one app process. Its two goroutines, copyStdout and wait,
// are its own: both have ended once done is closed.
type procInstance struct {
	what  string // for errors: binary, role, pid, log
	cmd   *exec.Cmd
	addr  string // set by Start before the instance is handed out
	gtask bool   // started as a gtask app: addr is from its readiness line
	logf  *os.File

	// ready receives the first readiness line, and is closed when stdout
	// ends; it has room for the one line, so that the copy never waits for
	// Start.
	ready   chan readyLine
	drained chan struct{} // closed when copyStdout has returned

	// mu orders signals with the reaping of the app: once it is reaped its
	// pid, which is also its group's id, may be reused by an unrelated
	// process, which must not receive them.
	mu         sync.Mutex
	reaped     bool // guarded by mu
	terminated bool // Stop sent SIGTERM; guarded by mu

	done chan struct{} // closed once the app has exited and stdout is drained
	exit error         // cmd.Wait's error; set before done is closed
	err  error         // exit, naming the app and its log, for Wait
}

// awaitReadyLine waits for the readiness line of a gtask app.
func (p *procInstance) awaitReadyLine(ctx context.Context, role Role) error {
	select {
	case r, ok := <-p.ready:
		if !ok {
			// Stdout ends mostly because the app exited: its exit status
			// says more than the end of stdout, and follows at once.
			t := time.NewTimer(drainTimeout)
			defer t.Stop()
			select {
			case <-p.done:
				if p.exit != nil {
					return fmt.Errorf("exited before serving: %w", p.exit)
				}
				return errors.New("exited before serving, with status 0")
			case <-t.C:
			case <-ctx.Done():
			}
			return errors.New("closed its stdout without printing the readiness line")
		}
		if r.role != string(role) {
			return fmt.Errorf("started as %s, its readiness line says it serves %s", role, r.role)
		}
		p.addr = r.addr
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no readiness line yet: %w", context.Cause(ctx))
	}
}

// awaitHealth waits for a reference-convention app's health to answer
// SERVING on p.addr, through the work dir's client TLS files if any (an app
// there serves TLS). The app exiting meanwhile ends the wait at once.
func (p *procInstance) awaitHealth(ctx context.Context, role Role, workDir string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-p.done:
			cancel(errExited)
		case <-ctx.Done():
		}
	}()
	defer func() {
		cancel(nil)
		<-watched
	}()
	// Start is bounded by ctx alone, as for a gtask app: the dial's own
	// default bound is lifted.
	noDefault := func(o *dialOptions) { o.defaultTimeout = math.MaxInt64 }
	conn, err := dial(ctx, string(role), p.addr, []DialOption{WithTLSDir(workDir), noDefault})
	if err == nil {
		conn.Close()
		return nil
	}
	if errors.Is(context.Cause(ctx), errExited) {
		if p.exit != nil {
			return fmt.Errorf("exited before serving: %w", p.exit)
		}
		return errors.New("exited before serving, with status 0")
	}
	return err
}

// copyStdout copies the app's stdout to the log, one line per write, and
// hands the first readiness line to ready. It reads to the end whatever
// happens, so that the app never blocks on a full pipe.
func (p *procInstance) copyStdout(pr *os.File) {
	defer close(p.drained)
	defer close(p.ready)
	br := bufio.NewReaderSize(pr, stdoutBuf)
	var (
		held    []byte // the start of a line longer than the buffer
		midLine bool   // the line's start was already copied (it was too long)
		found   bool
	)
	for {
		chunk, err := br.ReadSlice('\n')
		whole := err == nil
		line := chunk
		if len(held) > 0 || err == bufio.ErrBufferFull {
			held = append(held, chunk...)
			line = held
			if err == bufio.ErrBufferFull && len(held) < maxHeldLine {
				continue
			}
		}
		if len(line) > 0 {
			// A failed write (a full disk) loses log, never the app: the
			// copy goes on, so that stdout keeps being drained.
			_, _ = p.logf.Write(line)
			if whole && !midLine && !found && len(line) <= maxReadyLine {
				if role, addr, ok := ReadyAddr(string(line)); ok {
					p.ready <- readyLine{role: role, addr: addr}
					found = true
				}
			}
		}
		midLine = !whole
		held = held[:0]
		if cap(held) > stdoutBuf {
			held = nil // do not keep a huge line's buffer for the small ones
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// wait waits for the app to exit, kills what it left in its group, reaps
// it, lets its stdout drain, and closes done.
func (p *procInstance) wait(pr *os.File) {
	var err error
	if waitExited(p.cmd.Process.Pid) == nil {
		// The app is dead but not reaped, so its group id is still its own:
		// the leftovers can be killed without hitting a stranger.
		p.mu.Lock()
		_ = signalGroup(p.cmd.Process, syscall.SIGKILL)
		err = p.cmd.Wait()
		p.reaped = true
		p.mu.Unlock()
	} else {
		// No way to wait without reaping here: the app is reaped outside
		// the lock (signals still reach it until then), and its leftovers,
		// if any, are left alone.
		err = p.cmd.Wait()
		p.mu.Lock()
		p.reaped = true
		p.mu.Unlock()
	}
	select {
	case <-p.drained: // stdout ended first: no deadline to set, no timer
	default:
		_ = pr.SetReadDeadline(time.Now().Add(drainTimeout))
		<-p.drained
	}
	pr.Close()
	p.logf.Close()
	if err != nil {
		p.exit, p.err = err, fmt.Errorf("host: %s: %w", p.what, err)
	}
	close(p.done)
}

// signal sends sig to the app's group, unless the app is reaped.
func (p *procInstance) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil
	}
	if sig == syscall.SIGTERM {
		p.terminated = true
	}
	return signalGroup(p.cmd.Process, sig)
}

func (p *procInstance) Addr() string { return p.addr }

// announced reports whether the app printed its readiness line (a gtask
// app's start): it serves, so the Runner's dial need not wait for its
// health (see announcer).
func (p *procInstance) announced() bool { return p.gtask }

// Stop sends SIGTERM to the app's group and waits for the app to exit; when
// ctx ends first, it kills the group and returns an error wrapping ctx's
// cause. An app that exits 0, or dies of the SIGTERM (the reference
// convention's apps need not catch it), has stopped cleanly: Stop returns
// nil, while Wait still reports the signal. Any other exit is Wait's error.
func (p *procInstance) Stop(ctx context.Context) error {
	select {
	case <-p.done:
		return p.stopResult()
	default:
	}
	if err := p.signal(syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		// No graceful way left (a platform without SIGTERM).
		p.Kill()
		return fmt.Errorf("host: %s: SIGTERM failed (%v), killed", p.what, err)
	}
	select {
	case <-p.done:
		return p.stopResult()
	case <-ctx.Done():
		p.Kill()
		return fmt.Errorf("host: %s did not stop in time, killed: %w", p.what, context.Cause(ctx))
	}
}

// stopResult is Stop's answer once the app has exited.
func (p *procInstance) stopResult() error {
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		ws, ok := exit.Sys().(syscall.WaitStatus)
		p.mu.Lock()
		terminated := p.terminated
		p.mu.Unlock()
		if ok && terminated && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return p.err
}

// Kill kills the app's whole group with SIGKILL and waits for the app to
// exit. It returns nil once the app is gone, however it ended (Wait says
// how).
func (p *procInstance) Kill() error {
	err := p.signal(syscall.SIGKILL)
	<-p.done
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("host: killing %s: %w", p.what, err)
	}
	return nil
}

func (p *procInstance) Done() <-chan struct{} { return p.done }

// Wait returns the app's exit error, naming the app and its log: nil for
// exit status 0, an error wrapping *exec.ExitError otherwise.
func (p *procInstance) Wait() error {
	<-p.done
	return p.err
}
