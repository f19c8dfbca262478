package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/gtask/gtask/provider"
)

// NewProvider returns the provider.Handler of app for the provider's task
// work dir workDir (the one holding subtask_inputs/): Compute decodes the
// subtask's params into a Subtask[S] (codes.InvalidArgument naming the
// field when they don't fit, or when S's Validate refuses them), calls
// app.Compute, and answers the returned path relative to workDir. A path
// outside workDir is an error (codes.Internal). It creates nothing itself;
// Subtask.OutputPath creates the subtask's output directory. RunBenchmark
// calls the app's Benchmarker, or answers ErrNoBenchmark
// (codes.Unimplemented). log nil discards. Options are accepted so that
// Main can pass the same ones to both roles; none changes the provider.
func NewProvider[P, S any](app App[P, S], workDir string, log *slog.Logger, opts ...Option) provider.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if abs, err := filepath.Abs(workDir); err == nil {
		workDir = abs
	}
	return &providerHandler[P, S]{app: app, dir: ProviderDir{Root: workDir}, log: log}
}

type providerHandler[P, S any] struct {
	app App[P, S]
	dir ProviderDir
	log *slog.Logger
}

func (h *providerHandler[P, S]) Compute(ctx context.Context, taskID, subtaskID string, params json.RawMessage) (string, error) {
	part, s, err := decodeSubtask[S](params)
	if err != nil {
		return "", err
	}
	st := &Subtask[S]{TaskID: taskID, ID: subtaskID, Part: part, Params: s, Dir: h.dir,
		Log: h.log.With("task", taskID, "subtask", subtaskID, "part", part)}
	out, err := h.app.Compute(ctx, st)
	if err != nil {
		return "", fmt.Errorf("computing part %d: %w", part, err)
	}
	return relOutput(h.dir.Root, out)
}

// relOutput turns Compute's path, absolute or relative to root, into the
// path relative to root the contract answers.
func relOutput(root, out string) (string, error) {
	if out == "" {
		return "", fmt.Errorf("Compute returned no output path")
	}
	rel := filepath.Clean(out)
	if filepath.IsAbs(out) {
		var err error
		if rel, err = filepath.Rel(root, out); err != nil {
			return "", fmt.Errorf("Compute returned %q, outside the provider work dir %s", out, root)
		}
	}
	if !filepath.IsLocal(rel) || rel == "." {
		return "", fmt.Errorf("Compute returned %q, outside the provider work dir %s", out, root)
	}
	return rel, nil
}

func (h *providerHandler[P, S]) RunBenchmark(ctx context.Context) (float64, error) {
	return runBenchmark(ctx, h.app)
}

func runBenchmark(ctx context.Context, app any) (float64, error) {
	b, ok := app.(Benchmarker)
	if !ok {
		return 0, fmt.Errorf("%T: %w", app, ErrNoBenchmark)
	}
	return b.RunBenchmark(ctx)
}
