package readyline_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/internal/readyline"
)

func TestFormatParseRoundTrip(t *testing.T) {
	for _, tc := range []struct{ role, addr string }{
		{"provider", "127.0.0.1:43121"},
		{"requestor", "[::1]:50005"},
		{"requestor", "0.0.0.0:1"},
	} {
		line := readyline.Format(tc.role, tc.addr)
		role, addr, ok := readyline.Parse(line + "\n")
		require.True(t, ok, line)
		assert.Equal(t, tc.role, role)
		assert.Equal(t, tc.addr, addr)
	}
	assert.Equal(t, "gtask: serving provider on 127.0.0.1:43121", readyline.Format("provider", "127.0.0.1:43121"),
		"the line is a contract with hosts: its text must not drift")
}

func TestParseRefuses(t *testing.T) {
	for _, line := range []string{
		"",
		"gtask: serving provider",
		"gtask: serving  on 127.0.0.1:5",
		"gtask: serving provider on 127.0.0.1",
		"gtask: serving provider on 127.0.0.1:0",
		"gtask: serving provider on 127.0.0.1:65536",
		"gtask: serving provider on 127.0.0.1:http",
		"gtask: serving provider on 127.0.0.1:5 extra",
		"time=... level=INFO msg=serving",
		" gtask: serving provider on 127.0.0.1:5",
	} {
		_, _, ok := readyline.Parse(line)
		assert.False(t, ok, "%q", line)
	}
}

func TestDialable(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:5":     "127.0.0.1:5",
		"[::]:5":        "[::1]:5",
		":5":            "127.0.0.1:5",
		"10.1.2.3:7":    "10.1.2.3:7",
		"localhost:9":   "localhost:9",
		"[fe80::1]:443": "[fe80::1]:443",
	} {
		got, err := readyline.Dialable(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := readyline.Dialable("no-port")
	assert.Error(t, err)
}
