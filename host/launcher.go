package host

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"
)

// Role is the part an app plays in a task: the long-lived requestor or a
// one-shot provider.
type Role string

// The two roles, as the process contract spells them on the command line.
const (
	RoleRequestor Role = "requestor"
	RoleProvider  Role = "provider"
)

// Launcher starts an app in a role over a work dir: as goroutines of this
// process (the inline launcher), as a child process (the process launcher,
// the default), or in a container (later). The Runner knows nothing else
// about how an app runs.
type Launcher interface {
	// Start starts the app in role with workDir as its work dir (for a
	// provider, its task work dir) and returns once it serves: its readiness
	// line was read, or its health answered SERVING. Everything the app
	// writes (stdout and stderr, or its log) goes, whole, to the file at
	// logPath, created or appended to. ctx bounds the start only; a failed
	// start leaves nothing running.
	Start(ctx context.Context, role Role, workDir, logPath string) (Instance, error)
}

// Instance is one running app.
type Instance interface {
	// Addr is the address to dial, e.g. "127.0.0.1:43121". A
	// DirectInstance may bind it only when Addr is first called, and
	// returns "" when it cannot.
	Addr() string
	// Stop asks the app to stop (SIGTERM for a process) and waits for it to
	// exit; when ctx ends first, it kills it. Safe to call more than once
	// and concurrently with Kill and Wait.
	Stop(ctx context.Context) error
	// Kill ends the app at once (SIGKILL of its whole process group for a
	// process) and waits for it to exit. Safe to call more than once.
	Kill() error
	// Done is closed once the app has exited.
	Done() <-chan struct{}
	// Wait waits for the app to exit and returns its exit error: nil for
	// exit status 0.
	Wait() error
}

// DirectInstance is an Instance running in the host's own process that the
// host may call without a network: the InlineLauncher's. The Runner calls
// such an instance through Conn instead of dialling Addr, which spares every
// subtask a socket, a dial and a health check, and is otherwise the same:
// Conn must give exactly what the app's gRPC server gives over the network
// (requestor.Server.Conn and provider.Server.Conn do), its request checks,
// status codes, one-shot provider and all, and calls through it must end
// with the instance as calls over gRPC do (refused with codes.Unavailable
// once it stops; cancelled, or answered codes.Unavailable, when it is
// killed). Being served from Start, the instance needs no health check.
type DirectInstance interface {
	Instance
	// Conn calls the app's service (RequestorApp or ProviderApp, as the
	// role it was started in) in process; wrap it with NewRequestorClient
	// or NewProviderClient. The connection is the instance's: it needs no
	// closing.
	Conn() grpc.ClientConnInterface
}

// Env is the environment CreateTask answered for the task's providers.
type Env struct {
	// ID names it, e.g. taskapi.DockerCPUEnvID().
	ID string
	// Prerequisites is what the environment needs, as JSON (for docker,
	// {"image": "...", "tag": "..."}); nil when the app gave none.
	Prerequisites json.RawMessage
	// MinMemoryMiB is the least memory a provider needs; 0 for no
	// requirement.
	MinMemoryMiB float64
}

// EnvLauncher is a Launcher whose providers run in the environment the app
// names in CreateTask's answer (the docker launcher: the image and its
// limits). The Runner calls ForEnv once, when the task has been created,
// and starts every provider of the task with the Launcher it returns; an
// error fails the task with the error as its reason (an environment the
// launcher cannot give, say). Launchers that are not EnvLaunchers run
// providers as they run the requestor, whatever the environment.
type EnvLauncher interface {
	Launcher
	ForEnv(ctx context.Context, env Env) (Launcher, error)
}
