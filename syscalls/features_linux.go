package syscalls

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// KernelRelease returns uname -r.
func KernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return string(bytes.TrimRight(u.Release[:], "\x00"))
}

// LandlockABI returns the Landlock ABI version the kernel offers, or 0 when
// Landlock is absent or disabled.
func LandlockABI() int {
	const createRulesetVersion = 1 // LANDLOCK_CREATE_RULESET_VERSION
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, createRulesetVersion)
	if e != 0 {
		return 0
	}
	return int(v)
}

// PidfdWorks reports whether pidfd_open works (Linux 5.3+).
func PidfdWorks() bool {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}
