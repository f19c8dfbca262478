package provider

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Handler is what an app implements to serve ProviderApp, one call per
// process. The server validates the ids and the JSON before Compute runs.
//
// Errors follow the same rules as requestor.Handler: a status error or a
// sentinel below keeps its code, a *taskapi.FieldError is InvalidArgument,
// ctx's error is Canceled or DeadlineExceeded, anything else (and a panic) is
// Internal.
type Handler interface {
	// Compute computes subtaskID of taskID in the provider's task work dir
	// (subtask_inputs/ holds its resources) and returns the path of its single
	// result file relative to that dir. ctx is cancelled when the host sends
	// Shutdown. params is nil when the host sent none.
	Compute(ctx context.Context, taskID, subtaskID string, params json.RawMessage) (string, error)
	// RunBenchmark scores this machine for the app; higher is better.
	RunBenchmark(ctx context.Context) (float64, error)
}

// Sentinel errors a Handler returns, wrapped with %w for detail.
var (
	// ErrInvalidParams: the subtask's parameters are wrong
	// (codes.InvalidArgument).
	ErrInvalidParams = status.Error(codes.InvalidArgument, "invalid parameters")
	// ErrNoBenchmark: the app has no benchmark (codes.Unimplemented).
	ErrNoBenchmark = status.Error(codes.Unimplemented, "the app has no benchmark")
)
