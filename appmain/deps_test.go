package appmain_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An app process pays for the init of every package linked into it, on
// every start: a one-shot provider starts once per subtask. protobuf's
// protodesc (and the editions defaults it brings) costs a fraction of a
// millisecond of that, and gtask's server reflection is written not to need
// it; this keeps it out of every app built on appmain.
func TestAppsDoNotLinkProtodesc(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-deps", "github.com/gtask/gtask/appmain").CombinedOutput()
	require.NoError(t, err, "go list:\n%s", out)
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "google.golang.org/protobuf/reflect/protodesc", "google.golang.org/grpc/reflection":
			t.Errorf("appmain links %s", pkg)
		}
	}
}
