package notify

import "errors"

var (
	// ErrClosed is returned by Serve when the listener was closed while it
	// served.
	ErrClosed = errors.New("seccomp notification listener closed")

	// ErrBusy is returned by Serve when another Serve is already serving
	// the listener: a listener has one server, so that its app has at
	// most one notification being handled at a time.
	ErrBusy = errors.New("seccomp notification listener is already being served")

	// ErrGone is a notification whose target no longer waits for the
	// answer: it was killed, or a signal interrupted and restarted its
	// syscall (which then comes again as a new notification). Anything
	// read from its memory must not be acted on.
	ErrGone = errors.New("notified syscall is no longer pending")

	// ErrTooLong is a string in the target's memory with no NUL within
	// the limit read.
	ErrTooLong = errors.New("string in the target's memory is longer than the limit")
)
