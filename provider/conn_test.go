package provider_test

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gtask/gtask/gen/golem_task_api"
	"github.com/gtask/gtask/provider"
)

// TestConnOneShot: in process as over gRPC, a provider serves one call,
// checks the path it answers, and stops after it.
func TestConnOneShot(t *testing.T) {
	h := &fakeHandler{t: t, compute: func(context.Context, string, string, json.RawMessage) (string, error) {
		return "out/../r.png", nil
	}}
	srv := provider.NewServer(h)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), lis) }()

	c := pb.NewProviderAppClient(srv.Conn())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	reply, err := c.Compute(ctx, &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1"})
	require.NoError(t, err)
	assert.Equal(t, "r.png", reply.GetOutputFilepath(), "cleaned, as over gRPC")
	select {
	case err := <-served:
		require.NoError(t, err, "the one call ends Serve")
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return after the one call")
	}
	_, err = c.Compute(ctx, &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s2"})
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.Equal(t, int32(1), h.calls.Load())
}

// TestConnWithoutServe: a server never served answers through Conn, and
// refuses a bad request as over gRPC, until it is shut down.
func TestConnWithoutServe(t *testing.T) {
	h := &fakeHandler{t: t}
	srv := provider.NewServer(h)
	c := pb.NewProviderAppClient(srv.Conn())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.Compute(ctx, &pb.ComputeRequest{TaskId: "../t1", SubtaskId: "s1"})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	assert.Contains(t, err.Error(), "task_id")
	_, err = c.Compute(ctx, &pb.ComputeRequest{TaskId: "t1", SubtaskId: "s1"})
	assert.Equal(t, codes.Unavailable, status.Code(err), "the refused call was the one, and the server stops: %v", err)
	require.NoError(t, srv.Shutdown(ctx))
	assert.Zero(t, h.calls.Load())
}
