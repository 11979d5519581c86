// Package server serves one app's control channel: it reads request
// messages of the syscalls/abi protocol from the app's end of a
// SOCK_SEQPACKET socketpair, dispatches each call to the app's Session (the
// IPC broker's view of that app, *ipc.Session), and answers with one reply
// message carrying the results and the descriptors the calls returned.
//
// It owns the per-app serving loop: non-blocking reads in Go's netpoller
// while the app makes calls, and an epoll set shared by all channels once
// it has been quiet for a while (an idle app costs an epoll entry: no
// goroutine, no buffer), one message in
// service per app at a time, replies that always fit in one message, the
// descriptors in flight (closed after sending, on every path), and the
// defence against hostile input (malformed messages get error replies; an
// app that keeps sending them loses its channel).
//
// It does not decide what an app may do (package ipc does), create the
// socketpair or place the app's end (the sandbox does), or define the wire
// format (syscalls/abi).
package server
