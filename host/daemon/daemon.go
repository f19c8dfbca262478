package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/docker/docker/client"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/internal/appbuild"
)

// Config configures a Daemon. DataDir is required; the zero value of every
// other field works.
type Config struct {
	// DataDir holds everything the daemon keeps: gtask.db (its bbolt
	// store), tasks/ID/ (each task's work dir, host.RunConfig.WorkDir),
	// staged/ID/ (each task's inputs, copied at CreateTask) and uploads/.
	// Required; created when missing.
	DataDir string
	// Slots is how many providers run at once, shared fairly by all the
	// running tasks. Default: runtime.NumCPU().
	Slots int
	// HostAddr is the daemon's gRPC address, given to each task's
	// requestor as GTASK_HOST so that it can submit child tasks. Default:
	// none (a requestor then gets no GTASK_HOST).
	HostAddr string
	// CacheDir is where apps given as Go package directories are built.
	// Default: appbuild.DefaultCacheDir().
	CacheDir string
	// UploadTTL is how long an upload (UploadInput) is kept after it
	// was uploaded: until then any number of the user's CreateTask may use
	// it (each links it into the task's staged inputs, which outlive it);
	// then its record and file are removed, by a sweep at Start and then
	// every UploadTTL/4, or hourly when that is longer. Default: 24 hours.
	// Negative: uploads are kept for ever.
	UploadTTL time.Duration
	// Logger receives the daemon's log. Default: discard.
	Logger *slog.Logger
}

// DefaultUploadTTL is Config.UploadTTL's default.
const DefaultUploadTTL = 24 * time.Hour

// Environment variables a task's requestor gets (process runtime).
const (
	// EnvHost is the daemon's gRPC address.
	EnvHost = "GTASK_HOST"
	// EnvFamilyToken is a token acting for the task's owner within the
	// task's tree: it creates child tasks.
	EnvFamilyToken = "GTASK_FAMILY_TOKEN"
)

// The daemon's own event kinds (hostv1.Event.kind, with seq 0). A run's
// start is run_started or run_resumed, apart from the run's own
// task_started and task_resumed, which host.Run records.
const (
	KindQueued  = "task_queued"
	KindStarted = "run_started"
	KindResumed = "run_resumed"
	KindKilled  = "task_killed"
	KindEnded   = "task_ended"
)

// Causes of a run's end that are not the task's doing. A daemon stop ends
// a run without ending its task (host.ErrStopped: no AbortTask), for the
// next Start to resume.
var (
	errKilled   = errors.New("killed")
	errStopping = fmt.Errorf("the daemon is stopping: %w", host.ErrStopped)
)

// Daemon runs tasks for the users of HostService and keeps everything it
// knows of them in its data dir, so that a new Daemon over the same data
// dir (after Close, or a crash) carries on where it stopped.
type Daemon struct {
	cfg        Config
	log        *slog.Logger
	db         *bolt.DB
	w          *writer
	bc         *broadcaster
	pool       *host.SlotPool
	adminToken string
	builds     chan struct{} // one app build at a time

	// runCtx is the parent of every run's context.
	runCtx    context.Context
	runCancel context.CancelFunc

	// mu guards the task tree (creating a task under a parent, killing a
	// tree) and the fields below.
	mu      sync.Mutex
	runs    map[string]*taskRun
	dying   map[string]bool // tasks a KillTask is killing
	started bool
	closing bool
	runsWG  sync.WaitGroup // every run's goroutine
	rpcs    sync.WaitGroup // every RPC in flight
	closed  chan struct{}  // closed when Close begins: streams end
	// hooks let tests (export_test.go) stop a call at a given point; nil
	// otherwise.
	hooks struct {
		// afterKillIntent: a kill, once its intent is stored, before it
		// stops any run.
		afterKillIntent func()
		// afterStage: CreateTask, once it has staged the inputs, before
		// it stores the task.
		afterStage func()
	}

	// sweeper is the goroutine removing old uploads (sweepUploads),
	// from Start until Close.
	sweeper sync.WaitGroup

	dockerMu sync.Mutex
	docker   *client.Client

	closeOnce sync.Once
	closeErr  error
}

