package daemon

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
	"github.com/gtask/gtask/host"
)

// TestReconcile makes a store agree with an events.jsonl: behind it (the
// daemon died before committing), ahead of it (the run had not written
// what the daemon committed), and with a stopped run's events skipped.
func TestReconcile(t *testing.T) {
	const id = "t-1"
	// events.jsonl: seq 1..6 whole, then a line the run did not finish.
	path := filepath.Join(t.TempDir(), "events.jsonl")
	var file []byte
	for seq := range int64(6) {
		line, err := json.Marshal(host.Event{Seq: seq + 1, Kind: "subtask_assigned", Task: id, Subtask: "s", Progress: host.Progress{Done: int(seq)}})
		require.NoError(t, err)
		file = append(append(file, line...), '\n')
	}
	file = append(file, `{"seq":7,"kind":"subtask_comp`...)
	require.NoError(t, os.WriteFile(path, file, 0o644))

	for _, tc := range []struct {
		name    string
		stored  []int64 // run seq in the store (0: one of the daemon's)
		skipped int64
		want    []int64
		dropped int
	}{
		{name: "behind", stored: []int64{0, 0, 1, 2}, want: []int64{0, 0, 1, 2, 3, 4, 5, 6}},
		{name: "in step", stored: []int64{0, 1, 2, 3, 4, 5, 6}, want: []int64{0, 1, 2, 3, 4, 5, 6}},
		{name: "ahead", stored: []int64{0, 1, 2, 3, 4, 5, 6, 7, 0, 8}, want: []int64{0, 1, 2, 3, 4, 5, 6, 0}, dropped: 2},
		{name: "skipped", stored: []int64{0, 1, 2}, skipped: 4, want: []int64{0, 1, 2, 5, 6}},
		{name: "none stored", stored: []int64{0}, want: []int64{0, 1, 2, 3, 4, 5, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, err := openDB(filepath.Join(t.TempDir(), "gtask.db"))
			require.NoError(t, err)
			defer db.Close()
			task := &taskRec{ID: id, State: hostv1.TaskState_TASK_STATE_RUNNING, Skipped: tc.skipped}
			require.NoError(t, db.Update(func(tx *bolt.Tx) error {
				for _, seq := range tc.stored {
					ev := &hostv1.Event{TaskId: id, Seq: seq, Kind: "x"}
					if err := appendEvent(tx, ev); err != nil {
						return err
					}
				}
				// Another task's events, after this one's.
				return appendEvent(tx, &hostv1.Event{TaskId: id + "0", Seq: 99})
			}))

			var after int64
			require.NoError(t, db.View(func(tx *bolt.Tx) error {
				after, err = lastRunSeq(tx, id)
				return err
			}))
			rec, err := readEvents(path, max(after, tc.skipped))
			require.NoError(t, err)
			require.EqualValues(t, 6, rec.last.Seq, "the line the run did not finish is left out")

			var dropped, added int
			require.NoError(t, db.Update(func(tx *bolt.Tx) error {
				dropped, added, err = reconcile(tx, task, rec)
				return err
			}))
			require.Equal(t, tc.dropped, dropped)
			var got []int64
			require.NoError(t, db.View(func(tx *bolt.Tx) error {
				return taskEvents(tx, id, 0, func(ev *hostv1.Event) bool {
					got = append(got, ev.GetSeq())
					if ev.GetKind() != "x" { // recovered
						require.Equal(t, "subtask_assigned", ev.GetKind())
						require.Equal(t, "s", ev.GetSubtaskId())
						require.Equal(t, hostv1.TaskState_TASK_STATE_RUNNING, ev.GetState())
					}
					return true
				})
			}))
			require.Equal(t, tc.want, got)
			if added > 0 || dropped > 0 {
				require.EqualValues(t, 5, task.Progress.Done, "the progress of the file's last event")
			}
		})
	}

	rec, err := readEvents(filepath.Join(t.TempDir(), "none.jsonl"), 0)
	require.NoError(t, err)
	require.Nil(t, rec.last)
	require.Empty(t, rec.events)
}
