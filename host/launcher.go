package host

import (
	"context"
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
	// Addr is the address to dial, e.g. "127.0.0.1:43121".
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
