package syscalls

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Wrappers for package cgroup.

// OpenDirPath opens the directory path as an O_PATH|O_DIRECTORY|O_CLOEXEC
// descriptor: the kind clone3(CLONE_INTO_CGROUP) takes
// (syscall.SysProcAttr.CgroupFD with UseCgroupFD). The caller owns the
// descriptor and must close it.
func OpenDirPath(path string) (int, error) {
	fd, err := retryN(func() (int, error) {
		return unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// PollPri waits until fd reports POLLPRI or POLLERR, which is how kernfs
// files such as cgroup v2's cgroup.events announce "the content changed
// since you last read it", or until timeout passes. It reports whether the
// descriptor became ready; a timeout is not an error. A negative timeout
// waits forever. An interrupted wait resumes with the time left.
func PollPri(fd int, timeout time.Duration) (bool, error) {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		ms := -1
		if timeout >= 0 {
			left := time.Until(deadline)
			if left < 0 {
				left = 0
			}
			// Round up so a sub-millisecond remainder still sleeps.
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		n, err := unix.Poll(fds, ms)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return false, os.NewSyscallError("poll", err)
		case n == 0:
			return false, nil
		case fds[0].Revents&unix.POLLNVAL != 0:
			return false, os.NewSyscallError("poll", unix.EBADF)
		default:
			return true, nil
		}
	}
}
