package taskstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/gtask/gtask/requestor"
)

// partStatic is what Create writes of a part, never changed after.
type partStatic struct {
	Params    json.RawMessage `json:"p,omitempty"`
	Resources []string        `json:"r,omitempty"`
	Deps      []int           `json:"d,omitempty"`
}

// partRec is a part's state (bucket state; a part without an entry there
// has its initial state), with its static record at hand in st. The part is
// computable when it is not accepted and not failed, its dependencies are
// accepted (Unmet == 0), and it has fewer live subtasks than it wants
// (len(Live) < Want).
type partRec struct {
	st partStatic

	Unmet int `json:"u,omitempty"`
	// Live are the attached subtasks, COMPUTING or VERIFYING.
	Live []string `json:"l,omitempty"`
	// Votes are the results in (a subset of Live), judged right or
	// inconclusive by the app, with their content hashes.
	Votes []vote `json:"v,omitempty"`
	// Want is how many live subtasks the part may have: k, plus one per
	// extra replica asked for. Quorum is how many votes it needs before a
	// majority decides.
	Want   int `json:"w"`
	Quorum int `json:"q"`
	// Attempts counts failed attempts: rejected or aborted subtasks, and
	// extra replicas.
	Attempts int `json:"a,omitempty"`
	// Gen changes whenever Votes or Quorum do, so that a repeated Verify of
	// a vote whose part has not changed gives the same answer.
	Gen uint64 `json:"g,omitempty"`
	// Winners are the subtasks whose (agreeing) results were accepted;
	// Winners[0] is the one Merge gets. Hash is their content hash.
	Winners []string `json:"ok,omitempty"`
	Hash    string   `json:"h,omitempty"`
	Failed  bool     `json:"f,omitempty"`
}

type vote struct {
	Sub  string `json:"s"`
	Hash string `json:"h"`
}

// subRec is a subtask's record. Verdict and Reason are its last answer;
// Gen the part's Gen when it was given.
type subRec struct {
	Part      int               `json:"p"`
	Node      string            `json:"n"`
	State     State             `json:"s"`
	Detached  bool              `json:"d,omitempty"`
	Vote      bool              `json:"v,omitempty"`
	Hash      string            `json:"h,omitempty"`
	File      string            `json:"f,omitempty"`
	Verdict   requestor.Verdict `json:"r,omitempty"`
	Reason    string            `json:"m,omitempty"`
	Gen       uint64            `json:"g,omitempty"`
	Completed bool              `json:"c,omitempty"`
}

// txn is one transaction with the task's buckets and record at hand.
type txn struct {
	tx                                                        *bolt.Tx
	meta, parts, runs, rdeps, state, ready, subs, live, holds *bolt.Bucket
	task                                                      Task
	dirty                                                     bool // task changed: written at commit
	// fresh is the cursor over parts never handed out: next is the
	// lowest such part without dependencies (task.Parts when none is
	// left), end the end of its run.
	fresh      struct{ next, end int }
	freshDirty bool
}

func begin(tx *bolt.Tx) (*txn, error) {
	t := &txn{tx: tx,
		meta: tx.Bucket(bMeta), parts: tx.Bucket(bParts), runs: tx.Bucket(bRuns), rdeps: tx.Bucket(bRdeps),
		state: tx.Bucket(bState), ready: tx.Bucket(bReady), subs: tx.Bucket(bSubs), live: tx.Bucket(bLive),
		holds: tx.Bucket(bHolds)}
	for _, b := range []*bolt.Bucket{t.meta, t.parts, t.runs, t.rdeps, t.state, t.ready, t.subs, t.live, t.holds} {
		if b == nil {
			return nil, errors.New("not a task store (buckets missing)")
		}
	}
	raw := t.meta.Get(keyTask)
	if raw == nil {
		return nil, errors.New("not a task store (no task record)")
	}
	if err := json.Unmarshal(raw, &t.task); err != nil {
		return nil, fmt.Errorf("task record: %w", err)
	}
	fresh := t.meta.Get(keyNext)
	if len(fresh) != 16 {
		return nil, errors.New("not a task store (no fresh cursor)")
	}
	t.fresh.next = int(binary.BigEndian.Uint64(fresh))
	t.fresh.end = int(binary.BigEndian.Uint64(fresh[8:]))
	return t, nil
}

