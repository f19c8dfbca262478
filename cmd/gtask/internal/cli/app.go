package cli

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

// app is the APP of `gtask run APP`, resolved to an executable.
type app struct {
	// Bin is the executable to launch.
	Bin string
	// Name names the app in task ids and messages: the package directory's
	// or the executable's base name.
	Name string
}

// resolveApp turns APP into an executable: a directory holding a Go main
// package is built into the cache (see buildPackage), saying so on
// announce when it is not nil; a file must be executable. Whatever is
// wrong with APP is a bad-input error; a failed build is too, with the
// compiler's output, since the fix is in APP.
func resolveApp(ctx context.Context, arg, cacheDir string, announce io.Writer) (app, error) {
	abs, err := filepath.Abs(arg)
	if err != nil {
		return app{}, badInput("APP %s: %w", arg, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return app{}, badInput("APP %s: %w", arg, unwrapPathError(err))
	}
	if st.IsDir() {
		if announce != nil {
			fmt.Fprintf(announce, "building %s\n", arg)
		}
		bin, err := buildPackage(ctx, abs, cacheDir)
		if err != nil {
			return app{}, err
		}
		return app{Bin: bin, Name: filepath.Base(abs)}, nil
	}
	if !st.Mode().IsRegular() {
		return app{}, badInput("APP %s is neither a Go package directory nor an executable file", arg)
	}
	if st.Mode().Perm()&0o111 == 0 {
		return app{}, badInput("APP %s is not executable (chmod +x it, or name its Go package directory instead)", arg)
	}
	return app{Bin: abs, Name: strings.TrimSuffix(filepath.Base(abs), filepath.Ext(abs))}, nil
}

// buildPackage builds the Go main package in dir to a path in cacheDir that
// is stable per directory, and returns that path.
//
// It runs `go build` every time rather than deciding itself whether the
// binary is stale: the go command already knows every input of the build
// (sources, dependencies, flags, toolchain) and leaves an up-to-date target
// alone, so a second run costs a fraction of a second and can never run a
// stale binary. The directory's absolute path, hashed, keeps two packages
// with the same base name apart. VCS stamping is off: it would make the
// binary depend on the state of the checkout, and fail where git is not
// usable, for no benefit to a task.
func buildPackage(ctx context.Context, dir, cacheDir string) (string, error) {
	return goBuild(ctx, dir, cacheDir, "", nil)
}

// buildStaticPackage builds the Go main package in dir as buildPackage
// does, but as a statically linked Linux binary for goarch (a GOARCH), the
// only kind an image built from scratch can run: cgo off, paths trimmed so
// that the binary says nothing of this machine. It has its own cache entry
// per goarch, so that it never replaces the binary `gtask run` runs.
func buildStaticPackage(ctx context.Context, dir, cacheDir, goarch string) (string, error) {
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + goarch}
	return goBuild(ctx, dir, cacheDir, "-linux-"+goarch, env, "-trimpath")
}

// goBuild builds the Go main package in dir into cacheDir, in the entry
// for dir with suffix, with env added to gtask's environment and flags
// added to go build's; see buildPackage.
func goBuild(ctx context.Context, dir, cacheDir, suffix string, env []string, flags ...string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", badInput("APP %s is a directory, and building it needs the go command: %w", dir, err)
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
		return "", badInput("APP %s is not a Go package directory: %s", dir, firstLine(stderr.String(), err))
	}
	if name := strings.TrimSpace(stdout.String()); name != "main" {
		return "", badInput("APP %s holds Go package %q, not a main package: gtask runs an app's command", dir, name)
	}
	sum := sha256.Sum256([]byte(dir))
	out := filepath.Join(cacheDir, filepath.Base(dir)+"-"+hex.EncodeToString(sum[:6])+suffix, filepath.Base(dir))
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", hostError("build cache: %w", err)
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
		// Leave no empty dir behind for a package that never built.
		_ = os.Remove(filepath.Dir(out))
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", badInput("building APP %s failed: %w\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// cacheDir is where built apps go: the user's cache directory, or the temp
// directory where there is none (no $HOME, as in some CI sandboxes).
func cacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "gtask", "bin")
	}
	return filepath.Join(os.TempDir(), "gtask-cache", "bin")
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
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
