package docker_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/host/docker"
	"github.com/gtask/gtask/host/docker/dockertest"
	"github.com/gtask/gtask/taskapi"
)

// newLauncher makes a launcher of image, closed when the test ends, and
// checks then that nothing of it is left in the engine.
func newLauncher(t *testing.T, c *client.Client, image string) *docker.Launcher {
	t.Helper()
	l, err := docker.New(t.Context(), docker.Config{Client: c, Image: image})
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, l.Close(context.Background()))
		require.NoError(t, l.Close(context.Background()), "a second Close")
		dockertest.RequireNothingLeft(t, c, l.RunID())
	})
	return l
}

// containersOf lists the containers of run, running or not.
func containersOf(t *testing.T, c *client.Client, run string) []container.Summary {
	t.Helper()
	f := filters.NewArgs(filters.Arg("label", docker.LabelRun+"="+run))
	cs, err := c.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
	require.NoError(t, err)
	return cs
}

// TestSandbox runs a task of an app that tries to get out of its
// container: as provider and as requestor it runs as a non-root uid and
// can write in its work dir and /tmp only.
func TestSandbox(t *testing.T) {
	t.Parallel()
	c := dockertest.Client(t)
	image := dockertest.AppImage(t, c, "github.com/gtask/gtask/host/docker/internal/sandboxapp")
	l := newLauncher(t, c, image)
	res, err := host.Run(t.Context(), host.RunConfig{Launcher: l, WorkDir: t.TempDir(), Providers: 1})
	require.NoError(t, err)
	require.Equal(t, host.Finished, res.Outcome, res.Reason)
	b, err := os.ReadFile(filepath.Join(res.OutputsDir, "report.json"))
	require.NoError(t, err)
	var rep struct {
		Provider, Requestor struct {
			UID, GID int
			Wrote    map[string]string
		}
	}
	require.NoError(t, json.Unmarshal(b, &rep))
	for role, side := range map[string]struct {
		UID, GID int
		Wrote    map[string]string
	}{"provider": rep.Provider, "requestor": rep.Requestor} {
		assert.NotZero(t, side.UID, "%s runs as a non-root uid", role)
		if os.Getuid() != 0 {
			assert.Equal(t, os.Getuid(), side.UID, "%s runs as the host's uid", role)
		}
		for _, p := range []string{"/escaped", "/etc/escaped", "/app.escaped", "/golem/escaped"} {
			assert.Contains(t, side.Wrote[p], "read-only file system", "%s wrote %s", role, p)
		}
		assert.Empty(t, side.Wrote["/tmp/scratch"], "%s can write /tmp", role)
		n := 0
		for p, e := range side.Wrote {
			if strings.HasPrefix(p, taskapi.ContainerWorkDir()+"/") {
				assert.Empty(t, e, "%s can write its work dir (%s)", role, p)
				n++
			}
		}
		assert.Equal(t, 1, n, "%s tried its work dir", role)
	}
	// What the provider wrote in its work dir is there, as the host's
	// user's when the host is not root.
	_, err = os.Stat(filepath.Join(res.OutputsDir, "written-by-requestor"))
	require.NoError(t, err)
	assert.Empty(t, containersOf(t, c, l.RunID()), "every container is removed once the run is over")
}

// TestInstance starts a requestor and a provider container directly:
// each serves at its address, logs to its file, and is gone once stopped
// or killed.
func TestInstance(t *testing.T) {
	t.Parallel()
	c := dockertest.Client(t)
	image := dockertest.AppImage(t, c, "github.com/gtask/gtask/host/docker/internal/sandboxapp")
	l := newLauncher(t, c, image)
	dir := t.TempDir()
	logPath := filepath.Join(dir, "requestor.log")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	req, err := l.Start(ctx, host.RoleRequestor, dir, logPath)
	require.NoError(t, err)
	rc, err := host.DialRequestor(ctx, req.Addr())
	require.NoError(t, err)
	_, err = rc.HasPendingSubtasks(ctx, "no-such-task")
	assert.Error(t, err, "a requestor that does not know the task says so")
	rc.Close()
	require.NoError(t, req.Stop(ctx), "a gtask app stops cleanly on SIGTERM")
	require.NoError(t, req.Stop(ctx), "a second Stop")
	log, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(log), "gtask: serving requestor on ", "stdout is in the log")
	assert.Contains(t, string(log), "level=INFO", "stderr is in the log")

	pdir := t.TempDir()
	prov, err := l.Start(ctx, host.RoleProvider, pdir, filepath.Join(pdir, "provider.log"))
	require.NoError(t, err)
	require.NoError(t, prov.Kill())
	require.NoError(t, prov.Kill(), "a second Kill")
	<-prov.Done()
	assert.Error(t, prov.Wait(), "a killed app did not exit 0")
	assert.Empty(t, containersOf(t, c, l.RunID()), "stopped and killed containers are removed")

	_, err = l.Start(ctx, "observer", dir, logPath)
	assert.ErrorContains(t, err, `unknown role "observer"`)
}

