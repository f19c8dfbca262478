// Package dockertest gives tests a Docker Engine, or skips them with a
// clear message where none answers.
package dockertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/google/uuid"

	"github.com/gtask/gtask/host/docker"
)

// Client returns a client of the engine docker.Connect finds, closed when
// the test ends; where no engine answers, it skips the test and says why.
func Client(t testing.TB) *client.Client {
	t.Helper()
	c, err := docker.Connect(context.Background())
	if err != nil {
		t.Skipf("skipping: this test needs a Docker Engine: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// AppImage builds the Go main package pkg (a directory, or a package path
// of this module) as a static Linux binary for the engine's architecture,
// makes an image of it with docker.BuildImage under a fresh reference,
// and returns the reference; the image is removed when the test ends.
func AppImage(t testing.TB, c *client.Client, pkg string) string {
	t.Helper()
	ctx := context.Background()
	arch, err := docker.EngineArch(ctx, c)
	if err != nil {
		t.Fatalf("the engine's architecture: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "app")
	goBuildStatic(t, "", pkg, arch, bin)
	ref := "gtask-test/" + strings.ToLower(filepath.Base(pkg)) + ":" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	_, err = docker.BuildImage(ctx, c, docker.ImageSpec{Bin: bin, Ref: ref})
	if err != nil {
		t.Fatalf("building image %s: %v", ref, err)
	}
	t.Cleanup(func() {
		_, _ = c.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return ref
}

// RequireNothingLeft fails the test unless no container and no network of
// the docker launcher run (its RunID) is left in the engine.
func RequireNothingLeft(t testing.TB, c *client.Client, run string) {
	t.Helper()
	f := filters.NewArgs(filters.Arg("label", docker.LabelRun+"="+run))
	cs, err := c.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	ns, err := c.NetworkList(context.Background(), network.ListOptions{Filters: f})
	if err != nil {
		t.Fatalf("listing networks: %v", err)
	}
	if len(cs) > 0 || len(ns) > 0 {
		t.Fatalf("run %s left %d containers and %d networks in the engine", run, len(cs), len(ns))
	}
}

// Program builds a one-file Go program, source, as a static Linux binary
// for goarch, named name, in a fresh directory, and returns its path.
func Program(t testing.TB, source, goarch, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	goBuildStatic(t, dir, ".", goarch, bin)
	return bin
}

// goBuildStatic builds the Go main package pkg, from dir ("": the test's
// own), as a static Linux binary for goarch, to out. A program outside the
// module builds on its own (GOWORK and GOFLAGS off).
func goBuildStatic(t testing.TB, dir, pkg, goarch, out string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if dir != "" {
		cmd.Env = append(cmd.Env, "GOWORK=off", "GOFLAGS=")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
}
