package daemon

import (
	"errors"
	"log/slog"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// errStoreClosed is what a write answers once the store is closing.
var errStoreClosed = errors.New("the daemon's store is closed")

// writer is the one goroutine that writes gtask.db. Writes queue up while
// a commit runs, and the next commit takes them all in one transaction:
// one fsync for a burst of events from many tasks, and for a busy task's
// events too, which the run hands over without waiting (see
// writer.post). Writes are applied in the order they were queued, so a
// task's events and state changes keep their order. After every commit the
// watchers are notified; nothing is visible before it is on disk.
type writer struct {
	db     *bolt.DB
	log    *slog.Logger
	notify func()

	mu      sync.Mutex
	queue   []writeOp
	wake    chan struct{} // one token: the queue is not empty, or stop
	stopped bool
	done    chan struct{} // closed when the loop has returned
}

type writeOp struct {
	apply func(tx *bolt.Tx) error
	// done receives apply's (or the commit's) error; nil for a write
	// nobody waits for.
	done chan error
}

func newWriter(db *bolt.DB, log *slog.Logger, notify func()) *writer {
	w := &writer{db: db, log: log, notify: notify, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.loop()
	return w
}

// update applies f in a transaction and returns once it is committed.
func (w *writer) update(f func(tx *bolt.Tx) error) error {
	done := make(chan error, 1)
	if err := w.enqueue(writeOp{apply: f, done: done}); err != nil {
		return err
	}
	return <-done
}

// post queues f without waiting for it: an error is logged.
func (w *writer) post(f func(tx *bolt.Tx) error) error {
	return w.enqueue(writeOp{apply: f})
}

func (w *writer) enqueue(op writeOp) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return errStoreClosed
	}
	w.queue = append(w.queue, op)
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// stop commits what is queued and ends the loop. Safe to call twice.
func (w *writer) stop() {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
	<-w.done
}

func (w *writer) loop() {
	defer close(w.done)
	for range w.wake {
		w.mu.Lock()
		ops, stopped := w.queue, w.stopped
		w.queue = nil
		w.mu.Unlock()
		if len(ops) > 0 {
			w.commit(ops)
			w.notify()
		}
		if stopped {
			w.mu.Lock()
			left := len(w.queue)
			w.mu.Unlock()
			if left == 0 {
				return
			}
			// Written while stopping: one more turn.
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}

// commit applies ops in one transaction. When that fails (one op's error
// rolls back all), each op is applied again in a transaction of its own,
// so that one bad write costs only itself.
func (w *writer) commit(ops []writeOp) {
	err := w.db.Update(func(tx *bolt.Tx) error {
		for _, op := range ops {
			if err := op.apply(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || len(ops) == 1 {
		for _, op := range ops {
			w.answer(op, err)
		}
		return
	}
	for _, op := range ops {
		w.answer(op, w.db.Update(op.apply))
	}
}

func (w *writer) answer(op writeOp, err error) {
	if op.done != nil {
		op.done <- err
		return
	}
	if err != nil {
		w.log.Error("writing to the store", "err", err)
	}
}

// broadcaster wakes every watcher after a commit. A watcher takes the
// current channel, reads the store from its own cursor, and waits on the
// channel: a commit closes it and makes a new one. Nobody ever blocks on a
// watcher.
type broadcaster struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcaster() *broadcaster { return &broadcaster{ch: make(chan struct{})} }

// wait returns the channel the next commit closes.
func (b *broadcaster) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcaster) notify() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}
