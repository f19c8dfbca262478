package host_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
	"github.com/gtask/gtask/sdk"
)

func TestParseChaos(t *testing.T) {
	tests := []struct {
		in   string
		want *host.Chaos
		err  string
	}{
		{in: "crash=0.1,hang=0.05,wrong=0.1,garbage=0.05,seed=7",
			want: &host.Chaos{Crash: 0.1, Hang: 0.05, Wrong: 0.1, Garbage: 0.05, Seed: 7}},
		{in: " wrong = 0.5 , seed = 3 ", want: &host.Chaos{Wrong: 0.5, Seed: 3}},
		{in: "crash=1", want: &host.Chaos{Crash: 1}},
		{in: "crash=0.1,hang=0.2,wrong=0.3,garbage=0.4", want: &host.Chaos{Crash: 0.1, Hang: 0.2, Wrong: 0.3, Garbage: 0.4}},
		{in: "", want: nil},
		{in: "crash=2", err: `chaos: "crash=2": the crash rate must be a number from 0 to 1`},
		{in: "hang=-0.1", err: `chaos: "hang=-0.1": the hang rate must be a number from 0 to 1`},
		{in: "wrong=NaN", err: `chaos: "wrong=NaN": the wrong rate must be a number from 0 to 1`},
		{in: "garbage=lots", err: `chaos: "garbage=lots": the garbage rate must be a number from 0 to 1`},
		{in: "crsh=0.1", err: `chaos: "crsh=0.1": unknown key "crsh"; want crash, hang, wrong, garbage or seed`},
		{in: "crash", err: `chaos: "crash": want key=value, e.g. crash=0.1`},
		{in: "crash=0.1,,wrong=0.1", err: `chaos: "": want key=value, e.g. crash=0.1`},
		{in: "crash=0.1,crash=0.2", err: `chaos: "crash=0.2": crash is given twice`},
		{in: "seed=-1", err: `chaos: "seed=-1": the seed must be an unsigned integer`},
		{in: "crash=0.6,wrong=0.6", err: `chaos: the rates add up to 1.2; they must add up to at most 1`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			c, err := host.ParseChaos(tc.in)
			if tc.err != "" {
				assert.EqualError(t, err, tc.err)
				assert.Nil(t, c)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, c)
			if c != nil {
				again, err := host.ParseChaos(c.String())
				require.NoError(t, err)
				assert.Equal(t, c, again, "String is read back as it was: %s", c)
			}
		})
	}
	assert.Equal(t, "crash=0.1,garbage=0.05,seed=7", (&host.Chaos{Crash: 0.1, Garbage: 0.05, Seed: 7}).String())
}

// TestChaosKinds sabotages the first attempt at every part in each way: the
// task still ends with the output it gives without chaos, and the counts
// say what was injected and recovered.
func TestChaosKinds(t *testing.T) {
	const parts = 3
	tests := []struct {
		kind host.ChaosKind
		opts []sdk.Option
		// check checks the event that shows the sabotage's effect.
		fail    host.FailKind
		verdict string
	}{
		{kind: host.ChaosCrash, fail: host.FailCrash},
		{kind: host.ChaosHang, fail: host.FailTimeout},
		{kind: host.ChaosWrong, verdict: "FAILURE"},
		{kind: host.ChaosGarbage, verdict: "FAILURE"},
		{kind: host.ChaosWrong, verdict: "FAILURE", opts: []sdk.Option{sdk.WithRedundancy(2)}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s, %d options", tc.kind, len(tc.opts)), func(t *testing.T) {
			l := sqLauncher(&sqApp{}, tc.opts...)
			evs := &eventLog{}
			cfg := config(t, l, evs, parts)
			cfg.SubtaskTimeout = 2 * time.Second
			// The recovery this test checks is the timeout's: a backup
			// would beat it (TestChaosHangBackedUp).
			cfg.Backups.Off = true
			chaos, err := host.ParseChaos(fmt.Sprintf("%s=1,seed=1", tc.kind))
			require.NoError(t, err)
			cfg.Chaos = chaos
			// Chaos's own failures do not count against the bound.
			cfg.MaxAttempts = 1
			res, err := runTask(t, l, cfg, evs)
			require.NoError(t, err)
			assert.Equal(t, wantSquares(parts, 0), readOutput(t, res))

			injected := evs.ofKind(host.EventChaosInjected)
			require.Len(t, injected, parts, "one attempt per part")
			seen := map[int]bool{}
			for _, ev := range injected {
				assert.Equal(t, tc.kind, ev.Chaos)
				assert.NotEmpty(t, ev.Reason)
				seen[*ev.Part] = true
			}
			assert.Len(t, seen, parts)
			assert.Equal(t, map[host.ChaosKind]int{tc.kind: parts}, res.Counts.Injected)
			assert.Equal(t, parts, res.Counts.Recovered)
			assert.Equal(t, parts, res.Counts.Failed)
			assert.Contains(t, res.Summary().String(), fmt.Sprintf("chaos: injected %d (%s %d), recovered %d", parts, tc.kind, parts, parts))

			sabotaged := map[string]bool{}
			for _, ev := range injected {
				sabotaged[ev.Subtask] = true
			}
			n := 0
			for _, ev := range evs.all() {
				if !sabotaged[ev.Subtask] {
					continue
				}
				switch {
				case tc.fail != "" && ev.Kind == host.EventComputeFailed:
					assert.Equal(t, tc.fail, ev.Fail)
					assert.Contains(t, ev.Reason, "chaos")
					n++
				case tc.verdict != "" && ev.Kind == host.EventSubtaskVerified:
					assert.Equal(t, tc.verdict, ev.Verdict)
					n++
				}
			}
			assert.Equal(t, parts, n)
		})
	}
}

