package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/docker/docker/client"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/types/known/timestamppb"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/host/docker"
	"github.com/gtask/gtask/internal/appbuild"
)

// taskRun is one run of a task in this daemon: the goroutine running
// host.Run for it, and what stops it.
type taskRun struct {
	id     string
	cancel context.CancelCauseFunc
	done   chan struct{} // closed once the run is over and its end stored

	// quiet: the daemon is stopping this run; what the run says from now
	// on (its abort) is not the task's story and is not stored.
	quiet atomic.Bool

	// lastSeq is the seq of the last event the run handed over, stored
	// or not.
	lastSeq atomic.Int64
}

// stop ends the run with cause and returns at once; done says when it is
// over. A daemon stop (errStopping, which wraps host.ErrStopped) stops the
// run without aborting the task in the requestor's store, so the next
// Start resumes it; from then on the run's events are not the task's
// story (quiet).
func (r *taskRun) stop(cause error) {
	if errors.Is(cause, errStopping) {
		r.quiet.Store(true)
	}
	r.cancel(cause)
}

// launcher starts the requestor with one launcher and the providers with
// another, so that only the requestor gets the family token.
type launcher struct {
	requestor host.Launcher
	provider  host.Launcher
}

func (l *launcher) Start(ctx context.Context, role host.Role, workDir, logPath string) (host.Instance, error) {
	if role != host.RoleRequestor {
		return l.provider.Start(ctx, role, workDir, logPath)
	}
	return l.requestor.Start(ctx, role, workDir, logPath)
}

// launch starts t's run; d.mu is held. A task created before Start waits
// for it.
func (d *Daemon) launch(t *taskRec) {
	if !d.started || d.closing {
		return
	}
	ctx, cancel := context.WithCancelCause(d.runCtx)
	r := &taskRun{id: t.ID, cancel: cancel, done: make(chan struct{})}
	d.runs[t.ID] = r
	d.runsWG.Go(func() {
		defer func() {
			cancel(nil)
			d.mu.Lock()
			delete(d.runs, t.ID)
			d.mu.Unlock()
			close(r.done)
		}()
		d.run(ctx, r, t)
	})
}

// run runs task t to its end, or until its context ends.
func (d *Daemon) run(ctx context.Context, r *taskRun, t *taskRec) {
	log := d.log.With("task", t.ID)
	l, cleanup, family, err := d.launcher(ctx, t)
	if err != nil {
		if context.Cause(ctx) != nil {
			return // killed or stopped before it started
		}
		log.Info("task cannot start", "err", err)
		d.end(r, t.ID, hostv1.TaskState_TASK_STATE_FAILED, err.Error(), nil)
		return
	}
	defer cleanup()

	// A resume first recovers what events.jsonl has and the store lost
	// (see reconcile).
	var rec *recovered
	if t.Starts > 0 {
		rec, err = d.readBacklog(t.ID)
		if err != nil {
			// The run's resume reads the same file: it says what is wrong.
			log.Warn("cannot recover the events of the last run", "err", err)
		}
	}

	// RUNNING, and one more start, before the run, with the requestor's
	// family token: a crash from here on resumes it.
	var resume bool
	var dropped, added int
	err = d.w.update(func(tx *bolt.Tx) error {
		cur, err := getTask(tx, t.ID)
		if err != nil {
			return err
		}
		if ended(cur.State) {
			return fmt.Errorf("task %s has ended (%s)", t.ID, cur.State)
		}
		if cur.Killing != "" {
			return errKilled // the kill stores its end
		}
		resume = cur.Starts > 0
		if resume && rec != nil {
			if dropped, added, err = reconcile(tx, cur, rec); err != nil {
				return err
			}
		}
		if family != nil {
			if err := putToken(tx, family); err != nil {
				return err
			}
			cur.FamilyTokens = append(cur.FamilyTokens, family.Hash)
		}
		cur.Starts++
		cur.State = hostv1.TaskState_TASK_STATE_RUNNING
		now := time.Now().UTC()
		if cur.Started.IsZero() {
			cur.Started = now
		}
		kind, reason := KindStarted, ""
		if resume {
			kind, reason = KindResumed, fmt.Sprintf("start %d, after a restart of the daemon", cur.Starts)
		}
		if err := putTask(tx, cur); err != nil {
			return err
		}
		return appendEvent(tx, daemonEvent(cur, kind, reason, now))
	})
	if errors.Is(err, errKilled) {
		log.Info("task not started: it is being killed")
		return
	}
	if err != nil {
		log.Error("task cannot start", "err", err)
		return
	}
	if rec != nil && (dropped > 0 || added > 0 || rec.bad > 0) {
		log.Info("events of the last run reconciled with events.jsonl",
			"recovered", added, "dropped", dropped, "bad_lines", rec.bad)
	}
	log.Info("task running", "resume", resume)

	var params json.RawMessage
	if t.Params != "" {
		params = json.RawMessage(t.Params)
	}
	inputs := make([]string, len(t.Inputs))
	for i, in := range t.Inputs {
		inputs[i] = in.Staged
	}
	providers := int(t.Providers)
	if providers <= 0 || providers > d.cfg.Slots {
		providers = d.cfg.Slots
	}
	cfg := host.RunConfig{
		Launcher:       l,
		TaskID:         t.ID,
		WorkDir:        d.taskDir(t.ID),
		Params:         params,
		Inputs:         inputs,
		MaxSubtasks:    int(t.MaxSubtasks),
		Providers:      providers,
		SubtaskTimeout: t.SubtaskTimeout,
		Timeout:        t.Timeout,
		MaxAttempts:    int(t.MaxAttempts),
		Backups:        host.Backups{Off: t.NoBackups},
		Gate:           d.pool.Gate(t.ID),
		Resume:         resume,
		OnEvent: func(ev host.Event) {
			r.lastSeq.Store(ev.Seq)
			if r.quiet.Load() {
				return
			}
			pe := runEvent(ev)
			if err := d.w.post(func(tx *bolt.Tx) error { return appendRunEvent(tx, pe) }); err != nil {
				log.Warn("event lost", "seq", ev.Seq, "kind", ev.Kind, "err", err)
			}
		},
	}
	res, runErr := host.Run(ctx, cfg)
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errStopping):
		log.Info("task stopped with the daemon; the next start resumes it")
		d.skipped(t.ID, r.lastSeq.Load())
		return
	case runErr != nil && errors.Is(cause, errKilled):
		return // the kill stores the end
	}
	state, reason := hostv1.TaskState_TASK_STATE_ABORTED, ""
	var outputs []string
	if res != nil {
		reason, outputs = res.Reason, res.Outputs
		switch res.Outcome {
		case host.Finished:
			state = hostv1.TaskState_TASK_STATE_FINISHED
		case host.Failed:
			state = hostv1.TaskState_TASK_STATE_FAILED
		}
	}
	if runErr != nil {
		if reason == "" {
			reason = runErr.Error()
		}
		log.Warn("run ended with an error", "err", runErr)
		state = hostv1.TaskState_TASK_STATE_ABORTED
	}
	if state != hostv1.TaskState_TASK_STATE_FINISHED {
		outputs = nil
	}
	d.end(r, t.ID, state, reason, outputs)
}

