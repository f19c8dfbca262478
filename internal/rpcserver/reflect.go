package rpcserver

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alphapb "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
)

// reflection is gtask's server reflection service, the protocol grpcurl
// and other generic clients speak to learn a server's services and their
// messages, served as grpc.reflection.v1.ServerReflection and as its
// predecessor grpc.reflection.v1alpha.ServerReflection (clients try v1
// first and fall back on Unimplemented).
//
// It answers with the descriptors this binary was compiled with, as
// registered in protobuf's global registries, and never builds a
// FileDescriptorProto from a protoreflect descriptor the general way
// (protodesc), whose package init costs every app process a fraction of a
// millisecond for a service that is almost never called. A file's
// FileDescriptorProto is instead the serialized one its generated Go code
// embeds, which each generated message and enum hands out (gzipped) through
// its legacy Descriptor or EnumDescriptor method; see fileDescriptorBytes.
type reflection struct {
	// services lists the services the server serves; the grpc.Server's
	// GetServiceInfo.
	services func() map[string]grpc.ServiceInfo
	files    *protoregistry.Files
	types    *protoregistry.Types
}

// registerReflection registers the reflection service, both versions, on
// g, answering from protobuf's global registries.
func registerReflection(g *grpc.Server) {
	r := &reflection{services: g.GetServiceInfo, files: protoregistry.GlobalFiles, types: protoregistry.GlobalTypes}
	reflectionpb.RegisterServerReflectionServer(g, reflectionV1{r})
	reflectionv1alphapb.RegisterServerReflectionServer(g, reflectionV1alpha{r})
}

type reflectionV1 struct{ r *reflection }

func (v reflectionV1) ServerReflectionInfo(stream reflectionpb.ServerReflection_ServerReflectionInfoServer) error {
	return v.r.serve(stream)
}

type reflectionV1alpha struct{ r *reflection }

// ServerReflectionInfo serves v1alpha with the v1 messages: v1 renamed the
// package and changed nothing else, so the two versions' messages are the
// same on the wire, field for field, and the stream's codec encodes and
// decodes either.
func (v reflectionV1alpha) ServerReflectionInfo(stream reflectionv1alphapb.ServerReflection_ServerReflectionInfoServer) error {
	return v.r.serve(stream)
}

