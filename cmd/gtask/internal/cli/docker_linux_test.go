package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host/docker"
	"github.com/gtask/gtask/host/docker/dockertest"
)

// TestDockerRun runs the average example with --runtime docker through
// Main, APP built into an image on the way: 53.25, as with processes, with
// chaos too, and nothing of either run left in the engine.
func TestDockerRun(t *testing.T) {
	c := dockertest.Client(t)
	root := repoDir(t)
	average := filepath.Join(root, "examples", "average")
	args := []string{"--runtime", "docker", "--params", `{"column": "age"}`,
		"--input", filepath.Join(average, "testdata", "org1.csv"),
		"--input", filepath.Join(average, "testdata", "org2.csv")}
	plain := runApp(t, average, args...)
	chaotic := runApp(t, average, append(args, "--chaos", chaos, "--subtask-timeout", "10s")...)
	for _, r := range []result{plain, chaotic} {
		b, err := os.ReadFile(filepath.Join(r.out, "result.json"))
		require.NoError(t, err)
		assert.JSONEq(t, `{"average": 53.25}`, string(b))
	}
	cc := chaotic.summary.Counts
	assert.Positive(t, cc.InjectedTotal(), "chaos sabotaged nothing: the test proves nothing")
	assert.Equal(t, cc.InjectedTotal(), cc.Recovered)
	cs, ns := leftOf(t, c, os.Getpid())
	assert.Empty(t, cs, "containers left")
	assert.Empty(t, ns, "networks left")
}

// TestDockerBadInput: what is wrong with the docker runtime's flags exits
// 2, naming it, before anything runs.
func TestDockerBadInput(t *testing.T) {
	root := repoDir(t)
	mandelbrot := filepath.Join(root, "examples", "mandelbrot")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"image without docker", []string{"run", "--image", "x:y"}, "add --runtime docker"},
		{"memory without docker", []string{"run", mandelbrot, "--memory", "1g"}, "add --runtime docker"},
		{"APP and image", []string{"run", mandelbrot, "--runtime", "docker", "--image", "x:y"}, "not both"},
		{"bad memory", []string{"run", mandelbrot, "--runtime", "docker", "--memory", "lots"}, `--memory "lots"`},
		{"negative cpus", []string{"run", mandelbrot, "--runtime", "docker", "--cpus", "-1"}, "--cpus"},
		{"reference app", []string{"run", mandelbrot, "--runtime", "docker", "--reference-app"}, "--reference-app"},
		{"bad image ref", []string{"run", "--runtime", "docker", "--image", "Not A Ref"}, "--image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runMain(t, t.Context(), tt.args...)
			assert.Equal(t, ExitBadInput, code)
			assert.Contains(t, stderr, tt.want)
		})
	}
	t.Run("missing image", func(t *testing.T) {
		dockertest.Client(t)
		code, _, stderr := runMain(t, t.Context(), "run", "--runtime", "docker", "--image", "gtask-test/absent:v0")
		assert.Equal(t, ExitBadInput, code)
		assert.Contains(t, stderr, "gtask-test/absent:v0")
		assert.Contains(t, stderr, "gtask image build")
	})
}

// TestDockerInterruptAndGC is the clean-up check through the real
// binary: SIGINT to gtask mid-run leaves nothing in the engine; SIGKILL
// leaves its containers and network, which `gtask gc` then removes.
func TestDockerInterruptAndGC(t *testing.T) {
	c := dockertest.Client(t)
	root := repoDir(t)
	bin := buildGtask(t, root)
	image := dockertest.AppImage(t, c, "github.com/gtask/gtask/examples/mandelbrot")

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			// A render that takes minutes, in parts that take seconds.
			cmd := exec.Command(bin, "run", "--runtime", "docker", "--image", image,
				"--json", "--progress", "lines", "--providers", "2",
				"--out", filepath.Join(t.TempDir(), "out"),
				"--params", `{"width": 4096, "height": 4096, "max_iter": 20000}`)
			g := startGtask(t, cmd)
			g.awaitComputed(t)
			cs, ns := leftOf(t, c, cmd.Process.Pid)
			require.NotEmpty(t, cs, "no container runs mid-task")
			require.Len(t, ns, 1, "one network per run")

			require.NoError(t, cmd.Process.Signal(sig))
			err := g.exit(t, 10*time.Second)
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "exit: %v", err)
			if sig == syscall.SIGINT {
				assert.Equal(t, ExitInterrupted, ee.ExitCode())
				cs, ns := leftOf(t, c, cmd.Process.Pid)
				assert.Empty(t, cs, "containers left after SIGINT")
				assert.Empty(t, ns, "networks left after SIGINT")
				return
			}
			// The engine may still be creating a container gtask asked
			// for as it died: gc comes once the engine has settled.
			cs = settled(t, c, cmd.Process.Pid)
			// Another test's launcher, starting meanwhile, collects dead
			// runs too; what matters is that nothing is left after gc.
			if len(cs) == 0 {
				t.Log("the leftovers were collected before gc ran, by another launcher")
			}
			out, err := exec.Command(bin, "gc").CombinedOutput()
			require.NoError(t, err, "%s", out)
			t.Logf("gtask gc:\n%s", out)
			cs, ns = leftOf(t, c, cmd.Process.Pid)
			assert.Empty(t, cs, "containers left after gc")
			assert.Empty(t, ns, "networks left after gc")
		})
	}
}

// settled returns the containers of the gtask process pid once their list
// has not changed for a second.
func settled(t *testing.T, c *client.Client, pid int) []string {
	t.Helper()
	prev, _ := leftOf(t, c, pid)
	for stable := time.Duration(0); stable < time.Second; {
		time.Sleep(100 * time.Millisecond)
		cs, _ := leftOf(t, c, pid)
		if slices.Equal(cs, prev) {
			stable += 100 * time.Millisecond
		} else {
			stable, prev = 0, cs
		}
	}
	return prev
}

// leftOf lists the containers and networks in the engine that the gtask
// process pid created (by their owner label).
func leftOf(t *testing.T, c *client.Client, pid int) (containers, networks []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mine := func(labels map[string]string) bool {
		parts := strings.Split(labels[docker.LabelOwner], "/")
		return len(parts) == 4 && parts[2] == strconv.Itoa(pid)
	}
	managed := filters.NewArgs(filters.Arg("label", docker.LabelManaged+"=true"))
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: managed})
	require.NoError(t, err)
	for _, ct := range cs {
		if mine(ct.Labels) {
			containers = append(containers, ct.ID)
		}
	}
	ns, err := c.NetworkList(ctx, network.ListOptions{Filters: managed})
	require.NoError(t, err)
	for _, n := range ns {
		if mine(n.Labels) {
			networks = append(networks, n.Name)
		}
	}
	return containers, networks
}
