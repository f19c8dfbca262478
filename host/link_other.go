//go:build !linux

package host

import (
	"errors"
	"io/fs"
	"os"
)

// linkable is false where linkOpened cannot link an open file: outputs are
// copied.
func linkable(fs.FileInfo) bool { return false }

func linkOpened(*os.File, string) error { return errors.ErrUnsupported }
