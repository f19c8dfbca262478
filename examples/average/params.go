package main

import (
	"errors"
	"fmt"
	"path/filepath"
)

// Params are the task's parameters.
type Params struct {
	// Column names the CSV column to average, e.g. "age".
	Column string `json:"column"`
	// Partial asks only for the partials, one per partition, as vantage6's
	// RPC-only run does: result.json then holds the list of partials in
	// partition order instead of the average.
	Partial bool `json:"partial,omitempty"`
}

// Validate refuses params that cannot name a column; whether the column
// exists is only known once Split reads the partitions. The SDK calls it
// after decoding and answers its error as InvalidArgument.
func (p Params) Validate() error {
	if p.Column == "" {
		return errors.New(`column: want the name of a CSV column, e.g. "age"`)
	}
	return nil
}

// PartParams tell a provider which partition to read and which column to sum.
type PartParams struct {
	// File is the partition's file name in subtask_inputs/.
	File string `json:"file"`
	// Column is the column to sum.
	Column string `json:"column"`
}

// Validate keeps a provider inside its subtask_inputs/: File comes from
// the requestor, but a provider should not trust it with a path.
func (p PartParams) Validate() error {
	if p.File == "" || !filepath.IsLocal(p.File) || filepath.Base(p.File) != p.File {
		return fmt.Errorf("file %q: want a plain file name", p.File)
	}
	return nil
}

// Partial is one partition's contribution to the average: the result file
// of one subtask, and in partial mode one entry of result.json.
type Partial struct {
	Sum   float64 `json:"sum"`
	Count int     `json:"count"`
}

// Average is result.json in the normal mode.
type Average struct {
	Average float64 `json:"average"`
}

// errNoRows is returned by Split when the column has no value in any
// partition, so that Merge never divides by zero.
var errNoRows = errors.New("no rows")