// serve answers the requests of one stream, in order, until the client
// closes its side. The files sent on the stream are remembered: a later
// answer carries the file asked for and only those of its imports not sent
// yet, which the client has.
func (r *reflection) serve(stream grpc.ServerStream) error {
	sent := map[string]bool{}
	for {
		req := new(reflectionpb.ServerReflectionRequest)
		if err := stream.RecvMsg(req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		resp, err := r.answer(req, sent)
		if err != nil {
			return err
		}
		if err := stream.SendMsg(resp); err != nil {
			return err
		}
	}
}

// answer answers one request. What cannot be found is answered with an
// error response (NOT_FOUND) on the stream, which goes on; only a request
// of no known kind ends the stream, with INVALID_ARGUMENT.
func (r *reflection) answer(req *reflectionpb.ServerReflectionRequest, sent map[string]bool) (*reflectionpb.ServerReflectionResponse, error) {
	resp := &reflectionpb.ServerReflectionResponse{ValidHost: req.GetHost(), OriginalRequest: req}
	var (
		files [][]byte
		err   error
	)
	switch m := req.GetMessageRequest().(type) {
	case *reflectionpb.ServerReflectionRequest_ListServices:
		var list []*reflectionpb.ServiceResponse
		for name := range r.services() {
			list = append(list, &reflectionpb.ServiceResponse{Name: name})
		}
		slices.SortFunc(list, func(a, b *reflectionpb.ServiceResponse) int { return strings.Compare(a.GetName(), b.GetName()) })
		resp.MessageResponse = &reflectionpb.ServerReflectionResponse_ListServicesResponse{
			ListServicesResponse: &reflectionpb.ListServiceResponse{Service: list},
		}
		return resp, nil
	case *reflectionpb.ServerReflectionRequest_FileByFilename:
		var fd protoreflect.FileDescriptor
		if fd, err = r.files.FindFileByPath(m.FileByFilename); err == nil {
			files, err = r.withImports(fd, sent)
		}
	case *reflectionpb.ServerReflectionRequest_FileContainingSymbol:
		var d protoreflect.Descriptor
		if d, err = r.files.FindDescriptorByName(protoreflect.FullName(m.FileContainingSymbol)); err == nil {
			files, err = r.withImports(d.ParentFile(), sent)
		}
	case *reflectionpb.ServerReflectionRequest_FileContainingExtension:
		var xt protoreflect.ExtensionType
		ext := m.FileContainingExtension
		if xt, err = r.types.FindExtensionByNumber(protoreflect.FullName(ext.GetContainingType()), protoreflect.FieldNumber(ext.GetExtensionNumber())); err == nil {
			files, err = r.withImports(xt.TypeDescriptor().ParentFile(), sent)
		}
	case *reflectionpb.ServerReflectionRequest_AllExtensionNumbersOfType:
		name := protoreflect.FullName(m.AllExtensionNumbersOfType)
		var numbers []int32
		r.types.RangeExtensionsByMessage(name, func(xt protoreflect.ExtensionType) bool {
			numbers = append(numbers, int32(xt.TypeDescriptor().Number()))
			return true
		})
		slices.Sort(numbers)
		if len(numbers) == 0 {
			// A known message without extensions has an empty list; a
			// name that is no message is not found.
			err = r.isMessage(name)
		}
		if err == nil {
			resp.MessageResponse = &reflectionpb.ServerReflectionResponse_AllExtensionNumbersResponse{
				AllExtensionNumbersResponse: &reflectionpb.ExtensionNumberResponse{BaseTypeName: string(name), ExtensionNumber: numbers},
			}
			return resp, nil
		}
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unknown reflection request %T", m)
	}
	if err != nil {
		resp.MessageResponse = &reflectionpb.ServerReflectionResponse_ErrorResponse{
			ErrorResponse: &reflectionpb.ErrorResponse{ErrorCode: int32(codes.NotFound), ErrorMessage: err.Error()},
		}
		return resp, nil
	}
	resp.MessageResponse = &reflectionpb.ServerReflectionResponse_FileDescriptorResponse{
		FileDescriptorResponse: &reflectionpb.FileDescriptorResponse{FileDescriptorProto: files},
	}
	return resp, nil
}

// isMessage returns nil when name is a message the server knows, else
// why not.
func (r *reflection) isMessage(name protoreflect.FullName) error {
	d, err := r.files.FindDescriptorByName(name)
	if err != nil {
		return err
	}
	if _, ok := d.(protoreflect.MessageDescriptor); !ok {
		return fmt.Errorf("%s is not a message", name)
	}
	return nil
}

// withImports returns the serialized FileDescriptorProto of fd, then those
// of its imports, transitively, that were not sent on the stream yet, and
// marks them all sent. fd itself is always included: it is the answer.
// Imports the binary does not have (placeholders) are left out, as the
// client cannot be given what is not there.
func (r *reflection) withImports(fd protoreflect.FileDescriptor, sent map[string]bool) ([][]byte, error) {
	if fd.IsPlaceholder() {
		return nil, fmt.Errorf("file %q is not known", fd.Path())
	}
	var out [][]byte
	queue := []protoreflect.FileDescriptor{fd}
	seen := map[string]bool{fd.Path(): true} // queued in this answer
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if f.IsPlaceholder() {
			continue
		}
		if len(out) == 0 || !sent[f.Path()] {
			b, err := r.fileDescriptorBytes(f)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
			sent[f.Path()] = true
		}
		imports := f.Imports()
		for i := range imports.Len() {
			imp := imports.Get(i).FileDescriptor
			if !seen[imp.Path()] {
				seen[imp.Path()] = true
				queue = append(queue, imp)
			}
		}
	}
	return out, nil
}