func (t *txn) putFresh() error {
	v := binary.BigEndian.AppendUint64(nil, uint64(t.fresh.next))
	return t.meta.Put(keyNext, binary.BigEndian.AppendUint64(v, uint64(t.fresh.end)))
}

// seekFresh moves the fresh cursor to the first part without
// dependencies at or after i.
func (t *txn) seekFresh(i int) {
	k, v := t.runs.Cursor().Seek(pkey(i))
	if k == nil {
		t.fresh.next, t.fresh.end = t.task.Parts, t.task.Parts
	} else {
		t.fresh.next, t.fresh.end = int(binary.BigEndian.Uint64(k)), int(binary.BigEndian.Uint64(v))
	}
	t.freshDirty = true
}

// takeFresh takes the next part never handed out, O(1) within a run and
// O(log n) from one run to the next.
func (t *txn) takeFresh() (int, bool) {
	i := t.fresh.next
	if i >= t.task.Parts {
		return 0, false
	}
	if i+1 < t.fresh.end {
		t.fresh.next = i + 1
		t.freshDirty = true
	} else {
		t.seekFresh(i + 1)
	}
	return i, true
}

// unreached reports whether part i is one the fresh cursor will hand out:
// without dependencies, and not reached yet. Such a part is never touched
// before, so it needs no entry in ready.
func (t *txn) unreached(i int, pr *partRec) bool {
	return len(pr.st.Deps) == 0 && i >= t.fresh.next
}

func (t *txn) errAborted() error {
	return fmt.Errorf("task %q: %w", t.task.ID, requestor.ErrTaskAborted)
}

// errEnded is the error for a change to a finished or failed task, nil for
// any other.
func (t *txn) errEnded() error {
	switch t.task.State {
	case TaskFinished:
		return fmt.Errorf("task %q: %w", t.task.ID, ErrTaskFinished)
	case TaskFailed:
		return fmt.Errorf("task %q: %w: %s", t.task.ID, ErrTaskFailed, t.task.Reason)
	}
	return nil
}

func (t *txn) part(i int) (*partRec, error) {
	k := pkey(i)
	raw := t.parts.Get(k)
	if raw == nil {
		return nil, fmt.Errorf("task %q: no part %d", t.task.ID, i)
	}
	pr := new(partRec)
	if err := json.Unmarshal(raw, &pr.st); err != nil {
		return nil, fmt.Errorf("part %d: %w", i, err)
	}
	if raw := t.state.Get(k); raw != nil {
		if err := json.Unmarshal(raw, pr); err != nil {
			return nil, fmt.Errorf("part %d: %w", i, err)
		}
	} else {
		pr.Unmet, pr.Want, pr.Quorum = len(pr.st.Deps), t.task.Redundancy, t.task.Redundancy
	}
	return pr, nil
}

func computable(pr *partRec) bool {
	return len(pr.Winners) == 0 && !pr.Failed && pr.Unmet == 0 && len(pr.Live) < pr.Want
}

// putPart writes part i's state and keeps the ready index in step with it.
func (t *txn) putPart(i int, pr *partRec) error {
	raw, err := json.Marshal(pr)
	if err != nil {
		return err
	}
	k := pkey(i)
	if err := t.state.Put(k, raw); err != nil {
		return err
	}
	in := t.ready.Get(k) != nil
	switch want := computable(pr) && !t.unreached(i, pr); {
	case want && !in:
		return t.ready.Put(k, nil)
	case !want && in:
		return t.ready.Delete(k)
	}
	return nil
}

