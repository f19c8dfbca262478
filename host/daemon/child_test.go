package daemon_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"google.golang.org/grpc"

	"github.com/gtask/gtask/host/daemon"
)

// childDaemonEnv, when set (to a data dir), makes the test binary a daemon
// instead of running the tests (see TestMain), so that a test can kill it
// with SIGKILL; childCacheEnv is its Config.CacheDir.
const (
	childDaemonEnv = "GTASK_DAEMON_TEST_SERVE"
	childCacheEnv  = "GTASK_DAEMON_TEST_CACHE"
)

// runChildDaemon serves a daemon over dataDir on 127.0.0.1 until it is
// killed: it prints "serving ADDR ADMIN_TOKEN" on stdout once it is
// started, and logs on stderr.
func runChildDaemon(dataDir, cache string) {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child daemon:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	d, err := daemon.Open(ctx, daemon.Config{
		DataDir: dataDir, Slots: 4, HostAddr: lis.Addr().String(), CacheDir: cache,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fail(err)
	}
	srv := grpc.NewServer()
	d.Register(srv)
	go srv.Serve(lis)
	if err := d.Start(ctx); err != nil {
		fail(err)
	}
	fmt.Printf("serving %s %s\n", lis.Addr(), d.AdminToken())
	select {} // until killed
}
