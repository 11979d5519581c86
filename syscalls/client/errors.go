package client

import (
	"errors"
	"syscall"

	"github.com/pinfold/pinfold/syscalls/abi"
)

// Sentinel errors.
var (
	// ErrNotUnderPinfold: the process was not started by pinfold, or
	// pinfold gave it no control channel.
	ErrNotUnderPinfold = errors.New("not running under pinfold: PINFOLD_CTL_FD is not set")
	// ErrClosed: pinfold closed the control channel (it is shutting the
	// app down, or the app sent it garbage), or Close was called.
	ErrClosed = errors.New("pinfold closed the control channel")
	// ErrProtocol: pinfold's reply did not make sense; the client and
	// pinfold disagree about the protocol.
	ErrProtocol = errors.New("malformed reply from pinfold")
)

// Error is a call pinfold refused or that failed.
type Error struct {
	// Call is the syscall's name: "shm_attach".
	Call string
	// Name is the object the call named, if any.
	Name string
	// Errno says what went wrong: EPERM not granted, ENOENT no such
	// object, EEXIST, ENOSPC over quota, E2BIG over a size limit, EINVAL
	// bad argument, ENAMETOOLONG, EPIPE, ECANCELED (an earlier call of the
	// batch failed), ...
	Errno syscall.Errno
	// Reason is pinfold's explanation.
	Reason string
}

// Error formats the error as "pinfold shm_attach results/1: EPERM: not
// granted: ...".
func (e *Error) Error() string {
	s := "pinfold " + e.Call
	if e.Name != "" {
		s += " " + e.Name
	}
	s += ": " + abi.Errno(e.Errno).Name()
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Is matches the errno: errors.Is(err, syscall.EPERM).
func (e *Error) Is(target error) bool {
	t, ok := target.(syscall.Errno)
	return ok && t == e.Errno
}
