package provider

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/gtask/gtask/gen/golem_task_api"
)

type okHandler struct{ calls int }

func (h *okHandler) Compute(context.Context, string, string, json.RawMessage) (string, error) {
	h.calls++
	return "out.png", nil
}

func (h *okHandler) RunBenchmark(context.Context) (float64, error) {
	h.calls++
	return 1, nil
}

// TestOneShotAfterServed calls the service directly, because over a socket
// a second request after the reply races with the server's stop (see
// TestSecondRequestAfterServedIsNotRun).
func TestOneShotAfterServed(t *testing.T) {
	h := &okHandler{}
	srv := NewServer(h)
	t.Cleanup(func() { require.NoError(t, srv.Shutdown(context.Background())) })
	svc := service{srv: srv}
	ctx := context.Background()
	req := &pb.ComputeRequest{TaskId: "t", SubtaskId: "s"}

	_, err := svc.Compute(ctx, req)
	require.NoError(t, err)

	_, err = svc.Compute(ctx, req)
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "this provider is one-shot and already served a request")
	_, err = svc.RunBenchmark(ctx, &pb.RunBenchmarkRequest{})
	assert.Equal(t, codes.FailedPrecondition, status.Code(err))
	assert.Equal(t, 1, h.calls)
}

func TestRequestAfterShutdownIsUnavailable(t *testing.T) {
	h := &okHandler{}
	srv := NewServer(h)
	require.NoError(t, srv.Shutdown(context.Background()))
	_, err := service{srv: srv}.Compute(context.Background(), &pb.ComputeRequest{TaskId: "t", SubtaskId: "s"})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Zero(t, h.calls)
}

func TestCheckOutputPath(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "out.png", want: "out.png"},
		{in: "s1/out.png", want: "s1/out.png"},
		{in: "./s1/../out.png", want: "out.png"},
		{in: "..foo", want: "..foo"}, // a name starting with dots is still inside
		{in: "", wantErr: "empty"},
		{in: ".", wantErr: "work dir itself"},
		{in: "a/..", wantErr: "work dir itself"},
		{in: "/etc/passwd", wantErr: "not inside"},
		{in: "..", wantErr: "not inside"},
		{in: "../x", wantErr: "not inside"},
		{in: "a/../../x", wantErr: "not inside"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := checkOutputPath(tt.in)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