func (t *txn) sub(id string) (*subRec, error) {
	raw := t.subs.Get([]byte(id))
	if raw == nil {
		return nil, fmt.Errorf("task %q: subtask %q: %w", t.task.ID, id, requestor.ErrUnknownSubtask)
	}
	sr := new(subRec)
	if err := json.Unmarshal(raw, sr); err != nil {
		return nil, fmt.Errorf("subtask %q: %w", id, err)
	}
	return sr, nil
}

func (t *txn) putSub(id string, sr *subRec) error {
	raw, err := json.Marshal(sr)
	if err != nil {
		return err
	}
	return t.subs.Put([]byte(id), raw)
}

// readyFor returns the first part in ready that node holds no live
// subtask of.
func (t *txn) readyFor(node string) (int, bool) {
	c := t.ready.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		i := int(binary.BigEndian.Uint64(k))
		if t.holds.Get(holdKey(node, i)) == nil {
			return i, true
		}
	}
	return 0, false
}

// attach indexes a subtask its part counts on (the caller adds it to
// partRec.Live).
func (t *txn) attach(id string, sr *subRec) error {
	if err := t.live.Put([]byte(id), nil); err != nil {
		return err
	}
	return t.holds.Put(holdKey(sr.Node, sr.Part), []byte(id))
}

// detach removes subtask id from its part's accounting: from Live, from the
// votes, from the indexes. The caller writes pr.
func (t *txn) detach(id string, sr *subRec, pr *partRec) error {
	pr.Live = slices.DeleteFunc(pr.Live, func(s string) bool { return s == id })
	if n := len(pr.Votes); n > 0 {
		pr.Votes = slices.DeleteFunc(pr.Votes, func(v vote) bool { return v.Sub == id })
		if len(pr.Votes) != n {
			pr.Gen++
		}
	}
	if err := t.live.Delete([]byte(id)); err != nil {
		return err
	}
	hk := holdKey(sr.Node, sr.Part)
	if bytes.Equal(t.holds.Get(hk), []byte(id)) {
		return t.holds.Delete(hk)
	}
	return nil
}

// liveIDs lists the attached subtasks (few: those in flight).
func (t *txn) liveIDs() []string {
	var ids []string
	c := t.live.Cursor()
	for k, _ := c.First(); k != nil; k, _ = c.Next() {
		ids = append(ids, string(k))
	}
	return ids
}

// detachComputing detaches every COMPUTING subtask; see Open.
func (t *txn) detachComputing() error {
	changed := false
	for _, id := range t.liveIDs() {
		sr, err := t.sub(id)
		if err != nil {
			return err
		}
		if sr.State != Computing {
			continue
		}
		pr, err := t.part(sr.Part)
		if err != nil {
			return err
		}
		if err := t.detach(id, sr, pr); err != nil {
			return err
		}
		sr.Detached = true
		if err := t.putSub(id, sr); err != nil {
			return err
		}
		if err := t.putPart(sr.Part, pr); err != nil {
			return err
		}
		changed = true
	}
	if !changed {
		return errNoChange
	}
	return nil
}

// abortLive makes every attached subtask ABORTED with reason why.
func (t *txn) abortLive(why string) error {
	for _, id := range t.liveIDs() {
		sr, err := t.sub(id)
		if err != nil {
			return err
		}
		pr, err := t.part(sr.Part)
		if err != nil {
			return err
		}
		if err := t.detach(id, sr, pr); err != nil {
			return err
		}
		sr.State, sr.Verdict, sr.Reason = Aborted, 0, why
		if err := t.putSub(id, sr); err != nil {
			return err
		}
		if err := t.putPart(sr.Part, pr); err != nil {
			return err
		}
	}
	return nil
}

// failTask fails the task: its live subtasks become ABORTED.
func (t *txn) failTask(reason string) error {
	if err := t.abortLive("task failed"); err != nil {
		return err
	}
	t.task.State, t.task.Reason, t.dirty = TaskFailed, reason, true
	return nil
}

