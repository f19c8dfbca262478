package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
	"github.com/gtask/gtask/host"
)

// A daemon killed mid-task (kill -9, a crash) may not have committed the
// run's last events, which the run had written to its events.jsonl: the
// resumed run's seq goes on from that file, so the store would miss them.
// Conversely, the store may hold events the run had not written to the
// file yet (the file is buffered between the run's waits), whose seq the
// resumed run hands out again. Before a task's run resumes, the daemon
// makes its store agree with events.jsonl: recovered holds what it read.

// recovered is what a resume takes from the task's events.jsonl.
type recovered struct {
	// events are the file's events with a seq above the store's, in order.
	events []host.Event
	// last is the file's last event (nil when it has none): the resumed
	// run's seq goes on from it.
	last *host.Event
	// bad counts the whole lines that were no event (or out of order).
	bad int
}

// readEvents reads the events of the events.jsonl at path whose seq is
// above after. Only whole lines count: a last line without its newline,
// which the run had not finished writing, is left out (the resumed run
// cuts it off). A missing file has no events.
func readEvents(path string, after int64) (*recovered, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &recovered{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rec := &recovered{}
	br := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return rec, nil // a line without its newline is not whole
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		var ev host.Event
		if err := json.Unmarshal(bytes.TrimSpace(line), &ev); err != nil || ev.Seq <= 0 {
			rec.bad++
			continue
		}
		if rec.last != nil && ev.Seq <= rec.last.Seq {
			rec.bad++ // seq only increases
			continue
		}
		rec.last = &ev
		if ev.Seq > after {
			rec.events = append(rec.events, ev)
		}
	}
}

// lastRunSeq is the seq of task's last stored run event; 0 when it has
// none.
func lastRunSeq(tx *bolt.Tx, task string) (int64, error) {
	var last int64
	err := taskEventsBackward(tx, task, func(_ uint64, ev *hostv1.Event) bool {
		if ev.Seq > 0 {
			last = ev.Seq
			return false
		}
		return true
	})
	return last, err
}

// taskEventsBackward calls fn for each event of task, last first, with
// its cursor, until fn returns false.
func taskEventsBackward(tx *bolt.Tx, task string, fn func(uint64, *hostv1.Event) bool) error {
	prefix := append([]byte(task), 0)
	evs := tx.Bucket(bEvents)
	c := tx.Bucket(bTaskEvents).Cursor()
	k, _ := c.Seek(append([]byte(task), 1)) // just past the task's keys
	if k == nil {
		k, _ = c.Last()
	} else {
		k, _ = c.Prev()
	}
	for ; k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Prev() {
		if len(k) != len(prefix)+8 {
			continue
		}
		cursor := k[len(prefix):]
		ev, err := decodeEvent(evs.Get(cursor))
		if err != nil {
			return err
		}
		if !fn(u64From(cursor), ev) {
			return nil
		}
	}
	return nil
}

// reconcile makes t's stored run events agree with rec, read from its
// events.jsonl, before a resumed run: it deletes the stored run events
// beyond the file's last one (when the file has one), whose seq the
// resumed run hands out again, then appends the file's events beyond the
// store's last one (and beyond t.Skipped), converted as a run's events
// are. Events are stored in seq order, so the store then holds the file's
// seq without a gap, but for t.Skipped's. It answers how many it deleted
// and appended; t's progress follows, for the caller to store.
func reconcile(tx *bolt.Tx, t *taskRec, rec *recovered) (dropped, added int, err error) {
	var extra []uint64
	if rec.last != nil {
		extra, err = runEventsAfter(tx, t.ID, rec.last.Seq)
		if err != nil {
			return 0, 0, err
		}
	}
	for _, c := range extra {
		if err := tx.Bucket(bEvents).Delete(u64(c)); err != nil {
			return 0, 0, err
		}
		if err := tx.Bucket(bTaskEvents).Delete(taskEventKey(t.ID, c)); err != nil {
			return 0, 0, err
		}
	}
	stored, err := lastRunSeq(tx, t.ID)
	if err != nil {
		return 0, 0, err
	}
	after := max(stored, t.Skipped)
	for _, ev := range rec.events {
		if ev.Seq <= after {
			continue
		}
		pe := runEvent(ev)
		pe.State = t.State
		if err := appendEvent(tx, pe); err != nil {
			return 0, 0, err
		}
		added++
	}
	if (len(extra) > 0 || added > 0) && rec.last != nil {
		t.Progress = progressOf(runEvent(*rec.last).Progress)
	}
	return len(extra), added, nil
}

// runEventsAfter answers the cursors of task's stored run events whose
// seq is above seq.
func runEventsAfter(tx *bolt.Tx, task string, seq int64) ([]uint64, error) {
	var out []uint64
	err := taskEventsBackward(tx, task, func(cursor uint64, ev *hostv1.Event) bool {
		if ev.Seq == 0 {
			return true // the daemon's own
		}
		if ev.Seq <= seq {
			return false
		}
		out = append(out, cursor)
		return true
	})
	return out, err
}
