package files_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/internal/files"
)

func TestCopyTree(t *testing.T) {
	for _, durable := range []bool{false, true} {
		src := t.TempDir()
		require.NoError(t, os.MkdirAll(filepath.Join(src, "a", "b"), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(src, "top.txt"), []byte("top"), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(src, "a", "b", "deep.bin"), []byte{0, 1, 2}, 0o644))
		require.NoError(t, os.MkdirAll(filepath.Join(src, "empty"), 0o755))

		dst := filepath.Join(t.TempDir(), "new", "out")
		require.NoError(t, os.MkdirAll(dst, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dst, "top.txt"), []byte("an older, longer file"), 0o644))
		require.NoError(t, files.CopyTree(src, dst, durable))

		got, err := os.ReadFile(filepath.Join(dst, "top.txt"))
		require.NoError(t, err)
		assert.Equal(t, "top", string(got), "overwritten, not appended to")
		got, err = os.ReadFile(filepath.Join(dst, "a", "b", "deep.bin"))
		require.NoError(t, err)
		assert.Equal(t, []byte{0, 1, 2}, got)
		assert.DirExists(t, filepath.Join(dst, "empty"))
	}
}

func TestCopyTreeRefusesSymlinks(t *testing.T) {
	src := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(secret, []byte("secret"), 0o600))
	require.NoError(t, os.Symlink(secret, filepath.Join(src, "link")))
	dst := t.TempDir()
	err := files.CopyTree(src, dst, false)
	require.ErrorContains(t, err, "link: not a regular file")
	assert.NoFileExists(t, filepath.Join(dst, "link"))
}
