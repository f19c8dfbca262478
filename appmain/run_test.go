package appmain_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/appmain"
	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/internal/readyline"
	"github.com/gtask/gtask/provider"
	"github.com/gtask/gtask/requestor"
)

// TestRunInProcess drives Run as a library: no process, no exit, the end of
// ctx is a normal stop.
func TestRunInProcess(t *testing.T) {
	dir := t.TempDir()
	roles := appmain.Roles{
		Requestor: func(workDir string, _ *slog.Logger) (requestor.Handler, error) {
			assert.Equal(t, dir, workDir)
			return testRequestor{workDir: workDir}, nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var stderr bytes.Buffer
	ran := make(chan error, 1)
	go func() {
		ran <- appmain.Run(ctx, []string{"app", "--work-dir", dir, "requestor", "0"}, roles, outW, &stderr)
		outW.Close()
	}()

	sc := bufio.NewScanner(outR)
	require.True(t, sc.Scan(), "a readiness line")
	role, addr, ok := readyline.Parse(sc.Text())
	require.True(t, ok, "%q", sc.Text())
	assert.Equal(t, "requestor", role)

	client := pb.NewRequestorAppClient(dial(t, addr))
	_, err := client.HasPendingSubtasks(callCtx(t), &pb.HasPendingSubtasksRequest{TaskId: "t"})
	require.NoError(t, err)

	cancel()
	select {
	case err := <-ran:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx was cancelled")
	}
	assert.False(t, sc.Scan(), "nothing after the readiness line: %q", sc.Text())
}

func TestRunRoleTheAppLacks(t *testing.T) {
	roles := appmain.Roles{Provider: func(string, *slog.Logger) (provider.Handler, error) { return nil, nil }}
	var stdout, stderr bytes.Buffer
	err := appmain.Run(context.Background(), []string{"app", "requestor", "0"}, roles, &stdout, &stderr)
	require.ErrorIs(t, err, appmain.ErrUsage)
	assert.Contains(t, stderr.String(), "does not serve the requestor role")
	assert.Empty(t, stdout.String())
}

func TestRunNilHandler(t *testing.T) {
	roles := appmain.Roles{Provider: func(string, *slog.Logger) (provider.Handler, error) { return nil, nil }}
	var stdout, stderr bytes.Buffer
	err := appmain.Run(context.Background(), []string{"app", "--work-dir", t.TempDir(), "provider", "0"}, roles, &stdout, &stderr)
	require.ErrorContains(t, err, "no Handler")
	assert.NotErrorIs(t, err, appmain.ErrUsage)
	assert.Empty(t, stdout.String())
}
