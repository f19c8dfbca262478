package requestor_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	taskapipb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/requestor"
)

// events records what happened in which order, across goroutines.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) get() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.list...)
}

// shutdownCtx records what Handler.Shutdown's context looked like.
type shutdownCtx struct {
	err         error
	hasDeadline bool
	value       any
}

type ctxKey struct{}

func TestShutdownRPC(t *testing.T) {
	h := okHandler()
	var got shutdownCtx
	h.shutdown = func(ctx context.Context) error {
		_, ok := ctx.Deadline()
		got = shutdownCtx{err: ctx.Err(), hasDeadline: ok}
		return nil
	}
	hs := start(t, h)

	// A watch opened before sees health turn NOT_SERVING. The test then
	// ends it: a graceful stop waits for every open stream, watches too.
	watchCtx, endWatch := context.WithCancel(callCtx(t))
	defer endWatch()
	watch, err := hs.health.Watch(watchCtx, &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	first, err := watch.Recv()
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, first.GetStatus())

	reply, err := hs.client.Shutdown(callCtx(t), &taskapipb.ShutdownRequest{})
	require.NoError(t, err, "the reply arrives")
	assert.NotNil(t, reply)

	next, err := watch.Recv()
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, next.GetStatus())
	endWatch()

	require.NoError(t, hs.waitServe(t), "Serve returns nil after a Shutdown RPC")
	assert.EqualValues(t, 1, h.shutdowns.Load(), "Handler.Shutdown called once")
	assert.NoError(t, got.err, "Handler.Shutdown gets a live context")
	assert.True(t, got.hasDeadline, "bounded by the grace period")

	// Shutdown after that, twice, is fine and calls the app no more.
	require.NoError(t, hs.srv.Shutdown(callCtx(t)))
	require.NoError(t, hs.srv.Shutdown(callCtx(t)))
	assert.EqualValues(t, 1, h.shutdowns.Load())

	_, err = hs.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
	assert.Equal(t, codes.Unavailable, status.Code(err), "a call after the stop: %v", err)
}

func TestShutdownTwiceConcurrently(t *testing.T) {
	h := okHandler()
	hs := start(t, h)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- hs.srv.Shutdown(callCtx(t)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	require.NoError(t, hs.waitServe(t))
	assert.EqualValues(t, 1, h.shutdowns.Load())
}

func TestShutdownWithoutServe(t *testing.T) {
	h := okHandler()
	srv := requestor.NewServer(h)
	require.NoError(t, srv.Shutdown(callCtx(t)))
	require.NoError(t, srv.Shutdown(callCtx(t)))
	assert.EqualValues(t, 1, h.shutdowns.Load())

	// Serving a stopped server returns at once and releases the listener.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, srv.Serve(callCtx(t), lis))
	_, err = lis.Accept()
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.EqualValues(t, 1, h.shutdowns.Load())
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	h := okHandler()
	var got shutdownCtx
	h.shutdown = func(ctx context.Context) error {
		_, ok := ctx.Deadline()
		got = shutdownCtx{err: ctx.Err(), hasDeadline: ok, value: ctx.Value(ctxKey{})}
		return nil
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := requestor.NewServer(h, requestor.WithGracePeriod(time.Minute))
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "from main"))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	cancel()
	select {
	case err := <-served:
		require.NoError(t, err)
	case <-time.After(bound):
		t.Fatal("Serve did not return after its context ended")
	}
	assert.EqualValues(t, 1, h.shutdowns.Load())
	assert.NoError(t, got.err, "the app's context is not the cancelled one")
	assert.True(t, got.hasDeadline)
	assert.Equal(t, "from main", got.value, "but it carries its values")
}

func TestHandlerShutdownErrorIsReturned(t *testing.T) {
	flushErr := errors.New("flushing the state store: disk full")
	h := okHandler()
	h.shutdown = func(context.Context) error { return flushErr }
	var logs lockedBuffer
	hs := start(t, h, requestor.WithLogger(newTextLogger(&logs)))

	_, err := hs.client.Shutdown(callCtx(t), &taskapipb.ShutdownRequest{})
	require.NoError(t, err, "the RPC itself succeeds: the app closes after the reply")

	err = hs.waitServe(t)
	require.ErrorIs(t, err, flushErr, "Serve returns the app's shutdown error")
	assert.Contains(t, err.Error(), "app shutdown")
	assert.ErrorIs(t, hs.srv.Shutdown(callCtx(t)), flushErr, "and so does every Shutdown")
	assert.EqualValues(t, 1, h.shutdowns.Load())
	assert.Contains(t, logs.String(), "disk full")
}

func TestServeTwice(t *testing.T) {
	hs := start(t, okHandler())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	err = hs.srv.Serve(callCtx(t), lis)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "more than once")
	_, err = lis.Accept()
	assert.ErrorIs(t, err, net.ErrClosed, "the second listener is released")

	// The first Serve is unharmed.
	_, err = hs.client.HasPendingSubtasks(callCtx(t), &taskapipb.HasPendingSubtasksRequest{TaskId: "t"})
	require.NoError(t, err)
}

