package appmain

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestCatchSignals: only a provider that is not process 1 keeps the
// default dispositions.
func TestCatchSignals(t *testing.T) {
	tests := []struct {
		args []string
		pid  int
		want bool
	}{
		{[]string{"app", "requestor", "0"}, 4242, true},
		{[]string{"app", "--work-dir", "/w", "requestor", "0"}, 4242, true},
		{[]string{"app", "provider", "0"}, 4242, false},
		{[]string{"app", "--work-dir", "/w", "--listen", "0.0.0.0", "provider", "4000"}, 4242, false},
		{[]string{"app", "provider", "4000"}, 1, true}, // in a container
		{[]string{"app"}, 4242, true},                  // a usage error, reported by Run
		{[]string{"app", "-h"}, 4242, true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, catchSignals(tt.args, tt.pid), "%q as pid %d", tt.args, tt.pid)
	}
}
