package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/google/uuid"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/taskapi"
)

// The defaults of Config.
const (
	// DefaultMemory is each container's memory limit, unless the task asks
	// for more (inf_requirements.min_memory_mib).
	DefaultMemory int64 = 2 << 30
	// DefaultCPUs is how many cores each container may use.
	DefaultCPUs = 1.0
	// DefaultTmpSize is the size of each container's /tmp, a tmpfs.
	DefaultTmpSize int64 = 64 << 20
	// DefaultPids bounds the processes and threads of each container.
	DefaultPids int64 = 512
)

// The process contract in a container.
const (
	// containerPort is the PORT every app is given: each container has its
	// own network namespace, so one port serves them all.
	containerPort = "4000"
	// containerUser runs the apps when the host runs as root: apps never
	// run as root. It is the user gtask images are built with.
	containerUser = 65532
)

// Time limits of the launcher's own calls to the engine.
const (
	// engineTimeout bounds a call that does not wait for an app.
	engineTimeout = 30 * time.Second
	// drainTimeout bounds the wait for the end of a container's output
	// once it has exited.
	drainTimeout = 2 * time.Second
)

// Config configures a Launcher. Client and Image are required; the zero
// value of every other field works.
type Config struct {
	// Client talks to the engine (see Connect). The launcher does not
	// close it. Required.
	Client *client.Client
	// Image is the app's image, "name:tag" or an id, already in the
	// engine: the requestor runs from it, and so do the providers unless
	// CreateTask names an image in its prerequisites. Required.
	Image string
	// Memory is each container's memory limit in bytes, swap included;
	// a task whose min_memory_mib is more gets that. Default:
	// DefaultMemory (2 GiB).
	Memory int64
	// CPUs is how many cores each container may use. Default: DefaultCPUs
	// (1).
	CPUs float64
	// TmpSize is the size of each container's /tmp in bytes. Default:
	// DefaultTmpSize (64 MiB).
	TmpSize int64
	// Pids bounds each container's processes and threads. Default:
	// DefaultPids (512).
	Pids int64
	// ProviderNetwork lets the containers reach networks beyond the host.
	// Default: false, they reach nothing but the host, which calls them.
	ProviderNetwork bool
}

// Launcher starts apps in containers of a Docker Engine, one container per
// Start: the requestor in a long-lived one, each provider in a fresh
// one-shot one. It is a host.EnvLauncher: the providers run in the
// environment CreateTask answered (docker_cpu, or docker_gpu, which adds a
// request for every GPU and is untested without one), from the image its
// prerequisites name ({"image": NAME, "tag": TAG}; the launcher's own
// image when they name none). Images are never pulled.
//
// Every container:
//   - has its work dir bind-mounted at /golem/work, and is given the
//     contract's arguments, ROLE 4000;
//   - runs as the host's uid and gid, so that what it writes belongs to
//     the host's user; when the host runs as root, as uid 65532 instead,
//     and the work dir is handed to that uid first;
//   - has every capability dropped, no-new-privileges, a read-only root
//     file system but for /golem/work and a small /tmp, and limits on
//     memory, CPU and processes;
//   - is on the launcher's own network, internal (it reaches nothing
//     beyond the host unless Config.ProviderNetwork) and with traffic
//     between containers off: the host reaches each container at its
//     address on that network, no container reaches another;
//   - writes its stdout and stderr to its log file, whole, from its start;
//   - is removed once it has exited, whatever ended it, and carries the
//     labels that let the next launcher, or `gtask gc`, remove it if this
//     process dies first (see Collect).
//
// An image labelled io.gtask.app (gtask images are) prints the readiness
// line, which ends Start; any other must follow the reference convention:
// it serves on 0.0.0.0:PORT, and Start waits for its health to answer
// SERVING.
//
// Close removes every container and the network of the launcher; call it
// when the run is over.
type Launcher struct {
	cfg     Config
	c       *client.Client
	run     string // the launcher's id, LabelRun
	me      owner
	network string // the network's name
	user    string // the containers' "uid:gid"
	chown   bool   // hand work dirs to the container user first
	gtask   bool   // Image is a gtask app

	mu       sync.Mutex
	seq      int
	closed   bool
	closeErr error
	wg       sync.WaitGroup // every instance's goroutine
}

var (
	_ host.EnvLauncher = (*Launcher)(nil)
	_ host.Instance    = (*instance)(nil)
)

