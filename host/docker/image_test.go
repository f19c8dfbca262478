package docker_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host/docker"
	"github.com/gtask/gtask/host/docker/dockertest"
)

// probeSource is a program that shows, from inside a container, what the
// image gives an app: who it runs as, where, with what arguments, and
// whether it can write its work dir and /tmp.
const probeSource = `package main

import (
	"fmt"
	"os"
)

func main() {
	wd, _ := os.Getwd()
	fmt.Printf("uid=%d gid=%d wd=%s home=%s args=%q\n", os.Getuid(), os.Getgid(), wd, os.Getenv("HOME"), os.Args[1:])
	for _, p := range []string{"probe", "/tmp/probe"} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "cannot write:", err)
			os.Exit(3)
		}
	}
	fmt.Fprintln(os.Stderr, "wrote probe and /tmp/probe")
}
`

// buildProbe builds probeSource for linux/goarch, statically, and returns
// the binary's path.
func buildProbe(t *testing.T, goarch string) string {
	t.Helper()
	return dockertest.Program(t, probeSource, goarch, "probe")
}

// dynamicBinary is an executable of this machine that names a program
// interpreter, or the test is skipped.
func dynamicBinary(t *testing.T) string {
	t.Helper()
	p := dockertest.DynamicExecutable()
	if p == "" {
		t.Skip("skipping: no dynamically linked executable on this machine")
	}
	return p
}

// engineArch is the engine's architecture.
func engineArch(t *testing.T, c *client.Client) string {
	t.Helper()
	arch, err := docker.EngineArch(context.Background(), c)
	require.NoError(t, err)
	return arch
}

// TestCheckBinary checks that only a static Linux executable of the right
// architecture passes, and that every refusal says what to do.
func TestCheckBinary(t *testing.T) {
	t.Parallel()
	arch := runtime.GOARCH
	other := "arm64"
	if arch == "arm64" {
		other = "amd64"
	}
	static := buildProbe(t, arch)
	foreign := buildProbe(t, other)
	text := filepath.Join(t.TempDir(), "app.sh")
	require.NoError(t, os.WriteFile(text, []byte("#!/bin/sh\necho hi\n"), 0o755))

	tests := []struct {
		name, path, arch string
		want             []string // nil: accepted
	}{
		{"static", static, arch, nil},
		{"static, any arch", static, "", nil},
		{"other arch", foreign, arch, []string{"built for " + other, "GOARCH=" + arch}},
		{"script", text, arch, []string{"app.sh", "not an ELF executable", "GOOS=linux CGO_ENABLED=0"}},
		{"missing", filepath.Join(t.TempDir(), "nope"), arch, []string{"nope", "no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := docker.CheckBinary(tt.path, tt.arch)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, docker.ErrBadBinary)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	t.Run("dynamic", func(t *testing.T) {
		dyn := dynamicBinary(t)
		err := docker.CheckBinary(dyn, "")
		require.ErrorIs(t, err, docker.ErrBadBinary)
		assert.Contains(t, err.Error(), dyn)
		assert.Contains(t, err.Error(), "dynamically linked")
		assert.Contains(t, err.Error(), "CGO_ENABLED=0")
	})
}

func TestNormalizeRef(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ref, want string
		bad       bool
	}{
		{ref: "gtask-app/average", want: "gtask-app/average:latest"},
		{ref: "gtask-app/average:v1", want: "gtask-app/average:v1"},
		{ref: "docker.io/library/app:1", want: "app:1"},
		{ref: "localhost:5000/app", want: "localhost:5000/app:latest"},
		{ref: "", bad: true},
		{ref: "UPPER", bad: true},
		{ref: "app@sha256:" + strings.Repeat("a", 64), bad: true},
		{ref: "app:bad tag", bad: true},
	}
	for _, tt := range tests {
		got, err := docker.NormalizeRef(tt.ref)
		if tt.bad {
			assert.ErrorIs(t, err, docker.ErrBadRef, "%q", tt.ref)
			continue
		}
		if assert.NoError(t, err, "%q", tt.ref) {
			assert.Equal(t, tt.want, got)
		}
	}
}

func TestDefaultRef(t *testing.T) {
	t.Parallel()
	for app, want := range map[string]string{
		"average":   "gtask-app/average:latest",
		"My App":    "gtask-app/my-app:latest",
		"_x.":       "gtask-app/x:latest",
		"???":       "gtask-app/app:latest",
		"mandel_v2": "gtask-app/mandel_v2:latest",
	} {
		got := docker.DefaultRef(app)
		assert.Equal(t, want, got, "%q", app)
		_, err := docker.NormalizeRef(got)
		assert.NoError(t, err, "%q", got)
	}
}

