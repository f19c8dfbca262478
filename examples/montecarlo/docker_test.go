package main

import (
	"encoding/json"
	"testing"

	"github.com/gtask/gtask/internal/exampletest"
)

// TestDocker runs the task of TestChaos with the app in containers (the
// docker_cpu environment), as is and under chaos: both end with the
// outputs the process runtime gives, byte for byte, and leave nothing in
// the engine. It is skipped where no Docker Engine answers.
func TestDocker(t *testing.T) {
	t.Parallel()
	exampletest.SameInDocker(t, exampletest.Task{
		AppEnv: asApp + "=1",
		Params: json.RawMessage(`{"samples": 200000, "parts": 6, "seed": 7}`),
	}, "github.com/gtask/gtask/examples/montecarlo")
}
