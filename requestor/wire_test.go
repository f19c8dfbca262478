package requestor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	taskapipb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/requestor"
)

// TestMethodPaths pins the wire names: renaming the proto package, a
// service or a method breaks every host and app of the Golem Task API.
func TestMethodPaths(t *testing.T) {
	tests := []struct{ got, want string }{
		{taskapipb.RequestorApp_CreateTask_FullMethodName, "/golem_task_api.RequestorApp/CreateTask"},
		{taskapipb.RequestorApp_NextSubtask_FullMethodName, "/golem_task_api.RequestorApp/NextSubtask"},
		{taskapipb.RequestorApp_Verify_FullMethodName, "/golem_task_api.RequestorApp/Verify"},
		{taskapipb.RequestorApp_DiscardSubtasks_FullMethodName, "/golem_task_api.RequestorApp/DiscardSubtasks"},
		{taskapipb.RequestorApp_RunBenchmark_FullMethodName, "/golem_task_api.RequestorApp/RunBenchmark"},
		{taskapipb.RequestorApp_HasPendingSubtasks_FullMethodName, "/golem_task_api.RequestorApp/HasPendingSubtasks"},
		{taskapipb.RequestorApp_AbortTask_FullMethodName, "/golem_task_api.RequestorApp/AbortTask"},
		{taskapipb.RequestorApp_AbortSubtask_FullMethodName, "/golem_task_api.RequestorApp/AbortSubtask"},
		{taskapipb.RequestorApp_Shutdown_FullMethodName, "/golem_task_api.RequestorApp/Shutdown"},
		{taskapipb.ProviderApp_Compute_FullMethodName, "/golem_task_api.ProviderApp/Compute"},
		{taskapipb.ProviderApp_RunBenchmark_FullMethodName, "/golem_task_api.ProviderApp/RunBenchmark"},
		{taskapipb.ProviderApp_Shutdown_FullMethodName, "/golem_task_api.ProviderApp/Shutdown"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.got)
	}
	assert.Len(t, taskapipb.RequestorApp_ServiceDesc.Methods, 9, "RequestorApp has nine RPCs")
	assert.Len(t, taskapipb.ProviderApp_ServiceDesc.Methods, 3, "ProviderApp has three RPCs")
}

func TestInvokeByLiteralPath(t *testing.T) {
	var got string
	hs := start(t, &fakeHandler{hasPendingSubtasks: func(_ context.Context, taskID string) (bool, error) {
		got = taskID
		return true, nil
	}})
	var reply taskapipb.HasPendingSubtasksReply
	err := hs.conn.Invoke(callCtx(t), "/golem_task_api.RequestorApp/HasPendingSubtasks",
		&taskapipb.HasPendingSubtasksRequest{TaskId: "t1"}, &reply)
	require.NoError(t, err)
	assert.True(t, reply.GetHasPendingSubtasks())
	assert.Equal(t, "t1", got)

	var vreply taskapipb.VerifyReply
	hs2 := start(t, &fakeHandler{verify: func(context.Context, string, string) (requestor.Verdict, string, error) {
		return requestor.Inconclusive, "replicate", nil
	}})
	err = hs2.conn.Invoke(callCtx(t), "/golem_task_api.RequestorApp/Verify",
		&taskapipb.VerifyRequest{TaskId: "t1", SubtaskId: "s1"}, &vreply)
	require.NoError(t, err)
	assert.Equal(t, taskapipb.VerifyReply_INCONCLUSIVE, vreply.GetResult())
}

// TestReflection does what grpcurl does: list the services, fetch the
// descriptor of RequestorApp, and call it with messages built from that
// descriptor alone.
func TestReflection(t *testing.T) {
	var got string
	hs := start(t, &fakeHandler{hasPendingSubtasks: func(_ context.Context, taskID string) (bool, error) {
		got = taskID
		return true, nil
	}})
	ctx, cancel := context.WithCancel(callCtx(t))
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(hs.conn).ServerReflectionInfo(ctx)
	require.NoError(t, err)
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		require.NoError(t, stream.Send(req))
		resp, err := stream.Recv()
		require.NoError(t, err)
		require.Nil(t, resp.GetErrorResponse(), "reflection error: %v", resp.GetErrorResponse())
		return resp
	}

	list := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range list.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	assert.Contains(t, names, "golem_task_api.RequestorApp")
	assert.Contains(t, names, "grpc.health.v1.Health")

	// Fetch the file holding the service, and any file it imports, as a
	// client that knows nothing of gtask would.
	files := map[string]*descriptorpb.FileDescriptorProto{}
	addFiles := func(resp *reflectionpb.ServerReflectionResponse) {
		for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			var fd descriptorpb.FileDescriptorProto
			require.NoError(t, proto.Unmarshal(b, &fd))
			files[fd.GetName()] = &fd
		}
	}
	addFiles(ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{
		FileContainingSymbol: "golem_task_api.RequestorApp",
	}}))
	for missing := true; missing; {
		missing = false
		for _, fd := range files {
			for _, dep := range fd.GetDependency() {
				if _, ok := files[dep]; !ok {
					missing = true
					addFiles(ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: dep}}))
				}
			}
		}
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range files {
		set.File = append(set.File, fd)
	}
	reg, err := protodesc.NewFiles(set)
	require.NoError(t, err)
	d, err := reg.FindDescriptorByName("golem_task_api.RequestorApp")
	require.NoError(t, err)
	svc := d.(protoreflect.ServiceDescriptor)
	m := svc.Methods().ByName("HasPendingSubtasks")
	require.NotNil(t, m)

	// The descriptor is the server's, not this binary's compiled one.
	require.NotSame(t, taskapipb.File_golem_task_api_golem_task_api_proto, svc.ParentFile())

	in := dynamicpb.NewMessage(m.Input())
	in.Set(m.Input().Fields().ByName("task_id"), protoreflect.ValueOfString("t-dyn"))
	out := dynamicpb.NewMessage(m.Output())
	err = hs.conn.Invoke(callCtx(t), "/"+string(svc.FullName())+"/"+string(m.Name()), in, out)
	require.NoError(t, err)
	assert.True(t, out.Get(m.Output().Fields().ByName("has_pending_subtasks")).Bool())
	assert.Equal(t, "t-dyn", got)
}

// selfSigned returns a certificate for 127.0.0.1 and a pool trusting it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gtask test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func TestWithTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := requestor.NewServer(okHandler(), requestor.WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), lis) }()
	defer func() {
		require.NoError(t, srv.Shutdown(callCtx(t)))
		require.NoError(t, <-served)
	}()
	addr := "passthrough:///" + lis.Addr().String()

	tlsConn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})))
	require.NoError(t, err)
	defer tlsConn.Close()
	resp, err := healthpb.NewHealthClient(tlsConn).Check(callCtx(t), &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())

	plainConn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer plainConn.Close()
	_, err = healthpb.NewHealthClient(plainConn).Check(callCtx(t), &healthpb.HealthCheckRequest{})
	assert.Error(t, err, "a plaintext client cannot talk to a TLS server")
}
