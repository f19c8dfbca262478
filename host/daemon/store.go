package daemon

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	"google.golang.org/protobuf/proto"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// The buckets of gtask.db.
//
// Events are stored once, in events, under their cursor (8 bytes, big
// endian, so that a bbolt cursor walks them in order); taskEvents indexes
// them per task, so that a watch of one task reads only its events.
var (
	bTokens     = []byte("tokens")      // sha256(token) -> tokenRec (JSON)
	bTasks      = []byte("tasks")       // task id -> taskRec (JSON)
	bOrder      = []byte("order")       // creation number (8 bytes) -> task id
	bEvents     = []byte("events")      // cursor (8 bytes) -> hostv1.Event (protobuf)
	bTaskEvents = []byte("task_events") // task id, 0, cursor (8 bytes) -> nil
	bUploads    = []byte("uploads")     // upload id -> uploadRec (JSON)
	// bEndedTokens remembers the family tokens whose task has ended, to
	// refuse them by name: sha256(token) -> task id. The token's record
	// in bTokens is gone.
	bEndedTokens = []byte("ended_tokens")

	allBuckets = [][]byte{bTokens, bTasks, bOrder, bEvents, bTaskEvents, bUploads, bEndedTokens}
)

// errNotFound is what the store's getters return for a missing record.
var errNotFound = errors.New("not found")

// tokenRec is what the daemon keeps of a token: never the token itself.
type tokenRec struct {
	// Hash is the token's SHA-256, also the record's key: compared again
	// in constant time once found.
	Hash  []byte `json:"hash"`
	User  string `json:"user"`
	Admin bool   `json:"admin,omitempty"`
	// Task is set for a family token: it acts within that task's tree.
	Task    string    `json:"task,omitempty"`
	Created time.Time `json:"created"`
}

// inputRec is one input of a task, staged in the daemon's data dir at
// CreateTask.
type inputRec struct {
	Name   string `json:"name"`
	Staged string `json:"staged"` // the staged copy, named Name
	Source string `json:"source"` // "upload:ID" or the path it came from
}

// taskRec is what the daemon knows of a task.
type taskRec struct {
	ID             string           `json:"id"`
	Seq            uint64           `json:"seq"` // its key in bOrder
	App            string           `json:"app"`
	Runtime        hostv1.Runtime   `json:"runtime"`
	Owner          string           `json:"owner"`
	Parent         string           `json:"parent,omitempty"`
	Children       []string         `json:"children,omitempty"`
	Params         string           `json:"params,omitempty"`
	Inputs         []inputRec       `json:"inputs,omitempty"`
	MaxSubtasks    int32            `json:"max_subtasks,omitempty"`
	Providers      int32            `json:"providers,omitempty"`
	MaxAttempts    int32            `json:"max_attempts,omitempty"`
	NoBackups      bool             `json:"no_backups,omitempty"`
	Timeout        time.Duration    `json:"timeout,omitempty"`
	SubtaskTimeout time.Duration    `json:"subtask_timeout,omitempty"`
	State          hostv1.TaskState `json:"state"`
	Reason         string           `json:"reason,omitempty"`
	Created        time.Time        `json:"created"`
	Started        time.Time        `json:"started,omitzero"`
	Ended          time.Time        `json:"ended,omitzero"`
	Progress       progressRec      `json:"progress"`
	Outputs        []string         `json:"outputs,omitempty"`
	Starts         int32            `json:"starts,omitempty"`
	// Skipped is the seq of the last event a run said while the daemon
	// stopped it (Close): those events are in the task's events.jsonl but
	// not in the store, on purpose, and a resume does not recover them.
	Skipped int64 `json:"skipped,omitempty"`
	// FamilyTokens are the hashes of the family tokens its requestor got,
	// one per start: deleted when the task ends.
	FamilyTokens [][]byte `json:"family_tokens,omitempty"`
	// Killing is set, to the reason the kill gives, once a KillTask has
	// decided to kill the task: a daemon stopped before the kill stored
	// its end finishes it at the next Start instead of resuming the task.
	Killing string `json:"killing,omitempty"`
}

type progressRec struct {
	Parts, Done, Computing, Verifying, Failed, Retried int32
}

func (p progressRec) proto() *hostv1.Progress {
	return &hostv1.Progress{Parts: p.Parts, Done: p.Done, Computing: p.Computing,
		Verifying: p.Verifying, Failed: p.Failed, Retried: p.Retried}
}

func progressOf(p *hostv1.Progress) progressRec {
	if p == nil {
		return progressRec{}
	}
	return progressRec{p.Parts, p.Done, p.Computing, p.Verifying, p.Failed, p.Retried}
}

// ended reports whether a task in state s has ended for good.
func ended(s hostv1.TaskState) bool {
	switch s {
	case hostv1.TaskState_TASK_STATE_QUEUED, hostv1.TaskState_TASK_STATE_RUNNING:
		return false
	}
	return true
}

