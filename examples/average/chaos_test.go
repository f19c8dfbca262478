package main

import (
	"encoding/json"
	"testing"

	"github.com/gtask/gtask/internal/exampletest"
)

// TestChaos runs a task (two partitions) through the host's Runner with real
// processes of this app, once as is and once with chaos killing, stalling
// and corrupting providers: both runs end with the same output files, byte
// for byte, and the chaos run says what it injected and recovered.
func TestChaos(t *testing.T) {
	t.Parallel()
	exampletest.SameWithChaos(t, chaosTask(t))
}

// TestDocker runs the task of TestChaos with the app in containers (the
// docker_cpu environment), as is and under chaos: both end with the
// outputs the process runtime gives, byte for byte, and leave nothing in
// the engine. It is skipped where no Docker Engine answers.
func TestDocker(t *testing.T) {
	t.Parallel()
	exampletest.SameInDocker(t, chaosTask(t), "github.com/gtask/gtask/examples/average")
}

// chaosTask is the task TestChaos and TestDocker run.
func chaosTask(t *testing.T) exampletest.Task {
	return exampletest.Task{
		AppEnv: asApp + "=1",
		Params: json.RawMessage(`{"column": "age"}`),
		Inputs: seedInputs(t),
	}
}
