package syscalls

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// bpfMaxInsns is BPF_MAXINSNS: the kernel refuses longer classic BPF programs.
const bpfMaxInsns = 4096

// SeccompFilterFlagNewListener is SECCOMP_FILTER_FLAG_NEW_LISTENER: a
// program compiled with it (it has SCMP_ACT_NOTIFY rules) is installed with
// SetSeccompFilterListener.
const SeccompFilterFlagNewListener = unix.SECCOMP_FILTER_FLAG_NEW_LISTENER

// SeccompTsyncError reports that seccomp(2) could not synchronise the filter
// to every thread of the process: the kernel names the first thread whose
// seccomp state is not an ancestor of the caller's (it already has a
// different filter). Nothing was installed on any thread.
type SeccompTsyncError struct {
	TID int // the thread that could not be synchronised; 0 if unknown (TSYNC_ESRCH)
}

func (e *SeccompTsyncError) Error() string {
	who := "a thread"
	if e.TID > 0 {
		who = fmt.Sprintf("thread %d", e.TID)
	}
	return "seccomp(SECCOMP_SET_MODE_FILTER, TSYNC): " + who +
		" has a different seccomp filter, so the filter cannot cover every thread;" +
		" install it before any thread loads a filter of its own"
}

// SetSeccompFilter installs insns, a classic BPF program (an array of
// struct sock_filter, 8 bytes each in native byte order, as exported by
// libseccomp) as a seccomp filter on every thread of the calling process:
// seccomp(SECCOMP_SET_MODE_FILTER, flags|SECCOMP_FILTER_FLAG_TSYNC, prog).
//
// The calling thread needs no_new_privs (SetNoNewPrivs) or CAP_SYS_ADMIN;
// TSYNC gives the other threads the caller's no_new_privs. The filter stays
// in force across execve. flags must not contain
// SECCOMP_FILTER_FLAG_NEW_LISTENER: use SetSeccompFilterListener for
// programs with user-notification rules.
//
// It uses no libseccomp: the init stage, a static pure-Go binary, calls it
// with a program compiled by package syscalls/seccomp in the supervisor.
func SetSeccompFilter(insns []byte, flags uint) error {
	if flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER != 0 {
		return errors.New("seccomp: the program asks for a notification listener (SECCOMP_FILTER_FLAG_NEW_LISTENER); install it with SetSeccompFilterListener")
	}
	r, err := setSeccompFilter(insns, flags|unix.SECCOMP_FILTER_FLAG_TSYNC)
	if err != nil {
		return err
	}
	if r != 0 {
		// With TSYNC (and without TSYNC_ESRCH) a positive return value is
		// the id of the thread that could not be synchronised.
		return &SeccompTsyncError{TID: int(r)}
	}
	return nil
}

// SetSeccompFilterListener is SetSeccompFilter for programs that contain
// SECCOMP_RET_USER_NOTIF rules: it adds SECCOMP_FILTER_FLAG_NEW_LISTENER
// (with TSYNC and TSYNC_ESRCH, which the kernel requires together, Linux
// 5.7+) and returns the listener, a close-on-exec file descriptor that the
// caller owns. Notified syscalls fail with ENOSYS once every copy of the
// listener is closed.
func SetSeccompFilterListener(insns []byte, flags uint) (int, error) {
	flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
	fd, err := setSeccompFilter(insns, flags)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return -1, &SeccompTsyncError{}
		}
		return -1, err
	}
	return int(fd), nil
}

func setSeccompFilter(insns []byte, flags uint) (uintptr, error) {
	if len(insns) == 0 || len(insns)%8 != 0 {
		return 0, fmt.Errorf("seccomp: program of %d bytes is not a whole number of 8-byte BPF instructions", len(insns))
	}
	n := len(insns) / 8
	if n > bpfMaxInsns {
		return 0, fmt.Errorf("seccomp: program of %d instructions is longer than the kernel's limit of %d", n, bpfMaxInsns)
	}
	// Copy into properly typed, aligned memory: insns may be any byte slice.
	filter := make([]unix.SockFilter, n)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&filter[0])), len(insns)), insns)
	prog := unix.SockFprog{Len: uint16(n), Filter: &filter[0]}
	r, err := retryN(func() (uintptr, error) {
		r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog)))
		if e != 0 {
			return 0, e
		}
		return r, nil
	})
	runtime.KeepAlive(filter)
	if err != nil {
		return 0, seccompError(err, flags)
	}
	return r, nil
}

// seccompError explains the errors seccomp(SECCOMP_SET_MODE_FILTER) returns.
func seccompError(err error, flags uint) error {
	serr := os.NewSyscallError("seccomp", err)
	switch {
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("%w (the calling thread needs no_new_privs or CAP_SYS_ADMIN: call SetNoNewPrivs first, on the same locked OS thread)", serr)
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w (the kernel rejected the program or the flags %#x: the BPF is invalid, or a flag is unknown to this kernel)", serr, flags)
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("%w (the process's seccomp filters together exceed the kernel's limit)", serr)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("%w (a notification listener already exists in this process's filter chain)", serr)
	}
	return serr
}
