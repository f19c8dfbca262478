package appmain

import (
	"errors"
	"flag"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestDefaultListenHost(t *testing.T) {
	assert.Equal(t, "0.0.0.0", defaultListenHost("/golem/work"))
	assert.Equal(t, "127.0.0.1", defaultListenHost("/golem/work/sub"))
	assert.Equal(t, "127.0.0.1", defaultListenHost("/home/me/task"))
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{flag.ErrHelp, 0},
		{fmt.Errorf("%w: unknown role", ErrUsage), 2},
		{errors.New("listen: address in use"), 1},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, exitCode(tt.err), "%v", tt.err)
	}
}
