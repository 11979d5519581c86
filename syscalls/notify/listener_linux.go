package notify

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/syscalls"
)

// Listener is the supervisor's end of a seccomp filter's notifications: the
// descriptor seccomp(2) returned with SECCOMP_FILTER_FLAG_NEW_LISTENER.
//
// While any copy of it is open, notified syscalls wait for an answer; once
// every copy is closed, the kernel answers all of them, pending and future,
// with ENOSYS.
type Listener struct {
	f       *os.File
	rc      syscall.RawConn
	serving atomic.Bool
	closed  atomic.Bool
}

// NewListener takes ownership of fd, a seccomp notification listener, and
// registers it with the runtime poller. The caller must not use fd
// afterwards; Close closes it.
func NewListener(fd int) (*Listener, error) {
	if fd < 0 {
		return nil, fmt.Errorf("seccomp listener: invalid descriptor %d", fd)
	}
	if !syscalls.IsSeccompListener(fd) {
		return nil, fmt.Errorf("descriptor %d is not a seccomp notification listener", fd)
	}
	// The runtime poller takes descriptors that are non-blocking when
	// wrapped. (The listener's ioctls ignore O_NONBLOCK; it matters only to
	// the poller.)
	if err := syscalls.SetNonblock(fd); err != nil {
		return nil, fmt.Errorf("seccomp listener: %w", err)
	}
	f := os.NewFile(uintptr(fd), "seccomp-listener")
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		f.Close()
		return nil, fmt.Errorf("seccomp listener: not pollable: %w", err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("seccomp listener: %w", err)
	}
	return &Listener{f: f, rc: rc}, nil
}

// Close closes the listener. Unless another copy of it is open (in another
// process), every notified syscall of its filter, pending or future, then
// fails with ENOSYS. A Serve in progress returns ErrClosed.
func (l *Listener) Close() error {
	l.closed.Store(true)
	return l.f.Close()
}

// SetSyncWakeUp asks the kernel to wake each answered target on the CPU
// that answered it (SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, Linux 6.6+), the
// right thing when the server goes back to waiting right after answering.
// An error wrapping EINVAL means the kernel does not support it.
func (l *Listener) SetSyncWakeUp() error {
	return l.control(func(fd int) error { return syscalls.SeccompNotifSyncWakeUp(fd) })
}

// control runs fn with the descriptor, which stays open while fn runs.
func (l *Listener) control(fn func(fd int) error) error {
	var ferr error
	if err := l.rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return l.closedError(err)
	}
	return ferr
}

// errHangup reports that no task uses the filter any more.
var errHangup = errors.New("seccomp filter has no users left")

// receive waits in the runtime poller for a notification and receives it.
// It returns errHangup once no task uses the filter, ErrClosed if the
// listener is closed, and os.ErrDeadlineExceeded when the read deadline
// (set to stop a Serve) passes.
func (l *Listener) receive(n *syscalls.SeccompNotif) error {
	var rerr error
	err := l.rc.Read(func(fd uintptr) bool {
		// The poller is edge-triggered: return false (wait) only after a
		// level check found nothing pending.
		for {
			pending, hangup, err := syscalls.PollSeccompListener(int(fd))
			switch {
			case err != nil:
				rerr = err
				return true
			case !pending && hangup:
				rerr = errHangup
				return true
			case !pending:
				return false
			}
			err = syscalls.SeccompNotifRecv(int(fd), n)
			if errors.Is(err, syscall.ENOENT) {
				continue // its target was killed before we got it
			}
			rerr = err
			return true
		}
	})
	if err != nil {
		return l.closedError(err)
	}
	return rerr
}

// closedError turns the runtime poller's error for a closed descriptor
// (which it does not export) into ErrClosed.
func (l *Listener) closedError(err error) error {
	if l.closed.Load() || errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return err
}
