package docker

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/docker/docker/client"
)

// pingTimeout bounds Connect's first call to the engine.
const pingTimeout = 5 * time.Second

// Connect returns a client of the Docker Engine that DOCKER_HOST (and the
// other DOCKER_* variables) name, or the local engine's socket, once the
// engine has answered: the API version is agreed with it (engines down to
// API 1.24 work). The error says where no engine answered and what to do.
// The caller closes the client.
func Connect(ctx context.Context) (*client.Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if _, err := c.Ping(pctx); err != nil {
		c.Close()
		host := os.Getenv("DOCKER_HOST")
		if host == "" {
			host = client.DefaultDockerHost
		}
		return nil, fmt.Errorf("docker: no Docker Engine answers at %s (start one, or point DOCKER_HOST at one): %w", host, err)
	}
	c.NegotiateAPIVersion(ctx)
	return c, nil
}
