package host_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
)

// waitStats waits until the pool's state satisfies ok, yielding meanwhile;
// the test's deadline bounds the wait.
func waitStats(t *testing.T, p *host.SlotPool, ok func(host.SlotStats) bool) {
	t.Helper()
	for !ok(p.Stats()) {
		if t.Context().Err() != nil {
			require.FailNow(t, "the pool never got there", "%+v", p.Stats())
		}
		runtime.Gosched()
	}
}

// grant is a slot a waiter got: who it is and how to give the slot back.
type grant struct {
	who     string
	release func()
}

// TestSlotPoolFair: with one slot, key A queues 5 waiters, then key B
// one; as the slot is released one holder at a time, B is served second,
// not sixth, and A's waiters in the order they came.
func TestSlotPoolFair(t *testing.T) {
	p := host.NewSlotPool(1)
	ctx := t.Context()
	release, err := p.Gate("H")(ctx)
	require.NoError(t, err)
	assert.Equal(t, host.SlotStats{Size: 1, InUse: 1, Waiting: map[string]int{}}, p.Stats())

	served := make(chan grant)
	var wg sync.WaitGroup
	defer wg.Wait()
	queue := func(key string, n int) {
		for i := range n {
			who := fmt.Sprintf("%s%d", key, i+1)
			wg.Go(func() {
				rel, err := p.Gate(key)(ctx)
				if !assert.NoError(t, err) {
					return
				}
				served <- grant{who, rel}
			})
			// The next waiter queues once this one has.
			waitStats(t, p, func(s host.SlotStats) bool { return s.Waiting[key] == i+1 })
		}
	}
	queue("A", 5)
	queue("B", 1)
	assert.Equal(t, host.SlotStats{Size: 1, InUse: 1, Waiting: map[string]int{"A": 5, "B": 1}}, p.Stats())

	release()
	release() // a second call gives nothing back
	var order []string
	for range 6 {
		g := <-served
		order = append(order, g.who)
		s := p.Stats()
		assert.Equal(t, 1, s.InUse, "after %v: a slot set free goes straight to the next waiter", order)
		g.release()
		g.release()
	}
	assert.Equal(t, []string{"A1", "B1", "A2", "A3", "A4", "A5"}, order)
	assert.Equal(t, host.SlotStats{Size: 1, InUse: 0, Waiting: map[string]int{}}, p.Stats())
}

// TestSlotPoolRoundRobin: three keys with waiters are served in turn, a
// key that runs out of waiters leaves the turn, and one that comes later
// joins it.
func TestSlotPoolRoundRobin(t *testing.T) {
	p := host.NewSlotPool(2)
	ctx := t.Context()
	r1, err := p.Gate("H")(ctx)
	require.NoError(t, err)
	r2, err := p.Gate("H")(ctx)
	require.NoError(t, err)

	served := make(chan grant)
	var wg sync.WaitGroup
	defer wg.Wait()
	queue := func(key string, n int) {
		for i := range n {
			who := fmt.Sprintf("%s%d", key, i+1)
			before := p.Stats().Waiting[key]
			wg.Go(func() {
				rel, err := p.Gate(key)(ctx)
				if !assert.NoError(t, err) {
					return
				}
				served <- grant{who, rel}
			})
			waitStats(t, p, func(s host.SlotStats) bool { return s.Waiting[key] == before+1 })
		}
	}
	queue("A", 3)
	queue("B", 1)
	queue("C", 2)
	next := func() string {
		g := <-served
		g.release()
		return g.who
	}
	r1()
	var order []string
	// A2's release grants C2 before D comes; D then joins the turn after
	// C, and comes before A, served last with A2.
	order = append(order, next(), next(), next(), next()) // A1 B1 C1 A2
	queue("D", 1)
	order = append(order, next(), next(), next()) // C2 D1 A3
	r2()
	assert.Equal(t, []string{"A1", "B1", "C1", "A2", "C2", "D1", "A3"}, order)
	assert.Equal(t, host.SlotStats{Size: 2, InUse: 0, Waiting: map[string]int{}}, p.Stats())
}

// TestSlotPoolCancel: a waiter whose ctx ends gets nothing and leaves the
// queue, and the waiters after it are served as if it had not come.
func TestSlotPoolCancel(t *testing.T) {
	p := host.NewSlotPool(1)
	release, err := p.Gate("H")(t.Context())
	require.NoError(t, err)

	cctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	gave := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		rel, err := p.Gate("A")(cctx)
		if rel != nil {
			rel()
		}
		gave <- err
	})
	waitStats(t, p, func(s host.SlotStats) bool { return s.Waiting["A"] == 1 })
	served := make(chan grant, 1)
	wg.Go(func() {
		rel, err := p.Gate("B")(t.Context())
		if assert.NoError(t, err) {
			served <- grant{"B", rel}
		}
	})
	waitStats(t, p, func(s host.SlotStats) bool { return s.Waiting["B"] == 1 })

	cancel()
	require.ErrorIs(t, <-gave, context.Canceled)
	assert.Equal(t, host.SlotStats{Size: 1, InUse: 1, Waiting: map[string]int{"B": 1}}, p.Stats())
	release()
	g := <-served
	assert.Equal(t, host.SlotStats{Size: 1, InUse: 1, Waiting: map[string]int{}}, p.Stats())
	g.release()
	assert.Equal(t, host.SlotStats{Size: 1, InUse: 0, Waiting: map[string]int{}}, p.Stats())

	// A ctx that has ended takes nothing, even from a free pool.
	_, err = p.Gate("A")(cctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, p.Stats().InUse)
}

// TestSlotPoolConcurrent: many callers of many keys, some giving up while
// they wait, never hold more slots than there are, and leave the pool as
// it was.
func TestSlotPoolConcurrent(t *testing.T) {
	const size = 3
	p := host.NewSlotPool(size)
	var (
		mu      sync.Mutex
		holding int
		most    int
		wg      sync.WaitGroup
	)
	for g := range 32 {
		key := fmt.Sprintf("k%d", g%5)
		rng := rand.New(rand.NewPCG(uint64(g), 1))
		wg.Go(func() {
			for range 200 {
				ctx, cancel := context.WithCancel(t.Context())
				if rng.IntN(4) == 0 {
					cancel() // gives up at once, or already before
				}
				rel, err := p.Gate(key)(ctx)
				cancel()
				if err != nil {
					continue
				}
				mu.Lock()
				holding++
				most = max(most, holding)
				mu.Unlock()
				runtime.Gosched()
				mu.Lock()
				holding--
				mu.Unlock()
				rel()
				rel()
			}
		})
	}
	// Callers cancelled while they wait, racing their grant.
	for g := range 8 {
		wg.Go(func() {
			for range 200 {
				ctx, cancel := context.WithCancel(t.Context())
				var inner sync.WaitGroup
				inner.Go(func() {
					if rel, err := p.Gate(fmt.Sprintf("c%d", g))(ctx); err == nil {
						rel()
					}
				})
				runtime.Gosched()
				cancel()
				inner.Wait()
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, most, size)
	assert.Equal(t, host.SlotStats{Size: size, InUse: 0, Waiting: map[string]int{}}, p.Stats())
}

func TestSlotPoolSize(t *testing.T) {
	assert.Equal(t, 1, host.NewSlotPool(0).Stats().Size)
	assert.Equal(t, 4, host.NewSlotPool(4).Stats().Size)
}