// New checks cfg, removes the leftovers of gtask processes that died (see
// Collect), creates the launcher's network, and returns the launcher.
func New(ctx context.Context, cfg Config) (*Launcher, error) {
	if cfg.Client == nil {
		return nil, errors.New("docker: Config.Client is required")
	}
	if cfg.Image == "" {
		return nil, errors.New("docker: Config.Image is required")
	}
	if cfg.Memory <= 0 {
		cfg.Memory = DefaultMemory
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = DefaultCPUs
	}
	if cfg.TmpSize <= 0 {
		cfg.TmpSize = DefaultTmpSize
	}
	if cfg.Pids <= 0 {
		cfg.Pids = DefaultPids
	}
	img, err := InspectAppImage(ctx, cfg.Client, cfg.Image)
	if err != nil {
		return nil, err
	}
	l := &Launcher{
		cfg: cfg, c: cfg.Client,
		run:   strings.ReplaceAll(uuid.NewString(), "-", "")[:16],
		me:    self(),
		gtask: img.App != "",
	}
	l.network = "gtask-" + l.run
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid, l.chown = containerUser, containerUser, true
	}
	l.user = fmt.Sprintf("%d:%d", uid, gid)

	if _, err := Collect(ctx, cfg.Client, CollectOptions{}); err != nil {
		return nil, err
	}
	nctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	_, err = l.c.NetworkCreate(nctx, l.network, network.CreateOptions{
		Driver:   "bridge",
		Internal: !cfg.ProviderNetwork,
		Options:  map[string]string{"com.docker.network.bridge.enable_icc": "false"},
		Labels:   l.labels(""),
	})
	if err != nil {
		return nil, fmt.Errorf("docker: creating network %s: %w", l.network, err)
	}
	return l, nil
}

// labels are what every object of the launcher carries; role is added
// for a container.
func (l *Launcher) labels(role host.Role) map[string]string {
	m := map[string]string{LabelManaged: "true", LabelRun: l.run, LabelOwner: l.me.String()}
	if role != "" {
		m[LabelRole] = string(role)
	}
	return m
}

// RunID is the launcher's id, the value of LabelRun on everything it
// created.
func (l *Launcher) RunID() string { return l.run }

// Start runs the app's image in role over workDir (see host.Launcher).
func (l *Launcher) Start(ctx context.Context, role host.Role, workDir, logPath string) (host.Instance, error) {
	return l.start(ctx, spec{image: l.cfg.Image, gtask: l.gtask, memory: l.cfg.Memory}, role, workDir, logPath)
}

// ForEnv returns the launcher of the task's providers: its image checked,
// its memory raised to what the task asks.
func (l *Launcher) ForEnv(ctx context.Context, env host.Env) (host.Launcher, error) {
	s := spec{image: l.cfg.Image, gtask: l.gtask, memory: l.cfg.Memory}
	switch env.ID {
	case taskapi.DockerCPUEnvID():
	case taskapi.DockerGPUEnvID():
		s.gpu = true
	default:
		return nil, fmt.Errorf("unknown environment %q: the docker launcher gives %q and %q",
			env.ID, taskapi.DockerCPUEnvID(), taskapi.DockerGPUEnvID())
	}
	if len(env.Prerequisites) > 0 && string(env.Prerequisites) != "null" {
		var pre struct {
			Image string `json:"image"`
			Tag   string `json:"tag"`
		}
		if err := json.Unmarshal(env.Prerequisites, &pre); err != nil {
			return nil, fmt.Errorf("prerequisites %s: want {\"image\": NAME, \"tag\": TAG}: %w", env.Prerequisites, err)
		}
		if pre.Image != "" {
			s.image = pre.Image
			if pre.Tag != "" {
				s.image += ":" + pre.Tag
			}
			img, err := InspectAppImage(ctx, l.c, s.image)
			if err != nil {
				return nil, err
			}
			s.gtask = img.App != ""
		}
	}
	if need := int64(env.MinMemoryMiB * (1 << 20)); need > s.memory {
		s.memory = need
	}
	return envLauncher{l: l, s: s}, nil
}

// envLauncher starts providers as ForEnv set them up.
type envLauncher struct {
	l *Launcher
	s spec
}

func (e envLauncher) Start(ctx context.Context, role host.Role, workDir, logPath string) (host.Instance, error) {
	return e.l.start(ctx, e.s, role, workDir, logPath)
}

// spec is what differs between the launcher's containers.
type spec struct {
	image  string
	gtask  bool // the image prints the readiness line
	memory int64
	gpu    bool
}

// Close removes every container of the launcher, waits for their
// instances to end, and removes its network. Safe to call more than once;
// later calls return the first's error.
func (l *Launcher) Close(ctx context.Context) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.wg.Wait()
		return l.closeErr
	}
	l.closed = true
	l.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	cctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	err := removeContainers(cctx, l.c, filters.NewArgs(filters.Arg("label", LabelRun+"="+l.run)))
	l.wg.Wait()
	if nerr := l.c.NetworkRemove(cctx, l.network); nerr != nil && !cerrdefs.IsNotFound(nerr) {
		err = errors.Join(err, fmt.Errorf("docker: removing network %s: %w", l.network, nerr))
	}
	l.mu.Lock()
	l.closeErr = err
	l.mu.Unlock()
	return err
}