// end stores the end of task id, unless it has ended already.
func (d *Daemon) end(r *taskRun, id string, state hostv1.TaskState, reason string, outputs []string) {
	err := d.w.update(func(tx *bolt.Tx) error {
		cur, err := getTask(tx, id)
		if err != nil || ended(cur.State) {
			return err
		}
		return endTask(tx, cur, state, reason, outputs, time.Now().UTC())
	})
	if err != nil {
		d.log.Error("storing a task's end", "task", id, "err", err)
	}
}

// readBacklog reads task id's events.jsonl: the events above those the
// store holds or skipped, and the file's last.
func (d *Daemon) readBacklog(id string) (*recovered, error) {
	var after int64
	err := d.db.View(func(tx *bolt.Tx) error {
		t, err := getTask(tx, id)
		if err != nil {
			return err
		}
		stored, err := lastRunSeq(tx, id)
		after = max(stored, t.Skipped)
		return err
	})
	if err != nil {
		return nil, err
	}
	return readEvents(filepath.Join(d.taskDir(id), eventsFile), after)
}

// eventsFile is a run's events.jsonl, in its WorkDir (see host.RunConfig).
const eventsFile = "events.jsonl"

// skipped notes that task id's events up to seq, which the run said while
// the daemon stopped it, are not stored on purpose: the next start does
// not recover them.
func (d *Daemon) skipped(id string, seq int64) {
	if seq <= 0 {
		return
	}
	err := d.w.update(func(tx *bolt.Tx) error {
		cur, err := getTask(tx, id)
		if err != nil || ended(cur.State) || cur.Skipped >= seq {
			return err
		}
		cur.Skipped = seq
		return putTask(tx, cur)
	})
	if err != nil {
		d.log.Warn("storing a stopped run's last seq", "task", id, "err", err)
	}
}

// endTask sets t's final state, deletes its family tokens (they end with
// it) and appends task_ended.
func endTask(tx *bolt.Tx, t *taskRec, state hostv1.TaskState, reason string, outputs []string, now time.Time) error {
	t.State, t.Reason, t.Ended, t.Outputs = state, reason, now, outputs
	t.Progress.Computing, t.Progress.Verifying = 0, 0
	if err := revokeFamily(tx, t); err != nil {
		return err
	}
	if err := putTask(tx, t); err != nil {
		return err
	}
	return appendEvent(tx, daemonEvent(t, KindEnded, reason, now))
}

