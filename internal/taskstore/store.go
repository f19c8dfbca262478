package taskstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/gtask/gtask/requestor"
)

// Buckets. Keys of parts are 8-byte big-endian indices, so that a cursor
// walks them in part order.
//
// The layout keeps the cost of a call independent of the number of parts:
// what Create writes for every part (parts, runs, rdeps) is never written
// again, and what calls write (state, ready, subtasks, live, holds, meta)
// holds only the parts and subtasks touched so far. Parts nobody touched
// yet are handed out in order by a cursor over the runs of parts without
// dependencies (meta "fresh"), not found in an index of every part.
var (
	bMeta   = []byte("meta")     // "task" -> Task (JSON); "fresh" -> next, end of its run
	bParts  = []byte("parts")    // part -> partStatic (JSON), written by Create only
	bRuns   = []byte("runs")     // start -> end of each run of parts without dependencies
	bRdeps  = []byte("rdeps")    // dep part ++ part -> nil: who depends on dep
	bState  = []byte("state")    // part -> partRec (JSON), for every part touched
	bReady  = []byte("ready")    // part -> nil, every computable part the fresh cursor will not hand out
	bSubs   = []byte("subtasks") // subtask id -> subRec (JSON)
	bLive   = []byte("live")     // subtask id -> nil, attached COMPUTING/VERIFYING subtasks
	bHolds  = []byte("holds")    // node ++ part -> subtask id, per live subtask
	keyTask = []byte("task")
	keyNext = []byte("fresh")

	allBuckets = [][]byte{bMeta, bParts, bRuns, bRdeps, bState, bReady, bSubs, bLive, bHolds}
)

// errNoChange rolls a read-write transaction back when it turned out to
// change nothing, so that no commit (and no fsync) is paid for it.
var errNoChange = errors.New("no change")

// Store is the state of one task, in one bbolt file. Every method that
// changes state commits (with fsync) before it returns. A Store is safe for
// concurrent use.
type Store struct {
	db *bolt.DB
	id string
}

