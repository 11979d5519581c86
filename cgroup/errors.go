package cgroup

import "errors"

var (
	// ErrNotSupported means the host lacks a cgroup feature pinfold needs or
	// was asked to use: a controller that is not mounted or not delegated, a
	// resource field pinfold does not apply, or a cgroup v2 layout that does not
	// allow controllers for children.
	ErrNotSupported = errors.New("not supported by this host's cgroups")

	// ErrInvalid means a Config, Paths or resource value is malformed.
	ErrInvalid = errors.New("invalid cgroup configuration")

	// ErrBusy means the cgroup still holds processes, so it cannot be removed.
	// Kill it first.
	ErrBusy = errors.New("cgroup still has processes")

	// ErrClosed means the Cgroup was closed.
	ErrClosed = errors.New("cgroup closed")
)