// blockingVerify makes Verify wait for release or for its context to end,
// recording both in ev.
func blockingVerify(h *fakeHandler, ev *events, entered chan<- struct{}, release <-chan struct{}) {
	h.verify = func(ctx context.Context, _, _ string) (requestor.Verdict, string, error) {
		entered <- struct{}{}
		select {
		case <-release:
			ev.add("verify returned")
			return requestor.Success, "", nil
		case <-ctx.Done():
			ev.add("verify cancelled")
			return 0, "", ctx.Err()
		}
	}
	h.shutdown = func(context.Context) error {
		ev.add("app shutdown")
		return nil
	}
}

func TestCallInFlightFinishesWithinGrace(t *testing.T) {
	var ev events
	entered, release := make(chan struct{}, 10), make(chan struct{})
	h := okHandler()
	blockingVerify(h, &ev, entered, release)
	hs := start(t, h, requestor.WithGracePeriod(bound))

	result := make(chan error, 1)
	go func() {
		_, err := hs.client.Verify(callCtx(t), &taskapipb.VerifyRequest{TaskId: "t", SubtaskId: "s"})
		result <- err
	}()
	<-entered

	stopped := make(chan error, 1)
	go func() { stopped <- hs.srv.Shutdown(callCtx(t)) }()
	select {
	case <-stopped:
		t.Fatal("Shutdown returned while a call was in flight within the grace period")
	case <-time.After(100 * time.Millisecond):
	}
	assert.Zero(t, h.shutdowns.Load(), "the app is not closed under a running call")

	close(release)
	require.NoError(t, <-result, "the call in flight finishes")
	require.NoError(t, <-stopped)
	require.NoError(t, hs.waitServe(t))
	assert.Equal(t, []string{"verify returned", "app shutdown"}, ev.get())
}

func TestCallInFlightCancelledAfterGrace(t *testing.T) {
	var ev events
	entered, release := make(chan struct{}, 10), make(chan struct{})
	defer close(release)
	h := okHandler()
	blockingVerify(h, &ev, entered, release)
	hs := start(t, h, requestor.WithGracePeriod(100*time.Millisecond))

	result := make(chan error, 1)
	go func() {
		_, err := hs.client.Verify(callCtx(t), &taskapipb.VerifyRequest{TaskId: "t", SubtaskId: "s"})
		result <- err
	}()
	<-entered
	require.NoError(t, hs.srv.Shutdown(callCtx(t)))

	err := <-result
	assert.Contains(t, []codes.Code{codes.Canceled, codes.Unavailable}, status.Code(err), "%v", err)
	require.NoError(t, hs.waitServe(t))
	assert.Equal(t, []string{"verify cancelled", "app shutdown"}, ev.get(), "the app is closed after its last call returned")
	assert.EqualValues(t, 1, h.shutdowns.Load())
}

// TestStuckCallDoesNotBlockForEver: a handler that ignores cancellation
// delays the app's Shutdown by at most a grace period, and is logged.
func TestStuckCallDoesNotBlockForEver(t *testing.T) {
	entered, release := make(chan struct{}, 1), make(chan struct{})
	h := okHandler()
	h.verify = func(context.Context, string, string) (requestor.Verdict, string, error) {
		entered <- struct{}{}
		<-release // deaf to its context
		return requestor.Success, "", nil
	}
	var logs lockedBuffer
	hs := start(t, h, requestor.WithGracePeriod(50*time.Millisecond), requestor.WithLogger(newTextLogger(&logs)))

	result := make(chan error, 1)
	go func() {
		_, err := hs.client.Verify(callCtx(t), &taskapipb.VerifyRequest{TaskId: "t", SubtaskId: "s"})
		result <- err
	}()
	<-entered
	require.NoError(t, hs.srv.Shutdown(callCtx(t)))
	assert.EqualValues(t, 1, h.shutdowns.Load())
	assert.Contains(t, logs.String(), "handlers still running after cancellation")
	close(release) // let the stuck handler go, for the leak check
	assert.Error(t, <-result)
}

func TestShutdownContextCutsGraceShort(t *testing.T) {
	var ev events
	entered, release := make(chan struct{}, 10), make(chan struct{})
	defer close(release)
	h := okHandler()
	blockingVerify(h, &ev, entered, release)
	hs := start(t, h, requestor.WithGracePeriod(time.Hour))

	result := make(chan error, 1)
	go func() {
		_, err := hs.client.Verify(callCtx(t), &taskapipb.VerifyRequest{TaskId: "t", SubtaskId: "s"})
		result <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, hs.srv.Shutdown(ctx), "returns although the grace period is an hour")
	assert.Error(t, <-result)
	assert.Equal(t, []string{"verify cancelled", "app shutdown"}, ev.get())
}

func TestHandlerShutdownPanicIsAnError(t *testing.T) {
	h := okHandler()
	h.shutdown = func(context.Context) error { panic("closing twice") }
	hs := start(t, h)
	hs.cancel()
	err := hs.waitServe(t)
	require.Error(t, err, "a panic in Handler.Shutdown does not take main down")
	assert.Contains(t, err.Error(), "closing twice")
	assert.ErrorContains(t, hs.srv.Shutdown(callCtx(t)), "closing twice")
	assert.EqualValues(t, 1, h.shutdowns.Load())
}
