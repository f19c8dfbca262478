package daemon_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"

	"github.com/gtask/gtask/client"
	"github.com/gtask/gtask/host/daemon"
	"github.com/gtask/gtask/host/daemon/daemontest"
	"github.com/gtask/gtask/host/docker"
	"github.com/gtask/gtask/host/docker/dockertest"
)

// TestDockerRuntime runs the average example under the daemon with
// RUNTIME_DOCKER: the app is an image in the engine, its requestor and
// providers containers; 53.25, and no container of the daemon left.
func TestDockerRuntime(t *testing.T) {
	t.Parallel()
	dc := dockertest.Client(t)
	image := dockertest.AppImage(t, dc, "github.com/gtask/gtask/examples/average")
	s := daemontest.Serve(t, daemon.Config{Slots: 2, CacheDir: cacheDir})
	c, err := client.Dial(t.Context(), s.Addr, s.AdminToken)
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	task, err := c.Submit(ctx, client.SubmitRequest{
		App: image, Runtime: hostv1.Runtime_RUNTIME_DOCKER,
		Params: json.RawMessage(`{"column": "age"}`),
		Inputs: []string{orgCSV(t, 1), orgCSV(t, 2)},
	})
	require.NoError(t, err)
	task, err = c.Wait(ctx, task.GetTaskId())
	require.NoError(t, err)
	require.Equal(t, hostv1.TaskState_TASK_STATE_FINISHED, task.GetState(), task.GetReason())
	out := t.TempDir()
	files, err := c.Results(ctx, task.GetTaskId(), out)
	require.NoError(t, err)
	assert.Equal(t, []string{"result.json"}, files)
	got, err := os.ReadFile(filepath.Join(out, "result.json"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"average": 53.25}`, string(got))

	// The run's launcher is closed once the task has ended: none of its
	// containers is left.
	left, err := dc.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", docker.LabelManaged+"=true"))})
	require.NoError(t, err)
	for _, ct := range left {
		assert.NotContains(t, ct.Labels[docker.LabelOwner], "/"+strconv.Itoa(os.Getpid())+"/", "container %s of this daemon left", ct.Names)
	}
}
