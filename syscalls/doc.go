// Package syscalls is the only place in pinfold that calls golang.org/x/sys/unix
// for raw system calls. Other packages call the small, named wrappers here, which
// retry on EINTR and wrap failures as *os.SyscallError so callers can test them
// with errors.Is.
//
// Subpackages own the app-facing side of the kernel boundary:
// syscalls/seccomp compiles seccomp policies with libseccomp and caches the BPF.
// The app-facing syscall protocol served by pinfold (pipes, shared memory, queues)
// will live here too; it is not implemented yet.
package syscalls