// Open opens the daemon's store in cfg.DataDir, creating it (and, the
// first time, an admin token: see AdminToken) when missing. The tasks do
// not run until Start.
func Open(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("daemon: Config.DataDir is required")
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("daemon: data dir: %w", err)
	}
	cfg.DataDir = abs
	if cfg.Slots <= 0 {
		cfg.Slots = runtime.NumCPU()
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = appbuild.DefaultCacheDir()
	}
	if cfg.UploadTTL == 0 {
		cfg.UploadTTL = DefaultUploadTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, d := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, "tasks"),
		filepath.Join(cfg.DataDir, "staged"), filepath.Join(cfg.DataDir, "uploads")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("daemon: %w", err)
		}
	}
	db, err := openDB(filepath.Join(cfg.DataDir, "gtask.db"))
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		cfg:    cfg,
		log:    cfg.Logger,
		db:     db,
		bc:     newBroadcaster(),
		pool:   host.NewSlotPool(cfg.Slots),
		builds: make(chan struct{}, 1),
		runs:   map[string]*taskRun{},
		dying:  map[string]bool{},
		closed: make(chan struct{}),
	}
	d.runCtx, d.runCancel = context.WithCancel(context.WithoutCancel(ctx))
	d.w = newWriter(db, d.log, d.bc.notify)

	var empty bool
	err = db.View(func(tx *bolt.Tx) error {
		empty = tx.Bucket(bTokens).Stats().KeyN == 0
		return nil
	})
	if err == nil && empty {
		d.adminToken, err = d.CreateToken("admin", true)
	}
	if err != nil {
		d.w.stop()
		db.Close()
		d.runCancel()
		return nil, fmt.Errorf("daemon: %w", err)
	}
	return d, nil
}

// AdminToken is the admin token this Open created, on the data dir's
// first open; "" otherwise. It is stored hashed only: show it once.
func (d *Daemon) AdminToken() string { return d.adminToken }

// Register registers the daemon's HostService on s.
func (d *Daemon) Register(s grpc.ServiceRegistrar) {
	hostv1.RegisterHostServiceServer(s, &service{d: d})
}

// CreateToken makes a token acting for user (an admin token when admin)
// and stores its hash. It works while the daemon runs (the CreateToken
// RPC uses it) and on a Daemon that was opened but not started, as
// `gtask token create` does on a stopped daemon's data dir.
func (d *Daemon) CreateToken(user string, admin bool) (string, error) {
	if user == "" {
		return "", errors.New("daemon: a token needs a user")
	}
	return d.newToken(tokenRec{User: user, Admin: admin})
}

func (d *Daemon) newToken(rec tokenRec) (string, error) {
	tok, rec, err := makeToken(rec)
	if err != nil {
		return "", err
	}
	if err := d.w.update(func(tx *bolt.Tx) error { return putToken(tx, &rec) }); err != nil {
		return "", fmt.Errorf("daemon: storing a token: %w", err)
	}
	return tok, nil
}

// makeToken makes a new token and its record, rec with its hash; the
// token acts once putToken has stored the record.
func makeToken(rec tokenRec) (string, tokenRec, error) {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", rec, err
	}
	tok := "gtk_" + hex.EncodeToString(b[:])
	rec.Hash, rec.Created = hashToken(tok), time.Now().UTC()
	return tok, rec, nil
}

func putToken(tx *bolt.Tx, rec *tokenRec) error {
	return putJSON(tx.Bucket(bTokens), rec.Hash, rec)
}

