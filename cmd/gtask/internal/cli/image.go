package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/docker/docker/client"
	"github.com/spf13/cobra"

	"github.com/gtask/gtask/host/docker"
	"github.com/gtask/gtask/internal/appbuild"
)

const imageBuildLong = `Build makes a Docker image that runs APP, from scratch, in the Docker Engine
DOCKER_HOST names (or the local one): no Dockerfile, no base image, no
registry, no docker command. gtask never pulls an image; the engine must be
given every image it runs, by this command or otherwise.

APP is a Go package directory, built as a static Linux binary for the
engine's architecture (cgo off), or an executable that is one already: a
dynamically linked binary cannot run in an image that has no libc.

The image holds only the app, as ` + docker.AppPath + ` (its entrypoint), its work dir
` + docker.WorkDir + ` (its working directory) and /tmp. Its containers run as the
non-root user ` + docker.ImageUser + `. It is labelled ` + docker.LabelApp + `=NAME, NAME being
APP's base name. The same binary makes the same image, with the same id.

On success, build prints the image's reference and id, separated by a
space, on one line of stdout.

Exit status:
  0    the image was built
  2    bad input: APP or -t is wrong (nothing was built)
  3    host error: no Docker Engine, or the engine refused the image
  130  interrupted (SIGINT or SIGTERM)`

const imageBuildExample = `  gtask image build ./examples/average
  gtask image build ./examples/mandelbrot -t mandelbrot:v1
  CGO_ENABLED=0 GOOS=linux go build -o myapp ./cmd/myapp && gtask image build ./myapp -t myapp:dev`

// newImageCommand is `gtask image`, the commands on the Docker images apps
// run in.
func newImageCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build the Docker images apps run in",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newImageBuildCommand(stdout, stderr))
	return cmd
}

func newImageBuildCommand(stdout, stderr io.Writer) *cobra.Command {
	var tag string
	cmd := &cobra.Command{
		Use:     "build APP [-t NAME:TAG]",
		Short:   "Build a Docker image of APP from scratch",
		Long:    imageBuildLong,
		Example: imageBuildExample,
		Args: func(_ *cobra.Command, args []string) error {
			switch len(args) {
			case 1:
				return nil
			case 0:
				return badInput("image build needs APP: a Go package directory or a static Linux executable")
			}
			return badInput("image build takes one APP, got %d arguments: %q", len(args), args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return buildAppImage(cmd.Context(), args[0], tag, stdout, stderr)
		},
	}
	cmd.Flags().StringVarP(&tag, "tag", "t", "", "the image's NAME:TAG (default gtask-app/NAME:latest, NAME being APP's base name; the tag defaults to latest)")
	return cmd
}

// buildAppImage is `gtask image build`: it checks APP and the tag before
// it asks anything of the engine, builds a package APP for the engine's
// architecture, and has the engine load the image.
func buildAppImage(ctx context.Context, appArg, tag string, stdout, stderr io.Writer) error {
	src, err := checkImageApp(appArg, tag)
	if err != nil {
		return err
	}
	c, err := docker.Connect(ctx)
	if err != nil {
		return hostError("%w", err)
	}
	defer c.Close()
	img, err := src.build(ctx, c, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s %s\n", img.Ref, img.ID)
	return nil
}

// imageApp is an APP to make an image of, checked as far as it can be
// without the engine.
type imageApp struct {
	arg   string // as the user gave it
	abs   string
	isDir bool
	name  string // the app's name: the directory's or the file's base name
	ref   string // the image's reference
}

// checkImageApp checks APP, and the tag (default: docker.DefaultRef of
// the app's name), before anything is asked of the engine.
func checkImageApp(appArg, tag string) (imageApp, error) {
	abs, err := filepath.Abs(appArg)
	if err != nil {
		return imageApp{}, badInput("APP %s: %w", appArg, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return imageApp{}, badInput("APP %s: %w", appArg, unwrapPathError(err))
	}
	a := imageApp{arg: appArg, abs: abs, isDir: st.IsDir(), name: filepath.Base(abs)}
	if !a.isDir {
		if !st.Mode().IsRegular() {
			return imageApp{}, badInput("APP %s is neither a Go package directory nor an executable file", appArg)
		}
		a.name = strings.TrimSuffix(a.name, filepath.Ext(a.name))
		// The architecture waits for the engine; what no engine could
		// run is refused now.
		if err := docker.CheckBinary(abs, ""); err != nil {
			return imageApp{}, badInput("APP %s", trimSentinel(err, docker.ErrBadBinary))
		}
	}
	a.ref = docker.DefaultRef(a.name)
	if tag != "" {
		if a.ref, err = docker.NormalizeRef(tag); err != nil {
			return imageApp{}, badInput("-t: %w", err)
		}
	}
	return a, nil
}

// build builds a package APP for the engine's architecture and has the
// engine load the image, saying what it does on progress (when not nil).
func (a imageApp) build(ctx context.Context, c *client.Client, progress io.Writer) (docker.AppImage, error) {
	if progress == nil {
		progress = io.Discard
	}
	arch, err := docker.EngineArch(ctx, c)
	if err != nil {
		return docker.AppImage{}, imageError(ctx, err)
	}
	bin := a.abs
	if a.isDir {
		fmt.Fprintf(progress, "building %s for linux/%s\n", a.arg, arch)
		if bin, err = appbuild.BuildStatic(ctx, a.abs, appbuild.DefaultCacheDir(), arch); err != nil {
			return docker.AppImage{}, imageError(ctx, buildError(ctx, err))
		}
	}
	fmt.Fprintf(progress, "building image %s\n", a.ref)
	img, err := docker.BuildImage(ctx, c, docker.ImageSpec{Bin: bin, Ref: a.ref, App: a.name, Arch: arch})
	if err != nil {
		return docker.AppImage{}, imageError(ctx, err)
	}
	return img, nil
}

// imageError gives err its exit status: an interruption, bad input (a
// binary the engine cannot run, a bad reference), or a host error.
func imageError(ctx context.Context, err error) error {
	var ee *exitError
	switch {
	case ctx.Err() != nil:
		return &exitError{ExitInterrupted, errors.New("interrupted while building the image")}
	case errors.As(err, &ee):
		return err
	case errors.Is(err, docker.ErrBadBinary):
		return badInput("APP %s", trimSentinel(err, docker.ErrBadBinary))
	case errors.Is(err, docker.ErrBadRef):
		return badInput("-t: %w", err)
	}
	return hostError("%w", err)
}

// trimSentinel drops the sentinel's text from the front of err's message,
// where the message names what is wrong better than the sentinel does.
func trimSentinel(err, sentinel error) string {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, sentinel.Error()); ok {
		return strings.TrimLeft(rest, ": ")
	}
	return msg
}