// failedAttempt counts n failed attempts of part i (pr, whose subtask the
// caller has detached) and writes pr. When the part has used up its
// attempts, the part and the task fail, and it returns true. The caller
// must not write its copy of pr again.
func (t *txn) failedAttempt(i int, pr *partRec, n int, why string) (bool, error) {
	pr.Attempts += n
	exhausted := pr.Attempts >= t.task.MaxAttempts
	pr.Failed = exhausted
	if err := t.putPart(i, pr); err != nil {
		return false, err
	}
	if !exhausted {
		return false, nil
	}
	return true, t.failTask(fmt.Sprintf("part %d failed %d times; last: %s", i, pr.Attempts, why))
}

// finalAnswer is the answer of a subtask with a final verdict. The
// subtask whose result completed the task also tells the task's outcome,
// the same on every call once the merge is done.
func (t *txn) finalAnswer(sr *subRec) Answer {
	a := Answer{Verdict: sr.Verdict, Reason: sr.Reason}
	if sr.Completed {
		switch t.task.State {
		case TaskFinished:
			a.Reason += "; task finished"
		case TaskFailed:
			a.Reason += "; task failed: " + t.task.Reason
		}
	}
	return a
}

func (t *txn) recordVerify(id string, c Check) (Answer, error) {
	if t.task.State == TaskAborted {
		return Answer{}, t.errAborted()
	}
	sr, err := t.sub(id)
	if err != nil {
		return Answer{}, err
	}
	switch sr.State {
	case Success, Failure:
		return t.finalAnswer(sr), errNoChange
	case Aborted:
		if t.task.State == TaskFailed {
			return Answer{}, t.errEnded()
		}
		return Answer{}, fmt.Errorf("task %q: subtask %q (%s): %w", t.task.ID, id, sr.Reason, ErrSubtaskAborted)
	}
	if t.task.State == TaskFailed {
		return Answer{}, t.errEnded()
	}
	pr, err := t.part(sr.Part)
	if err != nil {
		return Answer{}, err
	}
	if c.Verdict == 0 {
		if sr.State != Verifying || !sr.Vote || sr.Detached {
			return Answer{}, fmt.Errorf("task %q: subtask %q has no vote to count: %w", t.task.ID, id, requestor.ErrWrongState)
		}
		return t.recount(id, sr, pr)
	}
	if !c.Verdict.Valid() {
		return Answer{}, fmt.Errorf("invalid verdict %v", c.Verdict)
	}
	if sr.Detached {
		if len(pr.Winners) > 0 || t.task.State != TaskActive {
			return t.superfluous(id, sr, pr, c)
		}
		if pr.Unmet > 0 {
			// Handed out when its dependencies were accepted; one was
			// discarded since, so the result was made from dropped data.
			sr.State, sr.Verdict, sr.File = Failure, requestor.Failure, c.File
			sr.Reason = fmt.Sprintf("not used: a dependency of part %d was discarded after this subtask was handed out", sr.Part)
			return Answer{Verdict: sr.Verdict, Reason: sr.Reason}, t.putSub(id, sr)
		}
		// The part still needs results: count this one again.
		sr.Detached = false
		pr.Live = append(pr.Live, id)
		if err := t.attach(id, sr); err != nil {
			return Answer{}, err
		}
	}
	if sr.State == Verifying && sr.Vote {
		// Two Verify calls of one subtask ran the app's check at once
		// (a host retrying): the first vote counted stands.
		return t.recount(id, sr, pr)
	}
	sr.File = c.File
	switch c.Verdict {
	case requestor.Failure:
		if err := t.detach(id, sr, pr); err != nil {
			return Answer{}, err
		}
		sr.State, sr.Verdict, sr.Reason, sr.Vote = Failure, requestor.Failure, c.Reason, false
		exhausted, err := t.failedAttempt(sr.Part, pr, 1, c.Reason)
		if err != nil {
			return Answer{}, err
		}
		if exhausted {
			sr.Reason = fmt.Sprintf("%s; part %d failed %d times; task failed", c.Reason, sr.Part, pr.Attempts)
		}
		return Answer{Verdict: sr.Verdict, Reason: sr.Reason}, t.putSub(id, sr)
	case requestor.AwaitingData:
		sr.State, sr.Verdict, sr.Reason, sr.Vote = Verifying, requestor.AwaitingData, c.Reason, false
		if err := t.putPart(sr.Part, pr); err != nil {
			return Answer{}, err
		}
		return Answer{Verdict: sr.Verdict, Reason: sr.Reason}, t.putSub(id, sr)
	}
	// Success or Inconclusive: a vote.
	sr.State, sr.Vote, sr.Hash = Verifying, true, c.Hash
	pr.Votes = append(pr.Votes, vote{Sub: id, Hash: c.Hash})
	pr.Gen++
	bumped := false
	if c.Verdict == requestor.Inconclusive {
		if need := len(pr.Votes) + 1; need > pr.Quorum {
			pr.Quorum, bumped = need, true
		}
	}
	return t.settle(id, sr, pr, c.Reason, bumped)
}

