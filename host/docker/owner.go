package docker

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The labels on everything gtask creates in the engine. Every container
// and network carries all of them, so that leftovers can be found (by
// LabelManaged), told apart per run (LabelRun), and judged dead or alive
// (LabelOwner) by the next launcher and by `gtask gc`.
const (
	// LabelManaged marks what gtask created; its value is "true".
	LabelManaged = "io.gtask.managed"
	// LabelRun is the id of the Launcher that created it.
	LabelRun = "io.gtask.run"
	// LabelOwner names the gtask process that created it:
	// HOST/BOOT/PID/START, its host name, the host's boot id, its pid and
	// its start time in clock ticks since boot (see owner).
	LabelOwner = "io.gtask.owner"
	// LabelRole is a container's role, requestor or provider.
	LabelRole = "io.gtask.role"
)

// owner identifies a process for as long as it lives, and never another:
// a pid alone is reused, a pid with its start time and the boot it
// belongs to is not.
type owner struct {
	host, boot string
	pid        int
	start      string
}

func (o owner) String() string {
	return fmt.Sprintf("%s/%s/%d/%s", o.host, o.boot, o.pid, o.start)
}

// parseOwner reads a LabelOwner value.
func parseOwner(s string) (owner, bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 4 {
		return owner{}, false
	}
	pid, err := strconv.Atoi(parts[2])
	if err != nil || pid <= 0 {
		return owner{}, false
	}
	return owner{host: parts[0], boot: parts[1], pid: pid, start: parts[3]}, true
}

// self is this process as an owner. Where /proc cannot tell (not Linux),
// boot and start are "-", and liveness is judged by the pid alone.
func self() owner {
	host, _ := os.Hostname()
	return owner{host: host, boot: bootID(), pid: os.Getpid(), start: startTime(os.Getpid())}
}

// Liveness of an owner, as judged from this process.
type liveness int

const (
	ownerUnknown liveness = iota // another host: cannot tell
	ownerAlive
	ownerDead
)

// judge tells whether o still runs, as seen from me. A different host
// cannot be judged (the engine may be shared); a different boot of this
// host means o is gone; otherwise o runs if a process with its pid and
// start time does.
func judge(o, me owner) liveness {
	if o.host != me.host {
		return ownerUnknown
	}
	if o.boot != me.boot {
		return ownerDead
	}
	if o.pid == me.pid && o.start == me.start {
		return ownerAlive
	}
	switch start := startTime(o.pid); {
	case start == "":
		return ownerDead
	case start == "-" || o.start == "-" || start == o.start:
		// Where /proc cannot tell, a live pid is taken as alive.
		return ownerAlive
	default:
		return ownerDead // the pid was reused
	}
}

// bootID is the kernel's id of this boot, "-" where there is none.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "-"
	}
	return strings.TrimSpace(string(b))
}

// startTime is the start time of process pid in clock ticks since boot
// (field 22 of /proc/PID/stat), "" when no such process runs, "-" when
// /proc cannot tell.
func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		if os.IsNotExist(err) {
			if _, serr := os.Stat("/proc/self/stat"); serr == nil {
				return "" // /proc works: the process is gone
			}
			return "-"
		}
		return "-"
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// the fields after it are counted from its closing parenthesis.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "-"
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return "-"
	}
	return fields[19]
}