// legacyDescriptor is the method every generated message has, and
// legacyEnumDescriptor every generated enum: both return the gzipped
// FileDescriptorProto of the file that declares the type, as protoc wrote
// it into the generated code, and the type's path in it.
type (
	legacyDescriptor     interface{ Descriptor() ([]byte, []int) }
	legacyEnumDescriptor interface{ EnumDescriptor() ([]byte, []int) }
)

// fileDescriptorBytes returns fd's serialized FileDescriptorProto: the one
// its generated code embeds, reached through any message or enum of the
// file that has a Go type, or, for a file that declares neither (only
// extensions or services), one built here from fd.
func (r *reflection) fileDescriptorBytes(fd protoreflect.FileDescriptor) ([]byte, error) {
	if gz := r.embedded(fd); gz != nil {
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return nil, fmt.Errorf("file %q: the descriptor of its generated code: %w", fd.Path(), err)
		}
		b, err := io.ReadAll(zr)
		if err != nil {
			return nil, fmt.Errorf("file %q: the descriptor of its generated code: %w", fd.Path(), err)
		}
		return b, nil
	}
	p, err := buildFileDescriptorProto(fd)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(p)
}

// embedded returns the gzipped FileDescriptorProto of fd's generated code,
// nil when none of its top-level messages and enums has a Go type that
// hands it out.
func (r *reflection) embedded(fd protoreflect.FileDescriptor) []byte {
	ours := func(d protoreflect.Descriptor) bool { return d.ParentFile().Path() == fd.Path() }
	msgs := fd.Messages()
	for i := range msgs.Len() {
		mt, err := r.types.FindMessageByName(msgs.Get(i).FullName())
		if err != nil || !ours(mt.Descriptor()) {
			continue
		}
		if l, ok := mt.Zero().Interface().(legacyDescriptor); ok {
			if gz, _ := l.Descriptor(); len(gz) > 0 {
				return gz
			}
		}
	}
	enums := fd.Enums()
	for i := range enums.Len() {
		et, err := r.types.FindEnumByName(enums.Get(i).FullName())
		if err != nil || !ours(et.Descriptor()) {
			continue
		}
		if l, ok := et.New(0).(legacyEnumDescriptor); ok {
			if gz, _ := l.EnumDescriptor(); len(gz) > 0 {
				return gz
			}
		}
	}
	return nil
}

