package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/docker/docker/client"
	"github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/gtask/gtask/host/docker"
)

const runtimeDocker = "docker"

// dockerRun is what `gtask run --runtime docker` runs with: the engine's
// client and the launcher of the app's image.
type dockerRun struct {
	c        *client.Client
	launcher *docker.Launcher
	name     string // the app's name, for the task id
}

// Close removes everything of the run from the engine and closes the
// client. Safe to call more than once.
func (d *dockerRun) Close(ctx context.Context) {
	if d.launcher != nil {
		_ = d.launcher.Close(ctx)
	}
	if d.c != nil {
		d.c.Close()
		d.c = nil
	}
}

// dockerLauncher makes the launcher of `gtask run --runtime docker`: the
// image is --image, checked to be in the engine, or APP built into
// gtask-app/NAME:latest.
func dockerLauncher(ctx context.Context, appArg string, f runFlags, progress io.Writer) (*dockerRun, error) {
	var memory int64
	if f.memory != "" {
		m, err := units.RAMInBytes(f.memory)
		if err != nil || m <= 0 {
			return nil, badInput("--memory %q: want a size such as 512m or 2g", f.memory)
		}
		memory = m
	}
	var src imageApp
	if f.image == "" {
		var err error
		if src, err = checkImageApp(appArg, ""); err != nil {
			return nil, err
		}
	} else if _, err := docker.NormalizeRef(f.image); err != nil {
		return nil, badInput("--image: %w", err)
	}

	c, err := docker.Connect(ctx)
	if err != nil {
		return nil, hostError("--runtime docker: %w", err)
	}
	d := &dockerRun{c: c}
	ref := f.image
	if f.image != "" {
		img, err := docker.InspectAppImage(ctx, c, f.image)
		if err != nil {
			d.Close(ctx)
			if errors.Is(err, docker.ErrNoImage) || errors.Is(err, docker.ErrNotAppImage) {
				return nil, badInput("--image %s", trimSentinel(err, docker.ErrNoImage))
			}
			return nil, hostError("--image: %w", err)
		}
		d.name = img.App
		if d.name == "" {
			repo, _, _ := strings.Cut(path.Base(f.image), ":")
			d.name = repo
		}
	} else {
		img, err := src.build(ctx, c, progress)
		if err != nil {
			d.Close(ctx)
			return nil, err
		}
		ref, d.name = img.Ref, src.name
	}
	d.launcher, err = docker.New(ctx, docker.Config{
		Client: c, Image: ref, Memory: memory, CPUs: f.cpus, ProviderNetwork: f.providerNetwork,
	})
	if err != nil {
		d.Close(ctx)
		if ctx.Err() != nil {
			return nil, &exitError{ExitInterrupted, errors.New("interrupted while setting up the docker runtime")}
		}
		return nil, hostError("--runtime docker: %w", err)
	}
	return d, nil
}

const gcLong = `gc removes what gtask left in the Docker Engine: the containers and
networks of docker runs whose gtask process is gone (killed before it could
clean up). Runs still going, and those of other hosts sharing the engine,
are left alone; --all removes everything gtask created, live runs included.
Every 'gtask run --runtime docker' does the same when it starts. A
container the engine was still creating when its gtask died can appear
just after gc has looked; the next gc or docker run removes it.

Exit status: 0 done, 3 no Docker Engine or the engine refused a removal.`

// newGCCommand is `gtask gc`.
func newGCCommand(stdout, stderr io.Writer) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "gc [--all]",
		Short: "Remove the containers and networks dead gtask runs left in the Docker Engine",
		Long:  gcLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := docker.Connect(ctx)
			if err != nil {
				return hostError("%w", err)
			}
			defer c.Close()
			got, err := docker.Collect(ctx, c, docker.CollectOptions{All: all})
			for _, n := range got.Containers {
				fmt.Fprintf(stdout, "removed container %s\n", n)
			}
			for _, n := range got.Networks {
				fmt.Fprintf(stdout, "removed network %s\n", n)
			}
			fmt.Fprintf(stderr, "removed %d containers and %d networks; kept %d of live runs\n",
				len(got.Containers), len(got.Networks), got.Kept)
			if err != nil {
				return hostError("%w", err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "remove everything gtask created, live runs included")
	return cmd
}
