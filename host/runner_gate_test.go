package host_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/sdk"
)

// aliveLauncher is a trackLauncher that, as each provider starts, counts
// the providers alive then, over every run it serves, and keeps the most.
type aliveLauncher struct {
	*trackLauncher

	mu   sync.Mutex
	most int
}

func (l *aliveLauncher) Start(ctx context.Context, role host.Role, workDir, logPath string) (host.Instance, error) {
	inst, err := l.trackLauncher.Start(ctx, role, workDir, logPath)
	if err != nil || role != host.RoleProvider {
		return inst, err
	}
	l.trackLauncher.mu.Lock()
	alive := 0
	for _, p := range l.trackLauncher.providers {
		select {
		case <-p.Done():
		default:
			alive++
		}
	}
	l.trackLauncher.mu.Unlock()
	l.mu.Lock()
	l.most = max(l.most, alive)
	l.mu.Unlock()
	return inst, nil
}

// TestRunGateShared: two runs of two provider slots each share a pool of
// one slot: never is more than one provider alive across both, and both
// finish right.
func TestRunGateShared(t *testing.T) {
	app := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		// Long enough for the slots of both runs to want a provider at
		// once, were they not gated.
		time.Sleep(5 * time.Millisecond)
		return honest()
	}}
	l := &aliveLauncher{trackLauncher: sqLauncher(app)}
	pool := host.NewSlotPool(1)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	type run struct {
		res *host.Result
		err error
		evs *eventLog
	}
	runs := make([]run, 2)
	var wg sync.WaitGroup
	for i, id := range []string{"ta", "tb"} {
		runs[i].evs = &eventLog{}
		cfg := config(t, l, runs[i].evs, 6)
		cfg.TaskID = id
		cfg.Gate = pool.Gate(id)
		wg.Go(func() { runs[i].res, runs[i].err = host.Run(ctx, cfg) })
	}
	wg.Wait()
	l.requireAllGone(t)

	for _, r := range runs {
		require.NoError(t, r.err)
		assert.Equal(t, wantSquares(6, 0), readOutput(t, r.res))
		checkEventsFile(t, r.res.EventsPath, r.evs.all())
		assert.Zero(t, r.res.Counts.Failed)
	}
	assert.Len(t, l.providers, 12, "one provider per part")
	assert.Equal(t, 1, l.most, "more providers alive at once than the pool has slots")
	assert.Equal(t, host.SlotStats{Size: 1, InUse: 0, Waiting: map[string]int{}}, pool.Stats())
}

// TestRunGateCancelWhileWaiting: a run whose slots all wait at the gate
// ends when ctx does, with no provider started, nothing running, nothing
// counted as failed, and nothing left waiting in the pool.
func TestRunGateCancelWhileWaiting(t *testing.T) {
	l := sqLauncher(&sqApp{})
	pool := host.NewSlotPool(1)
	release, err := pool.Gate("other")(t.Context())
	require.NoError(t, err)
	defer release()

	evs := &eventLog{}
	cfg := config(t, l, evs, 4)
	cfg.Gate = pool.Gate(cfg.TaskID)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type outcome struct {
		res *host.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := host.Run(ctx, cfg)
		done <- outcome{res, err}
	}()
	waitStats(t, pool, func(s host.SlotStats) bool { return s.Waiting[cfg.TaskID] == cfg.Providers })
	cancel()
	out := <-done

	require.ErrorIs(t, out.err, context.Canceled)
	l.requireAllGone(t)
	assert.Empty(t, l.providers, "no provider started")
	require.NotNil(t, out.res)
	assert.Equal(t, host.Aborted, out.res.Outcome)
	assert.Zero(t, out.res.Counts.Failed)
	assert.Equal(t, 2, out.res.Counts.Assigned, "each slot got its subtask before it waited")
	assert.Empty(t, evs.ofKind(host.EventComputeFailed))
	checkEventsFile(t, out.res.EventsPath, evs.all())
	assert.Equal(t, host.SlotStats{Size: 1, InUse: 1, Waiting: map[string]int{}}, pool.Stats())
	st, err := sdk.ReadStatus(out.res.TaskDir)
	require.NoError(t, err)
	assert.Equal(t, "aborted", st.State, "AbortTask was sent")
}
