package taskapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxIDLen is the longest task or subtask id accepted, in bytes. Ids become
// directory names, and 128 bytes stays well inside every file system's limit
// for one path element.
const MaxIDLen = 128

// FieldError says which request field is malformed and why. Servers answer
// it as InvalidArgument.
type FieldError struct {
	Field  string // the proto field name, e.g. "task_id" or "subtask_ids[2]"
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// ValidateID checks an id that will be used as a directory name: it must be
// non-empty, at most MaxIDLen bytes of valid UTF-8, not "." or "..", and hold
// no path separator ('/' or '\'), NUL or other control character.
func ValidateID(field, id string) error {
	bad := func(format string, args ...any) error {
		return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case id == "":
		return bad("must not be empty")
	case len(id) > MaxIDLen:
		return bad("is %d bytes long; at most %d are allowed", len(id), MaxIDLen)
	case id == "." || id == "..":
		return bad("%q is not allowed: ids are used as directory names", id)
	case !utf8.ValidString(id):
		return bad("is not valid UTF-8")
	}
	if i := strings.IndexAny(id, `/\`); i >= 0 {
		return bad("holds a path separator %q at byte %d: ids are used as directory names", id[i], i)
	}
	for i, r := range id {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return bad("holds control character %U at byte %d", r, i)
		}
	}
	return nil
}

// ValidateJSON checks that s is one valid JSON value. An empty s is allowed
// and means "no parameters" (see the proto comments). The error names the
// field, the parse error and its byte offset.
func ValidateJSON(field, s string) error {
	if s == "" {
		return nil
	}
	if json.Valid([]byte(s)) {
		// encoding/json lets invalid UTF-8 through inside strings; JSON text
		// is UTF-8 (RFC 8259) and an app decoding it would get U+FFFD.
		if utf8.ValidString(s) {
			return nil
		}
		i := 0
		for i < len(s) {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			i += size
		}
		return &FieldError{Field: field, Reason: fmt.Sprintf("is not valid JSON: invalid UTF-8 (at byte offset %d)", i)}
	}
	// json.Valid says no more; decoding says where.
	var v any
	err := json.Unmarshal([]byte(s), &v)
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return &FieldError{Field: field, Reason: fmt.Sprintf("is not valid JSON: %v (at byte offset %d)", syn, syn.Offset)}
	}
	if err == nil {
		err = errors.New("trailing data")
	}
	return &FieldError{Field: field, Reason: "is not valid JSON: " + err.Error()}
}
