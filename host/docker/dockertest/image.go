package dockertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// cleanupTimeout bounds each removal at the end of a test.
const cleanupTimeout = 30 * time.Second

// ImageRef returns a reference no other test uses,
// gtask-test/RANDOM:t, and removes whatever image holds it when the test
// ends, so that a test may build an image by it and leave nothing behind.
func ImageRef(t testing.TB, c *client.Client) string {
	t.Helper()
	ref := "gtask-test/" + strings.ToLower(rand.Text()[:16]) + ":t"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		// PruneChildren: no dangling parent remains; Force: even if a
		// container of the test still uses it.
		if _, err := c.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !client.IsErrNotFound(err) {
			t.Errorf("removing image %s: %v", ref, err)
		}
	})
	return ref
}

// Run runs a container of image ref with args as its command (after the
// image's entrypoint), without network, waits for it to exit and removes
// it; it returns the exit status and what the container wrote.
func Run(t testing.TB, c *client.Client, ref string, args ...string) (exit int64, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	created, err := c.ContainerCreate(ctx, &container.Config{Image: ref, Cmd: args}, &container.HostConfig{NetworkMode: "none"}, nil, nil, "")
	if err != nil {
		t.Fatalf("creating a container of %s: %v", ref, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := c.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
			t.Errorf("removing container %s: %v", created.ID, err)
		}
	})
	// Wait for the next exit before the start, so that a quick exit is
	// not missed.
	waited, waitErr := c.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := c.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting a container of %s: %v", ref, err)
	}
	select {
	case w := <-waited:
		if w.Error != nil {
			t.Fatalf("waiting for a container of %s: %s", ref, w.Error.Message)
		}
		exit = w.StatusCode
	case err := <-waitErr:
		t.Fatalf("waiting for a container of %s: %v", ref, err)
	}
	logs, err := c.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatalf("reading the logs of a container of %s: %v", ref, err)
	}
	defer logs.Close()
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, logs); err != nil {
		t.Fatalf("reading the logs of a container of %s: %v", ref, err)
	}
	return exit, out.String(), errb.String()
}

// DynamicExecutable is an executable of this machine that names a program
// interpreter (a dynamically linked one, which an image from scratch
// cannot run), or "" where there is none.
func DynamicExecutable() string {
	for _, p := range []string{"/bin/sh", "/bin/ls", "/usr/bin/env", "/bin/true"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		dynamic := false
		for _, prog := range f.Progs {
			dynamic = dynamic || prog.Type == elf.PT_INTERP
		}
		f.Close()
		if dynamic {
			return p
		}
	}
	return ""
}
