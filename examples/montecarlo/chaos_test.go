package main

import (
	"encoding/json"
	"testing"

	"github.com/gtask/gtask/internal/exampletest"
)

// TestChaos runs a task (six parts, each on two nodes) through the host's Runner with real
// processes of this app, once as is and once with chaos killing, stalling
// and corrupting providers: both runs end with the same output files, byte
// for byte, and the chaos run says what it injected and recovered.
func TestChaos(t *testing.T) {
	t.Parallel()
	exampletest.SameWithChaos(t, exampletest.Task{
		AppEnv: asApp + "=1",
		Params: json.RawMessage(`{"samples": 200000, "parts": 6, "seed": 7}`),
	})
}