// TestBuildImage builds an image of a probe program, checks what the
// engine says of it, runs it, and builds it again: the same binary makes
// the same image.
func TestBuildImage(t *testing.T) {
	t.Parallel()
	c := dockertest.Client(t)
	ctx := context.Background()
	arch := engineArch(t, c)
	bin := buildProbe(t, arch)
	ref := dockertest.ImageRef(t, c)

	img, err := docker.BuildImage(ctx, c, docker.ImageSpec{Bin: bin, Ref: ref, App: "probe", Labels: map[string]string{"org.example.team": "gtask"}})
	require.NoError(t, err)
	assert.Equal(t, ref, img.Ref)
	assert.True(t, strings.HasPrefix(img.ID, "sha256:"), img.ID)
	assert.Equal(t, "probe", img.App)
	assert.Equal(t, []string{docker.AppPath}, img.Entrypoint)
	assert.Empty(t, img.Cmd)
	assert.Equal(t, docker.ImageUser, img.User)
	assert.Equal(t, docker.WorkDir, img.WorkingDir)
	assert.Equal(t, map[string]string{docker.LabelApp: "probe", "org.example.team": "gtask"}, img.Labels)
	assert.Equal(t, "linux", img.OS)
	assert.Equal(t, arch, img.Arch)

	// What someone else's launcher would see, by the image's id.
	byID, err := docker.InspectAppImage(ctx, c, img.ID)
	require.NoError(t, err)
	assert.Equal(t, img.ID, byID.ID)

	exit, stdout, stderr := dockertest.Run(t, c, ref, "provider", "7000")
	assert.Equal(t, int64(0), exit, "stdout: %s\nstderr: %s", stdout, stderr)
	assert.Equal(t, `uid=65532 gid=65532 wd=/golem/work home=/tmp args=["provider" "7000"]`+"\n", stdout)
	assert.Equal(t, "wrote probe and /tmp/probe\n", stderr)

	again, err := docker.BuildImage(ctx, c, docker.ImageSpec{Bin: bin, Ref: ref, App: "probe", Labels: map[string]string{"org.example.team": "gtask"}})
	require.NoError(t, err)
	assert.Equal(t, img.ID, again.ID, "the same binary made another image")
}

// TestBuildImageDefaults checks the defaults: the app's name from the
// binary's, the tag latest, the engine's architecture, the binary's time.
func TestBuildImageDefaults(t *testing.T) {
	t.Parallel()
	c := dockertest.Client(t)
	ctx := context.Background()
	bin := buildProbe(t, engineArch(t, c))
	when := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	require.NoError(t, os.Chtimes(bin, when, when))
	ref := dockertest.ImageRef(t, c)
	name := strings.TrimSuffix(ref, ":t")
	t.Cleanup(func() {
		_, err := c.ImageRemove(context.Background(), name+":latest", image.RemoveOptions{Force: true, PruneChildren: true})
		assert.NoError(t, err)
	})

	img, err := docker.BuildImage(ctx, c, docker.ImageSpec{Bin: bin, Ref: name})
	require.NoError(t, err)
	assert.Equal(t, name+":latest", img.Ref)
	assert.Equal(t, "probe", img.App)
	res, err := c.ImageInspect(ctx, img.ID)
	require.NoError(t, err)
	assert.Equal(t, when.Format(time.RFC3339Nano), res.Created)
}

// TestBuildImageRefuses checks that a binary an image cannot run, or a
// bad reference, is refused before anything reaches the engine.
func TestBuildImageRefuses(t *testing.T) {
	t.Parallel()
	c := dockertest.Client(t)
	ctx := context.Background()
	arch := engineArch(t, c)
	text := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(text, []byte("not a program"), 0o755))
	ref := dockertest.ImageRef(t, c)

	_, err := docker.BuildImage(ctx, c, docker.ImageSpec{Bin: text, Ref: ref})
	require.ErrorIs(t, err, docker.ErrBadBinary)
	assert.Contains(t, err.Error(), "not an ELF executable")

	_, err = docker.BuildImage(ctx, c, docker.ImageSpec{Bin: buildProbe(t, arch), Ref: "Not/A:valid ref"})
	require.ErrorIs(t, err, docker.ErrBadRef)

	t.Run("dynamic", func(t *testing.T) {
		_, err := docker.BuildImage(ctx, c, docker.ImageSpec{Bin: dynamicBinary(t), Ref: ref, Arch: arch})
		require.ErrorIs(t, err, docker.ErrBadBinary)
		assert.Contains(t, err.Error(), "dynamically linked")
	})

	_, err = c.ImageInspect(ctx, ref)
	assert.Error(t, err, "a refused build left an image")
}

// TestInspectAppImageMissing checks that an image the engine does not
// hold is reported with what to do, since gtask cannot pull it.
func TestInspectAppImageMissing(t *testing.T) {
	t.Parallel()
	c := dockertest.Client(t)
	ref := dockertest.ImageRef(t, c)
	_, err := docker.InspectAppImage(context.Background(), c, ref)
	require.ErrorIs(t, err, docker.ErrNoImage)
	assert.Contains(t, err.Error(), "no image "+ref+" in the Docker Engine")
	assert.Contains(t, err.Error(), "gtask image build APP -t "+ref)
	assert.Contains(t, err.Error(), "cannot pull")
}

// ExampleBuildImage builds the image of a static binary and finds it again
// as a launcher would. (It needs a Docker Engine, so it is not run.)
func ExampleBuildImage() {
	ctx := context.Background()
	c, err := docker.Connect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// CGO_ENABLED=0 GOOS=linux go build -o average ./examples/average
	img, err := docker.BuildImage(ctx, c, docker.ImageSpec{Bin: "average", Ref: docker.DefaultRef("average")})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(img.Ref, img.ID)

	img, err = docker.InspectAppImage(ctx, c, "gtask-app/average:latest")
	if err != nil {
		log.Fatal(err) // errors.Is(err, docker.ErrNoImage): build it first
	}
	fmt.Println(img.Entrypoint, img.User, img.WorkingDir, img.App)
}
