package appmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/gtask/gtask/internal/mtls"
	"github.com/gtask/gtask/internal/readyline"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
	"github.com/gtask/gtask/taskapi"
)

// The role names, as the contract spells them on the command line.
const (
	RoleRequestor = "requestor"
	RoleProvider  = "provider"
)

// ErrUsage is wrapped by every error Run returns for a command line it
// cannot accept (unknown role, missing or bad PORT, extra arguments, unknown
// flags). Main exits 2 for it.
var ErrUsage = errors.New("usage error")

// Roles makes the handlers of an app, one function per role. A nil function
// means the app does not serve that role: asking for it is a usage error.
// Each function runs once, with the resolved absolute work dir and the
// process's logger, before the server listens; its error ends the process
// (exit 1) without a readiness line.
type Roles struct {
	// Requestor makes the requestor's Handler for the requestor work dir.
	Requestor func(workDir string, log *slog.Logger) (requestor.Handler, error)
	// Provider makes the provider's Handler for the provider's task work
	// dir (the one holding subtask_inputs/).
	Provider func(workDir string, log *slog.Logger) (provider.Handler, error)
}

// Main is the whole main function of an app: it runs Run with the process's
// arguments, standard streams, and a context cancelled by SIGTERM or SIGINT,
// then exits 0 when Run returned nil (or the help was asked for), 2 for a
// usage error and 1 for any other error. It never returns.
//
// A provider outside a container catches no signal: SIGTERM or SIGINT end it
// at once, by the default disposition. A one-shot provider has nothing to
// save (the host discards the work of a provider it signals), and catching
// signals costs a Go process two more threads and 0.5 to 1 ms of CPU, a
// measurable share of a provider's life. Inside a container, where the app
// is process 1 and the kernel ignores a signal it does not catch, and for
// the requestor, the stop is graceful.
func Main(roles Roles) {
	ctx := context.Background()
	if catchSignals(os.Args, os.Getpid()) {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
		// After the first signal the default disposition comes back, so
		// that a second one kills a process whose graceful stop takes too
		// long.
		context.AfterFunc(ctx, stop)
		// No stop() before the exit: the handlers go with the process, and
		// undoing them first costs a round trip per signal with the
		// runtime's signal thread.
	}
	os.Exit(exitCode(Run(ctx, os.Args, roles, os.Stdout, os.Stderr)))
}

// catchSignals says whether the app with command line args and process id
// pid stops gracefully on SIGTERM and SIGINT: all but a provider that is
// not process 1. The role is the second last argument (ROLE PORT end the
// command line); a command line that does not parse is caught too, and Run
// reports it.
func catchSignals(args []string, pid int) bool {
	if pid == 1 {
		return true
	}
	return len(args) < 3 || args[len(args)-2] != RoleProvider
}

func exitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	}
	return 1
}

// Run serves the role named on the command line until the server stops, and
// returns nil after a normal stop: ctx cancelled, a Shutdown RPC, or, for a
// provider, its one request answered. args is the whole command line,
// program name first, as in os.Args.
//
// stdout receives exactly one line, the readiness line (see package
// readyline), once the listener is bound; nothing else is ever written to
// it. stderr receives the logs (slog text) and, for a usage error or -h, the
// usage. Every error Run returns has also been reported on stderr. Run never
// exits the process.
func Run(ctx context.Context, args []string, roles Roles, stdout, stderr io.Writer) error {
	prog := "app"
	if len(args) > 0 {
		prog, args = filepath.Base(args[0]), args[1:]
	}
	inv, err := parse(prog, args, roles, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{ReplaceAttr: utcTime})).With("role", inv.role)
	if err := run(ctx, inv, roles, log, stdout); err != nil {
		log.Error("exiting", "err", err)
		return err
	}
	return nil
}

// invocation is a parsed command line.
type invocation struct {
	role       string
	port       string
	workDir    string // as given; "" when not given
	workDirSet bool
	listen     string // as given; "" when not given
}

// parse reads the command line. On a usage error it writes the error and
// the usage to stderr.
func parse(prog string, args []string, roles Roles, stderr io.Writer) (invocation, error) {
	var inv invocation
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	// The flag package would print its own error and usage; Run prints both
	// itself, in one place and in one format.
	fs.SetOutput(io.Discard)
	fs.StringVar(&inv.workDir, "work-dir", "",
		"the work `DIR`: the requestor's work dir, or the provider's task work dir\n(default "+taskapi.ContainerWorkDir()+" when it exists, else the current directory)")
	fs.StringVar(&inv.listen, "listen", "",
		"listen on `HOST`, a host name or IP address\n(default 0.0.0.0 when the work dir is "+taskapi.ContainerWorkDir()+", else 127.0.0.1)")
	usage := func() {
		fmt.Fprintf(stderr, "usage: %s [--work-dir DIR] [--listen HOST] requestor|provider PORT\n\n", prog)
		fmt.Fprintf(stderr, "Serves the Golem Task API for the role; PORT 0 picks a free port. Once it\n")
		fmt.Fprintf(stderr, "serves, the one line %q is printed on stdout.\n\n", readyline.Format("ROLE", "HOST:PORT"))
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	bad := func(format string, a ...any) (invocation, error) {
		err := fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		usage()
		return invocation{}, err
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return invocation{}, err
		}
		return bad("%v", err)
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "work-dir" {
			inv.workDirSet = true
		}
	})
	rest := fs.Args()
	switch len(rest) {
	case 0:
		return bad("missing the role (requestor or provider) and PORT")
	case 1:
		return bad("missing PORT after %q", rest[0])
	case 2:
	default:
		return bad("unexpected arguments after PORT: %s", strings.Join(rest[2:], " "))
	}
	inv.role, inv.port = rest[0], rest[1]
	switch {
	case inv.role != RoleRequestor && inv.role != RoleProvider:
		return bad("unknown role %q: want requestor or provider", inv.role)
	case inv.role == RoleRequestor && roles.Requestor == nil,
		inv.role == RoleProvider && roles.Provider == nil:
		return bad("this app does not serve the %s role", inv.role)
	}
	// Parsed here rather than left to net.Listen, so that "abc" or "70000"
	// is a usage error (exit 2), not a failure to listen.
	if _, err := strconv.ParseUint(inv.port, 10, 16); err != nil {
		return bad("PORT %q is not a port number (0-65535; 0 picks a free port)", inv.port)
	}
	return inv, nil
}