// buildFileDescriptorProto builds the FileDescriptorProto of a file that
// declares no message and no enum: its name, package, syntax, imports,
// options, extensions and services. Anything it would have to leave out
// (a message, an enum, an extension's default value) is an error instead.
func buildFileDescriptorProto(fd protoreflect.FileDescriptor) (*descriptorpb.FileDescriptorProto, error) {
	if fd.Messages().Len() > 0 || fd.Enums().Len() > 0 {
		return nil, fmt.Errorf("file %q: no generated Go type hands out its descriptor", fd.Path())
	}
	p := &descriptorpb.FileDescriptorProto{Name: proto.String(fd.Path())}
	if fd.Package() != "" {
		p.Package = proto.String(string(fd.Package()))
	}
	switch fd.Syntax() {
	case protoreflect.Proto3:
		p.Syntax = proto.String("proto3")
	case protoreflect.Editions:
		p.Syntax = proto.String("editions")
		if e, ok := fd.(interface{ Edition() int32 }); ok {
			p.Edition = descriptorpb.Edition(e.Edition()).Enum()
		}
	}
	imports := fd.Imports()
	for i := range imports.Len() {
		imp := imports.Get(i)
		if imp.IsPublic {
			p.PublicDependency = append(p.PublicDependency, int32(i))
		}
		if imp.IsWeak {
			p.WeakDependency = append(p.WeakDependency, int32(i))
		}
		p.Dependency = append(p.Dependency, imp.Path())
	}
	if o, ok := options[*descriptorpb.FileOptions](fd); ok {
		p.Options = o
	}
	exts := fd.Extensions()
	for i := range exts.Len() {
		x, err := buildExtension(exts.Get(i))
		if err != nil {
			return nil, fmt.Errorf("file %q: %w", fd.Path(), err)
		}
		p.Extension = append(p.Extension, x)
	}
	svcs := fd.Services()
	for i := range svcs.Len() {
		sd := svcs.Get(i)
		s := &descriptorpb.ServiceDescriptorProto{Name: proto.String(string(sd.Name()))}
		if o, ok := options[*descriptorpb.ServiceOptions](sd); ok {
			s.Options = o
		}
		methods := sd.Methods()
		for j := range methods.Len() {
			md := methods.Get(j)
			m := &descriptorpb.MethodDescriptorProto{
				Name:       proto.String(string(md.Name())),
				InputType:  proto.String("." + string(md.Input().FullName())),
				OutputType: proto.String("." + string(md.Output().FullName())),
			}
			if md.IsStreamingClient() {
				m.ClientStreaming = proto.Bool(true)
			}
			if md.IsStreamingServer() {
				m.ServerStreaming = proto.Bool(true)
			}
			if o, ok := options[*descriptorpb.MethodOptions](md); ok {
				m.Options = o
			}
			s.Method = append(s.Method, m)
		}
		p.Service = append(p.Service, s)
	}
	return p, nil
}

// buildExtension builds the FieldDescriptorProto of a file-level extension.
func buildExtension(xd protoreflect.ExtensionDescriptor) (*descriptorpb.FieldDescriptorProto, error) {
	if xd.HasDefault() {
		return nil, fmt.Errorf("extension %s has a default value, which gtask does not describe", xd.FullName())
	}
	// protoreflect's kinds and cardinalities have the numbers of
	// descriptor.proto's types and labels.
	f := &descriptorpb.FieldDescriptorProto{
		Name:     proto.String(string(xd.Name())),
		Number:   proto.Int32(int32(xd.Number())),
		Label:    descriptorpb.FieldDescriptorProto_Label(xd.Cardinality()).Enum(),
		Type:     descriptorpb.FieldDescriptorProto_Type(xd.Kind()).Enum(),
		Extendee: proto.String("." + string(xd.ContainingMessage().FullName())),
	}
	switch xd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		f.TypeName = proto.String("." + string(xd.Message().FullName()))
	case protoreflect.EnumKind:
		f.TypeName = proto.String("." + string(xd.Enum().FullName()))
	}
	if j, ok := xd.(interface{ HasJSONName() bool }); ok && j.HasJSONName() {
		// An extension's JSONName is its bracketed full name; what protoc
		// records is the name in camel case, as for any field.
		f.JsonName = proto.String(camelCase(string(xd.Name())))
	}
	if xd.HasOptionalKeyword() && xd.ParentFile().Syntax() == protoreflect.Proto3 {
		f.Proto3Optional = proto.Bool(true)
	}
	if o, ok := options[*descriptorpb.FieldOptions](xd); ok {
		f.Options = o
	}
	return f, nil
}

// camelCase is protoc's JSON name of a field named name: underscores
// dropped, the letter after each one in upper case.
func camelCase(name string) string {
	var b strings.Builder
	upper := false
	for _, c := range []byte(name) {
		switch {
		case c == '_':
			upper = true
		case upper && 'a' <= c && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
			upper = false
		default:
			b.WriteByte(c)
			upper = false
		}
	}
	return b.String()
}

// options returns a copy of d's options, and whether it has any.
func options[T proto.Message](d protoreflect.Descriptor) (T, bool) {
	var zero T
	o, ok := d.Options().(T)
	if !ok || !o.ProtoReflect().IsValid() {
		return zero, false
	}
	return proto.Clone(o).(T), true
}
