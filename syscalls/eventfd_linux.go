package syscalls

import (
	"encoding/binary"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// eventfd and epoll, for waiting on kernel notifications (cgroup v1 memory
// thresholds) from one goroutine. The epoll descriptor is non-blocking so
// that it can itself sit in Go's poller (os.NewFile), and wait there without
// holding a thread.

// EventFD creates an eventfd with a counter of 0, close-on-exec and
// non-blocking.
func EventFD() (int, error) {
	fd, err := retryN(func() (int, error) { return unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK) })
	if err != nil {
		return -1, os.NewSyscallError("eventfd2", err)
	}
	return fd, nil
}

// ReadEventFD returns an eventfd's counter and resets it to 0: how many
// times it was signalled since the last read. A counter of 0 reads as 0
// (EAGAIN is not an error).
func ReadEventFD(fd int) (uint64, error) {
	var b [8]byte
	_, err := retryN(func() (int, error) { return unix.Read(fd, b[:]) })
	if errors.Is(err, unix.EAGAIN) {
		return 0, nil
	}
	if err != nil {
		return 0, os.NewSyscallError("read eventfd", err)
	}
	return binary.NativeEndian.Uint64(b[:]), nil
}

// WriteEventFD adds n to an eventfd's counter, waking its waiters.
func WriteEventFD(fd int, n uint64) error {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], n)
	_, err := retryN(func() (int, error) { return unix.Write(fd, b[:]) })
	return os.NewSyscallError("write eventfd", err)
}

// EpollEvent is one entry filled in by EpollWait: Events holds the EPOLL*
// bits and Fd the descriptor given to EpollAdd.
type EpollEvent = unix.EpollEvent

// EpollCreate creates an epoll instance, close-on-exec and non-blocking (so
// that os.NewFile registers it with Go's poller and a goroutine can wait
// for it to become readable through (*os.File).SyscallConn).
func EpollCreate() (int, error) {
	fd, err := retryN(func() (int, error) { return unix.EpollCreate1(unix.EPOLL_CLOEXEC) })
	if err != nil {
		return -1, os.NewSyscallError("epoll_create1", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("fcntl", err)
	}
	return fd, nil
}

// EpollAdd watches fd for readability (level-triggered); EpollWait reports
// it with Fd set to fd.
func EpollAdd(epfd, fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	return os.NewSyscallError("epoll_ctl", retry(func() error { return unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev) }))
}

// EpollDelete stops watching fd.
func EpollDelete(epfd, fd int) error {
	return os.NewSyscallError("epoll_ctl", retry(func() error { return unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, fd, nil) }))
}

// EpollWait fills events with ready descriptors and returns how many, after
// waiting up to msec milliseconds for one (0: do not wait; -1: no limit).
func EpollWait(epfd int, events []EpollEvent, msec int) (int, error) {
	n, err := retryN(func() (int, error) { return unix.EpollWait(epfd, events, msec) })
	if err != nil {
		return 0, os.NewSyscallError("epoll_wait", err)
	}
	return n, nil
}
