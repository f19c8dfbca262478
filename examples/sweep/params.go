package main

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Params are a sweep's parameters.
type Params struct {
	// App is the app every run runs: a Go package directory or an
	// executable on the daemon's machine (an absolute path: the daemon
	// does not share the submitter's current directory).
	App string `json:"app"`
	// Runs are the params of each run, one child task each: JSON objects
	// (or null for the app's defaults).
	Runs []json.RawMessage `json:"runs"`
}

// maxRuns bounds a sweep, as a guard against a typo.
const maxRuns = 1000

// Validate refuses a sweep that cannot run; the SDK answers its error as
// InvalidArgument.
func (p Params) Validate() error {
	switch {
	case p.App == "":
		return errors.New("app: missing: name the app every run runs")
	case len(p.Runs) == 0:
		return errors.New("runs: empty: give the params of at least one run")
	case len(p.Runs) > maxRuns:
		return fmt.Errorf("runs: %d runs: at most %d", len(p.Runs), maxRuns)
	}
	for i, r := range p.Runs {
		var v any
		if err := json.Unmarshal(r, &v); err != nil {
			return fmt.Errorf("runs[%d]: %w", i, err)
		}
		if _, ok := v.(map[string]any); !ok && v != nil {
			return fmt.Errorf("runs[%d]: %s is not a JSON object", i, r)
		}
	}
	return nil
}

// PartParams are one part's: the run it stands for and its child task.
type PartParams struct {
	Part   int             `json:"part"`
	Child  string          `json:"child"`
	Params json.RawMessage `json:"params"`
}
