package cli

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/gtask/gtask/internal/appbuild"
)

// resolveApp turns APP into an executable with appbuild.Resolve, building a
// Go package directory into the cache and saying so on announce when it is
// not nil. Whatever is wrong with APP is a bad-input error, a failed build
// too; the cache's trouble is a host error. When ctx ends, its error is
// returned as is.
func resolveApp(ctx context.Context, arg, cacheDir string, announce io.Writer) (appbuild.App, error) {
	a, err := appbuild.Resolve(ctx, arg, cacheDir, announce)
	if err != nil {
		return appbuild.App{}, buildError(ctx, err)
	}
	return a, nil
}

// buildError gives an appbuild error its exit status: bad input when APP
// is wrong, else a host error; ctx's own error stays as it is.
func buildError(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return err
	case errors.Is(err, appbuild.ErrBadApp):
		return badInput("%w", err)
	}
	return hostError("%w", err)
}

// unwrapPathError drops the operation and path of a *fs.PathError, which
// the message already names.
func unwrapPathError(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return pe.Err
	}
	return err
}
