package host

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCopyOutputLinksOrCopies checks which outputs copyOutput links into
// the requestor's side and which it copies: only the host's own file,
// readable and writable, with no other name, is linked (on Linux); every
// other is copied, so that nothing but the provider's own file is ever
// shared. Either way the result holds the output's bytes and stays whole
// once the provider's dir is gone.
func TestCopyOutputLinksOrCopies(t *testing.T) {
	tests := []struct {
		name string
		// make writes the output in dir and returns its relative path.
		make   func(t *testing.T, dir string) string
		linked bool // on Linux
	}{
		{
			name: "own file",
			make: func(t *testing.T, dir string) string {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "out"), []byte("result\n"), 0o644))
				return "out"
			},
			linked: true,
		},
		{
			name: "own file in a subdir",
			make: func(t *testing.T, dir string) string {
				require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "out"), []byte("result\n"), 0o600))
				return "sub/out"
			},
			linked: true,
		},
		{
			name: "a file with another name",
			make: func(t *testing.T, dir string) string {
				other := filepath.Join(t.TempDir(), "other")
				require.NoError(t, os.WriteFile(other, []byte("result\n"), 0o644))
				if err := os.Link(other, filepath.Join(dir, "out")); err != nil {
					t.Skipf("no hard link here: %v", err)
				}
				return "out"
			},
		},
		{
			name: "a read-only file",
			make: func(t *testing.T, dir string) string {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "out"), []byte("result\n"), 0o444))
				return "out"
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prov := filepath.Join(t.TempDir(), "prov")
			require.NoError(t, os.Mkdir(prov, 0o755))
			rel := tc.make(t, prov)
			src, err := os.Stat(filepath.Join(prov, rel))
			require.NoError(t, err)
			dstDir := filepath.Join(t.TempDir(), "subtask_outputs", "s1")

			name, n, err := copyOutput(prov, rel, dstDir, 1<<20)
			require.NoError(t, err)
			assert.Equal(t, filepath.Base(rel), name)
			assert.Equal(t, int64(len("result\n")), n)
			dst := filepath.Join(dstDir, name)
			got, err := os.Stat(dst)
			require.NoError(t, err)
			assert.Equal(t, tc.linked && runtime.GOOS == "linux", os.SameFile(src, got), "linked")

			require.NoError(t, os.Chmod(filepath.Join(prov, rel), 0o644))
			require.NoError(t, os.RemoveAll(prov))
			b, err := os.ReadFile(dst)
			require.NoError(t, err)
			assert.Equal(t, "result\n", string(b))
		})
	}
}

// TestCopyOutputRefusesBeforeLinking checks that the checks come first
// on the linking path too: a refused output leaves nothing in dstDir and
// the file it pointed at untouched.
func TestCopyOutputRefusesBeforeLinking(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("secret\n"), 0o644))
	tests := []struct {
		name string
		make func(t *testing.T, dir string) string
	}{
		{"symlink to a file outside", func(t *testing.T, dir string) string {
			require.NoError(t, os.Symlink(secret, filepath.Join(dir, "out")))
			return "out"
		}},
		{"a dir on the way links outside", func(t *testing.T, dir string) string {
			require.NoError(t, os.Symlink(outside, filepath.Join(dir, "sub")))
			return "sub/secret"
		}},
		{"parent path", func(*testing.T, string) string { return "../secret" }},
		{"absolute", func(*testing.T, string) string { return secret }},
		{"too big", func(t *testing.T, dir string) string {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "out"), make([]byte, 100), 0o644))
			return "out"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prov := filepath.Join(outside, "prov-"+filepath.Base(t.Name()))
			require.NoError(t, os.Mkdir(prov, 0o755))
			rel := tc.make(t, prov)
			dstDir := filepath.Join(t.TempDir(), "s1")
			_, _, err := copyOutput(prov, rel, dstDir, 10)
			_, bad := errors.AsType[*badOutput](err)
			assert.True(t, bad, "want a refusal, got %v", err)
			entries, _ := os.ReadDir(dstDir)
			assert.Empty(t, entries)
			b, err := os.ReadFile(secret)
			require.NoError(t, err)
			assert.Equal(t, "secret\n", string(b))
			fi, err := os.Stat(secret)
			require.NoError(t, err)
			assert.Equal(t, 0o644, int(fi.Mode().Perm()))
		})
	}
}

// TestRemoveDir removes a provider's dir whatever the app left in it: the
// usual layout (its output and an empty subtask_inputs/) in one call per
// entry, and anything else the slow way, never following a link out of
// the dir.
func TestRemoveDir(t *testing.T) {
	tests := []struct {
		name string
		// make fills dir, and returns the output's name.
		make func(t *testing.T, dir, outside string) string
	}{
		{"usual", func(t *testing.T, dir, _ string) string {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "out"), []byte("x"), 0o644))
			return "out"
		}},
		{"no output", func(t *testing.T, dir, _ string) string { return "" }},
		{"output in a subdir", func(t *testing.T, dir, _ string) string {
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "a", "b", "out"), []byte("x"), 0o644))
			return "a/b/out"
		}},
		{"inputs filled", func(t *testing.T, dir, _ string) string {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "inputs", "data"), []byte("x"), 0o644))
			return ""
		}},
		{"inputs made a file", func(t *testing.T, dir, _ string) string {
			require.NoError(t, os.Remove(filepath.Join(dir, "inputs")))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "inputs"), []byte("x"), 0o644))
			return ""
		}},
		{"inputs made a link out", func(t *testing.T, dir, outside string) string {
			require.NoError(t, os.Remove(filepath.Join(dir, "inputs")))
			if err := os.Symlink(outside, filepath.Join(dir, "inputs")); err != nil {
				t.Skip("no symlinks here:", err)
			}
			return ""
		}},
		{"output a link out", func(t *testing.T, dir, outside string) string {
			if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
				t.Skip("no symlinks here:", err)
			}
			return "out"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			require.NoError(t, os.Mkdir(outside, 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644))
			dir := filepath.Join(base, "provider")
			require.NoError(t, os.MkdirAll(filepath.Join(dir, "inputs"), 0o755))
			out := tt.make(t, dir, outside)

			require.NoError(t, removeDir(dir, out, "inputs"))
			_, err := os.Lstat(dir)
			assert.True(t, errors.Is(err, os.ErrNotExist), "the dir is gone: %v", err)
			_, err = os.Stat(filepath.Join(outside, "keep"))
			assert.NoError(t, err, "nothing outside the dir was touched")
		})
	}
}