// Start starts every task that was QUEUED or RUNNING when the daemon last
// stopped (or crashed), resuming those that had started, and lets new
// tasks start as they are created. Call it once the gRPC server listens
// (Config.HostAddr is the address tasks call back). A second call does
// nothing.
func (d *Daemon) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return errors.New("daemon: Start after Close")
	}
	if d.started {
		return nil
	}
	var todo, kills []*taskRec
	err := d.db.View(func(tx *bolt.Tx) error {
		// Oldest first: parents start before their children.
		c := tx.Bucket(bOrder).Cursor()
		for k, id := c.First(); k != nil; k, id = c.Next() {
			t, err := getTask(tx, string(id))
			if err != nil {
				return err
			}
			switch {
			case ended(t.State):
			case t.Killing != "":
				kills = append(kills, t)
			default:
				todo = append(todo, t)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("daemon: start: reading the tasks in %s: %w", d.cfg.DataDir, err)
	}
	var revoked int
	err = d.w.update(func(tx *bolt.Tx) (err error) {
		if err := finishKills(tx, kills, time.Now().UTC()); err != nil {
			return err
		}
		revoked, err = revokeEndedFamilies(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("daemon: start: storing the kills a stop interrupted, or deleting old family tokens, in %s: %w", d.cfg.DataDir, err)
	}
	d.started = true
	for _, t := range todo {
		d.launch(t)
	}
	if d.cfg.UploadTTL > 0 {
		every := min(max(d.cfg.UploadTTL/4, minSweepEvery), maxSweepEvery)
		d.sweeper.Go(func() { d.sweepLoop(every) })
	}
	d.log.Info("daemon started", "resumed", len(todo), "killed", len(kills), "slots", d.cfg.Slots)
	if revoked > 0 {
		d.log.Info("family tokens of ended tasks deleted", "tokens", revoked)
	}
	return nil
}

// finishKills stores KILLED each of tasks, which a kill had decided to
// kill (taskRec.Killing) when the daemon stopped: task_killed and
// task_ended, as the kill would have.
func finishKills(tx *bolt.Tx, tasks []*taskRec, now time.Time) error {
	for _, v := range tasks {
		t, err := getTask(tx, v.ID)
		if err != nil {
			return err
		}
		if ended(t.State) || t.Killing == "" {
			continue
		}
		if err := killedTask(tx, t, t.Killing, now); err != nil {
			return fmt.Errorf("task %s: %w", t.ID, err)
		}
	}
	return nil
}

// Close stops every run: its processes are gone when Close returns, and
// its task stays as it was in the store (RUNNING), for the next Start to
// resume. It stops the sweeps of old uploads. Streams (WatchTask,
// GetRunLogs with follow) end with UNAVAILABLE, and new calls are refused
// so; Close waits for the calls in flight until ctx ends, then closes the
// store. Close the daemon before
// stopping the gRPC server gracefully: a watch would keep it waiting.
// Safe to call twice; the second call waits for the first and returns its
// error.
func (d *Daemon) Close(ctx context.Context) error {
	d.closeOnce.Do(func() { d.closeErr = d.close(ctx) })
	return d.closeErr
}

func (d *Daemon) close(ctx context.Context) error {
	d.mu.Lock()
	d.closing = true
	runs := make([]*taskRun, 0, len(d.runs))
	for _, r := range d.runs {
		runs = append(runs, r)
	}
	d.mu.Unlock()
	close(d.closed)
	for _, r := range runs {
		r.stop(errStopping)
	}
	d.runsWG.Wait()
	d.runCancel()
	d.sweeper.Wait()

	waited := make(chan struct{})
	go func() { d.rpcs.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		d.log.Warn("closing with calls in flight", "err", context.Cause(ctx))
	}
	d.w.stop()
	err := d.db.Close()
	d.dockerMu.Lock()
	if d.docker != nil {
		err = errors.Join(err, d.docker.Close())
		d.docker = nil
	}
	d.dockerMu.Unlock()
	if err != nil {
		return fmt.Errorf("daemon: close: %w", err)
	}
	return nil
}

// enter admits an RPC, or refuses it when the daemon is closing; leave
// must follow an admitted one.
func (d *Daemon) enter() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return false
	}
	d.rpcs.Add(1)
	return true
}

func (d *Daemon) leave() { d.rpcs.Done() }

func (d *Daemon) taskDir(id string) string   { return filepath.Join(d.cfg.DataDir, "tasks", id) }
func (d *Daemon) stagedDir(id string) string { return filepath.Join(d.cfg.DataDir, "staged", id) }
func (d *Daemon) uploadPath(id string) string {
	return filepath.Join(d.cfg.DataDir, "uploads", id)
}