// recount answers a Verify of a vote already counted: the same answer while
// the part's votes have not changed, else a fresh count.
func (t *txn) recount(id string, sr *subRec, pr *partRec) (Answer, error) {
	if sr.Gen == pr.Gen {
		return Answer{Verdict: sr.Verdict, Reason: sr.Reason}, errNoChange
	}
	return t.settle(id, sr, pr, "", false)
}

// settle counts the votes of sr's part after a change and answers for
// subtask id: SUCCESS or FAILURE when a majority decides, INCONCLUSIVE when
// the part needs one more result than it has (bumped, or no majority),
// AWAITING_DATA while votes are missing.
func (t *txn) settle(id string, sr *subRec, pr *partRec, appReason string, bumped bool) (Answer, error) {
	i := sr.Part
	n := len(pr.Votes)
	why := ""
	if n >= pr.Quorum {
		h, c := majority(pr.Votes)
		if 2*c > n {
			return t.decide(id, sr, pr, h, appReason)
		}
		pr.Quorum, bumped = n+1, true
		pr.Gen++
		why = fmt.Sprintf("the %d results of part %d disagree (at most %d agree)", n, i, c)
	} else if bumped {
		pr.Gen++
		why = appReason
	}
	if bumped && pr.Quorum > pr.Want {
		// One more replica: it counts as an attempt.
		extra := pr.Quorum - pr.Want
		pr.Want = pr.Quorum
		if pr.Attempts+extra >= t.task.MaxAttempts {
			// No attempt left for the replica: the part fails, and so
			// does the task. This result is FAILURE because the task
			// cannot use it, whether or not it was right.
			if err := t.detach(id, sr, pr); err != nil {
				return Answer{}, err
			}
			if _, err := t.failedAttempt(i, pr, extra, why); err != nil {
				return Answer{}, err
			}
			sr.State, sr.Verdict, sr.Vote = Failure, requestor.Failure, false
			sr.Reason = fmt.Sprintf("%s; part %d failed %d times; task failed", why, i, pr.Attempts)
			return Answer{Verdict: sr.Verdict, Reason: sr.Reason}, t.putSub(id, sr)
		}
		pr.Attempts += extra
	}
	if bumped {
		sr.Verdict = requestor.Inconclusive
		sr.Reason = fmt.Sprintf("%s; one more result of part %d is needed (%d of %d in)", why, i, n, pr.Quorum)
	} else {
		sr.Verdict = requestor.AwaitingData
		sr.Reason = fmt.Sprintf("waiting for the results of other nodes: %d of %d of part %d in", n, pr.Quorum, i)
	}
	sr.Gen = pr.Gen
	if err := t.putPart(i, pr); err != nil {
		return Answer{}, err
	}
	return Answer{Verdict: sr.Verdict, Reason: sr.Reason}, t.putSub(id, sr)
}