// start creates, attaches to and starts one container, and waits for it
// to serve.
func (l *Launcher) start(ctx context.Context, s spec, role host.Role, workDir, logPath string) (host.Instance, error) {
	what := fmt.Sprintf("%s as %s in %s", s.image, role, workDir)
	fail := func(err error) error {
		return fmt.Errorf("host/docker: starting %s: %w (log %s)", what, err, logPath)
	}
	if role != host.RoleRequestor && role != host.RoleProvider {
		return nil, fail(fmt.Errorf("unknown role %q: want %q or %q", role, host.RoleRequestor, host.RoleProvider))
	}
	if err := context.Cause(ctx); err != nil {
		return nil, fail(err)
	}
	dir, err := filepath.Abs(workDir)
	if err != nil {
		return nil, fail(err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return nil, fail(fmt.Errorf("work dir: %w", err))
	} else if !fi.IsDir() {
		return nil, fail(fmt.Errorf("work dir %s is not a directory", dir))
	}
	if l.chown {
		if err := chownTree(dir, containerUser, containerUser); err != nil {
			return nil, fail(fmt.Errorf("handing the work dir to uid %d: %w", containerUser, err))
		}
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fail(errors.New("the launcher is closed"))
	}
	l.seq++
	name := fmt.Sprintf("gtask-%s-%s-%d", l.run, role, l.seq)
	l.wg.Add(1) // the instance's goroutine, or its absence on failure
	l.mu.Unlock()
	started := false
	defer func() {
		if !started {
			l.wg.Done()
		}
	}()

	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fail(fmt.Errorf("app log: %w", err))
	}
	cfg := &container.Config{
		Image:        s.image,
		Cmd:          []string{string(role), containerPort},
		User:         l.user,
		WorkingDir:   taskapi.ContainerWorkDir(),
		Labels:       l.labels(role),
		AttachStdout: true,
		AttachStderr: true,
	}
	pids := l.cfg.Pids
	hc := &container.HostConfig{
		NetworkMode:    container.NetworkMode(l.network),
		Mounts:         []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: taskapi.ContainerWorkDir()}},
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": "rw,nosuid,nodev,size=" + strconv.FormatInt(l.cfg.TmpSize, 10)},
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
		Resources: container.Resources{
			Memory:     s.memory,
			MemorySwap: s.memory,
			NanoCPUs:   int64(l.cfg.CPUs * 1e9),
			PidsLimit:  &pids,
		},
	}
	if s.gpu {
		hc.DeviceRequests = []container.DeviceRequest{{Count: -1, Capabilities: [][]string{{"gpu"}}}}
	}
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), engineTimeout)
	defer cancel()
	created, err := l.c.ContainerCreate(ectx, cfg, hc, nil, nil, name)
	if err != nil {
		logf.Close()
		return nil, fail(fmt.Errorf("creating the container: %w", err))
	}
	in := &instance{
		l: l, id: created.ID, logf: logf, logPath: logPath,
		what:  fmt.Sprintf("%s (container %s, log %s)", what, name, logPath),
		ready: make(chan string, 1),
		done:  make(chan struct{}),
	}
	// From here on the instance's goroutine removes the container, so
	// every failure goes through it: it must be running.
	att, err := l.c.ContainerAttach(ectx, created.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		in.abandon(fmt.Errorf("attaching to the container: %w", err))
		started = true
		return nil, fail(fmt.Errorf("attaching to the container: %w", err))
	}
	// The wait is set up before the start, so that no exit can be missed.
	waitCtx, stopWait := context.WithCancel(context.Background())
	waitC, waitErr := l.c.ContainerWait(waitCtx, created.ID, container.WaitConditionNextExit)
	started = true
	go in.watch(att, waitC, waitErr, stopWait)

	if err := l.c.ContainerStart(ectx, created.ID, container.StartOptions{}); err != nil {
		in.Kill()
		return nil, fail(fmt.Errorf("starting the container: %w", err))
	}
	ins, err := l.c.ContainerInspect(ectx, created.ID)
	if err != nil {
		in.Kill()
		return nil, fail(fmt.Errorf("inspecting the container: %w", err))
	}
	ep := ins.NetworkSettings.Networks[l.network]
	if ep == nil || ep.IPAddress == "" {
		in.Kill()
		return nil, fail(fmt.Errorf("the container has no address on network %s", l.network))
	}
	in.addr = net.JoinHostPort(ep.IPAddress, containerPort)
	if err := in.await(ctx, role, s.gtask); err != nil {
		in.Kill()
		return nil, fail(withTail(err, logPath))
	}
	return in, nil
}

// chownTree hands dir and everything in it to uid:gid.
func chownTree(dir string, uid, gid int) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// withTail adds the last line of the app's log to err.
func withTail(err error, logPath string) error {
	if tail := host.LogTail(logPath); tail != "" {
		return fmt.Errorf("%w; the log ends %s", err, tail)
	}
	return err
}
