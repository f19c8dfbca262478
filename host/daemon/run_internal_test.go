package daemon

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/gtask/gtask/host"
)

// TestRunEvent: a run's event reaches the API with what a watcher needs
// to tell its steps apart: the part (-1 when unknown), the attempt, the
// copy (a backup's number), the node, and the reason, or the code when
// there is none.
func TestRunEvent(t *testing.T) {
	part := 3
	at := time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)
	got := runEvent(host.Event{
		Seq: 7, Time: at, Kind: host.EventComputeFailed, Task: "t1", Subtask: "s1",
		Part: &part, Attempt: 2, Backup: 1, Node: "node-3", Fail: host.FailError, Code: "Internal",
		Progress: host.Progress{Parts: 8, Done: 5, Computing: 2},
	})
	assert.Equal(t, "compute_failed", got.GetKind())
	assert.EqualValues(t, 7, got.GetSeq())
	assert.Equal(t, at, got.GetTime().AsTime())
	assert.EqualValues(t, 3, got.GetPart())
	assert.EqualValues(t, 2, got.GetAttempt())
	assert.EqualValues(t, 1, got.GetBackup())
	assert.Equal(t, "node-3", got.GetNode())
	assert.Equal(t, "Internal", got.GetReason(), "the code, for want of a reason")
	assert.EqualValues(t, 5, got.GetProgress().GetDone())

	none := runEvent(host.Event{Kind: host.EventTaskStarted, Reason: "2 provider slots"})
	assert.EqualValues(t, -1, none.GetPart())
	assert.Zero(t, none.GetBackup())
	assert.Equal(t, "2 provider slots", none.GetReason())
}
