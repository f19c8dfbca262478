package rpcserver

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Once a stop was requested, nothing turns health back to SERVING: neither
// Serve starting late nor SetServing.
func TestNoServingAfterStopRequested(t *testing.T) {
	s := New(Config{}, func(grpc.ServiceRegistrar) {})
	check := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := s.health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		return resp.GetStatus()
	}
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, check(), "before Serve")
	s.SetServing(true)
	require.Equal(t, healthpb.HealthCheckResponse_SERVING, check())
	s.RequestStop()
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, check(), "after RequestStop")
	s.SetServing(true)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, check(), "SetServing after RequestStop")
	s.Stop(context.Background())
}