// killedTask stores t KILLED for reason: task_killed, then task_ended.
func killedTask(tx *bolt.Tx, t *taskRec, reason string, now time.Time) error {
	t.State = hostv1.TaskState_TASK_STATE_KILLED
	if err := appendEvent(tx, daemonEvent(t, KindKilled, reason, now)); err != nil {
		return err
	}
	return endTask(tx, t, hostv1.TaskState_TASK_STATE_KILLED, reason, nil, now)
}

// launcher makes t's launcher: its app resolved (built when it is a Go
// package directory) for the process runtime, a docker launcher for the
// docker runtime. cleanup releases it after the run. family, when not
// nil, is the requestor's family token, to store before the run starts.
func (d *Daemon) launcher(ctx context.Context, t *taskRec) (host.Launcher, func(), *tokenRec, error) {
	switch t.Runtime {
	case hostv1.Runtime_RUNTIME_DOCKER:
		c, err := d.dockerClient(ctx)
		if err != nil {
			return nil, nil, nil, err
		}
		dl, err := docker.New(ctx, docker.Config{Client: c, Image: t.App})
		if err != nil {
			return nil, nil, nil, err
		}
		cleanup := func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := dl.Close(cctx); err != nil {
				d.log.Warn("closing a docker launcher", "task", t.ID, "err", err)
			}
		}
		// The docker launcher sets no environment per role: a docker
		// requestor gets no family token.
		return dl, cleanup, nil, nil
	default:
		app, err := d.resolve(ctx, t.App)
		if err != nil {
			return nil, nil, nil, err
		}
		tok, rec, err := makeToken(tokenRec{User: t.Owner, Task: t.ID})
		if err != nil {
			return nil, nil, nil, err
		}
		var env []string
		if d.cfg.HostAddr != "" {
			env = append(env, EnvHost+"="+d.cfg.HostAddr)
		}
		env = append(env, EnvFamilyToken+"="+tok)
		return &launcher{
			requestor: host.ProcessLauncher{Bin: app.Bin, GtaskApp: true, Env: env},
			provider:  host.ProcessLauncher{Bin: app.Bin, GtaskApp: true},
		}, func() {}, &rec, nil
	}
}

// resolve builds or finds the app, one build at a time.
func (d *Daemon) resolve(ctx context.Context, arg string) (appbuild.App, error) {
	select {
	case d.builds <- struct{}{}:
	case <-ctx.Done():
		return appbuild.App{}, context.Cause(ctx)
	}
	defer func() { <-d.builds }()
	return appbuild.Resolve(ctx, arg, d.cfg.CacheDir, nil)
}

// dockerClient connects to the engine once, for every docker task.
func (d *Daemon) dockerClient(ctx context.Context) (*client.Client, error) {
	d.dockerMu.Lock()
	defer d.dockerMu.Unlock()
	if d.docker != nil {
		return d.docker, nil
	}
	c, err := docker.Connect(ctx)
	if err != nil {
		return nil, err
	}
	d.docker = c
	return c, nil
}

// runEvent is a run's event as the API says it.
func runEvent(ev host.Event) *hostv1.Event {
	part := int32(-1)
	if ev.Part != nil {
		part = int32(*ev.Part)
	}
	reason := ev.Reason
	if ev.Code != "" && reason == "" {
		reason = ev.Code
	}
	return &hostv1.Event{
		TaskId:    ev.Task,
		Seq:       ev.Seq,
		Time:      timestamppb.New(ev.Time),
		Kind:      string(ev.Kind),
		SubtaskId: ev.Subtask,
		Part:      part,
		Attempt:   int32(ev.Attempt),
		Backup:    int32(ev.Backup),
		Node:      ev.Node,
		Verdict:   ev.Verdict,
		Fail:      string(ev.Fail),
		Reason:    reason,
		Progress: &hostv1.Progress{
			Parts: int32(ev.Progress.Parts), Done: int32(ev.Progress.Done),
			Computing: int32(ev.Progress.Computing), Verifying: int32(ev.Progress.Verifying),
			Failed: int32(ev.Progress.Failed), Retried: int32(ev.Progress.Retried),
		},
		State: hostv1.TaskState_TASK_STATE_RUNNING,
	}
}

// appendRunEvent stores a run's event and the task's progress with it.
// An event of a task that has ended (a late one) is still stored, with
// the task's state.
func appendRunEvent(tx *bolt.Tx, ev *hostv1.Event) error {
	t, err := getTask(tx, ev.TaskId)
	if err != nil {
		return err
	}
	ev.State = t.State
	if !ended(t.State) {
		t.Progress = progressOf(ev.Progress)
		if err := putTask(tx, t); err != nil {
			return err
		}
	}
	return appendEvent(tx, ev)
}

// daemonEvent is one of the daemon's own events about t.
func daemonEvent(t *taskRec, kind, reason string, now time.Time) *hostv1.Event {
	return &hostv1.Event{
		TaskId:   t.ID,
		Time:     timestamppb.New(now),
		Kind:     kind,
		Part:     -1,
		Reason:   reason,
		Progress: t.Progress.proto(),
		State:    t.State,
	}
}
