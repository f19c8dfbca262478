package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
)

func intp(i int) *int { return &i }

func TestEventLine(t *testing.T) {
	tests := []struct {
		name string
		ev   host.Event
		want string
	}{
		{"created", host.Event{Kind: host.EventTaskCreated, Task: "t1", Parts: 12}, "task t1 created: 12 parts"},
		{"created, parts unknown", host.Event{Kind: host.EventTaskCreated, Task: "t1"}, "task t1 created"},
		{"chaos", host.Event{Kind: host.EventChaosInjected, Part: intp(3), Attempt: 1, Chaos: host.ChaosCrash},
			"chaos: crash on part 3 attempt 1"},
		{"compute failed", host.Event{Kind: host.EventComputeFailed, Part: intp(3), Attempt: 2, Fail: host.FailTimeout, Reason: "no answer within 3s"},
			"part 3 attempt 2 failed (timeout): no answer within 3s"},
		{"rejected", host.Event{Kind: host.EventSubtaskVerified, Part: intp(0), Attempt: 1, Verdict: "FAILURE", Reason: "wrong size"},
			"part 0 attempt 1 rejected: wrong size"},
		{"part unknown", host.Event{Kind: host.EventSubtaskVerified, Subtask: "s-1", Verdict: "FAILURE", Reason: "bad"},
			"subtask s-1 rejected: bad"},
		{"backup failed", host.Event{Kind: host.EventComputeFailed, Part: intp(3), Attempt: 1, Backup: 1, Fail: host.FailCrash, Reason: "exit status 1"},
			"part 3 attempt 1 backup 1 failed (crash): exit status 1"},
		{"backup", host.Event{Kind: host.EventBackupStarted, Part: intp(3), Attempt: 1, Backup: 1, Node: "node-1", Reason: "subtask s has computed for 3s on node-0; the run's median attempt takes 1s"},
			"part 3 attempt 1 is slow: backup 1 on node-1 (subtask s has computed for 3s on node-0; the run's median attempt takes 1s)"},
		{"superseded", host.Event{Kind: host.EventSubtaskSuperseded, Part: intp(3), Attempt: 1}, ""},
		{"banned", host.Event{Kind: host.EventNodeBanned, Node: "node-2"}, ""},
		{"requestor died", host.Event{Kind: host.EventRequestorDied, Reason: "exit status 2"}, "the requestor died: exit status 2"},
		{"requestor restarted", host.Event{Kind: host.EventRequestorStarted, Attempt: 2}, "the requestor restarted (start 2)"},
		{"requestor started", host.Event{Kind: host.EventRequestorStarted, Attempt: 1}, ""},
		{"routine", host.Event{Kind: host.EventSubtaskAssigned, Part: intp(1)}, ""},
		{"awaiting data", host.Event{Kind: host.EventSubtaskVerified, Verdict: "AWAITING_DATA"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			last := 0
			assert.Equal(t, tt.want, eventLine(tt.ev, &last))
		})
	}
}

// TestEventLineTenths checks that accepted parts are reported every tenth
// of the task, not one by one.
func TestEventLineTenths(t *testing.T) {
	last := 0
	var lines []string
	for done := 1; done <= 40; done++ {
		ev := host.Event{Kind: host.EventSubtaskVerified, Verdict: "SUCCESS", Progress: host.Progress{Parts: 40, Done: done}}
		if l := eventLine(ev, &last); l != "" {
			lines = append(lines, l)
		}
	}
	assert.Len(t, lines, 10)
	assert.Equal(t, "4/40 parts done", lines[0])
	assert.Equal(t, "40/40 parts done", lines[9])
}

func TestReporterBar(t *testing.T) {
	var buf bytes.Buffer
	r := newReporter(&buf, progressBar)
	r.event(host.Event{Kind: host.EventTaskStarted})
	r.event(host.Event{Kind: host.EventTaskCreated, Parts: 12, Progress: host.Progress{Parts: 12}})
	r.event(host.Event{Kind: host.EventComputeFailed, Progress: host.Progress{Parts: 12, Done: 3, Computing: 2, Verifying: 1, Failed: 1, Retried: 1, Injected: 1}})
	// The bar is throttled; the reporter's tick draws the last state.
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return strings.Contains(buf.String(), "injected 1")
	}, 10*time.Second, 20*time.Millisecond)
	r.notice("interrupted")
	r.close()
	r.close()
	out := buf.String()
	for _, w := range []string{"(3/12", "parts/", "computing 2, verifying 1, failed 1, retried 1, injected 1", "interrupted\n"} {
		assert.Contains(t, out, w)
	}
	assert.True(t, strings.HasSuffix(out, "\033[2K\r"), "close erases the bar: %q", out)
}

func TestReporterQuiet(t *testing.T) {
	for _, mode := range []string{progressOff, progressLines} {
		var buf bytes.Buffer
		r := newReporter(&buf, mode)
		r.event(host.Event{Kind: host.EventSubtaskAssigned, Progress: host.Progress{Parts: 12, Computing: 1}})
		r.close()
		assert.Empty(t, buf.String(), mode)
	}
}

func TestSummaryText(t *testing.T) {
	res := &host.Result{
		TaskID: "t1", Outcome: host.Finished, Duration: 12300 * time.Millisecond,
		Counts: host.Counts{
			Parts: 12, Done: 12, Assigned: 17, Computed: 15, Accepted: 12, Rejected: 3,
			Failed: 5, FailedBy: map[host.FailKind]int{host.FailCrash: 1, host.FailTimeout: 1, host.FailRejected: 3},
			Retried: 5, Banned: 5, Backups: 2, BackupWins: 1, Superseded: 2,
			Injected:  map[host.ChaosKind]int{host.ChaosCrash: 1, host.ChaosHang: 1, host.ChaosWrong: 2, host.ChaosGarbage: 1},
			Recovered: 5,
		},
	}
	got := summaryText(res)
	for _, w := range []string{
		"task t1 finished in 12.3s",
		"parts:    12/12 done",
		"attempts: 17 (15 computed, 12 accepted, 3 rejected)",
		"failures: 5 (crash 1, rejected 3, timeout 1), 5 retried, 5 nodes banned",
		"chaos:    injected 5 (crash 1, garbage 1, hang 1, wrong 2); recovered 5 of 5",
		"backups:  2 of slow subtasks, 1 computed first",
	} {
		assert.Contains(t, got, w)
	}
	clean := summaryText(&host.Result{TaskID: "t2", Outcome: host.Failed, Reason: "part 3 failed 3 times", Counts: host.Counts{Parts: 4, Done: 2}})
	assert.Contains(t, clean, "task t2 failed in 0s: part 3 failed 3 times")
	assert.NotContains(t, clean, "chaos")
	assert.NotContains(t, clean, "failures")
	assert.NotContains(t, clean, "backups")
}

// TestReporterBarUnknownParts checks the bar of an app that does not
// publish its number of parts: a count without a total.
func TestReporterBarUnknownParts(t *testing.T) {
	var buf bytes.Buffer
	r := newReporter(&buf, progressBar)
	r.event(host.Event{Kind: host.EventTaskCreated})
	r.event(host.Event{Kind: host.EventSubtaskVerified, Verdict: "SUCCESS", Progress: host.Progress{Done: 2}})
	require.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return strings.Contains(buf.String(), "(2/-")
	}, 10*time.Second, 20*time.Millisecond)
	r.close()
}
