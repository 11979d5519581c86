package probe

import "syscall"

// What the child of rawClone does. It never returns into Go code: the
// child is a copy of one thread of a multithreaded Go program, so it only
// makes raw system calls.
const (
	childExit    = iota // exit_group(0) at once
	childTraceme        // ptrace(PTRACE_TRACEME), then exit with its errno
	childPause          // wait for a signal forever (ppoll with nothing)
)

// rawClone calls clone(flags|SIGCHLD) and returns the child's pid to the
// parent. It must not grow the stack or call into the runtime after the
// clone, hence nosplit and raw system calls only.
//
//go:nosplit
//go:norace
func rawClone(flags uintptr, child int) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, flags|uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r != 0 {
		return int(r), 0
	}
	switch child {
	case childTraceme:
		_, _, e := syscall.RawSyscall6(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0, 0, 0, 0)
		syscall.RawSyscall6(syscall.SYS_EXIT_GROUP, uintptr(e), 0, 0, 0, 0, 0)
	case childPause:
		for {
			syscall.RawSyscall6(syscall.SYS_PPOLL, 0, 0, 0, 0, 0, 0)
		}
	}
	for {
		syscall.RawSyscall6(syscall.SYS_EXIT_GROUP, 0, 0, 0, 0, 0, 0)
	}
}

// reap waits for child pid and returns its wait status.
func reap(pid int) (syscall.WaitStatus, error) {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		return ws, err
	}
}
