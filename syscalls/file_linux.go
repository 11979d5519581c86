package syscalls

import (
	"os"

	"golang.org/x/sys/unix"
)

// Flock takes a whole-file lock on fd: exclusive or shared, blocking or not.
// A non-blocking attempt on a held lock fails with EWOULDBLOCK. The lock
// belongs to the open file description and vanishes when its last
// descriptor closes (including when the holder dies).
func Flock(fd int, exclusive, nonblock bool) error {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if nonblock {
		how |= unix.LOCK_NB
	}
	return os.NewSyscallError("flock", retry(func() error { return unix.Flock(fd, how) }))
}

// Rmdir removes an empty directory (one syscall, unlike os.Remove, which
// tries unlink first).
func Rmdir(path string) error {
	if err := retry(func() error { return unix.Rmdir(path) }); err != nil {
		return &os.PathError{Op: "rmdir", Path: path, Err: err}
	}
	return nil
}
