package vfs

import "errors"

// ErrInvalidSpec is wrapped by every NewPlan error caused by the Spec itself:
// a relative or unclean path, a reserved or duplicate target, a missing bind
// source (which also wraps fs.ErrNotExist), or a source whose type does not
// match its target.
var ErrInvalidSpec = errors.New("invalid filesystem spec")

// ErrInvalidPlan is returned by Plan.Validate (and so by Apply) for a Plan
// that NewPlan would not have produced: an unknown operation or a bad path.
var ErrInvalidPlan = errors.New("invalid mount plan")

// ErrHostMountNS is returned by Apply when it is not in a mount namespace
// of its own: it would rebuild the host's root.
var ErrHostMountNS = errors.New("not in a mount namespace of its own")

// ErrHostCgroupNS is returned by Apply for a plan with cgroup mounts
// (Spec.Cgroupfs) when it runs in the initial cgroup namespace, or in its
// parent's: the mounts would show the host's cgroup tree from its root
// (or the parent's view of it) instead of the app's own cgroups, and a
// cgroup2 mount made in the initial namespace would reset the host's
// cgroup2 mount options (nsdelegate, memory_recursiveprot). The init
// stage unshares a cgroup namespace before Apply (policy
// namespaces.cgroup).
var ErrHostCgroupNS = errors.New("not in a cgroup namespace of its own")

// StepError is the error Apply returns: Step names the operation that
// failed, for example "bind /srv/models" or "pivot_root", and Err is the
// cause (usually an *os.SyscallError, so errors.Is works with errno values).
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }
