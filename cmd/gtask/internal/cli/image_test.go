package cli

import (
	"context"
	"crypto/rand"
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/image"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host/docker"
	"github.com/gtask/gtask/host/docker/dockertest"
	"github.com/gtask/gtask/internal/appbuild"
)

// TestImageBuildBadInput checks that what is wrong with APP or -t exits 2
// with a message naming it, before any engine is asked anything: these
// cases pass where no engine runs.
func TestImageBuildBadInput(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "app.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755))
	average := filepath.Join(repoDir(t), "examples", "average")

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no APP", []string{"image", "build"}, []string{"image build needs APP"}},
		{"two APPs", []string{"image", "build", "a", "b"}, []string{"one APP", `"a"`, `"b"`}},
		{"missing APP", []string{"image", "build", filepath.Join(dir, "nope")}, []string{"APP", "nope", "no such file"}},
		{"APP is a script", []string{"image", "build", script}, []string{"APP " + script, "not an ELF executable", "CGO_ENABLED=0"}},
		{"bad tag", []string{"image", "build", "-t", "Bad:Tag!", average}, []string{"-t", "invalid image reference", `"Bad:Tag!"`, "NAME:TAG"}},
		{"digest tag", []string{"image", "build", "-t", "app@sha256:" + strings.Repeat("0", 64), average}, []string{"-t", "digest"}},
		{"unknown flag", []string{"image", "build", "--push", average}, []string{"unknown flag: --push"}},
	}
	if dyn := dockertest.DynamicExecutable(); dyn != "" {
		tests = append(tests, struct {
			name string
			args []string
			want []string
		}{"APP is dynamic", []string{"image", "build", dyn}, []string{"APP " + dyn, "dynamically linked", "CGO_ENABLED=0"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runMain(t, t.Context(), tt.args...)
			assert.Equal(t, ExitBadInput, code)
			assert.Empty(t, stdout)
			for _, w := range tt.want {
				assert.Contains(t, stderr, w)
			}
		})
	}
}

// TestImageBuildPackage builds examples/average's image through the
// command, checks what the engine holds, and runs the app in it: with no
// arguments it exits 2 with its usage, as it does on the host.
func TestImageBuildPackage(t *testing.T) {
	c := dockertest.Client(t)
	ref := dockertest.ImageRef(t, c)
	average := filepath.Join(repoDir(t), "examples", "average")

	code, stdout, stderr := runMain(t, t.Context(), "image", "build", average, "-t", ref)
	require.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, stderr, "building "+average+" for linux/")
	fields := strings.Fields(stdout)
	require.Len(t, fields, 2, "stdout: %q", stdout)
	assert.Equal(t, ref, fields[0])

	img, err := docker.InspectAppImage(t.Context(), c, ref)
	require.NoError(t, err)
	assert.Equal(t, fields[1], img.ID)
	assert.Equal(t, "average", img.App)
	assert.Equal(t, []string{docker.AppPath}, img.Entrypoint)
	assert.Equal(t, docker.ImageUser, img.User)
	assert.Equal(t, docker.WorkDir, img.WorkingDir)

	exit, out, errOut := dockertest.Run(t, c, ref)
	assert.Equal(t, int64(2), exit, "stdout: %s\nstderr: %s", out, errOut)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "usage: app [--work-dir DIR] [--listen HOST] requestor|provider PORT")

	// The image's binary is the static one, kept apart from the one
	// `gtask run` builds.
	entries, err := filepath.Glob(filepath.Join(appbuild.DefaultCacheDir(), "average-*-linux-*", "average"))
	require.NoError(t, err)
	require.NotEmpty(t, entries)
	f, err := elf.Open(entries[0])
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		assert.NotEqual(t, elf.PT_INTERP, p.Type, "the image's binary is dynamically linked")
	}
}

// TestImageBuildExecutable builds the image of a static executable, with
// the default tag, and runs it.
func TestImageBuildExecutable(t *testing.T) {
	c := dockertest.Client(t)
	arch, err := docker.EngineArch(t.Context(), c)
	require.NoError(t, err)
	name := "gtask-test-" + strings.ToLower(rand.Text()[:12])
	bin := dockertest.Program(t, `package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println("hello from", os.Args[1:], os.Getuid()) }
`, arch, name)

	ref := "gtask-app/" + name + ":latest"
	t.Cleanup(func() {
		_, err := c.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
		assert.NoError(t, err)
	})
	code, stdout, stderr := runMain(t, t.Context(), "image", "build", bin)
	require.Equal(t, ExitOK, code, stderr)
	assert.True(t, strings.HasPrefix(stdout, ref+" sha256:"), stdout)

	exit, got, errOut := dockertest.Run(t, c, ref, "provider", "1")
	assert.Equal(t, int64(0), exit, errOut)
	assert.Equal(t, "hello from [provider 1] 65532\n", got)
}

// TestImageBuildBrokenPackage checks that a package that does not compile
// is bad input with the compiler's message, and builds no image.
func TestImageBuildBrokenPackage(t *testing.T) {
	c := dockertest.Client(t)
	ref := dockertest.ImageRef(t, c)
	broken := filepath.Join(t.TempDir(), "broken")
	require.NoError(t, os.Mkdir(broken, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(broken, "go.mod"), []byte("module broken\n\ngo 1.26\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(broken, "main.go"), []byte("package main\n\nfunc main() { undefined() }\n"), 0o644))

	code, stdout, stderr := runMain(t, t.Context(), "image", "build", broken, "-t", ref)
	assert.Equal(t, ExitBadInput, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, "building APP")
	assert.Contains(t, stderr, "undefined: undefined")
	_, err := docker.InspectAppImage(t.Context(), c, ref)
	assert.ErrorIs(t, err, docker.ErrNoImage)
}
