// Package client is the Go library apps link to talk to pinfold from inside
// a sandbox: it speaks the syscall protocol of syscalls/abi on the control
// channel pinfold placed at PINFOLD_CTL_FD (FromEnv), one method per call
// of the syscall table (Self, List, Stat, Unlink, PipeOpen, ShmCreate,
// ShmAttach, RegionMap, MQOpen, Nop) plus batches of calls in one round
// trip (Batch). It also reads the pre-opened channels announced in
// PINFOLD_FDS (Channels) and sends and receives on message queues (MQ),
// which Go's standard library cannot.
//
// A failed call returns a *Error that matches its errno:
//
//	f, size, err := c.ShmAttach("results/1", ipc.Read)
//	if errors.Is(err, syscall.EPERM) { ... } // not granted
//
// It does not decide anything: pinfold's broker (package ipc) grants or
// refuses each call.
package client
