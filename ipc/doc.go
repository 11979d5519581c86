// Package ipc owns the broker through which sandboxed apps exchange data:
// named pipes, sealed memfd shared memory, file-backed regions on a tmpfs
// only the broker has mounted, and POSIX message queues. The broker creates
// every object, hands out file descriptors under the grants of each app's
// policy, accounts each object to its creator, reports every grant and
// denial, and releases what an app held when it exits. It then stays out of
// the data path: apps move data through the kernel objects directly.
//
// It does not speak the wire protocol apps use to reach it (syscalls/abi,
// served by syscalls/server) and does not start apps (sandbox).
package ipc
