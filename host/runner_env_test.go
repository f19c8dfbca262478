package host_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/sdk"
	"github.com/gtask/gtask/taskapi"
)

// envLauncher is a host.EnvLauncher over a trackLauncher: it records the
// environment the Runner gives it and either refuses it or starts the
// providers through a launcher of its own, counting them.
type envLauncher struct {
	*trackLauncher
	refuse error

	env       []host.Env // ForEnv's arguments; the Runner's goroutine only
	providers *trackLauncher
}

func (l *envLauncher) ForEnv(_ context.Context, env host.Env) (host.Launcher, error) {
	l.env = append(l.env, env)
	if l.refuse != nil {
		return nil, l.refuse
	}
	return l.providers, nil
}

// TestRunEnvLauncher: an EnvLauncher is asked once, with what CreateTask
// answered, and every provider is started by the launcher it gives.
func TestRunEnvLauncher(t *testing.T) {
	app := &sqApp{}
	opts := []sdk.Option{sdk.WithEnvironment(taskapi.DockerCPUEnvID(), map[string]string{"image": "sq", "tag": "v1"}), sdk.WithMinMemory(300)}
	inner := sqLauncher(app, opts...)
	l := &envLauncher{trackLauncher: inner, providers: track(inner.inner)}
	evs := &eventLog{}
	res, err := runTask(t, inner, config(t, l, evs, 3), evs)
	require.NoError(t, err)
	require.Equal(t, host.Finished, res.Outcome, res.Reason)
	require.Len(t, l.env, 1)
	assert.Equal(t, taskapi.DockerCPUEnvID(), l.env[0].ID)
	assert.JSONEq(t, `{"image": "sq", "tag": "v1"}`, string(l.env[0].Prerequisites))
	assert.InDelta(t, 300, l.env[0].MinMemoryMiB, 0)
	assert.Empty(t, inner.providers, "no provider started by the requestor's launcher")
	assert.Len(t, l.providers.providers, 3, "every provider started by ForEnv's launcher")
	l.providers.requireAllGone(t)
}

// TestRunEnvRefused: an environment the launcher cannot give fails the
// task, saying which and why, before any provider starts; the requestor is
// told (AbortTask) and stopped.
func TestRunEnvRefused(t *testing.T) {
	app := &sqApp{}
	inner := sqLauncher(app, sdk.WithEnvironment("docker_tpu", nil))
	l := &envLauncher{trackLauncher: inner, refuse: errors.New("no TPUs here")}
	evs := &eventLog{}
	res, err := runTask(t, inner, config(t, l, evs, 2), evs)
	require.NoError(t, err, "a task failed for its environment is no host error")
	assert.Equal(t, host.Failed, res.Outcome)
	assert.Equal(t, `the app asks for environment "docker_tpu", which this launcher cannot give: no TPUs here`, res.Reason)
	assert.Empty(t, inner.providers)
	assert.Empty(t, evs.ofKind(host.EventSubtaskAssigned))
	st, err := sdk.ReadStatus(res.TaskDir)
	require.NoError(t, err)
	assert.Equal(t, "aborted", st.State, "the requestor was told the task is over")
}
