//go:build !unix

package appbuild

import "context"

// lockEntry does nothing where there are no file locks: builds of the same
// entry at once may then clash.
func lockEntry(context.Context, string) (func(drop bool), error) {
	return func(bool) {}, nil
}
