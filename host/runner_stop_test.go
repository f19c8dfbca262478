package host_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/sdk"
)

// callLog records, per provider, how the Runner ended it.
type callLog struct {
	mu    sync.Mutex
	calls map[string][]string // provider work dir -> "stop", "kill"
}

func (c *callLog) add(dir, call string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[dir] = append(c.calls[dir], call)
}

// recordingLauncher starts providers with inner and logs Stop and Kill.
type recordingLauncher struct {
	host.Launcher
	log *callLog
}

func (l recordingLauncher) Start(ctx context.Context, role host.Role, dir, logPath string) (host.Instance, error) {
	inst, err := l.Launcher.Start(ctx, role, dir, logPath)
	if err != nil || role != host.RoleProvider {
		return inst, err
	}
	return recordedInstance{Instance: inst, dir: dir, log: l.log}, nil
}

type recordedInstance struct {
	host.Instance
	dir string
	log *callLog
}

func (i recordedInstance) Stop(ctx context.Context) error {
	i.log.add(i.dir, "stop")
	return i.Instance.Stop(ctx)
}

func (i recordedInstance) Kill() error {
	i.log.add(i.dir, "kill")
	return i.Instance.Kill()
}

// TestRunTimeoutStopsGracefully: a provider out of SubtaskTimeout is asked
// to stop (SIGTERM; a container's graceful stop) before anything kills it.
func TestRunTimeoutStopsGracefully(t *testing.T) {
	var f firsts
	app := &sqApp{compute: func(ctx context.Context, s *sdk.Subtask[sqPart], honest func() (string, error)) (string, error) {
		if s.Part == 0 && f.first(0) {
			<-ctx.Done() // hangs until the host stops the provider
			return "", ctx.Err()
		}
		return honest()
	}}
	inner := sqLauncherOn(false, app)
	log := &callLog{calls: map[string][]string{}}
	l := track(recordingLauncher{Launcher: inner, log: log})
	evs := &eventLog{}
	cfg := config(t, l, evs, 2)
	cfg.SubtaskTimeout = time.Second
	cfg.Backups.Off = true // a backup would beat the timeout
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	require.Equal(t, host.Finished, res.Outcome, res.Reason)
	failed := evs.ofKind(host.EventComputeFailed)
	require.Len(t, failed, 1)
	require.Equal(t, host.FailTimeout, failed[0].Fail)
	log.mu.Lock()
	defer log.mu.Unlock()
	var hung []string
	for dir, calls := range log.calls {
		if strings.HasSuffix(dir, failed[0].Subtask) {
			hung = calls
		}
	}
	require.NotEmpty(t, hung, "the timed-out provider was ended")
	assert.Equal(t, "stop", hung[0], "asked to stop first: %v", hung)
}