// TestChaosReproducible runs the same chaos twice: the same attempts at
// the same parts are sabotaged the same way, and the output is the one
// without chaos.
func TestChaosReproducible(t *testing.T) {
	const parts = 12
	chaos, err := host.ParseChaos("crash=0.15,hang=0.05,wrong=0.15,garbage=0.15,seed=7")
	require.NoError(t, err)
	runOnce := func() (string, *host.Result) {
		l := sqLauncher(&sqApp{})
		evs := &eventLog{}
		cfg := config(t, l, evs, parts)
		cfg.Providers = 3
		cfg.SubtaskTimeout = 2 * time.Second
		cfg.Chaos = chaos
		res, err := runTask(t, l, cfg, evs)
		require.NoError(t, err)
		assert.Equal(t, wantSquares(parts, 0), readOutput(t, res))
		// Which part is handed out when depends on timing; what happens
		// to each attempt at each part does not.
		var story []string
		for _, ev := range evs.ofKind(host.EventSubtaskAssigned) {
			story = append(story, fmt.Sprintf("part %2d attempt %d", *ev.Part, ev.Attempt))
		}
		for _, ev := range evs.ofKind(host.EventChaosInjected) {
			story = append(story, fmt.Sprintf("part %2d attempt %d: %s", *ev.Part, ev.Attempt, ev.Chaos))
		}
		slices.Sort(story)
		return strings.Join(story, "\n"), res
	}
	first, res1 := runOnce()
	second, res2 := runOnce()
	assert.Equal(t, first, second)
	assert.Equal(t, res1.Counts.Injected, res2.Counts.Injected)
	assert.Positive(t, res1.Counts.InjectedTotal(), "seed 7 sabotages some of %d parts", parts)
	assert.Equal(t, res1.Counts.InjectedTotal(), res1.Counts.Recovered)
}

// TestChaosHangBackedUp: with backups on (the default), a stalled attempt
// near the end of the task is overtaken by a backup instead of waiting for
// its deadline; whichever way each stall ends, every injected hang is
// counted and recovered, and the output is the one without chaos.
func TestChaosHangBackedUp(t *testing.T) {
	const parts = 3
	l := sqLauncher(&sqApp{})
	evs := &eventLog{}
	cfg := config(t, l, evs, parts)
	cfg.SubtaskTimeout = 2 * time.Second
	cfg.Backups = host.Backups{MinWait: 20 * time.Millisecond}
	chaos, err := host.ParseChaos("hang=1,seed=1")
	require.NoError(t, err)
	cfg.Chaos = chaos
	res, err := runTask(t, l, cfg, evs)
	require.NoError(t, err)
	assert.Equal(t, wantSquares(parts, 0), readOutput(t, res))

	// Two slots: the first two hangs run together, with nothing computed
	// yet to tell slow from normal, so they run to their deadline; the
	// third comes when the other parts are computed, and is backed up.
	assert.Equal(t, map[host.ChaosKind]int{host.ChaosHang: parts}, res.Counts.Injected)
	assert.Equal(t, parts, res.Counts.Recovered)
	assert.Equal(t, parts, res.Counts.FailedBy[host.FailTimeout]+res.Counts.Superseded,
		"each hang ends by its deadline or superseded")
	assert.Positive(t, res.Counts.BackupWins)
	for _, ev := range evs.ofKind(host.EventSubtaskSuperseded) {
		assert.Zero(t, ev.Backup, "the stalled copy is the one called off")
	}
	assert.Contains(t, res.Summary().String(), fmt.Sprintf("chaos: injected %d (hang %d), recovered %d", parts, parts, parts))
}
