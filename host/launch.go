package host

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// What the launchers share: checking their arguments, the app's log file,
// and the last words of a failed app for the error.

// checkRole refuses a role the process contract does not know, before
// anything is started for it.
func checkRole(role Role) error {
	if role != RoleRequestor && role != RoleProvider {
		return fmt.Errorf("unknown role %q: want %q or %q", role, RoleRequestor, RoleProvider)
	}
	return nil
}

// absWorkDir checks that dir is a directory and makes it absolute: the app
// runs with it as its current directory, where a relative path would mean
// something else.
func absWorkDir(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("work dir: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("work dir %s is not a directory", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("work dir %s: %w", dir, err)
	}
	return abs, nil
}

// openAppLog opens the app's log for appending. O_APPEND makes each write
// land whole at the end even when the app (its stderr is this very file)
// and the launcher (copying its stdout) write at once.
func openAppLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("app log: %w", err)
	}
	return f, nil
}

// tailLen bounds how much of a failed app's log its start error quotes:
// enough for the error it logged on its way out, little enough for an error
// message.
const tailLen = 512

// logTail returns the last non-empty line of the log at path, quoted and
// cut to tailLen bytes, for an error saying why an app did not start; ""
// when there is none. The log may be huge: only its end is read.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	const window = 4 * tailLen
	off := max(fi.Size()-window, 0)
	buf := make([]byte, fi.Size()-off)
	n, err := f.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		return ""
	}
	buf = bytes.TrimRight(buf[:n], "\r\n \t")
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	}
	if len(buf) == 0 {
		return ""
	}
	if len(buf) > tailLen {
		buf = append(buf[:tailLen:tailLen], "..."...)
	}
	return strconv.Quote(string(buf))
}

// LogTail returns the last non-empty line of the app log at path, quoted
// and cut short, for an error saying why an app did not start or died; ""
// when there is none. Launchers outside this package use it as the
// package's own do.
func LogTail(path string) string { return logTail(path) }

// startError is the error of a failed start: it names what was started and
// the log, and quotes the log's last line, which is usually why.
func startError(what, logPath string, err error) error {
	if tail := logTail(logPath); tail != "" {
		return fmt.Errorf("host: starting %s: %w (log %s ends %s)", what, err, logPath, tail)
	}
	return fmt.Errorf("host: starting %s: %w (log %s)", what, err, logPath)
}
