package ipc

import (
	"errors"
	"syscall"
)

// Sentinel errors for invalid input; each also matches the errno the
// syscall interface reports for it (errors.Is(err, syscall.EINVAL)).
var (
	ErrInvalid     = &sentinel{"invalid IPC grant or argument", syscall.EINVAL}
	ErrBadName     = &sentinel{"invalid object name", syscall.EINVAL}
	ErrNameTooLong = &sentinel{"object name too long", syscall.ENAMETOOLONG}
	// ErrClosed is wrapped by every call on a closed Broker or Session.
	ErrClosed = &sentinel{"IPC broker or session closed", syscall.ESHUTDOWN}
	// ErrNotSupported is wrapped when this kernel or this process cannot
	// provide an object kind (no private ipc namespace for queues, no
	// fsopen for regions).
	ErrNotSupported = &sentinel{"IPC object kind not supported here", syscall.EOPNOTSUPP}
)

type sentinel struct {
	msg   string
	errno syscall.Errno
}

func (s *sentinel) Error() string { return s.msg }

// Is makes a sentinel match its errno as well as itself.
func (s *sentinel) Is(target error) bool {
	e, ok := target.(syscall.Errno)
	return ok && e == s.errno
}

// Error is a refused or failed broker call. Errno is what the app sees
// (EPERM not granted, ENOENT no such object, EEXIST, ENOSPC over quota,
// E2BIG over the size limit, EINVAL bad argument, ENAMETOOLONG, EPIPE pipe
// end gone, EMSGSIZE, ESHUTDOWN broker or session closed, ...); Reason says
// why in words an operator understands without the source.
type Error struct {
	Op     string // the call: "shm_attach"
	Name   string // the object name, if any
	Errno  syscall.Errno
	Reason string
	// Err is the underlying error when there is one: a sentinel of this
	// package, or the kernel's refusal of something the broker itself
	// tried (an *os.SyscallError). Nil for policy decisions.
	Err error
}

func (e *Error) Error() string {
	s := e.Op
	if e.Name != "" {
		s += " " + e.Name
	}
	return s + ": " + e.Reason
}

// Is matches the errno: errors.Is(err, syscall.EPERM).
func (e *Error) Is(target error) bool {
	t, ok := target.(syscall.Errno)
	return ok && t == e.Errno
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// ErrnoOf returns the errno an error carries for the app: an *Error's,
// a sentinel's, a syscall.Errno in the chain, or EIO for anything else.
func ErrnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Errno
	}
	var s *sentinel
	if errors.As(err, &s) {
		return s.errno
	}
	var n syscall.Errno
	if errors.As(err, &n) {
		return n
	}
	return syscall.EIO
}
