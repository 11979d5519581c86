// Package notify serves seccomp user notifications: the syscalls an app's
// filter hands to the supervisor (SECCOMP_RET_USER_NOTIF, see
// seccomp.WithNotify) are received from the filter's listener, decided by
// a Handler and answered with an errno, a value, or a descriptor injected
// into the app (SECCOMP_IOCTL_NOTIF_ADDFD with SECCOMP_ADDFD_FLAG_SEND: the
// syscall returns the new descriptor, atomically).
//
// Listener and Server wait in Go's runtime poller, not on a thread each; a
// Server answers one notification at a time per listener, which bounds
// what one app can make the supervisor do at once. MQ is the handler for
// POSIX message queues: an app that knows nothing of pinfold calls
// mq_open(3) and mq_unlink(3) and gets queues of pinfold's IPC broker,
// shared with other apps under its policy's grants.
//
// When the supervisor stops serving (it closed the listener, or died),
// the kernel fails every pending and later notified syscall with ENOSYS:
// apps never hang on a dead supervisor.
//
// It does not install filters (the init stage does, with
// syscalls.SetSeccompFilterListener), compile them (syscalls/seccomp) or
// own IPC objects (package ipc).
package notify
