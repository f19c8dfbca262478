package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/sdk"
)

// copyCalls counts the Compute calls of part 0, the one a test slows down,
// and says when its second call (the backup) has begun.
type copyCalls struct {
	mu     sync.Mutex
	n      int
	second chan struct{} // closed by the second call
}

func newCopyCalls() *copyCalls { return &copyCalls{second: make(chan struct{})} }

// call numbers a call of part 0, from 1.
func (c *copyCalls) call() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	if c.n == 2 {
		close(c.second)
	}
	return c.n
}

// awaitSecond waits for the second call, or for ctx.
func (c *copyCalls) awaitSecond(ctx context.Context) error {
	select {
	case <-c.second:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// backupConfig is config with backups quick to start, and a SubtaskTimeout
// far beyond the test's own limit: a stalled attempt can only be overtaken
// by its backup.
func backupConfig(t *testing.T, l host.Launcher, evs *eventLog, parts int) host.RunConfig {
	cfg := config(t, l, evs, parts)
	cfg.SubtaskTimeout = time.Hour
	cfg.Backups = host.Backups{MinWait: 20 * time.Millisecond}
	return cfg
}

// runFinished runs cfg, as runTask does, and requires the task to finish
// with the squares of parts parts.
func runFinished(t *testing.T, l *trackLauncher, cfg host.RunConfig, evs *eventLog, parts int) *host.Result {
	t.Helper()
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	require.Equal(t, host.Finished, res.Outcome, res.Reason)
	assert.Equal(t, wantSquares(parts, 0), readOutput(t, res))
	return res
}

// stallFirst is an app whose first Compute of part 0 stalls until the host
// calls it off; every other is honest.
func stallFirst() *sqApp {
	calls := newCopyCalls()
	return &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Part == 0 && calls.call() == 1 {
			<-ctx.Done()
			return "", ctx.Err()
		}
		return honest()
	}}
}

// part0 returns the events of kind about part 0.
func part0(evs *eventLog, kind host.EventKind) []host.Event {
	var out []host.Event
	for _, ev := range evs.ofKind(kind) {
		if ev.Part != nil && *ev.Part == 0 {
			out = append(out, ev)
		}
	}
	return out
}

// TestRunBackupBeatsStall: a provider that stalls at the end of the task
// (part 0's first attempt never answers) is overtaken by a backup on an
// idle slot: the task ends with the right output long before the attempt's
// SubtaskTimeout, the stalled copy is called off as superseded, not
// failed, and the part was handed out once.
func TestRunBackupBeatsStall(t *testing.T) {
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) { testRunBackupBeatsStall(t, p.direct) })
	}
}

func testRunBackupBeatsStall(t *testing.T, direct bool) {
	l := sqLauncherOn(direct, stallFirst())
	evs := &eventLog{}
	res := runFinished(t, l, backupConfig(t, l, evs, 4), evs, 4)

	assigned := part0(evs, host.EventSubtaskAssigned)
	require.Len(t, assigned, 1, "part 0 was handed out once")
	orig := assigned[0]
	started := evs.ofKind(host.EventBackupStarted)
	require.Len(t, started, 1)
	b := started[0]
	assert.Equal(t, orig.Subtask, b.Subtask, "a backup computes the same subtask")
	assert.Equal(t, 1, b.Backup)
	assert.Equal(t, orig.Attempt, b.Attempt)
	assert.NotEqual(t, orig.Node, b.Node, "on another node")
	assert.Contains(t, b.Reason, "has computed for")

	computed := part0(evs, host.EventSubtaskComputed)
	require.Len(t, computed, 1)
	assert.Equal(t, 1, computed[0].Backup, "the backup's output is the one verified")
	assert.Equal(t, b.Node, computed[0].Node)
	superseded := evs.ofKind(host.EventSubtaskSuperseded)
	require.Len(t, superseded, 1)
	assert.Equal(t, orig.Subtask, superseded[0].Subtask)
	assert.Equal(t, 0, superseded[0].Backup)
	assert.Equal(t, orig.Node, superseded[0].Node)
	assert.Equal(t, "the copy on "+b.Node+" was computed first", superseded[0].Reason)
	verified := part0(evs, host.EventSubtaskVerified)
	require.Len(t, verified, 1, "the subtask is verified once")
	assert.Equal(t, "SUCCESS", verified[0].Verdict)

	assert.Empty(t, evs.ofKind(host.EventComputeFailed))
	assert.Empty(t, evs.ofKind(host.EventSubtaskAborted))
	assert.Empty(t, evs.ofKind(host.EventNodeBanned), "a superseded copy is no failure of its node")
	assert.Equal(t, 1, res.Counts.Backups)
	assert.Equal(t, 1, res.Counts.BackupWins)
	assert.Equal(t, 1, res.Counts.Superseded)
	assert.Zero(t, res.Counts.Failed)
	assert.Contains(t, res.Summary().String(), "backups 1 (1 won)")

	// Each copy had a dir and a log of its own; the dirs are gone.
	assert.Contains(t, l.providerLogs(), filepath.Join(res.WorkDir, "logs", "provider-"+orig.Subtask+".backup1.log"))
	assert.Contains(t, l.providerLogs(), filepath.Join(res.WorkDir, "logs", "provider-"+orig.Subtask+".log"))
	left, err := os.ReadDir(filepath.Join(res.WorkDir, "providers"))
	require.NoError(t, err)
	assert.Empty(t, left)
}

