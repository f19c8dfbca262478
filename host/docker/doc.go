// Package docker runs gtask apps in Docker containers: the docker_cpu
// environment of the Task API.
//
// It talks to the Docker Engine through its API (the Docker Engine Go SDK),
// never through the docker command, and needs no registry: images are
// built here (BuildImage) or already in the engine.
package docker
