package rpcserver

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the codec lenientCodec wraps
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// lenientCodec is grpc's proto codec, except that a request whose top-level
// string fields hold invalid UTF-8 is still decoded. protobuf-go refuses such
// a request, and grpc then answers INTERNAL before any of our code runs; the
// contract (golem_task_api.proto) promises INVALID_ARGUMENT naming the field,
// which only the server's own validation can say. Replies are marshalled
// strictly, as before.
type lenientCodec struct{}

func (lenientCodec) base() encoding.CodecV2 { return encoding.GetCodecV2("proto") }

func (c lenientCodec) Name() string { return c.base().Name() }

func (c lenientCodec) Marshal(v any) (mem.BufferSlice, error) { return c.base().Marshal(v) }

func (c lenientCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.base().Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m := messageOf(v)
	if m == nil {
		return err
	}
	// Decoding again is the rare path: only malformed requests take it.
	proto.Reset(m)
	if lerr := unmarshalLenient(data.Materialize(), m.ProtoReflect()); lerr != nil {
		proto.Reset(m)
		return err // the strict error says more
	}
	return nil
}

func messageOf(v any) proto.Message {
	switch v := v.(type) {
	case protoadapt.MessageV2:
		return v
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	}
	return nil
}

// unmarshalLenient decodes b into m field by field: top-level string fields
// are set from their raw bytes, whatever they hold, and every other field is
// decoded strictly. Strings nested in sub-messages are still checked; no
// Task API request has any.
func unmarshalLenient(b []byte, m protoreflect.Message) error {
	fields := m.Descriptor().Fields()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		vn := protowire.ConsumeFieldValue(num, typ, b[n:])
		if vn < 0 {
			return protowire.ParseError(vn)
		}
		fd := fields.ByNumber(num)
		if fd != nil && fd.Kind() == protoreflect.StringKind && typ == protowire.BytesType && !fd.IsMap() {
			raw, _ := protowire.ConsumeBytes(b[n:])
			v := protoreflect.ValueOfString(string(raw))
			if fd.IsList() {
				m.Mutable(fd).List().Append(v)
			} else {
				m.Set(fd, v)
			}
		} else if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(b[:n+vn], m.Interface()); err != nil {
			return fmt.Errorf("field %d: %w", num, err)
		}
		b = b[n+vn:]
	}
	return nil
}