// TestRunBackupLoses: the subtask's own attempt answers after its backup
// began (and stalled): the first copy computed wins, the backup is called
// off.
func TestRunBackupLoses(t *testing.T) {
	calls := newCopyCalls()
	app := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Part != 0 {
			return honest()
		}
		if calls.call() == 1 {
			if err := calls.awaitSecond(ctx); err != nil {
				return "", err
			}
			return honest()
		}
		<-ctx.Done() // the backup stalls
		return "", ctx.Err()
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	res := runFinished(t, l, backupConfig(t, l, evs, 3), evs, 3)

	computed := part0(evs, host.EventSubtaskComputed)
	require.Len(t, computed, 1)
	assert.Zero(t, computed[0].Backup)
	superseded := evs.ofKind(host.EventSubtaskSuperseded)
	require.Len(t, superseded, 1)
	assert.Equal(t, 1, superseded[0].Backup)
	assert.Equal(t, computed[0].Subtask, superseded[0].Subtask)
	assert.Equal(t, 1, res.Counts.Backups)
	assert.Zero(t, res.Counts.BackupWins)
	assert.Equal(t, 1, res.Counts.Superseded)
	assert.Empty(t, evs.ofKind(host.EventComputeFailed))
}

// TestRunBackupCopyFails: the subtask's own attempt fails while its backup
// computes: that is a failed attempt of its node (banned), but the subtask
// is not aborted, and the backup's output is the part's.
func TestRunBackupCopyFails(t *testing.T) {
	calls := newCopyCalls()
	failed := make(chan struct{}) // closed once the host saw the failure
	app := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Part != 0 {
			return honest()
		}
		if calls.call() == 1 {
			if err := calls.awaitSecond(ctx); err != nil {
				return "", err
			}
			return "", errors.New("out of unobtainium")
		}
		// The backup answers once its twin's failure is known, so that
		// the failure does not come after the backup won (it would be
		// superseded then).
		select {
		case <-failed:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return honest()
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	cfg := backupConfig(t, l, evs, 3)
	var once sync.Once
	cfg.OnEvent = func(ev host.Event) {
		evs.add(ev)
		if ev.Kind == host.EventComputeFailed {
			once.Do(func() { close(failed) })
		}
	}
	res := runFinished(t, l, cfg, evs, 3)

	fails := evs.ofKind(host.EventComputeFailed)
	require.Len(t, fails, 1)
	assert.Zero(t, fails[0].Backup)
	banned := evs.ofKind(host.EventNodeBanned)
	require.Len(t, banned, 1)
	assert.Equal(t, fails[0].Node, banned[0].Node)
	assert.Empty(t, evs.ofKind(host.EventSubtaskAborted), "its backup still computed")
	assert.Len(t, part0(evs, host.EventSubtaskAssigned), 1)
	computed := part0(evs, host.EventSubtaskComputed)
	require.Len(t, computed, 1)
	assert.Equal(t, 1, computed[0].Backup)
	assert.Equal(t, 1, res.Counts.Failed)
	assert.Equal(t, 1, res.Counts.BackupWins)
	assert.Zero(t, res.Counts.Superseded)
}

// TestRunBackupAllCopiesFail: the attempt and its backup both fail: the
// subtask is aborted once, when the last copy has failed, and the part is
// computed again as a new subtask.
func TestRunBackupAllCopiesFail(t *testing.T) {
	calls := newCopyCalls()
	app := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Part != 0 {
			return honest()
		}
		switch calls.call() {
		case 1:
			if err := calls.awaitSecond(ctx); err != nil {
				return "", err
			}
			return "", errors.New("first copy: out of unobtainium")
		case 2:
			return "", errors.New("second copy: out of unobtainium")
		}
		return honest()
	}}
	l := sqLauncher(app)
	evs := &eventLog{}
	res := runFinished(t, l, backupConfig(t, l, evs, 3), evs, 3)

	assigned := part0(evs, host.EventSubtaskAssigned)
	require.Len(t, assigned, 2, "the part is handed out again")
	assert.Equal(t, 2, assigned[1].Attempt)
	failed := part0(evs, host.EventComputeFailed)
	require.Len(t, failed, 2)
	for _, ev := range failed {
		assert.Equal(t, assigned[0].Subtask, ev.Subtask)
	}
	aborted := evs.ofKind(host.EventSubtaskAborted)
	require.Len(t, aborted, 1)
	assert.Equal(t, assigned[0].Subtask, aborted[0].Subtask)
	// The abort comes after both failures.
	all := evs.all()
	var abortSeq, lastFail int64
	for _, ev := range all {
		switch {
		case ev.Kind == host.EventSubtaskAborted:
			abortSeq = ev.Seq
		case ev.Kind == host.EventComputeFailed:
			lastFail = ev.Seq
		}
	}
	assert.Greater(t, abortSeq, lastFail)
	assert.Equal(t, 2, res.Counts.Failed)
	assert.Equal(t, 2, res.Counts.Banned)
}

