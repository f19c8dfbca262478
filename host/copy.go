package host

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// badOutput is why a provider's output is refused: the attempt failed
// (FailBadOutput), and the message says exactly why, for the events.
type badOutput struct{ reason string }

func (e *badOutput) Error() string { return e.reason }

func refuse(format string, args ...any) error {
	return &badOutput{reason: fmt.Sprintf(format, args...)}
}

// copyOutput brings the output a provider named, rel (relative to its task
// dir provDir), into dstDir under its base name, and returns that name and
// its size. The output is untrusted: it must be a relative path that stays
// inside provDir (through any symbolic link on the way), naming a regular
// file, itself no symbolic link, of at most limit bytes. Anything else is a
// *badOutput error, and nothing is read from elsewhere: the file is opened
// through an os.Root of provDir, so no path or link leads the host out of
// it, and checked again once open, in case it was swapped meanwhile. Any
// other error is the host's (writing dstDir).
//
// The file that was opened and checked is the one brought over: linked
// into dstDir when it can be (see linkOpened: the same file system, the
// host's own file with no other name), which costs no new file and no
// copy, else copied. The caller removes provDir afterwards, so the output
// ends with one name, in dstDir, either way. A provider must have exited
// before: a linked file is the provider's own, not a copy of it.
func copyOutput(provDir, rel, dstDir string, limit int64) (string, int64, error) {
	switch {
	case rel == "":
		return "", 0, refuse("the provider named no output file")
	case filepath.IsAbs(rel):
		return "", 0, refuse("output path %q is absolute; it must be relative to the provider's task dir", rel)
	case !filepath.IsLocal(rel):
		return "", 0, refuse("output path %q leads outside the provider's task dir", rel)
	}
	root, err := os.OpenRoot(provDir)
	if err != nil {
		return "", 0, fmt.Errorf("opening the provider's task dir: %w", err)
	}
	defer root.Close()
	fi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", 0, refuse("output %q does not exist in the provider's task dir", rel)
	case err != nil:
		// os.Root refuses a path that a link on the way leads outside.
		return "", 0, refuse("output %q cannot be read inside the provider's task dir: %v", rel, unwrapPath(err))
	}
	if err := checkRegular(rel, fi, limit); err != nil {
		return "", 0, err
	}
	in, err := root.Open(rel)
	if err != nil {
		return "", 0, refuse("output %q cannot be opened inside the provider's task dir: %v", rel, unwrapPath(err))
	}
	defer in.Close()
	ofi, err := in.Stat()
	if err != nil {
		return "", 0, refuse("output %q: %v", rel, unwrapPath(err))
	}
	if !os.SameFile(fi, ofi) {
		return "", 0, refuse("output %q changed while the host was copying it", rel)
	}
	if err := checkRegular(rel, ofi, limit); err != nil {
		return "", 0, err
	}

	name := filepath.Base(rel)
	if err := mkdir(dstDir); err != nil {
		return "", 0, err
	}
	dst := filepath.Join(dstDir, name)
	if linkable(ofi) && linkOpened(in, dst) == nil {
		return name, ofi.Size(), nil
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return "", 0, err
	}
	// One byte past the limit tells a file that grew after the check.
	n, err := io.Copy(out, io.LimitReader(in, limit+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > limit {
		os.Remove(dst)
		return "", 0, refuse("output %q grew past the limit of %d bytes while the host was copying it", rel, limit)
	}
	if err != nil {
		os.Remove(dst)
		// A read error is the provider's file's; a write error the host's.
		return "", 0, fmt.Errorf("copying output %q: %w", rel, err)
	}
	return name, n, nil
}

// checkRegular refuses anything but a regular file of at most limit bytes.
func checkRegular(rel string, fi fs.FileInfo, limit int64) error {
	switch mode := fi.Mode(); {
	case mode&fs.ModeSymlink != 0:
		return refuse("output %q is a symbolic link, not a regular file", rel)
	case mode.IsDir():
		return refuse("output %q is a directory, not a regular file", rel)
	case !mode.IsRegular():
		return refuse("output %q is not a regular file (%s)", rel, mode.Type())
	case fi.Size() > limit:
		return refuse("output %q is %d bytes, over the limit of %d bytes", rel, fi.Size(), limit)
	}
	return nil
}

// unwrapPath drops the *PathError's path, which names the file already.
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// copyResource copies the resource name from the requestor's
// subtask_inputs dir srcDir into the provider's dstDir. The name comes from
// the app, so it must stay inside both; the source is read through an
// os.Root for the same reason.
func copyResource(srcDir, name, dstDir string) error {
	if !filepath.IsLocal(name) {
		return fmt.Errorf("resource %q is not a relative path inside subtask_inputs", name)
	}
	root, err := os.OpenRoot(srcDir)
	if err != nil {
		return fmt.Errorf("resource %q: %w", name, err)
	}
	defer root.Close()
	in, err := root.Open(name)
	if err != nil {
		return fmt.Errorf("resource %q: %w", name, unwrapPath(err))
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("resource %q is not a regular file", name)
	}
	return writeFrom(filepath.Join(dstDir, name), in)
}

// copyFile copies the file src to dst, making dst's directory.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeFrom(dst, in)
}

func writeFrom(dst string, in io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// invertFile alters every byte of the file at path (each is inverted), or
// gives an empty file one byte, so that no check could take it for the
// original: chaos "wrong".
func invertFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		b = []byte{0}
	}
	for i := range b {
		b[i] ^= 0xff
	}
	return os.WriteFile(path, b, 0o644)
}

// garbleFile replaces the file at path with as many bytes from rng (at
// least 64): chaos "garbage".
func garbleFile(path string, rng *rand.Rand) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	b := make([]byte, max(fi.Size(), 64))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return os.WriteFile(path, b, 0o644)
}

// mkdir makes dir as os.MkdirAll does, in one system call when its parent
// exists, as it does for the dirs a run makes for every subtask, where
// os.MkdirAll makes three or more.
func mkdir(dir string) error {
	if os.Mkdir(dir, 0o755) == nil {
		return nil
	}
	return os.MkdirAll(dir, 0o755) // says why, or finds it made already
}

// removeDir removes the dir a run made, and everything in it, as
// os.RemoveAll does, but quicker when dir holds at most the entries named,
// as a provider's task dir usually does: one or two system calls for each
// instead of reading every dir. The names must be entries of dir itself,
// never paths through its subdirs, which whoever wrote in dir may have
// made links leading out of it: only os.RemoveAll goes further, and it
// follows no link.
func removeDir(dir string, names ...string) error {
	for _, name := range names {
		if name != "" && filepath.Base(name) == name && filepath.IsLocal(name) {
			os.Remove(filepath.Join(dir, name)) // a link is removed, not followed
		}
	}
	if os.Remove(dir) == nil {
		return nil
	}
	return os.RemoveAll(dir)
}
