package seccomp

import (
	"errors"
	"strconv"
)

var (
	// ErrInvalidProfile is a profile that cannot be compiled as written:
	// unknown action or operator, argument index out of range, empty names,
	// and the like. Errors wrapping it are *ProfileError values (joined when
	// there are several) that name the rule.
	ErrInvalidProfile = errors.New("invalid seccomp profile")

	// ErrDockerFormat is a profile in Docker's own format (archMap,
	// includes/excludes) rather than the OCI form. Docker resolves those
	// fields against the container's capabilities and kernel before handing
	// the OCI form to runc; read literally, the capability-gated rules (mount,
	// unshare, ...) would be allowed for everyone, so it is refused.
	ErrDockerFormat = errors.New("seccomp profile is in Docker's format, not the OCI form")

	// ErrNotSupported is a profile feature this libseccomp, kernel or pinfold
	// cannot provide (for example a notification listenerPath).
	ErrNotSupported = errors.New("not supported")

	// ErrUnsafeCacheDir is a cache directory that other users could write
	// to: a program planted there would weaken every sandbox using it.
	ErrUnsafeCacheDir = errors.New("unsafe seccomp cache directory")

	// errCorrupt marks a cache file that must be recompiled. It never
	// leaves the package.
	errCorrupt = errors.New("corrupt seccomp cache entry")
)

// ProfileError is one problem in a profile, located by its JSON path.
type ProfileError struct {
	// Field is the JSON path of the offending value, e.g.
	// "syscalls[3].args[0].index".
	Field string
	// Syscall is the first name of the offending rule, if any.
	Syscall string
	// Msg says what is wrong and, where it helps, what to write instead.
	Msg string
	// Err is the class of problem: ErrInvalidProfile (when nil),
	// ErrNotSupported or ErrDockerFormat.
	Err error
}

func (e *ProfileError) Error() string {
	s := "seccomp profile: " + e.Field
	if e.Syscall != "" {
		s += " (" + strconv.Quote(e.Syscall) + ")"
	}
	return s + ": " + e.Msg
}

// Unwrap returns the class of problem, so that errors.Is(err,
// ErrInvalidProfile) (or ErrNotSupported, ErrDockerFormat) holds.
func (e *ProfileError) Unwrap() error {
	if e.Err == nil {
		return ErrInvalidProfile
	}
	return e.Err
}
