// Package files holds the file-tree operations the SDK and the CLI share.
package files

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// CopyTree copies the tree under src into dst, creating dst and its parents
// as needed and overwriting files of the same name. Only directories and
// regular files are copied: anything else (a symlink, which could reach out
// of src; a device; a socket) is an error naming it. With durable, each file
// is fsynced before it is closed, for callers that must not lose a copy to a
// crash (the caller still syncs the directories it cares about).
func CopyTree(src, dst string, durable bool) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(path, target, durable)
		}
		return fmt.Errorf("%s: not a regular file or a directory", path)
	})
}

func copyFile(src, dst string, durable bool) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	if durable {
		return out.Sync()
	}
	return nil
}
