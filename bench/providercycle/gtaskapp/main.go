// Command gtaskapp is the benchmark's subject: a gtask app whose provider
// Compute does nothing, so that a cycle measures gtask's own cost.
package main

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/gtask/gtask/appmain"
	"github.com/gtask/gtask/provider"
)

type noop struct{}

func (noop) Compute(context.Context, string, string, json.RawMessage) (string, error) {
	return "out", nil
}

func (noop) RunBenchmark(context.Context) (float64, error) { return 1, nil }

func main() {
	appmain.Main(appmain.Roles{
		Provider: func(string, *slog.Logger) (provider.Handler, error) { return noop{}, nil },
	})
}
