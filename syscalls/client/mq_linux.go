package client

import (
	"os"
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
)

// MQ sends and receives messages on a POSIX message-queue descriptor from
// MQOpen (or a PINFOLD_FDS channel), which Go's standard library cannot.
// Its methods may be called concurrently.
type MQ struct {
	// File is the queue descriptor; MQ owns it.
	File *os.File
	// Attr are the queue's attributes, as MQOpen reported them; Receive
	// needs a buffer of at least Attr.MsgSize bytes.
	Attr ipc.MQAttr
}

// NewMQ wraps a queue descriptor and its attributes.
func NewMQ(f *os.File, attr ipc.MQAttr) *MQ { return &MQ{File: f, Attr: attr} }

// Send queues msg with priority prio (higher is received first). On a full
// queue it waits until deadline (then ETIMEDOUT), forever when deadline is
// zero, or fails at once with EAGAIN when the queue was opened
// ipc.MQNonblock. A message longer than the queue's message size is
// EMSGSIZE.
func (q *MQ) Send(msg []byte, prio uint, deadline time.Time) error {
	rc, err := q.File.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscalls.MQTimedSend(int(fd), msg, prio, deadline) }); err != nil {
		return err
	}
	return serr
}

// Receive takes the oldest message of the highest priority into buf and
// returns its length and priority. On an empty queue it waits like Send.
// buf must hold Attr.MsgSize bytes (else EMSGSIZE); with a nil buf,
// Receive allocates one.
func (q *MQ) Receive(buf []byte, deadline time.Time) (msg []byte, prio uint, err error) {
	if buf == nil {
		buf = make([]byte, max(q.Attr.MsgSize, 1))
	}
	rc, err := q.File.SyscallConn()
	if err != nil {
		return nil, 0, err
	}
	var n int
	var rerr error
	if err := rc.Control(func(fd uintptr) { n, prio, rerr = syscalls.MQTimedReceive(int(fd), buf, deadline) }); err != nil {
		return nil, 0, err
	}
	if rerr != nil {
		return nil, 0, rerr
	}
	return buf[:n], prio, nil
}

// Close closes the descriptor.
func (q *MQ) Close() error { return q.File.Close() }
