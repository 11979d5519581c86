// Package servertest provides a Session that stands in for the IPC broker
// (ipc.Session) in tests of the syscall server and of its client libraries,
// the way net/http/httptest stands in for a network. It creates real kernel
// objects (sealed memfds, pipes, POSIX message queues) and hands out real
// descriptors, under a deliberately simple rule set, so that those tests
// exercise the wire protocol and descriptor passing without depending on
// the broker's policy logic.
package servertest