// majority returns the most frequent hash among votes (the earliest on a
// tie) and its count.
func majority(votes []vote) (string, int) {
	count := map[string]int{}
	best, bestN := "", 0
	for _, v := range votes {
		count[v.Hash]++
		if count[v.Hash] > bestN {
			best, bestN = v.Hash, count[v.Hash]
		}
	}
	return best, bestN
}

// decide accepts part sr.Part with the results of hash h: their subtasks
// become SUCCESS, the other votes FAILURE, and the part's other live
// subtasks are detached (their results are not needed). When it was the
// last part, the task starts merging.
func (t *txn) decide(id string, sr *subRec, pr *partRec, h, appReason string) (Answer, error) {
	i, n := sr.Part, len(pr.Votes)
	agree := 0
	for _, v := range pr.Votes {
		if v.Hash == h {
			agree++
		}
	}
	okReason := appReason
	if t.task.Redundancy > 1 || n > 1 {
		okReason = fmt.Sprintf("accepted: %d of %d results of part %d agree", agree, n, i)
	}
	if okReason == "" {
		okReason = "accepted"
	}
	voted := map[string]bool{}
	for _, v := range pr.Votes {
		voted[v.Sub] = true
		vs := sr
		if v.Sub != id {
			var err error
			if vs, err = t.sub(v.Sub); err != nil {
				return Answer{}, err
			}
		}
		if v.Hash == h {
			vs.State, vs.Verdict, vs.Reason = Success, requestor.Success, okReason
			pr.Winners = append(pr.Winners, v.Sub)
		} else {
			vs.State, vs.Verdict = Failure, requestor.Failure
			vs.Reason = fmt.Sprintf("disagrees with %d of %d results of part %d", agree, n, i)
		}
		vs.Gen = pr.Gen
		if err := t.live.Delete([]byte(v.Sub)); err != nil {
			return Answer{}, err
		}
		if hk := holdKey(vs.Node, i); bytes.Equal(t.holds.Get(hk), []byte(v.Sub)) {
			if err := t.holds.Delete(hk); err != nil {
				return Answer{}, err
			}
		}
		if v.Sub != id {
			if err := t.putSub(v.Sub, vs); err != nil {
				return Answer{}, err
			}
		}
	}
	for _, lid := range pr.Live {
		if voted[lid] {
			continue
		}
		ls, err := t.sub(lid)
		if err != nil {
			return Answer{}, err
		}
		if err := t.detach(lid, ls, &partRec{}); err != nil {
			return Answer{}, err
		}
		ls.Detached = true
		if err := t.putSub(lid, ls); err != nil {
			return Answer{}, err
		}
	}
	pr.Hash, pr.Votes, pr.Live = h, nil, nil
	pr.Gen++
	if err := t.putPart(i, pr); err != nil {
		return Answer{}, err
	}
	t.task.Accepted++
	t.dirty = true
	if err := t.forDependants(i, func(d int, dp *partRec) error {
		dp.Unmet--
		return nil
	}); err != nil {
		return Answer{}, err
	}
	a := Answer{Verdict: sr.Verdict, Reason: sr.Reason}
	if t.task.Accepted == t.task.Parts {
		t.task.State = TaskMerging
		sr.Completed = true
		a.Merge = true
	}
	return a, t.putSub(id, sr)
}

// forDependants calls fn for every part that depends on part i, then
// writes it.
func (t *txn) forDependants(i int, fn func(d int, dp *partRec) error) error {
	prefix := pkey(i)
	var deps []int
	c := t.rdeps.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		deps = append(deps, int(binary.BigEndian.Uint64(k[8:])))
	}
	for _, d := range deps {
		dp, err := t.part(d)
		if err != nil {
			return err
		}
		if err := fn(d, dp); err != nil {
			return err
		}
		if err := t.putPart(d, dp); err != nil {
			return err
		}
	}
	return nil
}

