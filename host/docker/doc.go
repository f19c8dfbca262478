// Package docker runs gtask apps in Docker containers: the docker_cpu
// environment of the Task API.
//
// It talks to the Docker Engine through its API (the Docker Engine Go SDK),
// never through the docker command, and needs no registry: images are
// built here (BuildImage, from a static binary, with no Dockerfile and no
// base image) or are already in the engine; nothing is ever pulled.
//
// A Launcher runs the requestor in a long-lived container and each provider
// in a fresh one-shot container, sandboxed (see Launcher), on a network of
// its own, and removes each container once it has exited. Everything it
// creates carries labels (LabelManaged, LabelRun, LabelOwner), so that what
// a killed gtask left behind is removed by the next Launcher, or by Collect
// (`gtask gc`).
//
//	c, err := docker.Connect(ctx) // DOCKER_HOST, or the local engine
//	if err != nil {
//		return err // "no Docker Engine answers at unix:///var/run/docker.sock ..."
//	}
//	defer c.Close()
//	// A static Linux binary of a gtask app (CGO_ENABLED=0 go build ...).
//	img, err := docker.BuildImage(ctx, c, docker.ImageSpec{Bin: "./mandelbrot", Ref: "mandelbrot:v1"})
//	if err != nil {
//		return err
//	}
//	l, err := docker.New(ctx, docker.Config{Client: c, Image: img.Ref})
//	if err != nil {
//		return err
//	}
//	defer l.Close(context.WithoutCancel(ctx)) // every container and the network gone
//	res, err := host.Run(ctx, host.RunConfig{Launcher: l})
//	// res.OutputsDir holds mandelbrot.png, as with host.ProcessLauncher.
//
// Tests that need an engine use package dockertest, which skips them,
// saying why, where none answers.
package docker
