package syscalls

import (
	"errors"
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

// ReadNonblock reads from a non-blocking descriptor: wouldBlock reports
// that no data is there yet (EAGAIN or EINTR), for use inside a
// syscall.RawConn.Read callback.
func ReadNonblock(fd int, buf []byte) (n int, wouldBlock bool, err error) {
	n, err = unix.Read(fd, buf)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return 0, true, nil
	}
	if err != nil {
		return 0, false, &os.PathError{Op: "read", Path: "pipe", Err: err}
	}
	return n, false, nil
}

// Readable reports, without blocking, whether fd has data to read (or an
// end of file or error to report): poll(2) with a zero timeout.
func Readable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}
