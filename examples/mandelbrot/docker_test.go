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
		Params: json.RawMessage(`{"width": 160, "height": 120, "max_iter": 200, "rows_per_part": 16,
	"x_min": -0.80, "x_max": -0.70, "y_min": 0.05, "y_max": 0.125}`),
	}, "github.com/gtask/gtask/examples/mandelbrot")
}
