package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gtask/gtask/sdk"
)

// app is the average algorithm. It holds no state: everything a call needs
// is in its Task, Subtask or Result, so one value serves every task.
type app struct{}

// resultFile is the name of the merged result in task_outputs/, and
// partialFile that of a subtask's result.
const (
	resultFile  = "result.json"
	partialFile = "partial.json"
)

// Split makes one part per CSV file of task_inputs, in name order. It reads
// every partition once here, so that a missing column or a bad value is
// refused at CreateTask, naming the file and line, instead of failing a
// provider (or several, one attempt after another) much later.
func (app) Split(ctx context.Context, t *sdk.Task[Params]) ([]sdk.Part[PartParams], error) {
	files, err := partitions(t.Dir.Inputs())
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no CSV file in task_inputs: put one *.csv file per partition there", sdk.ErrInvalidParams)
	}
	// A partition is one organisation's data and is computed where it is
	// sent, whole: merging two into one part would defeat the point, so a
	// limit below the number of partitions is refused rather than obeyed.
	if t.MaxParts > 0 && len(files) > t.MaxParts {
		return nil, fmt.Errorf("%w: %d partitions in task_inputs but at most %d subtasks allowed: each partition is one subtask",
			sdk.ErrInvalidParams, len(files), t.MaxParts)
	}
	parts := make([]sdk.Part[PartParams], len(files))
	rows := 0
	for i, name := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		src := filepath.Join(t.Dir.Inputs(), name)
		p, err := partial(src, t.Params.Column)
		if err != nil {
			return nil, err
		}
		rows += p.Count
		if err := copyFile(filepath.Join(t.Dir.SubtaskInputs(), name), src); err != nil {
			return nil, err
		}
		parts[i] = sdk.Part[PartParams]{
			Params:    PartParams{File: name, Column: t.Params.Column},
			Resources: []string{name},
		}
	}
	if rows == 0 && !t.Params.Partial {
		return nil, fmt.Errorf("%w: column %q: %w in any partition, so there is no average", sdk.ErrInvalidParams, t.Params.Column, errNoRows)
	}
	t.Log.Info("split", "partitions", len(files), "rows", rows, "column", t.Params.Column)
	return parts, nil
}

// Compute sums the column over the partition on the provider. The SDK has
// checked s.Params with PartParams.Validate.
func (app) Compute(ctx context.Context, s *sdk.Subtask[PartParams]) (string, error) {
	p, err := partial(s.Dir.Input(s.Params.File), s.Params.Column)
	if err != nil {
		return "", err
	}
	out, err := s.OutputPath(partialFile)
	if err != nil {
		return "", err
	}
	return out, writeJSON(out, p)
}

// Verify recomputes the partial from the requestor's own copy of the
// partition: summing one column is as cheap as reading the result, and
// the requestor holds the data anyway.
func (app) Verify(ctx context.Context, r *sdk.Result[Params, PartParams]) (sdk.Verdict, error) {
	want, err := partial(filepath.Join(r.Task.Dir.SubtaskInputs(), r.Params.File), r.Params.Column)
	if err != nil {
		return sdk.Verdict{}, err
	}
	got, err := readPartial(r.File)
	if err != nil {
		return sdk.Reject("%s: %v", r.Params.File, err), nil
	}
	if got != want {
		return sdk.Reject("%s: expected sum %v and count %d, got sum %v and count %d",
			r.Params.File, want.Sum, want.Count, got.Sum, got.Count), nil
	}
	return sdk.Accept(), nil
}

// Merge writes result.json: the average over all partitions, or in partial
// mode the partials themselves in partition order.
func (app) Merge(ctx context.Context, t *sdk.Task[Params], results []*sdk.Result[Params, PartParams]) error {
	partials := make([]Partial, len(results))
	for i, r := range results {
		p, err := readPartial(r.File)
		if err != nil {
			return fmt.Errorf("%s: %w", r.Params.File, err)
		}
		partials[i] = p
	}
	out := filepath.Join(t.Dir.Outputs(), resultFile)
	if t.Params.Partial {
		return writeJSON(out, partials)
	}
	avg, err := average(partials)
	if err != nil {
		return err
	}
	return writeJSON(out, Average{Average: avg})
}

// average is the central step of the algorithm: total sum over total count.
func average(partials []Partial) (float64, error) {
	var total Partial
	for _, p := range partials {
		total.Sum += p.Sum
		total.Count += p.Count
	}
	if total.Count == 0 {
		return 0, errNoRows
	}
	return total.Sum / float64(total.Count), nil
}

// partitions lists the CSV files of dir, in name order (os.ReadDir sorts),
// which is the partition order of parts and of partial results.
func partitions(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.EqualFold(filepath.Ext(e.Name()), ".csv") {
			files = append(files, e.Name())
		}
	}
	return files, nil
}

// readPartial reads a result file strictly: a provider's output is
// untrusted, and a field we do not know or a trailing value is a sign of a
// wrong program, not something to skip.
func readPartial(path string) (Partial, error) {
	f, err := os.Open(path)
	if err != nil {
		return Partial{}, err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var p Partial
	if err := dec.Decode(&p); err != nil {
		return Partial{}, fmt.Errorf("result is not {\"sum\": S, \"count\": N}: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Partial{}, errors.New("result has data after its JSON object")
	}
	if p.Count < 0 {
		return Partial{}, fmt.Errorf("result has a negative count %d", p.Count)
	}
	return p, nil
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func copyFile(dst, src string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	_, err = io.Copy(out, in)
	return err
}