// superfluous judges a result its part no longer needs (the part was
// accepted without it): it is recorded and answered, and changes nothing
// else. Where results are compared (redundancy, or an inconclusive check)
// it must agree with the accepted one.
func (t *txn) superfluous(id string, sr *subRec, pr *partRec, c Check) (Answer, error) {
	sr.File, sr.Hash = c.File, c.Hash
	switch {
	case c.Verdict == requestor.AwaitingData:
		sr.State, sr.Verdict, sr.Reason = Verifying, requestor.AwaitingData, c.Reason
	case c.Verdict == requestor.Failure:
		sr.State, sr.Verdict, sr.Reason = Failure, requestor.Failure, c.Reason
	case c.Verdict == requestor.Success && t.task.Redundancy == 1:
		sr.State, sr.Verdict = Success, requestor.Success
		sr.Reason = fmt.Sprintf("%s; not used: part %d was accepted with another result", c.Reason, sr.Part)
	case c.Hash == pr.Hash:
		sr.State, sr.Verdict = Success, requestor.Success
		sr.Reason = fmt.Sprintf("agrees with the accepted result of part %d (not used)", sr.Part)
	default:
		sr.State, sr.Verdict = Failure, requestor.Failure
		sr.Reason = fmt.Sprintf("disagrees with the accepted result of part %d", sr.Part)
	}
	return Answer{Verdict: sr.Verdict, Reason: sr.Reason}, t.putSub(id, sr)
}

// discard implements Store.Discard.
func (t *txn) discard(ids []string) ([]string, error) {
	var out []string
	done := map[string]bool{}
	drop := func(id string, sr *subRec, why string) error {
		sr.State, sr.Verdict, sr.Reason = Aborted, 0, why
		done[id] = true
		out = append(out, id)
		return t.putSub(id, sr)
	}
	var queue []int // accepted parts whose results were dropped
	dropPart := func(i int, pr *partRec, why string) error {
		for _, w := range pr.Winners {
			ws, err := t.sub(w)
			if err != nil {
				return err
			}
			if err := drop(w, ws, why); err != nil {
				return err
			}
		}
		pr.Winners, pr.Hash = nil, ""
		pr.Want, pr.Quorum = t.task.Redundancy, t.task.Redundancy
		pr.Gen++
		t.task.Accepted--
		t.dirty = true
		queue = append(queue, i)
		return nil
	}
	for _, id := range ids {
		if done[id] {
			continue
		}
		sr, err := t.sub(id)
		if errors.Is(err, requestor.ErrUnknownSubtask) {
			continue
		}
		if err != nil {
			return nil, err
		}
		switch {
		case sr.State == Success:
			pr, err := t.part(sr.Part)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(pr.Winners, id) {
				// A superfluous result: nothing depends on it.
				if err := drop(id, sr, "discarded"); err != nil {
					return nil, err
				}
				continue
			}
			if err := dropPart(sr.Part, pr, "discarded"); err != nil {
				return nil, err
			}
			if err := t.putPart(sr.Part, pr); err != nil {
				return nil, err
			}
		case sr.State == Verifying && sr.Detached:
			if err := drop(id, sr, "discarded"); err != nil {
				return nil, err
			}
		case sr.State == Verifying:
			pr, err := t.part(sr.Part)
			if err != nil {
				return nil, err
			}
			if err := t.detach(id, sr, pr); err != nil {
				return nil, err
			}
			if err := t.putPart(sr.Part, pr); err != nil {
				return nil, err
			}
			if err := drop(id, sr, "discarded"); err != nil {
				return nil, err
			}
		}
	}
	// The cascade: each dropped part's dependants lose a dependency; their
	// results, accepted or in progress, were made from it.
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		why := fmt.Sprintf("discarded: depends on part %d", p)
		err := t.forDependants(p, func(d int, dp *partRec) error {
			dp.Unmet++
			if len(dp.Winners) > 0 {
				if err := dropPart(d, dp, why); err != nil {
					return err
				}
			}
			for _, lid := range slices.Clone(dp.Live) {
				ls, err := t.sub(lid)
				if err != nil {
					return err
				}
				if err := t.detach(lid, ls, dp); err != nil {
					return err
				}
				if err := drop(lid, ls, why); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
