// Command sandboxapp is a gtask app for the docker launcher's tests: its one
// part tries to break out of its container and reports what it could do.
// Compute tries to write in the image's root file system, in /etc, next to
// the app's binary, under /golem/work and under /tmp, and records its uid
// and gid; Merge adds the requestor's own uid, gid and attempts. The report
// is task_outputs/report.json.
package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/gtask/gtask/sdk"
)

// Report is what the app could do, in the requestor and in a provider.
type Report struct {
	Provider  Side `json:"provider"`
	Requestor Side `json:"requestor"`
}

// Side is one role's findings.
type Side struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
	// Wrote maps each path tried to "" when the write succeeded, else the
	// error.
	Wrote map[string]string `json:"wrote"`
}

type app struct{}

type none struct{}

func (app) Split(ctx context.Context, t *sdk.Task[none]) ([]sdk.Part[none], error) {
	return []sdk.Part[none]{{}}, nil
}

func (app) Compute(ctx context.Context, s *sdk.Subtask[none]) (string, error) {
	out, err := s.OutputPath("side.json")
	if err != nil {
		return "", err
	}
	side := probe(filepath.Join(s.Dir.Root, "written-by-provider"))
	return out, writeJSON(out, side)
}

func (app) Verify(ctx context.Context, r *sdk.Result[none, none]) (sdk.Verdict, error) {
	return sdk.Accept(), nil
}

func (app) Merge(ctx context.Context, t *sdk.Task[none], results []*sdk.Result[none, none]) error {
	var rep Report
	b, err := os.ReadFile(results[0].File)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &rep.Provider); err != nil {
		return err
	}
	rep.Requestor = probe(filepath.Join(t.Dir.Outputs(), "written-by-requestor"))
	return writeJSON(filepath.Join(t.Dir.Outputs(), "report.json"), rep)
}

// probe tries every write and says how each went; inside is a path in
// the app's own dir, which must work.
func probe(inside string) Side {
	s := Side{UID: os.Getuid(), GID: os.Getgid(), Wrote: map[string]string{}}
	for _, p := range []string{"/escaped", "/etc/escaped", "/app.escaped", "/golem/escaped", "/tmp/scratch", inside} {
		s.Wrote[p] = ""
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			s.Wrote[p] = err.Error()
		}
	}
	return s
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func main() { sdk.Main(app{}) }
