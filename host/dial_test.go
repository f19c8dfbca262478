package host_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/internal/mtls"
	"github.com/gtask/gtask/internal/mtls/mtlstest"
)

// reservePort returns a loopback address nothing listens on (for now).
func reservePort(t *testing.T) string {
	t.Helper()
	lis := listen(t)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	return addr
}

func TestDialWaitsForServerToListen(t *testing.T) {
	addr := reservePort(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	type dialled struct {
		c   *host.ProviderClient
		err error
	}
	res := make(chan dialled, 1)
	go func() {
		c, err := host.DialProvider(ctx, addr)
		res <- dialled{c, err}
	}()

	time.Sleep(200 * time.Millisecond)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		cancel()
		<-res
		t.Skipf("the reserved port %s was taken meanwhile: %v", addr, err)
	}
	serveOn(t, lis, nil, func(s grpc.ServiceRegistrar) {
		pb.RegisterProviderAppServer(s, &fakeProvider{})
	})
	started := time.Now()

	r := <-res
	require.NoError(t, r.err)
	defer func() { assert.NoError(t, r.c.Close()) }()
	// A generous bound: what matters is that gRPC's default 1 s (and
	// growing) reconnect back-off does not apply.
	assert.Less(t, time.Since(started), time.Second, "the dial noticed the server late")
}

func TestDialWaitsForServing(t *testing.T) {
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	addr := servePlain(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) })
	turned := make(chan struct{})
	go func() {
		defer close(turned)
		time.Sleep(200 * time.Millisecond)
		hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	}()
	c, err := host.DialRequestor(testCtx(t), addr)
	<-turned
	require.NoError(t, err)
	require.NoError(t, c.Close())
}

func TestDialFailsAtDeadline(t *testing.T) {
	notServing := func(t *testing.T) string {
		hs := health.NewServer()
		hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
		return servePlain(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) })
	}
	tests := []struct {
		name      string
		addr      func(t *testing.T) string
		noTimeout bool // ctx without deadline: the default applies
		want      []string
	}{{
		name: "stays NOT_SERVING",
		addr: notServing,
		want: []string{"requestor at ", "(plaintext)", "not SERVING after", "context deadline exceeded", "last health answer NOT_SERVING"},
	}, {
		name: "nothing listening",
		addr: reservePort,
		want: []string{"requestor at ", "not SERVING after", "context deadline exceeded", "last error", "connection refused"},
	}, {
		name:      "default timeout when ctx has no deadline",
		addr:      notServing,
		noTimeout: true,
		want:      []string{"not SERVING after", "last health answer NOT_SERVING"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tt.addr(t)
			ctx := t.Context()
			if !tt.noTimeout {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
			}
			start := time.Now()
			c, err := host.DialRequestor(ctx, addr, host.WithDefaultDialTimeout(300*time.Millisecond))
			require.Error(t, err)
			t.Logf("failed as expected: %v", err)
			assert.Nil(t, c)
			assert.GreaterOrEqual(t, time.Since(start), 290*time.Millisecond, "gave up before the deadline: %v", err)
			assert.Less(t, time.Since(start), 10*time.Second, "did not give up at the deadline")
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.Contains(t, err.Error(), addr)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestDialCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := host.DialProvider(ctx, reservePort(t))
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "provider at ")
}

func TestDialRefusesServerWithoutHealth(t *testing.T) {
	addr := servePlain(t, func(s *grpc.Server) { pb.RegisterProviderAppServer(s, &fakeProvider{}) })
	start := time.Now()
	_, err := host.DialProvider(testCtx(t), addr)
	require.Error(t, err)
	assert.Equal(t, codes.Unimplemented, status.Code(err))
	assert.Contains(t, err.Error(), "grpc.health.v1.Health")
	assert.Less(t, time.Since(start), 10*time.Second, "waited for a health service that cannot appear")
}

func TestTLS(t *testing.T) {
	serverCert := mtlstest.NewServerCert(t, "server")
	otherServerCert := mtlstest.NewServerCert(t, "impostor server")
	clientCert := mtlstest.NewClientCert(t, "client")
	otherClientCert := mtlstest.NewClientCert(t, "unrelated client")

	serverDir := t.TempDir()
	mtlstest.WriteServerFiles(t, serverDir, serverCert, clientCert)
	serverTLS, err := mtls.ServerConfig(serverDir)
	require.NoError(t, err)
	require.NotNil(t, serverTLS)

	clientDir := func(client, server mtlstest.Cert) string {
		dir := t.TempDir()
		mtlstest.WriteClientFiles(t, dir, client, server)
		return dir
	}
	goodDir := clientDir(clientCert, serverCert)
	goodTLS, err := mtls.ClientConfig(goodDir)
	require.NoError(t, err)
	noCertTLS := goodTLS.Clone()
	noCertTLS.Certificates = nil

	tests := []struct {
		name      string
		plainSrv  bool
		opts      []host.DialOption
		wantOK    bool
		wantInErr string
	}{
		{name: "pinned certificates", opts: []host.DialOption{host.WithTLSDir(goodDir)}, wantOK: true},
		{name: "the same as a tls.Config", opts: []host.DialOption{host.WithTLSConfig(goodTLS)}, wantOK: true},
		{name: "plaintext client", wantInErr: "(plaintext)"},
		{name: "wrong client certificate", opts: []host.DialOption{host.WithTLSDir(clientDir(otherClientCert, serverCert))}},
		{name: "no client certificate", opts: []host.DialOption{host.WithTLSConfig(noCertTLS)}},
		{
			name:      "client pins another server",
			opts:      []host.DialOption{host.WithTLSDir(clientDir(clientCert, otherServerCert))},
			wantInErr: "pinned",
		},
		{name: "TLS client, plaintext server", plainSrv: true, opts: []host.DialOption{host.WithTLSDir(goodDir)}, wantInErr: "(TLS)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srvTLS := serverTLS
			if tt.plainSrv {
				srvTLS = nil
			}
			addr := serveRequestor(t, &fakeRequestor{
				hasPendingSubtasks: func(context.Context, *pb.HasPendingSubtasksRequest) (*pb.HasPendingSubtasksReply, error) {
					return &pb.HasPendingSubtasksReply{HasPendingSubtasks: true}, nil
				},
			}, srvTLS)
			ctx := testCtx(t)
			if !tt.wantOK {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
				defer cancel()
			}
			c, err := host.DialRequestor(ctx, addr, tt.opts...)
			if !tt.wantOK {
				require.Error(t, err, "the connection must be refused")
				t.Logf("refused as expected: %v", err)
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				assert.Contains(t, err.Error(), tt.wantInErr)
				return
			}
			require.NoError(t, err)
			defer func() { assert.NoError(t, c.Close()) }()
			pending, err := c.HasPendingSubtasks(ctx, "t1")
			require.NoError(t, err)
			assert.True(t, pending)
		})
	}
}