// TestRunBackupsOff: with backups off, a stalled attempt is only ended by
// its SubtaskTimeout, and no backup starts.
func TestRunBackupsOff(t *testing.T) {
	l := sqLauncher(stallFirst())
	evs := &eventLog{}
	cfg := backupConfig(t, l, evs, 3)
	cfg.Backups.Off = true
	cfg.SubtaskTimeout = time.Second
	res := runFinished(t, l, cfg, evs, 3)
	assert.Empty(t, evs.ofKind(host.EventBackupStarted))
	failed := evs.ofKind(host.EventComputeFailed)
	require.Len(t, failed, 1)
	assert.Equal(t, host.FailTimeout, failed[0].Fail)
	assert.Zero(t, res.Counts.Backups)
}

// TestRunBackupKeepsReplicasApart: with redundancy (every part computed on
// two nodes), the backup of a stalled replica goes to a node that computed
// no replica of its part, so that the two results the app compares still
// come from two nodes.
func TestRunBackupKeepsReplicasApart(t *testing.T) {
	l := sqLauncher(stallFirst(), sdk.WithRedundancy(2))
	evs := &eventLog{}
	cfg := backupConfig(t, l, evs, 2)
	cfg.Providers = 3
	runFinished(t, l, cfg, evs, 2)

	started := evs.ofKind(host.EventBackupStarted)
	require.Len(t, started, 1)
	b := started[0]
	var others []string // the nodes of part 0's other subtasks
	for _, ev := range part0(evs, host.EventSubtaskAssigned) {
		if ev.Subtask != b.Subtask {
			others = append(others, ev.Node)
		}
	}
	require.NotEmpty(t, others, "part 0 has another replica")
	assert.NotContains(t, others, b.Node, "the backup computes on a node of its own for part 0")
	computed := part0(evs, host.EventSubtaskComputed)
	require.Len(t, computed, 2, "two replicas of part 0 were computed")
	assert.NotEqual(t, computed[0].Node, computed[1].Node)
}
