package rpcserver_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	taskapipb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/internal/rpcserver"
)

// reflectionStream is one reflection stream, of either version, asked
// requests in v1's messages (v1alpha's are the same on the wire).
type reflectionStream func(*reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse

// reflectionVersions opens a reflection stream of each version on h.
func reflectionVersions(t *testing.T, h *harness) map[string]func() reflectionStream {
	return map[string]func() reflectionStream{
		"v1": func() reflectionStream {
			stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(callCtx(t))
			require.NoError(t, err)
			t.Cleanup(func() { _ = stream.CloseSend() })
			return func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
				t.Helper()
				require.NoError(t, stream.Send(req))
				resp, err := stream.Recv()
				require.NoError(t, err)
				return resp
			}
		},
		"v1alpha": func() reflectionStream {
			stream, err := reflectionv1alphapb.NewServerReflectionClient(h.conn).ServerReflectionInfo(callCtx(t))
			require.NoError(t, err)
			t.Cleanup(func() { _ = stream.CloseSend() })
			return func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
				t.Helper()
				var alphaReq reflectionv1alphapb.ServerReflectionRequest
				convert(t, req, &alphaReq)
				require.NoError(t, stream.Send(&alphaReq))
				alphaResp, err := stream.Recv()
				require.NoError(t, err)
				var resp reflectionpb.ServerReflectionResponse
				convert(t, alphaResp, &resp)
				return &resp
			}
		},
	}
}

// convert copies from into to through the wire format.
func convert(t *testing.T, from, to proto.Message) {
	t.Helper()
	b, err := proto.Marshal(from)
	require.NoError(t, err)
	require.NoError(t, proto.Unmarshal(b, to))
}

func symbolReq(name string) *reflectionpb.ServerReflectionRequest {
	return &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: name}}
}

func fileReq(name string) *reflectionpb.ServerReflectionRequest {
	return &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: name}}
}

// files decodes a file descriptor answer, in its order.
func files(t *testing.T, resp *reflectionpb.ServerReflectionResponse) []*descriptorpb.FileDescriptorProto {
	t.Helper()
	require.Nil(t, resp.GetErrorResponse(), "error answer: %v", resp.GetErrorResponse())
	var out []*descriptorpb.FileDescriptorProto
	for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
		fd := new(descriptorpb.FileDescriptorProto)
		require.NoError(t, proto.Unmarshal(b, fd))
		out = append(out, fd)
	}
	return out
}

func names(fds []*descriptorpb.FileDescriptorProto) []string {
	var out []string
	for _, fd := range fds {
		out = append(out, fd.GetName())
	}
	return out
}

// same asserts that got describes what the binary's own descriptor of the
// file describes.
func same(t *testing.T, want protoreflect.FileDescriptor, got *descriptorpb.FileDescriptorProto) {
	t.Helper()
	assert.True(t, proto.Equal(protodesc.ToFileDescriptorProto(want), got), "%s:\nwant %v\ngot  %v", want.Path(), protodesc.ToFileDescriptorProto(want), got)
}

func notFound(t *testing.T, resp *reflectionpb.ServerReflectionResponse) {
	t.Helper()
	require.NotNil(t, resp.GetErrorResponse(), "want an error answer, got %v", resp)
	assert.Equal(t, int32(codes.NotFound), resp.GetErrorResponse().GetErrorCode())
	assert.NotEmpty(t, resp.GetErrorResponse().GetErrorMessage())
}

