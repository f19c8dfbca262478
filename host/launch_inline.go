package host

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/internal/mtls"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
)

// InlineLauncher runs an app inside the host's own process: each Start
// makes the role's handler with the app's factory and serves it with
// requestor.NewServer or provider.NewServer on a fresh loopback port, on a
// goroutine of the instance. It serves the same gRPC contract as a process
// (health, the work dir's mutual TLS, a provider's one call), so the Runner
// cannot tell the two apart, but a start costs microseconds, not a process:
// for tests, for embedding an app in a program, and for apps whose parts are
// too small to pay for a process each.
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
	_ Launcher = InlineLauncher{}
	_ Instance = (*inlineInstance)(nil)
)

// inlineServer is what an inline instance needs of requestor.Server and
// provider.Server.
type inlineServer interface {
	Serve(ctx context.Context, lis net.Listener) error
	Shutdown(ctx context.Context) error
}

// Start makes the handler and starts serving it; it returns as soon as the
// listener is bound, which is enough: the kernel queues a dial until the
// server accepts it, and the server answers SERVING from its first call. A
// failed start's error names the log, and the factory's error is logged to
// it too.
func (l InlineLauncher) Start(ctx context.Context, role Role, workDir, logPath string) (Instance, error) {
	what := fmt.Sprintf("the inline app as %s in %s", role, workDir)
	fail := func(err error) error {
		return fmt.Errorf("host: starting %s: %w (log %s)", what, err, logPath)
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
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		// The handler exists already; Shutdown lets the app close what it
		// opened (the requestor's Handler.Shutdown).
		return failLogged(errors.Join(err, srv.Shutdown(context.WithoutCancel(ctx))))
	}
	i := &inlineInstance{
		what: fmt.Sprintf("the inline app as %s in %s (log %s)", role, dir, logPath),
		addr: lis.Addr().String(),
		srv:  srv,
		done: make(chan struct{}),
	}
	log.Info("serving", "addr", i.addr, "work_dir", dir, "tls", tlsCfg != nil)
	go i.serve(lis, logf)
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
	what string
	addr string
	srv  inlineServer
	done chan struct{} // closed once Serve has returned
	err  error         // Serve's error; set before done is closed
}

// serve serves until the server stops (Stop, Kill, a Shutdown RPC, a
// provider's one call), then closes the log.
func (i *inlineInstance) serve(lis net.Listener, logf *os.File) {
	// Serve's ctx never ends: Start's ctx bounds only the start, and the
	// instance stops through Shutdown.
	if err := i.srv.Serve(context.Background(), lis); err != nil {
		i.err = fmt.Errorf("host: %s: %w", i.what, err)
	}
	logf.Close()
	close(i.done)
}

func (i *inlineInstance) Addr() string { return i.addr }

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
		return fmt.Errorf("host: %s did not stop in time, stopped by force: %w", i.what, err)
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

// utcTime logs times in UTC, as appmain does, so that an inline app's log
// reads like a process's.
func utcTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}
