package host_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/host"
)

// These tests look at process groups, which only Linux's launcher manages.

func TestProcessStartDeadlineKillsTheApp(t *testing.T) {
	l := testAppLauncher(t, appHang)
	dir := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "app.log")
	// Generous for the app to write its pid file first thing.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	inst, err := l.Start(ctx, host.RoleRequestor, dir, logPath)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Nil(t, inst)
	assert.ErrorContains(t, err, l.Bin)
	assert.ErrorContains(t, err, logPath)

	pids := readPids(t, dir)
	// Start reaped the app before returning, so it is gone for good.
	assert.ErrorIs(t, syscall.Kill(pids[0], 0), syscall.ESRCH, "the app outlived its failed start")
	requireGroupGone(t, pids[0])
}

func TestProcessKillTakesTheGroup(t *testing.T) {
	inst, dir, _ := startApp(t, testAppLauncher(t, appSpawn), host.RoleRequestor)
	pgid, sleeper := requireSpawned(t, dir)

	require.NoError(t, inst.Kill())
	requireDone(t, inst)
	assert.Error(t, inst.Wait(), "a killed app did not exit 0")
	requireGroupGone(t, pgid)
	assert.False(t, alive(sleeper), "the app's child outlived the kill")
}

func TestProcessStopTakesTheGroup(t *testing.T) {
	inst, dir, _ := startApp(t, testAppLauncher(t, appSpawn), host.RoleRequestor)
	pgid, _ := requireSpawned(t, dir)

	require.NoError(t, inst.Stop(testCtx(t)))
	requireGroupGone(t, pgid)
}

// A provider that ends by itself leaves a child behind, which holds its
// stdout: the instance kills it, and ends.
func TestProcessLeftoversDieWithTheApp(t *testing.T) {
	inst, dir, _ := startApp(t, testAppLauncher(t, appSpawn), host.RoleProvider)
	pgid, _ := requireSpawned(t, dir)

	c, err := host.DialProvider(testCtx(t), inst.Addr())
	require.NoError(t, err)
	_, err = c.Compute(testCtx(t), "t1", "s1", json.RawMessage(`{}`))
	require.NoError(t, err)
	require.NoError(t, c.Close())

	requireDone(t, inst)
	assert.NoError(t, inst.Wait())
	requireGroupGone(t, pgid)
}

// requireSpawned reads the spawning app's pids and checks that its child is
// in its process group, whose id is the app's pid.
func requireSpawned(t *testing.T, dir string) (pgid, child int) {
	t.Helper()
	pids := readPids(t, dir)
	require.Len(t, pids, 2)
	pgid, child = pids[0], pids[1]
	got, err := syscall.Getpgid(child)
	require.NoError(t, err)
	require.Equal(t, pgid, got, "the app's child is in the app's process group")
	return pgid, child
}

// requireGroupGone waits for the process group pgid to have no live
// member. kill(-pgid, 0) answers ESRCH only once the members are reaped;
// orphans are reaped by init, which may take a while (or, in a container
// whose init does not reap, never), so a group of zombies counts as gone.
func requireGroupGone(t *testing.T, pgid int) {
	t.Helper()
	require.Eventually(t, func() bool {
		return errors.Is(syscall.Kill(-pgid, 0), syscall.ESRCH) || !groupHasLiving(pgid)
	}, exitTimeout, 20*time.Millisecond, "process group %d still has a live process", pgid)
}

// groupHasLiving reports whether a process of group pgid is alive (not a
// zombie), from /proc.
func groupHasLiving(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		state, pg, ok := procStat(pid)
		if ok && pg == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	return false
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procStat reads a process's state and process group from
// /proc/PID/stat: "pid (comm) state ppid pgrp ...", where comm may hold
// anything, so the fields are counted from its closing parenthesis.
func procStat(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(string(f[2]))
	return f[0][0], pgrp, err == nil
}