func boltOptions() *bolt.Options {
	return &bolt.Options{
		// A second process opening the same task store (two requestors on
		// one work dir) fails instead of waiting forever for the lock.
		Timeout: 2 * time.Second,
		// The freelist is rebuilt by a scan at open instead of written at
		// every commit: commits stay the same size however large the task.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	}
}

// Create makes the store of task t at path with its parts, in one
// transaction, and opens it. It writes a temporary file and renames it into
// place, so that path exists only once the task is complete: a crash during
// Create leaves no task behind. It fails with requestor.ErrTaskExists when
// path exists.
func Create(path string, t Task, parts []Part) (*Store, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("task %q: %w", t.ID, requestor.ErrTaskExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("task store: %w", err)
	}
	if t.Redundancy < 1 || t.MaxAttempts < 1 {
		return nil, fmt.Errorf("task store: redundancy %d and max attempts %d must be at least 1", t.Redundancy, t.MaxAttempts)
	}
	if len(parts) == 0 {
		return nil, errors.New("task store: a task needs at least one part")
	}
	t.Parts, t.Accepted, t.State, t.Reason = len(parts), 0, TaskActive, ""

	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("task store: %w", err)
	}
	db, err := bolt.Open(tmp, 0o600, boltOptions())
	if err != nil {
		return nil, fmt.Errorf("task store: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error { return fill(tx, t, parts) })
	err = errors.Join(err, db.Close())
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("task store: %w", err)
	}
	return Open(path)
}

func fill(tx *bolt.Tx, t Task, parts []Part) error {
	for _, name := range allBuckets {
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	raw, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := tx.Bucket(bMeta).Put(keyTask, raw); err != nil {
		return err
	}
	pb, rb, ub := tx.Bucket(bParts), tx.Bucket(bRdeps), tx.Bucket(bRuns)
	// Keys go in in order and are never rewritten: full pages.
	pb.FillPercent, rb.FillPercent, ub.FillPercent = 1, 1, 1
	runStart := -1
	endRun := func(end int) error {
		if runStart < 0 {
			return nil
		}
		err := ub.Put(pkey(runStart), pkey(end))
		runStart = -1
		return err
	}
	for i, p := range parts {
		ps := partStatic{Params: p.Params, Resources: p.Resources}
		seen := map[int]bool{}
		for _, d := range p.DependsOn {
			if d < 0 || d >= i {
				return fmt.Errorf("part %d depends on part %d: a part may depend only on earlier parts", i, d)
			}
			if seen[d] {
				continue
			}
			seen[d] = true
			ps.Deps = append(ps.Deps, d)
			if err := rb.Put(pair(d, i), nil); err != nil {
				return err
			}
		}
		raw, err := json.Marshal(&ps)
		if err != nil {
			return err
		}
		if err := pb.Put(pkey(i), raw); err != nil {
			return err
		}
		switch {
		case len(ps.Deps) > 0:
			if err := endRun(i); err != nil {
				return err
			}
		case runStart < 0:
			runStart = i
		}
	}
	if err := endRun(len(parts)); err != nil {
		return err
	}
	t0 := &txn{meta: tx.Bucket(bMeta), runs: ub, task: t}
	t0.seekFresh(0)
	return t0.putFresh()
}

// Open opens the store at path, made by Create (fs.ErrNotExist when there is
// none). Subtasks that were COMPUTING when the store was last closed (or
// when the process died) are detached: their parts become computable again,
// without counting an attempt, because the host that asked for them may be
// gone too; a Verify of one is still honoured (see SubtaskInfo.Detached).
func Open(path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("task store: %w", err)
	}
	db, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		return nil, fmt.Errorf("task store %s: %w", path, err)
	}
	s := &Store{db: db}
	err = s.update(func(t *txn) error {
		s.id = t.task.ID
		return t.detachComputing()
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("task store %s: %w", path, err)
	}
	return s, nil
}

// Close closes the store; later calls fail.
func (s *Store) Close() error { return s.db.Close() }

// Task returns the task's record.
func (s *Store) Task() (Task, error) {
	var t Task
	err := s.view(func(x *txn) error { t = x.task; return nil })
	return t, err
}

// Next hands a computable part to node as subtask id, or returns nil when
// none is computable for node now. A node never holds two live subtasks of
// one part. Parts handed out before (failed, aborted, discarded, in need of
// a replica, or whose dependencies were just accepted) come first, lowest
// index first; then parts never handed out, in order. Cost: O(log n), plus
// one step per computable part that node already holds (only possible with
// redundancy or after INCONCLUSIVE), never a scan of the parts.
func (s *Store) Next(id, node string) (*Assignment, error) {
	var a *Assignment
	err := s.update(func(t *txn) error {
		if t.task.State == TaskAborted {
			return t.errAborted()
		}
		if t.subs.Get([]byte(id)) != nil {
			return fmt.Errorf("task %q: subtask %q: %w", t.task.ID, id, requestor.ErrSubtaskExists)
		}
		if err := t.errEnded(); err != nil {
			return err
		}
		if t.task.State != TaskActive {
			return errNoChange // merging: nothing is computable
		}
		i, ok := t.readyFor(node)
		if !ok {
			i, ok = t.takeFresh()
		}
		if !ok {
			return errNoChange
		}
		pr, err := t.part(i)
		if err != nil {
			return err
		}
		pr.Live = append(pr.Live, id)
		if err := t.putPart(i, pr); err != nil {
			return err
		}
		sr := &subRec{Part: i, Node: node, State: Computing}
		if err := t.putSub(id, sr); err != nil {
			return err
		}
		if err := t.attach(id, sr); err != nil {
			return err
		}
		a = &Assignment{Part: i, Params: pr.st.Params, Resources: pr.st.Resources}
		return nil
	})
	return a, err
}

// HasPending reports whether some part is computable now: the task is
// active and the computable index is not empty. O(log n).
func (s *Store) HasPending() (bool, error) {
	var ok bool
	err := s.view(func(t *txn) error {
		if t.task.State != TaskActive {
			return nil
		}
		k, _ := t.ready.Cursor().First()
		ok = k != nil || t.fresh.next < t.task.Parts
		return nil
	})
	return ok, err
}

// BeginVerify says what Verify of subtask id must do: answer a final
// verdict, run the app's check, or re-count the subtask's vote. It changes
// nothing.
func (s *Store) BeginVerify(id string) (VerifyPlan, error) {
	var p VerifyPlan
	err := s.view(func(t *txn) error {
		if t.task.State == TaskAborted {
			return t.errAborted()
		}
		sr, err := t.sub(id)
		if err != nil {
			return err
		}
		p.Merging = t.task.State == TaskMerging
		switch sr.State {
		case Success, Failure:
			a := t.finalAnswer(sr)
			p.Answer = &a
			return nil
		case Aborted:
			if t.task.State == TaskFailed {
				return t.errEnded()
			}
			return fmt.Errorf("task %q: subtask %q (%s): %w", t.task.ID, id, sr.Reason, ErrSubtaskAborted)
		}
		if t.task.State == TaskFailed {
			return t.errEnded()
		}
		pr, err := t.part(sr.Part)
		if err != nil {
			return err
		}
		p.Part, p.Params, p.Node = sr.Part, pr.st.Params, sr.Node
		p.Check = !(sr.State == Verifying && sr.Vote)
		return nil
	})
	return p, err
}

// RecordVerify records the app's check c of subtask id (or, with a zero
// c.Verdict, re-counts its vote) and returns the answer for Verify. A
// subtask with a final verdict gets it again, unchanged.
func (s *Store) RecordVerify(id string, c Check) (Answer, error) {
	var a Answer
	err := s.update(func(t *txn) error {
		var err error
		a, err = t.recordVerify(id, c)
		return err
	})
	return a, err
}

// Discard drops the results of the named subtasks (those that hold one:
// SUCCESS, or VERIFYING), then, transitively, the accepted results and the
// live subtasks of the parts that depend on their parts. Every dropped
// subtask becomes ABORTED; every part whose result was dropped becomes
// computable again (without counting an attempt). It returns exactly the
// ids it dropped, in the order it dropped them. Ids that are unknown or hold no
// result are ignored.
func (s *Store) Discard(ids []string) ([]string, error) {
	var out []string
	err := s.update(func(t *txn) error {
		if t.task.State == TaskAborted {
			return t.errAborted()
		}
		if err := t.errEnded(); err != nil {
			return err
		}
		if t.task.State == TaskMerging {
			return fmt.Errorf("task %q: all parts are accepted and merging: %w", t.task.ID, ErrTaskFinished)
		}
		var err error
		out, err = t.discard(ids)
		if err == nil && len(out) == 0 {
			return errNoChange
		}
		return err
	})
	return out, err
}

// AbortSubtask aborts subtask id: it becomes ABORTED and its part is
// computable again, and the abort counts as a failed attempt of the part
// (which may fail the task). Aborting a subtask that is already FAILURE or
// ABORTED changes nothing; aborting an accepted result is ErrWrongState
// (DiscardSubtasks drops results).
func (s *Store) AbortSubtask(id string) error {
	return s.update(func(t *txn) error {
		if t.task.State == TaskAborted {
			return t.errAborted()
		}
		sr, err := t.sub(id)
		if err != nil {
			return err
		}
		switch sr.State {
		case Failure, Aborted:
			return errNoChange
		case Success:
			return fmt.Errorf("task %q: subtask %q is accepted; discard it instead: %w", t.task.ID, id, requestor.ErrWrongState)
		}
		const why = "aborted"
		if sr.Detached || t.task.State != TaskActive {
			sr.State, sr.Reason = Aborted, why
			return t.putSub(id, sr)
		}
		pr, err := t.part(sr.Part)
		if err != nil {
			return err
		}
		if err := t.detach(id, sr, pr); err != nil {
			return err
		}
		sr.State, sr.Reason = Aborted, why
		if err := t.putSub(id, sr); err != nil {
			return err
		}
		_, err = t.failedAttempt(sr.Part, pr, 1, why)
		return err
	})
}

// AbortTask aborts the task: every live subtask becomes ABORTED, and every
// later call but HasPending (false) and AbortTask (a no-op) fails with
// requestor.ErrTaskAborted. A task that already ended (finished or failed)
// keeps its outcome and AbortTask changes nothing. It reports whether the
// task was aborted by this call.
func (s *Store) AbortTask() (bool, error) {
	var aborted bool
	err := s.update(func(t *txn) error {
		if t.task.State != TaskActive && t.task.State != TaskMerging {
			return errNoChange
		}
		if err := t.abortLive("task aborted"); err != nil {
			return err
		}
		t.task.State, t.dirty, aborted = TaskAborted, true, true
		return nil
	})
	return aborted, err
}

// Finish marks a merging task finished.
func (s *Store) Finish() error {
	return s.update(func(t *txn) error {
		if t.task.State != TaskMerging {
			return fmt.Errorf("task %q is %s, not merging: %w", t.task.ID, t.task.State, requestor.ErrWrongState)
		}
		t.task.State, t.dirty = TaskFinished, true
		return nil
	})
}

// Fail fails an active or merging task with reason (a failed merge, say).
func (s *Store) Fail(reason string) error {
	return s.update(func(t *txn) error {
		if t.task.State != TaskActive && t.task.State != TaskMerging {
			return errNoChange
		}
		return t.failTask(reason)
	})
}

// Result is one accepted result, as Results yields it.
type Result struct {
	Part      int
	Params    json.RawMessage
	SubtaskID string
	Node      string
	File      string
}

// Results calls fn for every part's accepted result, in part order,
// stopping at fn's first error. A part not accepted is an error.
func (s *Store) Results(fn func(Result) error) error {
	return s.view(func(t *txn) error {
		for i := range t.task.Parts {
			pr, err := t.part(i)
			if err != nil {
				return err
			}
			if len(pr.Winners) == 0 {
				return fmt.Errorf("task %q: part %d is not accepted: %w", t.task.ID, i, requestor.ErrWrongState)
			}
			sr, err := t.sub(pr.Winners[0])
			if err != nil {
				return err
			}
			if err := fn(Result{Part: i, Params: pr.st.Params, SubtaskID: pr.Winners[0], Node: sr.Node, File: sr.File}); err != nil {
				return err
			}
		}
		return nil
	})
}

// Part describes part i.
func (s *Store) Part(i int) (PartInfo, error) {
	var pi PartInfo
	err := s.view(func(t *txn) error {
		pr, err := t.part(i)
		if err != nil {
			return err
		}
		pi = PartInfo{
			Live: append([]string(nil), pr.Live...), Votes: len(pr.Votes),
			Want: pr.Want, Quorum: pr.Quorum, Attempts: pr.Attempts, Unmet: pr.Unmet,
			Computable: computable(pr) && t.task.State == TaskActive,
		}
		if len(pr.Winners) > 0 {
			pi.Accepted = pr.Winners[0]
		}
		switch {
		case len(pr.Winners) > 0:
			pi.State = Success
		case pr.Failed:
			pi.State = Failure
		case t.task.State == TaskAborted:
			pi.State = Aborted
		case len(pr.Live) > 0:
			pi.State = Verifying
			for _, id := range pr.Live {
				if sr, err := t.sub(id); err == nil && sr.State == Computing {
					pi.State = Computing
				}
			}
		default:
			pi.State = Waiting
		}
		return nil
	})
	return pi, err
}

// Subtask describes subtask id.
func (s *Store) Subtask(id string) (SubtaskInfo, error) {
	var si SubtaskInfo
	err := s.view(func(t *txn) error {
		sr, err := t.sub(id)
		if err != nil {
			return err
		}
		si = SubtaskInfo{ID: id, Part: sr.Part, Node: sr.Node, State: sr.State, Detached: sr.Detached,
			Verdict: sr.Verdict, Reason: sr.Reason, Hash: sr.Hash, File: sr.File}
		return nil
	})
	return si, err
}

func (s *Store) view(fn func(*txn) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		t, err := begin(tx)
		if err != nil {
			return err
		}
		return fn(t)
	})
}

// update runs fn in one read-write transaction, committed (and synced)
// before it returns. fn returning errNoChange rolls back and update returns
// nil: nothing changed, so there is nothing to make durable.
func (s *Store) update(fn func(*txn) error) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		t, err := begin(tx)
		if err != nil {
			return err
		}
		if err := fn(t); err != nil {
			return err
		}
		if t.freshDirty {
			if err := t.putFresh(); err != nil {
				return err
			}
		}
		if t.dirty {
			raw, err := json.Marshal(t.task)
			if err != nil {
				return err
			}
			return t.meta.Put(keyTask, raw)
		}
		return nil
	})
	if errors.Is(err, errNoChange) {
		return nil
	}
	return err
}

func pkey(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

func pair(a, b int) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, uint64(a)), uint64(b))
}

// holdKey is node's prefix (length-prefixed, so that no node id is a
// prefix of another's keys) followed by the part.
func holdKey(node string, part int) []byte {
	k := binary.AppendUvarint(nil, uint64(len(node)))
	k = append(k, node...)
	return binary.BigEndian.AppendUint64(k, uint64(part))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