// uploadRec is an uploaded file, usable by its user only.
type uploadRec struct {
	ID      string    `json:"id"`
	User    string    `json:"user"`
	Name    string    `json:"name"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

func openDB(path string) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		// A second daemon (or `gtask token create`) on a data dir in use
		// fails instead of waiting forever for the file's lock.
		Timeout:        2 * time.Second,
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("daemon: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("daemon: %s: %w", path, err)
	}
	return db, nil
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func u64From(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func taskEventKey(task string, cursor uint64) []byte {
	k := make([]byte, 0, len(task)+9)
	k = append(append(k, task...), 0)
	return binary.BigEndian.AppendUint64(k, cursor)
}

func getJSON[T any](b *bolt.Bucket, key []byte) (*T, error) {
	raw := b.Get(key)
	if raw == nil {
		return nil, errNotFound
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("record %q: %w", key, err)
	}
	return v, nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func getTask(tx *bolt.Tx, id string) (*taskRec, error) {
	return getJSON[taskRec](tx.Bucket(bTasks), []byte(id))
}

func putTask(tx *bolt.Tx, t *taskRec) error {
	return putJSON(tx.Bucket(bTasks), []byte(t.ID), t)
}

// hashToken is the key a token is stored under.
func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// lookupToken finds token's record; errNotFound when it is unknown.
func lookupToken(tx *bolt.Tx, token string) (*tokenRec, error) {
	h := hashToken(token)
	rec, err := getJSON[tokenRec](tx.Bucket(bTokens), h)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(rec.Hash, h) != 1 {
		return nil, errNotFound
	}
	return rec, nil
}

// revokeFamily deletes the family tokens of t, which is ending, and
// remembers each in bEndedTokens, so that a call with one is refused with
// t's name rather than as an unknown token. The caller stores t.
func revokeFamily(tx *bolt.Tx, t *taskRec) error {
	for _, h := range t.FamilyTokens {
		if err := revokeToken(tx, h, t.ID); err != nil {
			return err
		}
	}
	t.FamilyTokens = nil
	return nil
}

func revokeToken(tx *bolt.Tx, hash []byte, task string) error {
	if err := tx.Bucket(bTokens).Delete(hash); err != nil {
		return err
	}
	return tx.Bucket(bEndedTokens).Put(hash, []byte(task))
}

// revokeEndedFamilies deletes, as revokeFamily does, the family tokens
// of tasks that have ended (or are gone) which an older gtask, which kept
// them, left in bTokens. It answers how many it deleted.
func revokeEndedFamilies(tx *bolt.Tx) (int, error) {
	type stale struct {
		hash []byte
		task string
	}
	var todo []stale
	err := tx.Bucket(bTokens).ForEach(func(k, v []byte) error {
		var rec tokenRec
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("token record: %w", err)
		}
		if rec.Task == "" {
			return nil
		}
		t, err := getTask(tx, rec.Task)
		if err != nil && !errors.Is(err, errNotFound) {
			return err
		}
		if t == nil || ended(t.State) {
			todo = append(todo, stale{bytes.Clone(k), rec.Task})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, s := range todo {
		if err := revokeToken(tx, s.hash, s.task); err != nil {
			return 0, err
		}
	}
	return len(todo), nil
}

// appendEvent stores ev under the next cursor, which it sets.
func appendEvent(tx *bolt.Tx, ev *hostv1.Event) error {
	b := tx.Bucket(bEvents)
	c, err := b.NextSequence()
	if err != nil {
		return err
	}
	ev.Cursor = int64(c)
	raw, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	if err := b.Put(u64(c), raw); err != nil {
		return err
	}
	return tx.Bucket(bTaskEvents).Put(taskEventKey(ev.TaskId, c), nil)
}

// taskEvents calls fn for each event of task after cursor, in order,
// until fn returns false.
func taskEvents(tx *bolt.Tx, task string, after uint64, fn func(*hostv1.Event) bool) error {
	prefix := append([]byte(task), 0)
	evs := tx.Bucket(bEvents)
	c := tx.Bucket(bTaskEvents).Cursor()
	for k, _ := c.Seek(taskEventKey(task, after+1)); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) != len(prefix)+8 {
			continue
		}
		ev, err := decodeEvent(evs.Get(k[len(prefix):]))
		if err != nil {
			return err
		}
		if !fn(ev) {
			return nil
		}
	}
	return nil
}

// allEvents calls fn for each event after cursor, in order, until fn
// returns false.
func allEvents(tx *bolt.Tx, after uint64, fn func(*hostv1.Event) bool) error {
	c := tx.Bucket(bEvents).Cursor()
	for k, v := c.Seek(u64(after + 1)); k != nil; k, v = c.Next() {
		ev, err := decodeEvent(v)
		if err != nil {
			return err
		}
		if !fn(ev) {
			return nil
		}
	}
	return nil
}

func decodeEvent(raw []byte) (*hostv1.Event, error) {
	if raw == nil {
		return nil, errors.New("an indexed event is missing")
	}
	ev := new(hostv1.Event)
	if err := proto.Unmarshal(raw, ev); err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	return ev, nil
}

// subtree returns id and every descendant of it, parents before children.
func subtree(tx *bolt.Tx, id string) ([]*taskRec, error) {
	root, err := getTask(tx, id)
	if err != nil {
		return nil, err
	}
	out := []*taskRec{root}
	for i := 0; i < len(out); i++ {
		for _, c := range out[i].Children {
			t, err := getTask(tx, c)
			if err != nil {
				return nil, fmt.Errorf("child %s of %s: %w", c, out[i].ID, err)
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// inTree reports whether task id is root or one of its descendants, by
// walking id's parents.
func inTree(tx *bolt.Tx, root, id string) (bool, error) {
	for seen := 0; id != ""; seen++ {
		if id == root {
			return true, nil
		}
		if seen > 1<<16 {
			return false, errors.New("a task's parents make a loop")
		}
		t, err := getTask(tx, id)
		if err != nil {
			return false, err
		}
		id = t.Parent
	}
	return false, nil
}

// copyFile copies the regular file src to a new file dst, durably.
func copyFile(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, out.Close())
		if err != nil {
			os.Remove(dst)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	return out.Sync()
}
