package server

import (
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls/abi"
)

// Session is what the server dispatches to: one app's view of the broker.
// *ipc.Session implements it; servertest.Session stands in for it in tests.
//
// A descriptor a method returns belongs to the server from then on: it
// sends it to the app and closes its own copy, also when sending fails. On
// error the methods return no descriptor.
type Session interface {
	Self() ipc.SelfInfo
	List(offset, max int) (total int, objs []ipc.ObjectInfo)
	Stat(name string) (ipc.ObjectInfo, error)
	Unlink(name string) error
	PipeOpen(name string, end ipc.Access) (fd int, err error)
	ShmCreate(name string, size int64) (fd int, err error)
	ShmAttach(name string, access ipc.Access) (fd int, size int64, err error)
	RegionMap(name string, size int64, access ipc.Access) (fd int, got int64, created bool, err error)
	MQOpen(name string, attr ipc.MQAttr, access ipc.Access, flags ipc.MQFlags) (fd int, got ipc.MQAttr, created bool, err error)
}

// Options tune Serve. The zero value is ready to use.
type Options struct {
	// MaxMalformed is how many malformed messages in a row (bad header or
	// framing, oversized, carrying descriptors, a malformed entry) close
	// the channel with ErrHostile. 0 means 64.
	MaxMalformed int
	// Observe, if set, is called once per reply entry, from the serving
	// goroutine, with the call's sysno, its errno (0 on success) and the
	// time spent in it (0 for entries not executed: malformed, cancelled).
	// A message refused as a whole is reported once, as MessageRefused. It must
	// be quick and should not allocate: it is on every call's path.
	Observe func(sysno abi.Sysno, errno abi.Errno, d time.Duration)
	// Linger is how long a channel's server waits in the runtime poller
	// for the app's next message before the channel goes back to the idle
	// set and its goroutine ends (see Conn.Start). 0 means DefaultLinger;
	// negative: never (a goroutine per channel for its whole life).
	Linger time.Duration
}

// DefaultLinger is the Linger that Options' zero value means.
const DefaultLinger = 10 * time.Millisecond

func (o *Options) linger() time.Duration {
	if o.Linger == 0 {
		return DefaultLinger
	}
	return max(o.Linger, 0)
}

// MessageRefused is the sysno Options.Observe gets for a message refused as
// a whole (malformed header, oversized, carrying descriptors): no syscall
// table entry has it.
const MessageRefused abi.Sysno = 0xffff

// DefaultMaxMalformed is the MaxMalformed that Options' zero value means.
const DefaultMaxMalformed = 64

func (o *Options) maxMalformed() int {
	if o.MaxMalformed > 0 {
		return o.MaxMalformed
	}
	return DefaultMaxMalformed
}
