package host

import (
	"context"
	"slices"
	"sync"
)

// SlotPool is a pool of provider slots shared by many runs, handed out
// fairly: its Gate, one per run (RunConfig.Gate), keyed by the run's task,
// serves the waiting attempts round-robin between keys and first come,
// first served within a key, so that a task with many waiting attempts
// cannot starve another. It is safe for concurrent use; a waiter costs no
// goroutine but the caller's.
type SlotPool struct {
	mu    sync.Mutex
	size  int
	inUse int
	// queues holds the waiters of each key with any, in arrival order;
	// ring holds those keys in the order they are served, and next is the
	// index in ring of the key served next. A waiter is queued only while
	// every slot is in use: a slot set free goes straight to a waiter.
	queues map[string][]*slotWaiter
	ring   []string
	next   int
}

// slotWaiter is one caller of a Gate waiting for a slot. ready is closed,
// with granted set, under the pool's lock once the slot is its.
type slotWaiter struct {
	key     string
	ready   chan struct{}
	granted bool
}

// SlotStats is a SlotPool's state at one moment.
type SlotStats struct {
	// Size is the pool's number of slots, InUse how many are taken.
	Size  int
	InUse int
	// Waiting counts the callers waiting for a slot, by key; keys with
	// none are left out.
	Waiting map[string]int
}

// NewSlotPool returns a pool of n slots; n below 1 means 1.
func NewSlotPool(n int) *SlotPool {
	return &SlotPool{size: max(n, 1), queues: map[string][]*slotWaiter{}}
}

// Gate returns a RunConfig.Gate that takes slots of p for key (a task's
// id): it returns at once when a slot is free and no one waits, else waits
// its turn; it fails only when ctx ends, with nothing taken. Its release
// func gives the slot back (to the next waiter in turn, if any); calling
// it again does nothing.
func (p *SlotPool) Gate(key string) func(ctx context.Context) (func(), error) {
	return func(ctx context.Context) (func(), error) {
		return p.acquire(ctx, key)
	}
}

func (p *SlotPool) acquire(ctx context.Context, key string) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	p.mu.Lock()
	if p.inUse < p.size {
		p.inUse++
		p.mu.Unlock()
		return p.releaser(), nil
	}
	w := &slotWaiter{key: key, ready: make(chan struct{})}
	if len(p.queues[key]) == 0 {
		p.ring = append(p.ring, key)
	}
	p.queues[key] = append(p.queues[key], w)
	p.mu.Unlock()

	select {
	case <-w.ready:
		return p.releaser(), nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	if w.granted {
		// The slot came as ctx ended: it goes to the next in turn.
		p.mu.Unlock()
		p.releaser()()
		return nil, context.Cause(ctx)
	}
	p.dequeue(w)
	p.mu.Unlock()
	return nil, context.Cause(ctx)
}

// releaser returns the release func of a slot taken.
func (p *SlotPool) releaser() func() {
	var once sync.Once
	return func() { once.Do(p.release) }
}

// release gives a slot back: to the waiter whose turn it is, if any.
func (p *SlotPool) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ring) == 0 {
		p.inUse--
		return
	}
	if p.next >= len(p.ring) {
		p.next = 0
	}
	key := p.ring[p.next]
	q := p.queues[key]
	w := q[0]
	q[0] = nil
	if len(q) == 1 {
		delete(p.queues, key)
		// The key leaves the ring; next now indexes the key after it.
		p.ring = slices.Delete(p.ring, p.next, p.next+1)
	} else {
		p.queues[key] = q[1:]
		p.next++
	}
	w.granted = true
	close(w.ready)
}

// dequeue removes w, which gave up waiting, from its key's queue. Called
// with mu held.
func (p *SlotPool) dequeue(w *slotWaiter) {
	q := p.queues[w.key]
	i := slices.Index(q, w)
	if i < 0 {
		return
	}
	q = slices.Delete(q, i, i+1)
	if len(q) > 0 {
		p.queues[w.key] = q
		return
	}
	delete(p.queues, w.key)
	j := slices.Index(p.ring, w.key)
	p.ring = slices.Delete(p.ring, j, j+1)
	if j < p.next {
		p.next--
	}
}

// Stats returns the pool's state: for tests and monitoring.
func (p *SlotPool) Stats() SlotStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := SlotStats{Size: p.size, InUse: p.inUse, Waiting: make(map[string]int, len(p.queues))}
	for key, q := range p.queues {
		s.Waiting[key] = len(q)
	}
	return s
}