// server is what Run needs of requestor.Server and provider.Server.
type server interface {
	Serve(ctx context.Context, lis net.Listener) error
	Shutdown(ctx context.Context) error
}

func run(ctx context.Context, inv invocation, roles Roles, log *slog.Logger, stdout io.Writer) error {
	workDir, err := resolveWorkDir(inv.workDir, inv.workDirSet)
	if err != nil {
		return err
	}
	host := inv.listen
	if host == "" {
		host = defaultListenHost(workDir)
	}
	// A partial set of TLS files is refused: serving plaintext when the
	// operator meant TLS would be a silent downgrade.
	tlsCfg, err := mtls.ServerConfig(workDir)
	if err != nil {
		return fmt.Errorf("mutual TLS: %w", err)
	}

	var srv server
	switch inv.role {
	case RoleRequestor:
		h, err := roles.Requestor(workDir, log)
		if err == nil && h == nil {
			err = errors.New("the app returned no Handler")
		}
		if err != nil {
			return fmt.Errorf("making the requestor handler: %w", err)
		}
		srv = requestor.NewServer(h, requestor.WithLogger(log), requestor.WithTLS(tlsCfg))
	case RoleProvider:
		h, err := roles.Provider(workDir, log)
		if err == nil && h == nil {
			err = errors.New("the app returned no Handler")
		}
		if err != nil {
			return fmt.Errorf("making the provider handler: %w", err)
		}
		srv = provider.NewServer(h, provider.WithLogger(log), provider.WithTLS(tlsCfg))
	}

	lis, err := net.Listen("tcp", net.JoinHostPort(host, inv.port))
	if err != nil {
		// The handler exists already; Shutdown lets the app close what it
		// opened (the requestor's Handler.Shutdown).
		return errors.Join(err, srv.Shutdown(context.WithoutCancel(ctx)))
	}
	addr := lis.Addr().String()
	// The listener is bound, so a host that reads the line and dials at once
	// is queued by the kernel until Serve accepts it. The line goes before
	// the log line: the host is waiting for it.
	_, printErr := fmt.Fprintln(stdout, readyline.Format(inv.role, addr))
	log.Info("serving", "addr", addr, "work_dir", workDir, "tls", tlsCfg != nil)
	if printErr != nil {
		// The line is an optimisation for the host (it may poll health
		// instead), so a closed stdout is no reason not to serve.
		log.Warn("could not print the readiness line", "err", printErr)
	}
	if err := srv.Serve(ctx, lis); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// resolveWorkDir returns the absolute work dir. Without --work-dir it is the
// container's /golem/work when that exists, else the current directory.
func resolveWorkDir(dir string, set bool) (string, error) {
	if !set {
		def := taskapi.ContainerWorkDir()
		fi, err := os.Stat(def)
		switch {
		case err == nil && fi.IsDir():
			return def, nil
		case err == nil:
			return "", fmt.Errorf("default work dir %s is not a directory", def)
		case !errors.Is(err, fs.ErrNotExist):
			return "", fmt.Errorf("default work dir: %w", err)
		}
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("work dir (the current directory): %w", err)
		}
		return wd, nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("--work-dir %q: %w", dir, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("--work-dir %q is not a directory", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--work-dir %q: %w", dir, err)
	}
	return abs, nil
}

// defaultListenHost is where to listen without --listen: every interface in
// the container's work dir, since the host reaches a containerised app from
// outside the container's network namespace (as the reference does); the
// loopback interface anywhere else, so that an app run by hand on a
// workstation is not open to the network.
func defaultListenHost(workDir string) string {
	if workDir == taskapi.ContainerWorkDir() {
		return "0.0.0.0"
	}
	return "127.0.0.1"
}

// utcTime logs times in UTC: logs of requestors and providers on different
// machines line up, and a provider, whose start-up is on the host's hot
// path, need not load the local time zone.
func utcTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey && a.Value.Kind() == slog.KindTime {
		a.Value = slog.TimeValue(a.Value.Time().UTC())
	}
	return a
}
