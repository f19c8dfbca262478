package appmain_test

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// grpcurl, pinned as a tool in go.mod, lists, describes and calls a real
// requestor process through server reflection alone, as a person debugging
// an app would.
func TestGrpcurlThroughReflection(t *testing.T) {
	c := startChild(t, "app", "", "--work-dir", t.TempDir(), "requestor", "0")
	_, addr := c.ready(t)

	grpcurl := func(args ...string) string {
		t.Helper()
		// The first call builds grpcurl (cached afterwards), hence the long
		// bound.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "grpcurl", "-plaintext"}, args...)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "grpcurl %v:\n%s", args, out)
		return string(out)
	}

	services := strings.Fields(grpcurl(addr, "list"))
	assert.Contains(t, services, "golem_task_api.RequestorApp")
	assert.Contains(t, services, "grpc.health.v1.Health")

	methods := strings.Fields(grpcurl(addr, "list", "golem_task_api.RequestorApp"))
	for _, rpc := range []string{"CreateTask", "NextSubtask", "Verify", "DiscardSubtasks", "RunBenchmark",
		"HasPendingSubtasks", "AbortTask", "AbortSubtask", "Shutdown"} {
		assert.Contains(t, methods, "golem_task_api.RequestorApp."+rpc)
	}

	desc := grpcurl(addr, "describe", "golem_task_api.VerifyReply")
	assert.Contains(t, desc, "AWAITING_DATA = 2;")

	out := grpcurl("-d", `{"task_id": "t1"}`, addr, "golem_task_api.RequestorApp/HasPendingSubtasks")
	assert.JSONEq(t, `{"hasPendingSubtasks": true}`, out)

	out = grpcurl(addr, "grpc.health.v1.Health/Check")
	assert.JSONEq(t, `{"status": "SERVING"}`, out)

	require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	require.Equal(t, 0, c.wait(t, 10*time.Second))
}