func TestReflectionListsServices(t *testing.T) {
	h := start(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	for version, open := range reflectionVersions(t, h) {
		t.Run(version, func(t *testing.T) {
			ask := open()
			resp := ask(&reflectionpb.ServerReflectionRequest{Host: "h", MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
			assert.Equal(t, "h", resp.GetValidHost())
			assert.Equal(t, "h", resp.GetOriginalRequest().GetHost())
			var got []string
			for _, s := range resp.GetListServicesResponse().GetService() {
				got = append(got, s.GetName())
			}
			assert.Equal(t, []string{
				"golem_task_api.RequestorApp",
				"grpc.health.v1.Health",
				"grpc.reflection.v1.ServerReflection",
				"grpc.reflection.v1alpha.ServerReflection",
			}, got)
		})
	}
}

func TestReflectionDescribesSymbols(t *testing.T) {
	h := start(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	api := taskapipb.File_golem_task_api_golem_task_api_proto
	for version, open := range reflectionVersions(t, h) {
		t.Run(version, func(t *testing.T) {
			ask := open()
			// A service: its file, which imports nothing.
			got := files(t, ask(symbolReq("golem_task_api.RequestorApp")))
			require.Equal(t, []string{api.Path()}, names(got))
			same(t, api, got[0])

			// A message, a nested enum, a method and a field of the same
			// file: the file again, the answer itself, however often sent.
			for _, sym := range []string{"golem_task_api.VerifyReply", "golem_task_api.VerifyReply.VerifyResult",
				"golem_task_api.RequestorApp.Verify", "golem_task_api.VerifyReply.result"} {
				assert.Equal(t, []string{api.Path()}, names(files(t, ask(symbolReq(sym)))), sym)
			}

			// Health's file is grpc's.
			got = files(t, ask(symbolReq("grpc.health.v1.HealthCheckResponse")))
			require.Equal(t, []string{healthpb.File_grpc_health_v1_health_proto.Path()}, names(got))
			same(t, healthpb.File_grpc_health_v1_health_proto, got[0])

			// The reflection service describes itself.
			got = files(t, ask(symbolReq("grpc.reflection."+version+".ServerReflection")))
			require.Len(t, got, 1)
			assert.Equal(t, "grpc.reflection."+version, got[0].GetPackage())

			// What is not there is NOT_FOUND, and the stream goes on.
			notFound(t, ask(symbolReq("golem_task_api.NoSuchMessage")))
			notFound(t, ask(symbolReq("")))
			assert.Equal(t, []string{api.Path()}, names(files(t, ask(symbolReq("golem_task_api.VerifyRequest")))))
		})
	}
}

func TestReflectionFilesByName(t *testing.T) {
	h := start(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	envs := taskapipb.File_golem_task_api_envs_proto
	constants := taskapipb.File_golem_task_api_constants_proto
	descriptor := descriptorpb.File_google_protobuf_descriptor_proto
	for version, open := range reflectionVersions(t, h) {
		t.Run(version, func(t *testing.T) {
			ask := open()
			// A file and its import, the first time on the stream.
			got := files(t, ask(fileReq(envs.Path())))
			require.Equal(t, []string{envs.Path(), descriptor.Path()}, names(got))
			same(t, envs, got[0])
			same(t, descriptor, got[1])

			// Then the import is known to the client: only the file.
			assert.Equal(t, []string{envs.Path()}, names(files(t, ask(fileReq(envs.Path())))))

			// A file of extensions only, which no generated type hands out.
			got = files(t, ask(fileReq(constants.Path())))
			require.Equal(t, []string{constants.Path()}, names(got))
			same(t, constants, got[0])

			notFound(t, ask(fileReq("golem_task_api/no_such.proto")))
			notFound(t, ask(fileReq("")))
		})
	}
}

func TestReflectionExtensions(t *testing.T) {
	h := start(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	constants := taskapipb.File_golem_task_api_constants_proto
	descriptor := descriptorpb.File_google_protobuf_descriptor_proto
	for version, open := range reflectionVersions(t, h) {
		t.Run(version, func(t *testing.T) {
			ask := open()
			ext := func(typ string, n int32) *reflectionpb.ServerReflectionRequest {
				return &reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingExtension{
					FileContainingExtension: &reflectionpb.ExtensionRequest{ContainingType: typ, ExtensionNumber: n},
				}}
			}
			got := files(t, ask(ext("google.protobuf.FileOptions", 51000)))
			assert.Equal(t, []string{constants.Path(), descriptor.Path()}, names(got))
			notFound(t, ask(ext("google.protobuf.FileOptions", 1)))
			notFound(t, ask(ext("google.protobuf.NoSuchOptions", 51000)))

			numbers := func(typ string) *reflectionpb.ServerReflectionResponse {
				return ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_AllExtensionNumbersOfType{AllExtensionNumbersOfType: typ}})
			}
			resp := numbers("google.protobuf.FileOptions")
			require.Nil(t, resp.GetErrorResponse())
			assert.Equal(t, "google.protobuf.FileOptions", resp.GetAllExtensionNumbersResponse().GetBaseTypeName())
			assert.Subset(t, resp.GetAllExtensionNumbersResponse().GetExtensionNumber(), []int32{51000, 51001, 51002, 51003, 51100})
			assert.IsNonDecreasing(t, resp.GetAllExtensionNumbersResponse().GetExtensionNumber())

			resp = numbers("golem_task_api.VerifyReply") // a message without extensions
			require.Nil(t, resp.GetErrorResponse())
			assert.Empty(t, resp.GetAllExtensionNumbersResponse().GetExtensionNumber())
			notFound(t, numbers("golem_task_api.NoSuchMessage"))
			notFound(t, numbers("golem_task_api.RequestorApp")) // no message
		})
	}
}

// The files of a service, fetched as a generic client does (the file
// holding the symbol, then any import not received yet), make a complete
// set of descriptors.
func TestReflectionFilesLink(t *testing.T) {
	h := start(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	ask := reflectionVersions(t, h)["v1"]()
	set := &descriptorpb.FileDescriptorSet{}
	have := map[string]bool{}
	add := func(fds []*descriptorpb.FileDescriptorProto) {
		for _, fd := range fds {
			if !have[fd.GetName()] {
				have[fd.GetName()] = true
				set.File = append(set.File, fd)
			}
		}
	}
	add(files(t, ask(symbolReq("golem_task_api.DockerPrerequisites"))))
	add(files(t, ask(fileReq(taskapipb.File_golem_task_api_constants_proto.Path()))))
	for i := 0; i < len(set.File); i++ {
		for _, dep := range set.File[i].GetDependency() {
			if !have[dep] {
				add(files(t, ask(fileReq(dep))))
			}
		}
	}
	reg, err := protodesc.NewFiles(set)
	require.NoError(t, err)
	_, err = reg.FindDescriptorByName("golem_task_api.TASK_INPUTS_DIR")
	require.NoError(t, err)
}

// A stream of no known request kind ends with INVALID_ARGUMENT.
func TestReflectionRefusesEmptyRequest(t *testing.T) {
	h := start(t, rpcserver.Config{}, &fakeService{hasPending: pending(true)})
	stream, err := reflectionpb.NewServerReflectionClient(h.conn).ServerReflectionInfo(callCtx(t))
	require.NoError(t, err)
	require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{}))
	_, err = stream.Recv()
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
}
