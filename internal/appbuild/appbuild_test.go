package appbuild_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/internal/appbuild"
)

// writePackage writes a Go module with one package, named pkg, in a new
// dir called name, and returns the dir.
func writePackage(t *testing.T, name, pkg, body string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\n\ngo 1.26\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte("package "+pkg+"\n\n"+body), 0o644))
	return dir
}

// goEnv keeps the builds of the test to this module's own settings.
func goEnv(t *testing.T) {
	t.Setenv("GOWORK", "off")
	t.Setenv("GOFLAGS", "")
}

func TestResolveExecutable(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "app.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755))
	var progress strings.Builder
	a, err := appbuild.Resolve(t.Context(), script, t.TempDir(), &progress)
	require.NoError(t, err)
	assert.Equal(t, appbuild.App{Bin: script, Name: "app"}, a)
	assert.Empty(t, progress.String(), "nothing is built")
}

// TestResolveBadApp: what is wrong with APP is ErrBadApp, with a message
// that names it and says nothing of the sentinel.
func TestResolveBadApp(t *testing.T) {
	goEnv(t)
	dir := t.TempDir()
	notExec := filepath.Join(dir, "app.sh")
	require.NoError(t, os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644))
	noGo := filepath.Join(dir, "nogo")
	require.NoError(t, os.Mkdir(noGo, 0o755))
	notMain := writePackage(t, "lib", "lib", "func F() {}\n")
	broken := writePackage(t, "broken", "main", "func main() { undefined() }\n")

	tests := []struct {
		name string
		arg  string
		want []string
	}{
		{"missing", filepath.Join(dir, "nope"), []string{"APP " + filepath.Join(dir, "nope") + ": ", "no such file"}},
		{"not executable", notExec, []string{"APP " + notExec + " is not executable", "chmod +x"}},
		{"not a file", "/dev/null", []string{"neither a Go package directory nor an executable file"}},
		{"no Go", noGo, []string{"APP " + noGo + " is not a Go package directory"}},
		{"not main", notMain, []string{`holds Go package "lib", not a main package`}},
		{"does not compile", broken, []string{"building APP " + broken + " failed", "undefined: undefined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := t.TempDir()
			_, err := appbuild.Resolve(t.Context(), tt.arg, cache, nil)
			require.ErrorIs(t, err, appbuild.ErrBadApp)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			assert.NotContains(t, err.Error(), appbuild.ErrBadApp.Error())
			entries, err := os.ReadDir(cache)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing left in the cache")
		})
	}
}

// TestResolveBuilds: a package dir is built into a cache entry of its own,
// stable per dir, and a second build gives the same path; two packages of
// the same base name get different entries.
func TestResolveBuilds(t *testing.T) {
	goEnv(t)
	cache := t.TempDir()
	src := writePackage(t, "hello", "main", "import \"fmt\"\n\nfunc main() { fmt.Println(\"hello from the app\") }\n")
	var progress strings.Builder
	a, err := appbuild.Resolve(t.Context(), src, cache, &progress)
	require.NoError(t, err)
	assert.Equal(t, "building "+src+"\n", progress.String())
	assert.Equal(t, "hello", a.Name)
	assert.Equal(t, cache, filepath.Dir(filepath.Dir(a.Bin)))
	assert.Equal(t, "hello", filepath.Base(a.Bin))
	out, err := exec.Command(a.Bin).Output()
	require.NoError(t, err)
	assert.Equal(t, "hello from the app\n", string(out))

	again, err := appbuild.Resolve(t.Context(), src, cache, nil)
	require.NoError(t, err)
	assert.Equal(t, a, again)

	other := writePackage(t, "hello", "main", "func main() {}\n")
	b, err := appbuild.Resolve(t.Context(), other, cache, nil)
	require.NoError(t, err)
	assert.NotEqual(t, filepath.Dir(a.Bin), filepath.Dir(b.Bin))
}

// TestBuildConcurrent: builds of the same package at once take turns and
// all give the same, whole binary.
func TestBuildConcurrent(t *testing.T) {
	goEnv(t)
	cache := t.TempDir()
	src := writePackage(t, "same", "main", "import \"fmt\"\n\nfunc main() { fmt.Println(\"same\") }\n")
	bins := make([]string, 4)
	errs := make([]error, len(bins))
	var wg sync.WaitGroup
	for i := range bins {
		wg.Go(func() { bins[i], errs[i] = appbuild.Build(t.Context(), src, cache) })
	}
	wg.Wait()
	for i := range bins {
		require.NoError(t, errs[i])
		assert.Equal(t, bins[0], bins[i])
	}
	out, err := exec.Command(bins[0]).Output()
	require.NoError(t, err)
	assert.Equal(t, "same\n", string(out))
}

// TestBuildStatic: the static build has its own entry per GOARCH, beside
// the plain build's.
func TestBuildStatic(t *testing.T) {
	goEnv(t)
	cache := t.TempDir()
	src := writePackage(t, "static", "main", "func main() {}\n")
	plain, err := appbuild.Build(t.Context(), src, cache)
	require.NoError(t, err)
	static, err := appbuild.BuildStatic(t.Context(), src, cache, runtime.GOARCH)
	require.NoError(t, err)
	assert.NotEqual(t, plain, static)
	assert.True(t, strings.HasSuffix(filepath.Base(filepath.Dir(static)), "-linux-"+runtime.GOARCH), static)
	assert.Equal(t, "static", filepath.Base(static))
	assert.FileExists(t, plain, "the static build leaves the plain one alone")
}

// TestBuildCancelled: a build whose ctx has ended fails with ctx's error,
// not as a bad app.
func TestBuildCancelled(t *testing.T) {
	goEnv(t)
	src := writePackage(t, "late", "main", "func main() {}\n")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := appbuild.Build(ctx, src, t.TempDir())
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, appbuild.ErrBadApp)
}

// TestBuildCacheUnwritable: a cache that cannot be written is the host's
// trouble, not a bad app.
func TestBuildCacheUnwritable(t *testing.T) {
	goEnv(t)
	src := writePackage(t, "nocache", "main", "func main() {}\n")
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o644))
	_, err := appbuild.Build(t.Context(), src, filepath.Join(file, "cache"))
	require.Error(t, err)
	assert.NotErrorIs(t, err, appbuild.ErrBadApp)
	assert.Contains(t, err.Error(), "build cache")
}

func TestDefaultCacheDir(t *testing.T) {
	d := appbuild.DefaultCacheDir()
	assert.True(t, filepath.IsAbs(d), d)
	assert.Equal(t, "bin", filepath.Base(d))
}
