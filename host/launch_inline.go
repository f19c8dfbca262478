package host

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"google.golang.org/grpc"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/internal/mtls"
	"github.com/gtask/gtask/internal/rpcserver"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
)

// InlineLauncher runs an app inside the host's own process: each Start
// makes the role's handler with the app's factory and serves it with
// requestor.NewServer or provider.NewServer, on a goroutine of the
// instance. It serves the same contract as a process (the work dir's mutual
// TLS, a provider's one call), but a start costs microseconds, not a
// process: for tests, for embedding an app in a program, and for apps whose
// parts are too small to pay for a process each.
//
// Its instances are DirectInstances: the Runner calls them in process
// through Conn, with the servers' own checks and codes but no network, so
// a subtask costs no socket, dial or health check. Such an instance binds
// its loopback port only when Addr is first called, for a caller that
// dials it (gRPC over that port then works as with a process); Addr
// returns "" when the port cannot be bound, and the app's log says why.
//
// Its instances' Stop shuts the server down gracefully (calls in flight
// get until Stop's ctx ends, at most the server's 5 s grace period) and
// returns Serve's error, or one wrapping ctx's cause when ctx ended first.
// Kill cancels the calls in flight at once; a handler deaf to cancellation
// is waited for up to the grace period, then left running, since a
// goroutine cannot be killed as a process can. Wait returns Serve's error:
// nil after any normal stop, a Kill's included.
//
// The app's log (slog text, times in UTC, as appmain writes it) goes to the
// instance's log file. What the app does outside its handler (its own
// goroutines, os.Exit, a panic outside a call) is not contained as a process
// would contain it.
type InlineLauncher struct {
	// Roles makes the app's handlers, as for appmain.Main. A nil factory
	// means the app does not serve that role: starting it fails.
	Roles appmain.Roles
}

var (
	_ Launcher       = InlineLauncher{}
	_ DirectInstance = (*inlineInstance)(nil)
)

// inlineServer is what an inline instance needs of requestor.Server and
// provider.Server.
type inlineServer interface {
	Serve(ctx context.Context, lis net.Listener) error
	Shutdown(ctx context.Context) error
	Conn() grpc.ClientConnInterface
}

// Start makes the handler and starts serving it; it returns at once, which
// is enough: a call through Conn is served from the start, and a dial of
// Addr, whose listener is bound before Addr returns, is queued by the
// kernel until the server accepts it. A failed start's error names the
// log, and the factory's error is logged to it too.
func (l InlineLauncher) Start(ctx context.Context, role Role, workDir, logPath string) (Instance, error) {
	fail := func(err error) error {
		return fmt.Errorf("host: starting the inline app as %s in %s: %w (log %s)", role, workDir, err, logPath)
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
	logf, err := openAppLog(logPath)
	if err != nil {
		return nil, fail(err)
	}
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{ReplaceAttr: utcTime})).With("role", string(role))
	// The app's log says why too, as a process's would.
	failLogged := func(err error) (Instance, error) {
		log.Error("exiting", "err", err)
		logf.Close()
		return nil, fail(err)
	}

	// A partial set of TLS files is refused, as appmain refuses it: serving
	// plaintext when TLS was meant would be a silent downgrade.
	tlsCfg, err := mtls.ServerConfig(dir)
	if err != nil {
		return failLogged(fmt.Errorf("mutual TLS: %w", err))
	}
	srv, err := l.server(role, dir, log, tlsCfg)
	if err != nil {
		return failLogged(err)
	}
	i := &inlineInstance{
		role: role, dir: dir, logPath: logPath,
		lis:  newLazyListener(log),
		srv:  srv,
		done: make(chan struct{}),
	}
	log.Info("serving in process", "work_dir", dir, "tls", tlsCfg != nil)
	go i.serve(logf)
	return i, nil
}

// server makes the role's handler with the app's factory and a server for
// it.
func (l InlineLauncher) server(role Role, dir string, log *slog.Logger, tlsCfg *tls.Config) (inlineServer, error) {
	switch role {
	case RoleRequestor:
		if l.Roles.Requestor == nil {
			return nil, errors.New("the app does not serve the requestor role")
		}
		h, err := l.Roles.Requestor(dir, log)
		if err == nil && h == nil {
			err = errors.New("the app returned no Handler")
		}
		if err != nil {
			return nil, fmt.Errorf("making the requestor handler: %w", err)
		}
		return requestor.NewServer(h, requestor.WithLogger(log), requestor.WithTLS(tlsCfg)), nil
	default:
		if l.Roles.Provider == nil {
			return nil, errors.New("the app does not serve the provider role")
		}
		h, err := l.Roles.Provider(dir, log)
		if err == nil && h == nil {
			err = errors.New("the app returned no Handler")
		}
		if err != nil {
			return nil, fmt.Errorf("making the provider handler: %w", err)
		}
		return provider.NewServer(h, provider.WithLogger(log), provider.WithTLS(tlsCfg)), nil
	}
}

