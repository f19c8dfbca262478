package cli

import "github.com/gtask/gtask/internal/files"

// copyOutputs copies the tree of the task's task_outputs/ into dst,
// created (with its parents) if need be. It copies rather than moves: the
// work dir may be kept, and must then stay whole for whoever reads it. Only
// regular files and directories are copied; the host already refuses
// anything else from an app's merge, and a symlink here could reach
// outside the work dir.
func copyOutputs(src, dst string) error {
	return files.CopyTree(src, dst, false)
}
