package host_test

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/internal/rpcserver"
)

func TestMain(m *testing.M) {
	// The launcher tests re-execute this binary as an app's process (see
	// launch_app_test.go): then it is that app, not the tests.
	if mode := os.Getenv(testAppEnv); mode != "" {
		runTestApp(mode)
		return
	}
	goleak.VerifyTestMain(m)
}

// fakeRequestor answers each RPC with its function field; a nil field
// answers Unimplemented.
type fakeRequestor struct {
	pb.UnimplementedRequestorAppServer
	createTask         func(context.Context, *pb.CreateTaskRequest) (*pb.CreateTaskReply, error)
	nextSubtask        func(context.Context, *pb.NextSubtaskRequest) (*pb.NextSubtaskReply, error)
	verify             func(context.Context, *pb.VerifyRequest) (*pb.VerifyReply, error)
	discardSubtasks    func(context.Context, *pb.DiscardSubtasksRequest) (*pb.DiscardSubtasksReply, error)
	runBenchmark       func(context.Context, *pb.RunBenchmarkRequest) (*pb.RunBenchmarkReply, error)
	hasPendingSubtasks func(context.Context, *pb.HasPendingSubtasksRequest) (*pb.HasPendingSubtasksReply, error)
	abortTask          func(context.Context, *pb.AbortTaskRequest) (*pb.AbortTaskReply, error)
	abortSubtask       func(context.Context, *pb.AbortSubtaskRequest) (*pb.AbortSubtaskReply, error)
	shutdown           func(context.Context, *pb.ShutdownRequest) (*pb.ShutdownReply, error)
}

func (f *fakeRequestor) CreateTask(ctx context.Context, r *pb.CreateTaskRequest) (*pb.CreateTaskReply, error) {
	if f.createTask == nil {
		return f.UnimplementedRequestorAppServer.CreateTask(ctx, r)
	}
	return f.createTask(ctx, r)
}

func (f *fakeRequestor) NextSubtask(ctx context.Context, r *pb.NextSubtaskRequest) (*pb.NextSubtaskReply, error) {
	if f.nextSubtask == nil {
		return f.UnimplementedRequestorAppServer.NextSubtask(ctx, r)
	}
	return f.nextSubtask(ctx, r)
}

func (f *fakeRequestor) Verify(ctx context.Context, r *pb.VerifyRequest) (*pb.VerifyReply, error) {
	if f.verify == nil {
		return f.UnimplementedRequestorAppServer.Verify(ctx, r)
	}
	return f.verify(ctx, r)
}

func (f *fakeRequestor) DiscardSubtasks(ctx context.Context, r *pb.DiscardSubtasksRequest) (*pb.DiscardSubtasksReply, error) {
	if f.discardSubtasks == nil {
		return f.UnimplementedRequestorAppServer.DiscardSubtasks(ctx, r)
	}
	return f.discardSubtasks(ctx, r)
}

func (f *fakeRequestor) RunBenchmark(ctx context.Context, r *pb.RunBenchmarkRequest) (*pb.RunBenchmarkReply, error) {
	if f.runBenchmark == nil {
		return f.UnimplementedRequestorAppServer.RunBenchmark(ctx, r)
	}
	return f.runBenchmark(ctx, r)
}

func (f *fakeRequestor) HasPendingSubtasks(ctx context.Context, r *pb.HasPendingSubtasksRequest) (*pb.HasPendingSubtasksReply, error) {
	if f.hasPendingSubtasks == nil {
		return f.UnimplementedRequestorAppServer.HasPendingSubtasks(ctx, r)
	}
	return f.hasPendingSubtasks(ctx, r)
}

func (f *fakeRequestor) AbortTask(ctx context.Context, r *pb.AbortTaskRequest) (*pb.AbortTaskReply, error) {
	if f.abortTask == nil {
		return f.UnimplementedRequestorAppServer.AbortTask(ctx, r)
	}
	return f.abortTask(ctx, r)
}

func (f *fakeRequestor) AbortSubtask(ctx context.Context, r *pb.AbortSubtaskRequest) (*pb.AbortSubtaskReply, error) {
	if f.abortSubtask == nil {
		return f.UnimplementedRequestorAppServer.AbortSubtask(ctx, r)
	}
	return f.abortSubtask(ctx, r)
}

func (f *fakeRequestor) Shutdown(ctx context.Context, r *pb.ShutdownRequest) (*pb.ShutdownReply, error) {
	if f.shutdown == nil {
		return f.UnimplementedRequestorAppServer.Shutdown(ctx, r)
	}
	return f.shutdown(ctx, r)
}

// fakeProvider answers each RPC with its function field; a nil field
// answers Unimplemented.
type fakeProvider struct {
	pb.UnimplementedProviderAppServer
	compute      func(context.Context, *pb.ComputeRequest) (*pb.ComputeReply, error)
	runBenchmark func(context.Context, *pb.RunBenchmarkRequest) (*pb.RunBenchmarkReply, error)
	shutdown     func(context.Context, *pb.ShutdownRequest) (*pb.ShutdownReply, error)
}

func (f *fakeProvider) Compute(ctx context.Context, r *pb.ComputeRequest) (*pb.ComputeReply, error) {
	if f.compute == nil {
		return f.UnimplementedProviderAppServer.Compute(ctx, r)
	}
	return f.compute(ctx, r)
}

func (f *fakeProvider) RunBenchmark(ctx context.Context, r *pb.RunBenchmarkRequest) (*pb.RunBenchmarkReply, error) {
	if f.runBenchmark == nil {
		return f.UnimplementedProviderAppServer.RunBenchmark(ctx, r)
	}
	return f.runBenchmark(ctx, r)
}

func (f *fakeProvider) Shutdown(ctx context.Context, r *pb.ShutdownRequest) (*pb.ShutdownReply, error) {
	if f.shutdown == nil {
		return f.UnimplementedProviderAppServer.Shutdown(ctx, r)
	}
	return f.shutdown(ctx, r)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return lis
}

// serveOn serves an rpcserver on lis until the test ends; the cleanup waits
// for Serve to return, so no server goroutine outlives its test.
func serveOn(t *testing.T, lis net.Listener, tlsCfg *tls.Config, register func(grpc.ServiceRegistrar)) *rpcserver.Server {
	t.Helper()
	srv := rpcserver.New(rpcserver.Config{TLS: tlsCfg, GracePeriod: time.Second}, register)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return srv
}

func serveRequestor(t *testing.T, f *fakeRequestor, tlsCfg *tls.Config) string {
	t.Helper()
	lis := listen(t)
	serveOn(t, lis, tlsCfg, func(s grpc.ServiceRegistrar) { pb.RegisterRequestorAppServer(s, f) })
	return lis.Addr().String()
}

func serveProvider(t *testing.T, f *fakeProvider) string {
	t.Helper()
	lis := listen(t)
	serveOn(t, lis, nil, func(s grpc.ServiceRegistrar) { pb.RegisterProviderAppServer(s, f) })
	return lis.Addr().String()
}

// servePlain serves a bare grpc.Server (no rpcserver machinery), for servers
// whose health the test controls or that have none.
func servePlain(t *testing.T, register func(*grpc.Server)) string {
	t.Helper()
	lis := listen(t)
	s := grpc.NewServer()
	register(s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return lis.Addr().String()
}

// testCtx bounds one test's calls, so that a hang fails the test instead of
// the whole run.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
