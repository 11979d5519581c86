package sandbox

import "errors"

var (
	// ErrBadTransition is a lifecycle transition out of order.
	ErrBadTransition = errors.New("invalid lifecycle transition")
	// ErrWrongState is an operation the app's current state does not allow
	// (e.g. signalling an app that is not running).
	ErrWrongState = errors.New("operation not allowed in this state")
	// ErrInvalidSpec is a spec that fails validation before anything is
	// acquired.
	ErrInvalidSpec = errors.New("invalid sandbox spec")
)
