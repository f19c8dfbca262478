package rpcserver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// The FileDescriptorProto built for a file without messages or enums is
// the one the file was made from: services, extensions of every shape,
// options and imports, in proto2, proto3 and editions.
func TestBuildFileDescriptorProto(t *testing.T) {
	files := []string{
		`name: "svc.proto" package: "gtask.test" syntax: "proto3"
		 dependency: "google/protobuf/descriptor.proto"
		 options: { go_package: "example.com/svc" deprecated: true }
		 service: {
		   name: "Svc" options: { deprecated: true }
		   method: { name: "Unary" input_type: ".google.protobuf.FileOptions" output_type: ".google.protobuf.FieldOptions" }
		   method: { name: "Both" input_type: ".google.protobuf.FileOptions" output_type: ".google.protobuf.FileOptions"
		             client_streaming: true server_streaming: true options: { idempotency_level: NO_SIDE_EFFECTS } }
		   method: { name: "Down" input_type: ".google.protobuf.FileOptions" output_type: ".google.protobuf.FileOptions" server_streaming: true }
		 }`,
		`name: "ext2.proto" package: "gtask.test"
		 dependency: "google/protobuf/descriptor.proto"
		 extension: { name: "tags" number: 50001 label: LABEL_REPEATED type: TYPE_STRING extendee: ".google.protobuf.FieldOptions" json_name: "tags" }
		 extension: { name: "rule_set" number: 50002 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".google.protobuf.FileOptions"
		              extendee: ".google.protobuf.MessageOptions" json_name: "ruleSet" options: { deprecated: true } }
		 extension: { name: "level" number: 50003 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".google.protobuf.FieldDescriptorProto.Type"
		              extendee: ".google.protobuf.MessageOptions" json_name: "level" }`,
		`name: "ext3.proto" package: "gtask.test" syntax: "proto3"
		 dependency: "google/protobuf/descriptor.proto"
		 extension: { name: "NAME_2_x" number: 50010 label: LABEL_OPTIONAL type: TYPE_INT64 extendee: ".google.protobuf.EnumOptions" json_name: "NAME2X" }`,
		`name: "ed.proto" package: "gtask.test" syntax: "editions" edition: EDITION_2023
		 dependency: "google/protobuf/descriptor.proto"
		 options: { features: { field_presence: IMPLICIT } }
		 extension: { name: "flag" number: 50020 label: LABEL_OPTIONAL type: TYPE_BOOL extendee: ".google.protobuf.ServiceOptions" json_name: "flag" }`,
	}
	for _, text := range files {
		want := new(descriptorpb.FileDescriptorProto)
		require.NoError(t, prototext.Unmarshal([]byte(text), want))
		t.Run(want.GetName(), func(t *testing.T) {
			fd, err := protodesc.NewFile(want, protoregistry.GlobalFiles)
			require.NoError(t, err)
			got, err := buildFileDescriptorProto(fd)
			require.NoError(t, err)
			assert.True(t, proto.Equal(want, got), "want %v\ngot  %v", want, got)
		})
	}
}

// A file with messages but no generated Go types for them (one made at run
// time) is not described half.
func TestBuildFileDescriptorProtoRefusesMessages(t *testing.T) {
	p := &descriptorpb.FileDescriptorProto{
		Name: proto.String("dyn.proto"), Package: proto.String("gtask.test"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("M")}},
	}
	fd, err := protodesc.NewFile(p, protoregistry.GlobalFiles)
	require.NoError(t, err)
	r := &reflection{files: protoregistry.GlobalFiles, types: protoregistry.GlobalTypes}
	assert.Nil(t, r.embedded(fd))
	_, err = r.fileDescriptorBytes(fd)
	assert.ErrorContains(t, err, "dyn.proto")
}

func TestCamelCase(t *testing.T) {
	for in, want := range map[string]string{
		"":                "",
		"foo":             "foo",
		"foo_bar":         "fooBar",
		"TASK_INPUTS_DIR": "TASKINPUTSDIR",
		"a__b":            "aB",
		"x_1y":            "x1y",
		"trailing_":       "trailing",
		"_lead":           "Lead",
	} {
		assert.Equal(t, want, camelCase(in), in)
	}
}
