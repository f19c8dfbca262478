package testdriver

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// copyFile copies the regular file src to dst, making dst's directory.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
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

// checkOutput resolves a provider's output path, relative to its work dir
// dir, and checks that it names a regular file inside dir, through any
// symbolic link: a host copies back only what the provider owns.
func checkOutput(dir, rel string) (string, error) {
	if rel == "" || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%w: %q is not a relative path inside the provider's work dir", ErrBadOutput, rel)
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(filepath.Join(dir, rel))
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadOutput, rel, err)
	}
	if r, err := filepath.Rel(root, real); err != nil || !filepath.IsLocal(r) {
		return "", fmt.Errorf("%w: %q leads outside the provider's work dir", ErrBadOutput, rel)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadOutput, rel, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %q is not a regular file (%s)", ErrBadOutput, rel, fi.Mode().Type())
	}
	return real, nil
}

// corrupt alters every byte of the file at path (each is inverted), or
// gives an empty file one byte, so that no check could take it for the
// original.
func corrupt(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if len(b) == 0 {
		b = []byte{0xff}
	}
	for i := range b {
		b[i] ^= 0xff
	}
	return os.WriteFile(path, b, 0o644)
}
