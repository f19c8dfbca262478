package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"time"

	gwruntime "github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
	"github.com/gtask/gtask/host/daemon"
	"github.com/gtask/gtask/internal/appbuild"
	"github.com/gtask/gtask/internal/rpcserver"
)

// The daemon's default addresses: loopback only.
const (
	defaultListen = "127.0.0.1:7878"
	defaultHTTP   = "127.0.0.1:7879"
)

// stopLimit bounds the graceful stop of `gtask serve`: the HTTP gateway's
// and the daemon's.
const stopLimit = 30 * time.Second

type serveFlags struct {
	dataDir     string
	listen      string
	http        string
	slots       int
	uploadTTL   time.Duration
	insecureAny bool
}

const serveLong = `Serve runs the gtask daemon: the host API (gtask.host.v1, see
proto/gtask/host/v1/host.proto) over gRPC on --listen, and the same API as
HTTP/JSON on --http (e.g. GET /v1/tasks/ID), where people and programs
submit tasks, watch them, read their logs, kill them and take their
results. Tasks run with at most --slots providers at once, shared among
them. Everything the daemon knows (tasks, their work dirs, tokens) is in
--data-dir. An uploaded input ('gtask submit --input') may serve any
number of tasks for --upload-ttl after its upload, then it is removed
(the tasks keep their own copy).

Every call needs a token ("authorization: Bearer TOKEN"; over HTTP the
Authorization header). On its first start with a data dir, serve prints an
admin token on stderr, once: keep it (e.g. export GTASK_TOKEN=...); the
daemon keeps only its hash. 'gtask token create' makes more.

Tokens travel in plaintext, so serve listens on loopback only: a --listen
or --http address that is not loopback is refused unless
--insecure-listen-any (then anyone on the network path can read the
tokens; put TLS in front).

SIGINT or SIGTERM stops the daemon gracefully: it stops taking calls and
stops the running tasks, which resume where they were at its next start
with the same --data-dir. serve then exits 0.

Exit status:
  0    stopped by SIGINT or SIGTERM
  2    bad input: flags, an address that is not loopback
  3    host error: the data dir, an address in use, a failure while serving`

const serveExample = `  gtask serve
  gtask serve --data-dir /srv/gtask --slots 16
  gtask serve --listen 127.0.0.1:9000 --http off`

func newServeCommand(_, stderr io.Writer) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:     "serve [flags]",
		Short:   "Run the gtask daemon: the host API over gRPC and HTTP",
		Long:    serveLong,
		Example: serveExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), f, stderr)
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.dataDir, "data-dir", "", "where the daemon keeps its tasks and tokens (default: "+defaultDataDirText+")")
	fl.StringVar(&f.listen, "listen", defaultListen, "the gRPC address (a port of 0 picks a free one)")
	fl.StringVar(&f.http, "http", defaultHTTP, `the HTTP/JSON address; "" or "off": none`)
	fl.IntVar(&f.slots, "slots", 0, "provider slots shared by the running tasks (default: the number of CPUs)")
	fl.DurationVar(&f.uploadTTL, "upload-ttl", daemon.DefaultUploadTTL, "how long an uploaded input is kept for new tasks after its upload, then removed (negative: for ever)")
	fl.BoolVar(&f.insecureAny, "insecure-listen-any", false, "allow addresses that are not loopback, though tokens travel in plaintext")
	return cmd
}

// defaultDataDirText is how --help names the default data dir.
const defaultDataDirText = "$XDG_DATA_HOME/gtask or ~/.local/share/gtask; elsewhere than Linux, the user config dir's gtask"

// defaultDataDir is the data dir when --data-dir is not given: the XDG
// data dir on Linux and the BSDs, the user config dir (Application
// Support, AppData) elsewhere.
func defaultDataDir() (string, error) {
	switch runtime.GOOS {
	case "darwin", "windows", "ios", "plan9":
	default:
		if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
			return filepath.Join(d, "gtask"), nil
		}
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, ".local", "share", "gtask"), nil
		}
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", badInput("no default data dir (%v): name one with --data-dir", err)
	}
	return filepath.Join(d, "gtask"), nil
}

// dataDirFlag is --data-dir, or the default.
func dataDirFlag(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return defaultDataDir()
}

// checkLoopback refuses an address that is not loopback, unless allowed.
func checkLoopback(flag, addr string, allowed bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return badInput("--%s %q: want HOST:PORT, e.g. %s", flag, addr, defaultListen)
	}
	if allowed || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	what := host
	if host == "" {
		what = "every interface"
	}
	return badInput("--%s %s listens on %s, not loopback: tokens travel in plaintext, so anyone on the network path "+
		"could read them; use 127.0.0.1 (and TLS in front of it for remote use), or add --insecure-listen-any", flag, addr, what)
}

