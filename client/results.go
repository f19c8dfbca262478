package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	hostv1 "github.com/gtask/gtask/gen/gtask/host/v1"
)

// Results writes a finished task's outputs under dir (created, with its
// parents, when missing) and answers their names, relative to dir with
// slashes, in the order the daemon sent them. A file already there under
// the same name is overwritten.
//
// Every name must be local: relative, with no ".." that leaves dir and no
// absolute or volume part; a name that is not is refused, and nothing is
// written outside dir, through symlinks either (the files are written
// through an os.Root of dir). A task that has not finished is the daemon's
// FAILED_PRECONDITION. On an error, the files written so far stay.
func (c *Client) Results(ctx context.Context, id, dir string) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.api.GetResults(ctx, &hostv1.GetResultsRequest{TaskId: id})
	if err != nil {
		return nil, fmt.Errorf("client: results of task %s: %w", id, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("client: results of task %s: %w", id, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("client: results of task %s: %w", id, err)
	}
	defer root.Close()
	w := resultWriter{root: root}
	defer w.abort()
	for {
		resp, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return w.names, fmt.Errorf("client: results of task %s: %w", id, err)
		}
		if err := w.chunk(resp); err != nil {
			return w.names, fmt.Errorf("client: results of task %s: %w", id, err)
		}
	}
	if err := w.finish(); err != nil {
		return w.names, fmt.Errorf("client: results of task %s: %w", id, err)
	}
	return w.names, nil
}

// resultWriter writes GetResults' chunks to their files, one file at a
// time, checking that each arrives whole and in order.
type resultWriter struct {
	root  *os.Root
	names []string
	// The file being written.
	name    string
	f       *os.File
	size    int64
	written int64
}

// chunk writes one chunk, opening its file when it is the first.
func (w *resultWriter) chunk(r *hostv1.GetResultsResponse) error {
	if w.f == nil || r.GetName() != w.name {
		if err := w.finish(); err != nil {
			return err
		}
		if err := w.open(r.GetName(), r.GetSize()); err != nil {
			return err
		}
	}
	if r.GetOffset() != w.written {
		return fmt.Errorf("%s: a chunk at offset %d, after %d bytes", w.name, r.GetOffset(), w.written)
	}
	if w.written+int64(len(r.GetData())) > w.size {
		return fmt.Errorf("%s: more than its size, %d bytes", w.name, w.size)
	}
	n, err := w.f.Write(r.GetData())
	w.written += int64(n)
	return err
}

// open checks name and creates its file (and directories) under the root.
func (w *resultWriter) open(name string, size int64) error {
	local, err := localName(name)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%s: a size of %d", name, size)
	}
	if d := filepath.Dir(local); d != "." {
		if err := w.root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	f, err := w.root.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	w.name, w.f, w.size, w.written = name, f, size, 0
	w.names = append(w.names, name)
	return nil
}

// finish closes the file being written, checking that it is whole.
func (w *resultWriter) finish() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return err
	}
	if w.written != w.size {
		return fmt.Errorf("%s: %d bytes of %d arrived", w.name, w.written, w.size)
	}
	return nil
}

// abort closes a file left open by an error.
func (w *resultWriter) abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}

// localName checks a result's name, relative to task_outputs/ with
// slashes, and turns it into a local path: a name that is empty, absolute,
// leaves the directory or holds a backslash or NUL is refused.
func localName(name string) (string, error) {
	switch {
	case name == "":
		return "", errors.New("a result file without a name")
	case strings.ContainsAny(name, "\\\x00"), path.IsAbs(name), !filepath.IsLocal(filepath.FromSlash(name)):
		return "", fmt.Errorf("refusing the result file %q: its name is not a plain relative path inside the output directory", name)
	}
	return filepath.FromSlash(path.Clean(name)), nil
}