// inlineInstance is one app served inside the host. Its serve goroutine is
// its own and has ended once done is closed.
type inlineInstance struct {
	role    Role
	dir     string
	logPath string
	lis     *lazyListener
	srv     inlineServer
	done    chan struct{} // closed once Serve has returned
	err     error         // Serve's error; set before done is closed
}

// serve serves until the server stops (Stop, Kill, a Shutdown RPC, a
// provider's one call), then closes the log.
func (i *inlineInstance) serve(logf *os.File) {
	// Serve's ctx never ends: Start's ctx bounds only the start, and the
	// instance stops through Shutdown.
	if err := i.srv.Serve(context.Background(), i.lis); err != nil {
		i.err = fmt.Errorf("host: %s: %w", i.what(), err)
	}
	logf.Close()
	close(i.done)
}

// what names the instance for errors; made only for one, since a start
// is cheap enough for a format to count.
func (i *inlineInstance) what() string {
	return fmt.Sprintf("the inline app as %s in %s (log %s)", i.role, i.dir, i.logPath)
}

// Addr binds the instance's loopback port, the first time, and returns its
// address; "" when it cannot be bound (the app's log says why) or the
// instance stopped before anyone asked.
func (i *inlineInstance) Addr() string { return i.lis.listen() }

// Conn calls the app's server in process (see DirectInstance).
func (i *inlineInstance) Conn() grpc.ClientConnInterface { return i.srv.Conn() }

// Stop shuts the server down gracefully: calls in flight get until ctx
// ends (at most the server's grace period) and are then cancelled. It
// returns Serve's error, or one wrapping ctx's cause when ctx ended before
// the stop did.
func (i *inlineInstance) Stop(ctx context.Context) error {
	select {
	case <-i.done:
		return i.err
	default:
	}
	_ = i.srv.Shutdown(ctx) // its error, the app's, is Serve's too
	<-i.done
	if i.err != nil {
		return i.err
	}
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("host: %s did not stop in time, stopped by force: %w", i.what(), err)
	}
	return nil
}

// Kill stops the server at once: calls in flight are cancelled and
// connections closed. A handler deaf to its cancelled context is waited for
// up to the server's grace period, then left behind (it cannot be killed
// as a process can). It returns nil once Serve has returned.
func (i *inlineInstance) Kill() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = i.srv.Shutdown(ctx)
	<-i.done
	return nil
}

func (i *inlineInstance) Done() <-chan struct{} { return i.done }

// Wait returns Serve's error: nil after a normal stop.
func (i *inlineInstance) Wait() error {
	<-i.done
	return i.err
}

// lazyListener is an inline instance's listener: it binds a loopback port
// only when listen is first called, so that an instance the host calls in
// process never pays for a socket, nor for a grpc.Server (the server makes
// none until Bound). The grpc server serving on it closes it when it
// stops.
type lazyListener struct {
	log    *slog.Logger  // the app's; written to only while the listener is open, before the log is closed
	bound  chan struct{} // closed once lis is bound
	closed chan struct{} // closed by Close

	mu       sync.Mutex
	lis      net.Listener // the bound listener; nil until listen succeeds
	addr     string       // lis's address
	err      error        // why binding failed, if it did: listen does not try again
	isClosed bool
}

var _ rpcserver.OnDemand = (*lazyListener)(nil)

func newLazyListener(log *slog.Logger) *lazyListener {
	return &lazyListener{log: log, bound: make(chan struct{}), closed: make(chan struct{})}
}

// listen binds the port unless it is bound already, and returns its
// address, or "" when it cannot be bound or the listener is closed.
func (l *lazyListener) listen() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lis != nil || l.err != nil || l.isClosed {
		return l.addr
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		l.err = err
		l.log.Error("cannot listen: dialling the app is impossible", "err", err)
		return ""
	}
	l.lis, l.addr = lis, lis.Addr().String()
	l.log.Info("listening", "addr", l.addr)
	close(l.bound)
	return l.addr
}

// Bound is closed once the port is bound.
func (l *lazyListener) Bound() <-chan struct{} { return l.bound }

// Accept waits until the port is bound, then accepts on it; it fails with
// net.ErrClosed once the listener is closed.
func (l *lazyListener) Accept() (net.Conn, error) {
	select {
	case <-l.bound:
		return l.lis.Accept() // set before bound was closed, never changed
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close closes the bound listener, if any, and ends Accept.
func (l *lazyListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isClosed {
		return nil
	}
	l.isClosed = true
	close(l.closed)
	if l.lis == nil {
		return nil
	}
	return l.lis.Close()
}

// Addr is the bound address, or an unbound placeholder until then: grpc
// and the servers ask for it only to log it.
func (l *lazyListener) Addr() net.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lis != nil {
		return l.lis.Addr()
	}
	return inProcessAddr{}
}

// inProcessAddr is the address of an inline app that listens nowhere yet.
type inProcessAddr struct{}

func (inProcessAddr) Network() string { return "tcp" }
func (inProcessAddr) String() string  { return "in process, no port bound yet" }

// utcTime logs times in UTC, as appmain does, so that an inline app's log
// reads like a process's.
func utcTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}