// TestForEnv: the launcher gives docker_cpu and docker_gpu, refuses any
// other environment and an image the engine lacks, by name.
func TestForEnv(t *testing.T) {
	t.Parallel()
	c := dockertest.Client(t)
	image := dockertest.AppImage(t, c, "github.com/gtask/gtask/host/docker/internal/sandboxapp")
	l := newLauncher(t, c, image)
	ctx := t.Context()

	_, err := l.ForEnv(ctx, host.Env{ID: "docker_tpu"})
	assert.ErrorContains(t, err, `unknown environment "docker_tpu"`)
	_, err = l.ForEnv(ctx, host.Env{ID: taskapi.DockerCPUEnvID(), Prerequisites: json.RawMessage(`{"image": "gtask-test/absent", "tag": "v9"}`)})
	assert.ErrorContains(t, err, "gtask-test/absent:v9")
	assert.ErrorIs(t, err, docker.ErrNoImage)
	_, err = l.ForEnv(ctx, host.Env{ID: taskapi.DockerCPUEnvID(), Prerequisites: json.RawMessage(`["image"]`)})
	assert.ErrorContains(t, err, "prerequisites")
	name, tag, _ := strings.Cut(image, ":")
	pl, err := l.ForEnv(ctx, host.Env{ID: taskapi.DockerCPUEnvID(),
		Prerequisites: json.RawMessage(`{"image": "` + name + `", "tag": "` + tag + `"}`), MinMemoryMiB: 3000})
	require.NoError(t, err)
	dir := t.TempDir()
	inst, err := pl.Start(ctx, host.RoleProvider, dir, filepath.Join(dir, "p.log"))
	require.NoError(t, err)
	cs := containersOf(t, c, l.RunID())
	require.Len(t, cs, 1)
	ins, err := c.ContainerInspect(ctx, cs[0].ID)
	require.NoError(t, err)
	assert.Equal(t, int64(3000<<20), ins.HostConfig.Memory, "the task's min_memory_mib raises the limit")
	assert.True(t, ins.HostConfig.ReadonlyRootfs)
	assert.Equal(t, []string{"ALL"}, []string(ins.HostConfig.CapDrop))
	assert.Contains(t, ins.HostConfig.SecurityOpt, "no-new-privileges")
	require.NoError(t, inst.Kill())
}

// TestCollect: leftovers of a gtask process that died are removed by the
// next launcher and by Collect; those of a live one are kept unless all.
func TestCollect(t *testing.T) {
	c := dockertest.Client(t)
	image := dockertest.AppImage(t, c, "github.com/gtask/gtask/host/docker/internal/sandboxapp")
	ctx := t.Context()
	host, _ := os.Hostname()
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("skipping: no /proc boot id to label a dead owner with")
	}
	mk := func(owner string) string {
		r, err := c.ContainerCreate(ctx, &container.Config{Image: image, Labels: map[string]string{
			docker.LabelManaged: "true", docker.LabelRun: "collect-test", docker.LabelOwner: owner,
		}}, nil, nil, nil, "")
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.ContainerRemove(context.Background(), r.ID, container.RemoveOptions{Force: true}) })
		return r.ID
	}
	// pid 1 never runs gtask with this start time; a pid above the
	// kernel's maximum never runs at all.
	dead := mk(host + "/" + strings.TrimSpace(string(boot)) + "/4194305/1")
	reboot := mk(host + "/another-boot/" + "1/1")
	live := mk(host + "/" + strings.TrimSpace(string(boot)) + "/" + itoa(os.Getpid()) + "/" + selfStart(t))
	elsewhere := mk("another-host/x/1/1")

	got, err := docker.Collect(ctx, c, docker.CollectOptions{Run: "collect-test"})
	require.NoError(t, err)
	ids := map[string]bool{}
	for _, ct := range containersOf(t, c, "collect-test") {
		ids[ct.ID] = true
	}
	assert.False(t, ids[dead], "a dead owner's container is removed")
	assert.False(t, ids[reboot], "a container from before a reboot is removed")
	assert.True(t, ids[live], "a live owner's container is kept")
	assert.True(t, ids[elsewhere], "another host's container is kept")
	assert.Len(t, got.Containers, 2)
	assert.Equal(t, 2, got.Kept)

	// All, but limited to this test's run: other tests' live runs share
	// the engine.
	_, err = docker.Collect(ctx, c, docker.CollectOptions{All: true, Run: "collect-test"})
	require.NoError(t, err)
	assert.Empty(t, containersOf(t, c, "collect-test"), "all: everything of gtask goes")
}

func itoa(n int) string { return strconv.Itoa(n) }

// selfStart is this process's start time as /proc gives it.
func selfStart(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/stat")
	require.NoError(t, err)
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return f[19]
}
