package ipc

import "time"

// AppInfo is who joins a Broker: an app's id (unique among the broker's
// live sessions), the name of its policy and the IPC grants of that policy.
type AppInfo struct {
	ID     string
	Policy string
	Grants Grants
}

// SelfInfo is what an app may learn about its own IPC quota.
type SelfInfo struct {
	App, Policy string
	// MaxObjects and MaxBytes are the app's quota (its Grants').
	MaxObjects int
	MaxBytes   int64
	// Objects and Bytes are what the app owns now.
	Objects int
	Bytes   int64
}

// ObjectInfo describes one object.
type ObjectInfo struct {
	Name string
	Kind Kind
	// Size is the object's size in bytes: shm and region sizes (a region's
	// current file size), a pipe's current capacity, an mq's
	// maxmsg*msgsize.
	Size int64
	// Owner and OwnerPolicy are the creating app and its policy; the
	// owner may have exited (persistent objects, or objects still held).
	Owner, OwnerPolicy string
	// Holders is the number of live apps that were handed a descriptor.
	Holders    int
	Persistent bool
	// Unlinked objects have no name any more; they live until their
	// holders exit (Broker.Objects only).
	Unlinked bool
	Created  time.Time
	// MaxMsg and MsgSize are an mq's attributes.
	MaxMsg, MsgSize int64
}

// MQAttr are a message queue's attributes: the most messages it holds and
// the largest message, in bytes.
type MQAttr struct {
	MaxMsg, MsgSize int64
}

// MQFlags modify MQOpen.
type MQFlags uint8

// MQOpen flags.
const (
	// MQNonblock opens the descriptor O_NONBLOCK: send on a full queue
	// and receive on an empty one fail with EAGAIN.
	MQNonblock MQFlags = 1
	// MQExclusive fails with EEXIST when the queue exists (O_EXCL).
	MQExclusive MQFlags = 2
)

// Stats count what a broker holds, for leak tests and metrics.
type Stats struct {
	// Sessions is the number of apps joined and not yet closed.
	Sessions int
	// Objects, Bytes and FDs total ByKind: live objects (named, or
	// unlinked and still held), their sizes as charged to quotas, and the
	// descriptors the broker itself keeps open for them.
	Objects int
	Bytes   int64
	FDs     int
	ByKind  map[Kind]KindStats
}

// KindStats are the Stats of one kind.
type KindStats struct {
	Objects int
	Bytes   int64
	FDs     int
}