// serve is `gtask serve`.
func serve(ctx context.Context, f serveFlags, stderr io.Writer) error {
	if f.slots < 0 {
		return badInput("--slots is %d; it must be at least 0 (0: the number of CPUs)", f.slots)
	}
	if f.uploadTTL == 0 {
		return badInput("--upload-ttl is 0; want how long to keep an upload (default %s), or a negative duration to keep uploads for ever", daemon.DefaultUploadTTL)
	}
	httpOn := f.http != "" && f.http != "off"
	if err := checkLoopback("listen", f.listen, f.insecureAny); err != nil {
		return err
	}
	if httpOn {
		if err := checkLoopback("http", f.http, f.insecureAny); err != nil {
			return err
		}
	}
	dataDir, err := dataDirFlag(f.dataDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return hostError("--data-dir: %w", err)
	}

	var lc net.ListenConfig
	grpcLis, err := lc.Listen(ctx, "tcp", f.listen)
	if err != nil {
		return hostError("--listen %s: %w (another gtask serve?)", f.listen, err)
	}
	defer grpcLis.Close() // Serve closes it too; closing twice is harmless
	var httpLis net.Listener
	if httpOn {
		if httpLis, err = lc.Listen(ctx, "tcp", f.http); err != nil {
			return hostError("--http %s: %w (another gtask serve? --http off serves no HTTP)", f.http, err)
		}
		defer httpLis.Close()
	}
	grpcAddr := grpcLis.Addr().String()

	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d, err := daemon.Open(ctx, daemon.Config{
		DataDir:   dataDir,
		Slots:     f.slots,
		UploadTTL: f.uploadTTL,
		HostAddr:  grpcAddr,
		CacheDir:  appbuild.DefaultCacheDir(),
		Logger:    log,
	})
	if err != nil {
		return hostError("opening the daemon's data dir %s: %w", dataDir, err)
	}
	// The daemon is closed exactly once, below, whatever happens.
	closed := false
	closeDaemon := func() error {
		if closed {
			return nil
		}
		closed = true
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopLimit)
		defer cancel()
		return d.Close(cctx)
	}
	defer closeDaemon()

	if tok := d.AdminToken(); tok != "" {
		fmt.Fprintf(stderr, "gtask: first start with %s: made the admin token, shown this once only.\n"+
			"gtask: keep it safe (the daemon keeps only its hash); it may do everything, 'gtask token create' included:\n"+
			"    export GTASK_TOKEN=%s\n", dataDir, tok)
	}

	// The gRPC server runs until serveCtx ends; the signal (ctx) only
	// starts the stop, whose order is this function's.
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	srv := rpcserver.New(rpcserver.Config{Logger: log}, d.Register)
	grpcDone := make(chan error, 1)
	go func() { grpcDone <- srv.Serve(serveCtx, grpcLis) }()
	// The server is stopped, and its goroutine gone, on every return.
	defer func() {
		stopServing()
		<-grpcDone
	}()

	if err := d.Start(serveCtx); err != nil {
		return hostError("starting the daemon: %w", err)
	}

	var httpSrv *http.Server
	httpDone := make(chan error, 1)
	if httpOn {
		mux := gwruntime.NewServeMux()
		// The gateway calls the gRPC side like any client. Its default
		// header matcher passes the Authorization header on as the
		// "authorization" metadata the daemon checks.
		err := hostv1.RegisterHostServiceHandlerFromEndpoint(serveCtx, mux, grpcAddr,
			[]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())})
		if err != nil {
			return hostError("the HTTP gateway: %w", err)
		}
		httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		go func() { httpDone <- httpSrv.Serve(httpLis) }()
		defer func() {
			httpSrv.Close()
			<-httpDone
		}()
		fmt.Fprintf(stderr, "gtask: serving host API on %s (HTTP on %s), data dir %s\n", grpcAddr, httpLis.Addr(), dataDir)
	} else {
		fmt.Fprintf(stderr, "gtask: serving host API on %s (HTTP off), data dir %s\n", grpcAddr, dataDir)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-grpcDone:
		grpcDone <- err
		serveErr = fmt.Errorf("serving gRPC on %s: %w", grpcAddr, err)
		if err == nil {
			serveErr = fmt.Errorf("serving gRPC on %s stopped", grpcAddr)
		}
	case err := <-httpDone:
		httpDone <- err
		serveErr = fmt.Errorf("serving HTTP on %s: %w", httpLis.Addr(), err)
	}
	if serveErr == nil {
		fmt.Fprintln(stderr, "gtask: stopping: the running tasks stop now and resume at the next start")
	}

	// The stop: no new calls, over HTTP or gRPC, then the daemon (its
	// tasks stop; the calls still streaming end), then the servers.
	srv.RequestStop()
	if httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = httpSrv.Shutdown(sctx) // streams that outlast it are closed below
		cancel()
	}
	closeErr := closeDaemon()
	stopServing()
	<-grpcDone
	grpcDone <- nil
	switch {
	case serveErr != nil:
		return hostError("%w", serveErr)
	case closeErr != nil:
		return hostError("stopping the daemon: %w", closeErr)
	}
	fmt.Fprintln(stderr, "gtask: stopped")
	return nil
}
