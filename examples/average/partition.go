package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gtask/gtask/sdk"
)

// partial reads the CSV file at path and sums column. Every failure names
// the file (by base name, as the task creator knows it) and, for a bad
// value, its line and the value, so that the person who submitted the task
// can fix their data without reading a log.
func partial(path, column string) (Partial, error) {
	name := filepath.Base(path)
	f, err := os.Open(path)
	if err != nil {
		return Partial{}, err
	}
	defer f.Close()
	return sumColumn(f, name, column)
}

// sumColumn sums column over the CSV read from r, whose first record is the
// header; name is the file's name, for errors. Every error wraps
// sdk.ErrInvalidParams: a fault in the data is the task creator's to fix,
// and Split reads every partition so that it is refused at CreateTask.
//
// Values must be finite numbers: an empty cell is an error rather than a
// skipped row, because a silently smaller count would change the average
// without anyone noticing.
func sumColumn(r io.Reader, name, column string) (Partial, error) {
	cr := csv.NewReader(r)
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return Partial{}, fmt.Errorf("%w: %s: empty file, want a header line naming the columns", sdk.ErrInvalidParams, name)
	}
	if err != nil {
		return Partial{}, fmt.Errorf("%w: %s: %w", sdk.ErrInvalidParams, name, err)
	}
	col := -1
	names := make([]string, len(header))
	for i, h := range header {
		names[i] = strings.TrimSpace(h)
		if names[i] == column {
			col = i
		}
	}
	if col < 0 {
		return Partial{}, fmt.Errorf("%w: %s: no column %q; its columns are %s", sdk.ErrInvalidParams, name, column, quoteAll(names))
	}
	var p Partial
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return p, nil
		}
		if err != nil {
			// csv.ParseError already says the line and column.
			return Partial{}, fmt.Errorf("%w: %s: %w", sdk.ErrInvalidParams, name, err)
		}
		line, _ := cr.FieldPos(col)
		raw := strings.TrimSpace(rec[col])
		v, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return Partial{}, fmt.Errorf("%w: %s:%d: column %q: %q is not a number", sdk.ErrInvalidParams, name, line, column, rec[col])
		}
		p.Sum += v
		p.Count++
	}
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
