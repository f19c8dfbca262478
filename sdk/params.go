package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
)

// validator is what a parameter type implements to check itself after
// decoding (on T or *T). Its error is answered as codes.InvalidArgument.
type validator interface{ Validate() error }

// defaulter is what a parameter type implements (on *T) to fill in its
// defaults before decoding: fields the JSON leaves out keep them, and empty
// params give the defaults whole. A default cannot be told from a zero value
// after decoding, so it has to come first.
type defaulter interface{ SetDefaults() }

// decodeParams decodes raw, the JSON of request field field, into a T:
// unknown fields are refused, empty raw gives the zero T, and errors name
// the field at fault and wrap ErrInvalidParams. *T's SetDefaults, if any,
// runs first; with check, T's Validate runs after.
func decodeParams[T any](field string, raw json.RawMessage, check bool) (T, error) {
	var v T
	if d, ok := any(&v).(defaulter); ok {
		d.SetDefaults()
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			return v, paramError(field, err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return v, fmt.Errorf("%w: %s: trailing data after the JSON value", ErrInvalidParams, field)
		}
	}
	if check {
		if err := validate(&v); err != nil {
			return v, fmt.Errorf("%w: %s: %w", ErrInvalidParams, field, err)
		}
	}
	return v, nil
}

func validate[T any](v *T) error {
	if x, ok := any(v).(validator); ok {
		return x.Validate()
	}
	if x, ok := any(*v).(validator); ok {
		// T is a pointer or interface type holding a Validate method; a
		// nil one (from empty params) has nothing to check.
		if rv := reflect.ValueOf(*v); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return nil
		}
		return x.Validate()
	}
	return nil
}

// paramError says which parameter is wrong, in words a person submitting
// the task understands.
func paramError(field string, err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te) && te.Field != "":
		return fmt.Errorf("%w: %s: field %q: got a JSON %s, want %v", ErrInvalidParams, field, te.Field, te.Value, te.Type)
	case errors.As(err, &te):
		return fmt.Errorf("%w: %s: got a JSON %s, want %v", ErrInvalidParams, field, te.Value, te.Type)
	case errors.As(err, &se):
		return fmt.Errorf("%w: %s: invalid JSON: %v (at byte offset %d)", ErrInvalidParams, field, se, se.Offset)
	}
	// DisallowUnknownFields has no error type of its own.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("%w: %s: unknown field %s", ErrInvalidParams, field, name)
	}
	return fmt.Errorf("%w: %s: %w", ErrInvalidParams, field, err)
}

// wireParams is the subtask_params_json the SDK sends for a part:
// {"part": N, "params": <the part's params>}, so that the provider knows
// which part it computes.
func wireParams(part int, params json.RawMessage) json.RawMessage {
	if len(params) == 0 {
		params = json.RawMessage("null")
	}
	b := make([]byte, 0, len(params)+32)
	b = append(b, `{"part":`...)
	b = strconv.AppendInt(b, int64(part), 10)
	b = append(b, `,"params":`...)
	b = append(b, params...)
	return append(b, '}')
}

// decodeSubtask reads wireParams' JSON back. Empty params are part 0 with
// the zero S.
func decodeSubtask[S any](raw json.RawMessage) (int, S, error) {
	const field = "subtask_params_json"
	var zero S
	if len(bytes.TrimSpace(raw)) == 0 {
		s, err := decodeParams[S](field, nil, true)
		return 0, s, err
	}
	var w struct {
		Part   *int            `json:"part"`
		Params json.RawMessage `json:"params"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return 0, zero, paramError(field, err)
	}
	if w.Part == nil {
		return 0, zero, fmt.Errorf(`%w: %s: no "part": want {"part": N, "params": ...}`, ErrInvalidParams, field)
	}
	if *w.Part < 0 {
		return 0, zero, fmt.Errorf(`%w: %s: "part" is %d; it must not be negative`, ErrInvalidParams, field, *w.Part)
	}
	s, err := decodeParams[S](field+".params", w.Params, true)
	return *w.Part, s, err
}
