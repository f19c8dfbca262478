// Package docker runs gtask apps in Docker containers: the docker_cpu
// environment.
package docker

import _ "github.com/docker/docker/client"
