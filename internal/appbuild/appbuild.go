// Package appbuild turns the APP a user names (to `gtask run`, `gtask image
// build` or the daemon) into an executable: a directory holding a Go main
// package is built into a cache, a file must be executable.
//
// Its errors tell the user's mistake from the host's trouble: an error
// that errors.Is ErrBadApp means APP is wrong (missing, not executable, not
// a main package, a build that fails, the go command missing), and its
// message says what to fix; any other error is the host's (a cache it
// cannot write), or ctx's when ctx has ended.
package appbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// lockName is the lock file in a cache entry: builds of the entry take
// turns holding it.
const lockName = ".lock"

// ErrBadApp is what every error about a wrong APP is (errors.Is); its
// message is the error's own, without this sentinel's text.
var ErrBadApp = errors.New("bad app")

// badApp is an error about APP: it is ErrBadApp, and says only its own
// message.
type badApp struct{ err error }

func (e *badApp) Error() string        { return e.err.Error() }
func (e *badApp) Unwrap() error        { return e.err }
func (e *badApp) Is(target error) bool { return target == ErrBadApp }

func badAppf(format string, args ...any) error {
	return &badApp{fmt.Errorf(format, args...)}
}

// App is an APP resolved to an executable.
type App struct {
	// Bin is the executable to launch, an absolute path.
	Bin string
	// Name names the app in task ids and messages: the package directory's
	// base name, or the executable's without its extension.
	Name string
}

// Resolve turns arg, an APP, into an executable: a directory holding a Go
// main package is built into cacheDir (see Build), saying so on progress
// ("building ARG") when it is not nil; a file must be a regular file and
// executable. What is wrong with arg is ErrBadApp; a failed build is too,
// with the compiler's output, since the fix is in APP. When ctx ends
// during a build, the error is ctx's.
func Resolve(ctx context.Context, arg, cacheDir string, progress io.Writer) (App, error) {
	abs, err := filepath.Abs(arg)
	if err != nil {
		return App{}, badAppf("APP %s: %w", arg, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return App{}, badAppf("APP %s: %w", arg, unwrapPathError(err))
	}
	if st.IsDir() {
		if progress != nil {
			fmt.Fprintf(progress, "building %s\n", arg)
		}
		bin, err := Build(ctx, abs, cacheDir)
		if err != nil {
			return App{}, err
		}
		return App{Bin: bin, Name: filepath.Base(abs)}, nil
	}
	if !st.Mode().IsRegular() {
		return App{}, badAppf("APP %s is neither a Go package directory nor an executable file", arg)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return App{}, badAppf("APP %s is not executable (chmod +x it, or name its Go package directory instead)", arg)
	}
	return App{Bin: abs, Name: strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))}, nil
}

// Build builds the Go main package in dir, an absolute path, to a path in
// cacheDir that is stable per directory, and returns that path.
//
// It runs `go build` every time rather than deciding itself whether the
// binary is stale: the go command already knows every input of the build
// (sources, dependencies, flags, toolchain) and leaves an up-to-date target
// alone, so a second build costs a fraction of a second and can never give
// a stale binary. The directory's absolute path, hashed, keeps two packages
// with the same base name apart. VCS stamping is off: it would make the
// binary depend on the state of the checkout, and fail where git is not
// usable, for no benefit to a task. Builds of the same entry, from this
// process or another, take turns (a lock file in the entry, where the
// system has file locks).
func Build(ctx context.Context, dir, cacheDir string) (string, error) {
	return goBuild(ctx, dir, cacheDir, "", nil)
}

// BuildStatic builds the Go main package in dir as Build does, but as a
// statically linked Linux binary for goarch (a GOARCH), the only kind an
// image built from scratch can run: cgo off, paths trimmed so that the
// binary says nothing of this machine. It has its own cache entry per
// goarch, so that it never replaces the binary Build gives.
func BuildStatic(ctx context.Context, dir, cacheDir, goarch string) (string, error) {
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + goarch}
	return goBuild(ctx, dir, cacheDir, "-linux-"+goarch, env, "-trimpath")
}

// DefaultCacheDir is where built apps go by default: the user's cache
// directory, or the temp directory where there is none (no $HOME, as in
// some CI sandboxes).
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "gtask", "bin")
	}
	return filepath.Join(os.TempDir(), "gtask-cache", "bin")
}

// goBuild builds the Go main package in dir into cacheDir, in the entry
// for dir with suffix, with env added to the process's environment and
// flags added to go build's; see Build.
func goBuild(ctx context.Context, dir, cacheDir, suffix string, env []string, flags ...string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", badAppf("APP %s is a directory, and building it needs the go command: %w", dir, err)
	}
	// The build's environment for go list too: GOOS and cgo decide which
	// files are in the package.
	if env != nil {
		env = append(os.Environ(), env...)
	}
	// go list first: it says plainly when dir holds no Go package, or a
	// package that is not a command, where go build would be cryptic.
	var stdout, stderr bytes.Buffer
	list := exec.CommandContext(ctx, goBin, "list", "-f", "{{.Name}}", ".")
	list.Dir, list.Env, list.Stdout, list.Stderr = dir, env, &stdout, &stderr
	if err := list.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", badAppf("APP %s is not a Go package directory: %s", dir, firstLine(stderr.String(), err))
	}
	if name := strings.TrimSpace(stdout.String()); name != "main" {
		return "", badAppf("APP %s holds Go package %q, not a main package: gtask runs an app's command", dir, name)
	}
	sum := sha256.Sum256([]byte(dir))
	entry := filepath.Join(cacheDir, filepath.Base(dir)+"-"+hex.EncodeToString(sum[:6])+suffix)
	out := filepath.Join(entry, filepath.Base(dir))
	if err := os.MkdirAll(entry, 0o755); err != nil {
		return "", fmt.Errorf("build cache: %w", err)
	}
	unlock, err := lockEntry(ctx, entry)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("build cache: %w", err)
	}
	built := false
	// Leave no empty entry behind for a package that never built.
	defer func() { unlock(!built) }()
	// A build that failed while this one waited removed the entry.
	if err := os.MkdirAll(entry, 0o755); err != nil {
		return "", fmt.Errorf("build cache: %w", err)
	}
	stderr.Reset()
	args := append([]string{"build", "-buildvcs=false"}, flags...)
	build := exec.CommandContext(ctx, goBin, append(args, "-o", out, ".")...)
	build.Dir, build.Env, build.Stdout, build.Stderr = dir, env, &stderr, &stderr
	// On interruption, SIGINT first: the go command then stops the
	// compilers it started, which SIGKILL would orphan.
	build.Cancel = func() error { return build.Process.Signal(os.Interrupt) }
	build.WaitDelay = 5 * time.Second
	if err := build.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", badAppf("building APP %s failed: %w\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	built = true
	return out, nil
}

// firstLine is the first non-empty line of s, or err's text when s has none.
func firstLine(s string, err error) string {
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return err.Error()
}

// unwrapPathError drops the operation and path of a *fs.PathError, which
// the message already names.
func unwrapPathError(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return pe.Err
	}
	return err
}