func TestTLSFiles(t *testing.T) {
	partial := t.TempDir()
	c := mtlstest.NewClientCert(t, "client")
	mtlstest.WriteClientFiles(t, partial, c, mtlstest.NewServerCert(t, "server"))
	require.NoError(t, removeFile(partial, mtls.ClientKeyFile))

	tests := []struct {
		name    string
		opts    []host.DialOption
		wantErr []string
	}{
		{name: "partial set", opts: []host.DialOption{host.WithTLSDir(partial)}, wantErr: []string{mtls.ClientKeyFile, "missing", "provider at "}},
		{name: "empty dir is plaintext", opts: []host.DialOption{host.WithTLSDir(t.TempDir())}},
		{name: "nil tls.Config is plaintext", opts: []host.DialOption{host.WithTLSConfig(nil)}},
		{name: "the last TLS option wins", opts: []host.DialOption{host.WithTLSDir(partial), host.WithTLSConfig(nil)}},
		{name: "WithTLSDir after WithTLSConfig", opts: []host.DialOption{host.WithTLSConfig(&tls.Config{}), host.WithTLSDir(t.TempDir())}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serveProvider(t, &fakeProvider{})
			c, err := host.DialProvider(testCtx(t), addr, tt.opts...)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, mtls.ErrPartial)
				for _, w := range tt.wantErr {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			require.NoError(t, c.Close())
		})
	}
}

func TestWithGRPCOptions(t *testing.T) {
	called := make(chan string, 1)
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == pb.ProviderApp_Compute_FullMethodName {
			called <- method
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	c, err := host.DialProvider(testCtx(t), serveProvider(t, &fakeProvider{
		compute: func(context.Context, *pb.ComputeRequest) (*pb.ComputeReply, error) {
			return &pb.ComputeReply{OutputFilepath: "x"}, nil
		},
	}), host.WithGRPCOptions(grpc.WithUnaryInterceptor(intercept)))
	require.NoError(t, err)
	defer func() { assert.NoError(t, c.Close()) }()
	_, err = c.Compute(testCtx(t), "t", "s", nil)
	require.NoError(t, err)
	assert.Equal(t, pb.ProviderApp_Compute_FullMethodName, <-called)
}

func TestReadyAddr(t *testing.T) {
	tests := []struct {
		line     string
		wantRole string
		wantAddr string
		wantOK   bool
	}{
		{"gtask: serving provider on 0.0.0.0:5000", "provider", "127.0.0.1:5000", true},
		{"gtask: serving requestor on [::]:5\n", "requestor", "[::1]:5", true},
		{"gtask: serving requestor on 127.0.0.1:50005\r\n", "requestor", "127.0.0.1:50005", true},
		{"gtask: serving provider on :6000", "provider", "127.0.0.1:6000", true},
		{"gtask: serving provider on 10.1.2.3:7", "provider", "10.1.2.3:7", true},
		{"gtask: serving provider on [fe80::1]:7", "provider", "[fe80::1]:7", true},
		{"", "", "", false},
		{"listening on 0.0.0.0:5000", "", "", false},
		{"gtask: serving provider", "", "", false},
		{"gtask: serving provider on ", "", "", false},
		{"gtask: serving  on 127.0.0.1:1", "", "", false},
		{"gtask: serving provider on 127.0.0.1", "", "", false},
		{"gtask: serving provider on 127.0.0.1:1 extra", "", "", false},
		{"gtask: serving provider on 127.0.0.1:http", "", "", false},
		{"gtask: serving provider on 127.0.0.1:0", "", "", false},
		{"gtask: serving provider on 127.0.0.1:65536", "", "", false},
		{" gtask: serving provider on 127.0.0.1:1", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			role, addr, ok := host.ReadyAddr(tt.line)
			assert.Equal(t, tt.wantOK, ok)
			assert.Equal(t, tt.wantRole, role)
			assert.Equal(t, tt.wantAddr, addr)
		})
	}
}

func removeFile(dir, name string) error { return os.Remove(filepath.Join(dir, name)) }
