// Package ipc will own the broker through which sandboxed apps exchange data:
// named pipes, sealed memfd shared memory, mmap'd regions and POSIX message
// queues that pinfold creates, grants by policy, accounts, audits and releases
// when their holders exit.
//
// It holds no code yet: the broker arrives with the syscall interface it is
// served through (see syscalls). Apps started by pinfold today have no way to
// reach each other at all — separate ipc, mount and network namespaces.
package ipc
