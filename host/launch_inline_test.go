package host_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
)

func TestInlineStopWithEndedContextForces(t *testing.T) {
	inst, _, _ := startApp(t, host.InlineLauncher{Roles: testAppRoles()}, host.RoleRequestor)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := inst.Stop(ctx)
	require.ErrorIs(t, err, context.Canceled)
	requireDone(t, inst)
}

func TestInlineLogs(t *testing.T) {
	inst, dir, logPath := startApp(t, host.InlineLauncher{Roles: testAppRoles()}, host.RoleProvider)
	c, err := host.DialProvider(testCtx(t), inst.Addr())
	require.NoError(t, err)
	_, err = c.Compute(testCtx(t), "t1", "s1", nil)
	require.NoError(t, err)
	require.NoError(t, c.Close())
	requireDone(t, inst)

	log := readLog(t, logPath)
	assert.Contains(t, log, "role=provider")
	assert.Contains(t, log, "work_dir="+dir, "the factory's logger writes to the log")
	assert.Contains(t, log, "subtask_id=s1", "the server's logger writes to the log")
}

// BenchmarkInlineProvider measures a no-op subtask's whole life inline:
// start, connect, Compute, end; "grpc" dials the provider's port, "direct"
// calls it in process, as the Runner does. Its inverse is the ceiling of an
// inline run's subtasks per second on one core, before the requestor's
// share.
func BenchmarkInlineProvider(b *testing.B) {
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			l := host.InlineLauncher{Roles: testAppRoles()}
			dir := b.TempDir()
			logPath := filepath.Join(b.TempDir(), "app.log")
			ctx := b.Context()
			for i := 0; b.Loop(); i++ {
				inst, err := l.Start(ctx, host.RoleProvider, dir, logPath)
				if err != nil {
					b.Fatal(err)
				}
				var c *host.ProviderClient
				if p.direct {
					c = host.NewProviderClient(inst.(host.DirectInstance).Conn())
				} else if c, err = host.DialProvider(ctx, inst.Addr()); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Compute(ctx, "t1", "s"+strconv.Itoa(i), json.RawMessage(`{}`)); err != nil {
					b.Fatal(err)
				}
				c.Close()
				if err := inst.Wait(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
