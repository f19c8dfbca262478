package docker

import (
	"context"
	"errors"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

// Collected is what Collect removed, by name.
type Collected struct {
	Containers []string
	Networks   []string
	// Kept counts objects of gtask left alone: their owner runs, or runs
	// on another host sharing the engine and cannot be judged.
	Kept int
}

// CollectOptions says what Collect removes. The zero value removes the
// leftovers of dead owners only.
type CollectOptions struct {
	// All removes everything gtask created, whoever owns it, live runs
	// included.
	All bool
	// Run, when set, limits Collect to the objects of that run (their
	// LabelRun).
	Run string
}

// Collect removes the containers and networks gtask created (LabelManaged)
// whose owner process is gone: it died before it could remove them; with
// opts.All, every one of them. Every Launcher collects when it is made;
// `gtask gc` is this.
func Collect(ctx context.Context, c *client.Client, opts CollectOptions) (Collected, error) {
	var out Collected
	me := self()
	dead := func(labels map[string]string) bool {
		if opts.All {
			return true
		}
		o, ok := parseOwner(labels[LabelOwner])
		if !ok {
			return false // not labelled by gtask as this version does: left alone
		}
		return judge(o, me) == ownerDead
	}
	cctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	managed := filters.NewArgs(filters.Arg("label", LabelManaged+"=true"))
	if opts.Run != "" {
		managed.Add("label", LabelRun+"="+opts.Run)
	}
	cs, err := c.ContainerList(cctx, container.ListOptions{All: true, Filters: managed})
	if err != nil {
		return out, fmt.Errorf("docker: listing gtask's containers: %w", err)
	}
	var errs []error
	for _, ct := range cs {
		if !dead(ct.Labels) {
			out.Kept++
			continue
		}
		err := c.ContainerRemove(cctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing container %s: %w", nameOf(ct), err))
			continue
		}
		out.Containers = append(out.Containers, nameOf(ct))
	}
	ns, err := c.NetworkList(cctx, network.ListOptions{Filters: managed})
	if err != nil {
		return out, errors.Join(append(errs, fmt.Errorf("docker: listing gtask's networks: %w", err))...)
	}
	for _, n := range ns {
		if !dead(n.Labels) {
			out.Kept++
			continue
		}
		if err := c.NetworkRemove(cctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing network %s: %w", n.Name, err))
			continue
		}
		out.Networks = append(out.Networks, n.Name)
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("docker: collecting gtask's leftovers: %w", errors.Join(errs...))
	}
	return out, nil
}

// removeContainers force-removes every container that matches f.
func removeContainers(ctx context.Context, c *client.Client, f filters.Args) error {
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return fmt.Errorf("docker: listing containers: %w", err)
	}
	var errs []error
	for _, ct := range cs {
		err := c.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("docker: removing container %s: %w", nameOf(ct), err))
		}
	}
	return errors.Join(errs...)
}

// nameOf is a container's name, or its short id when it has none.
func nameOf(ct container.Summary) string {
	if len(ct.Names) > 0 {
		n := ct.Names[0]
		if len(n) > 0 && n[0] == '/' {
			n = n[1:]
		}
		return n
	}
	if len(ct.ID) > 12 {
		return ct.ID[:12]
	}
	return ct.ID
}
