// Package daemontest serves a gtask daemon (host/daemon) for tests: over
// gRPC on a real socket of 127.0.0.1, in a data dir of the test's, closed
// when the test ends.
package daemontest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/gtask/gtask/host/daemon"
	"github.com/gtask/gtask/internal/rpcserver"
)

// Server is a daemon served for a test.
type Server struct {
	// Addr is the daemon's gRPC address; AdminToken the admin token its
	// first start made.
	Addr       string
	AdminToken string
	Daemon     *daemon.Daemon
}

// Serve opens a daemon over cfg.DataDir (a fresh temporary one when
// empty), serves it on 127.0.0.1 and starts it. Everything is stopped when
// the test ends: the daemon first (its runs gone), then the server.
func Serve(t testing.TB, cfg daemon.Config) *Server {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	cfg.HostAddr = lis.Addr().String()
	d, err := daemon.Open(context.Background(), cfg)
	if err != nil {
		lis.Close()
		t.Fatalf("opening the daemon: %v", err)
	}
	srv := rpcserver.New(rpcserver.Config{}, d.Register)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("closing the daemon: %v", err)
		}
		srv.Stop(ctx)
		<-served
	})
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("starting the daemon: %v", err)
	}
	return &Server{Addr: cfg.HostAddr, AdminToken: d.AdminToken(), Daemon: d}
}
