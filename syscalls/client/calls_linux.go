package client

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls/abi"
)

// Self is what an app may learn about itself: its id, its policy, its IPC
// quota and what it uses of it.
type Self struct {
	App, Policy string
	MaxObjects  int
	MaxBytes    int64
	Objects     int
	Bytes       int64
}

// Object describes an IPC object. List fills Name, Kind, Size and Owner;
// Stat fills every field.
type Object struct {
	Name string
	Kind ipc.Kind
	// Size is the object's size in bytes (an mq's maxmsg*msgsize).
	Size int64
	// Owner and OwnerPolicy are the app that created the object and its
	// policy.
	Owner, OwnerPolicy string
	// Holders is the number of live apps holding a descriptor of it.
	Holders    int
	Persistent bool
	Unlinked   bool
	Created    time.Time
	// MaxMsg and MsgSize are an mq's attributes.
	MaxMsg, MsgSize int64
}

// Nop makes a call that does nothing: a round trip to pinfold and back.
func (c *Client) Nop() error {
	_, err := c.one(call{sysno: abi.SysNop})
	return err
}

// Self reports the app's identity and quota.
func (c *Client) Self() (Self, error) {
	r, err := c.one(call{sysno: abi.SysSelf})
	return r.Self, err
}

// List returns every object the app can see, sorted by name, paging
// through as many calls as it takes. Objects created or removed meanwhile
// may be missed or seen twice.
func (c *Client) List() ([]Object, error) {
	var all []Object
	for {
		r, err := c.one(call{sysno: abi.SysList, nums: [4]uint64{uint64(len(all))}})
		if err != nil {
			return nil, err
		}
		all = append(all, r.Objects...)
		if len(r.Objects) == 0 || len(all) >= r.Total {
			return all, nil
		}
	}
}

// Stat describes the object name.
func (c *Client) Stat(name string) (Object, error) {
	r, err := c.one(call{sysno: abi.SysStat, name: name})
	return r.Object, err
}

// Unlink removes the object's name; descriptors already handed out keep
// working.
func (c *Client) Unlink(name string) error {
	_, err := c.one(call{sysno: abi.SysUnlink, name: name})
	return err
}

// PipeOpen returns one end of the named pipe (ipc.Read or ipc.Write),
// creating the pipe on first use.
func (c *Client) PipeOpen(name string, end ipc.Access) (*os.File, error) {
	r, err := c.one(call{sysno: abi.SysPipeOpen, name: name, nums: [4]uint64{uint64(end)}})
	return r.File, err
}

// ShmCreate creates shared memory of size bytes, sealed against resizing,
// and returns a read-write descriptor to mmap.
func (c *Client) ShmCreate(name string, size int64) (*os.File, error) {
	r, err := c.one(call{sysno: abi.SysShmCreate, name: name, nums: [4]uint64{uint64(size)}})
	return r.File, err
}

// ShmAttach returns a descriptor of existing shared memory (ipc.Read or
// ipc.ReadWrite) and its size.
func (c *Client) ShmAttach(name string, access ipc.Access) (*os.File, int64, error) {
	r, err := c.one(call{sysno: abi.SysShmAttach, name: name, nums: [4]uint64{uint64(access)}})
	return r.File, r.Size, err
}

// RegionMap returns a descriptor of the region file name, creating it with
// size bytes when it does not exist (size 0 only attaches), with its size
// and whether this call created it.
func (c *Client) RegionMap(name string, size int64, access ipc.Access) (*os.File, int64, bool, error) {
	r, err := c.one(call{sysno: abi.SysRegionMap, name: name, nums: [4]uint64{uint64(size), uint64(access)}})
	return r.File, r.Size, r.Created, err
}

// MQOpen returns a message-queue descriptor (access ipc.Read receives,
// ipc.Write sends, ipc.ReadWrite both), creating the queue with maxmsg
// messages of msgsize bytes when it does not exist (both 0 only attach).
// Use NewMQ to send and receive on it.
func (c *Client) MQOpen(name string, maxmsg, msgsize int64, access ipc.Access, flags ipc.MQFlags) (*os.File, ipc.MQAttr, error) {
	r, err := c.one(call{sysno: abi.SysMQOpen, name: name,
		nums: [4]uint64{uint64(maxmsg), uint64(msgsize), uint64(access), uint64(flags)}})
	return r.File, r.MQAttr, err
}

// Batch collects calls to make in one round trip. Add calls with its
// methods, then Do. A Batch is not safe for concurrent use.
type Batch struct {
	// StopOnError stops at the first failing call: the later calls fail
	// with ECANCELED and are not made.
	StopOnError bool

	c     *Client
	calls []call
}

// Batch starts a batch.
func (c *Client) Batch() *Batch { return &Batch{c: c} }

// Len is the number of calls added.
func (b *Batch) Len() int { return len(b.calls) }

func (b *Batch) add(p call) { b.calls = append(b.calls, p) }

// Nop adds a nop.
func (b *Batch) Nop() { b.add(call{sysno: abi.SysNop}) }

// Self adds a self call (Result.Self).
func (b *Batch) Self() { b.add(call{sysno: abi.SysSelf}) }

// List adds one page of list from offset (Result.Total, Result.Objects).
func (b *Batch) List(offset int) { b.add(call{sysno: abi.SysList, nums: [4]uint64{uint64(offset)}}) }

// Stat adds a stat (Result.Object).
func (b *Batch) Stat(name string) { b.add(call{sysno: abi.SysStat, name: name}) }

// Unlink adds an unlink.
func (b *Batch) Unlink(name string) { b.add(call{sysno: abi.SysUnlink, name: name}) }

// PipeOpen adds a pipe_open (Result.File).
func (b *Batch) PipeOpen(name string, end ipc.Access) {
	b.add(call{sysno: abi.SysPipeOpen, name: name, nums: [4]uint64{uint64(end)}})
}

// ShmCreate adds a shm_create (Result.File, Result.Size).
func (b *Batch) ShmCreate(name string, size int64) {
	b.add(call{sysno: abi.SysShmCreate, name: name, nums: [4]uint64{uint64(size)}})
}

// ShmAttach adds a shm_attach (Result.File, Result.Size).
func (b *Batch) ShmAttach(name string, access ipc.Access) {
	b.add(call{sysno: abi.SysShmAttach, name: name, nums: [4]uint64{uint64(access)}})
}

// RegionMap adds a region_map (Result.File, Result.Size, Result.Created).
func (b *Batch) RegionMap(name string, size int64, access ipc.Access) {
	b.add(call{sysno: abi.SysRegionMap, name: name, nums: [4]uint64{uint64(size), uint64(access)}})
}

// MQOpen adds an mq_open (Result.File, Result.MQAttr, Result.Created).
func (b *Batch) MQOpen(name string, maxmsg, msgsize int64, access ipc.Access, flags ipc.MQFlags) {
	b.add(call{sysno: abi.SysMQOpen, name: name, nums: [4]uint64{uint64(maxmsg), uint64(msgsize), uint64(access), uint64(flags)}})
}

// Do makes the calls and returns one Result per call, in order, and
// empties the batch. The error is for the exchange as a whole (the channel
// is closed, the reply is malformed); a call's own failure is in its
// Result.Err. Batches of more than abi.MaxBatch calls go in several round
// trips; with StopOnError a failure cancels the round trips after it too.
func (b *Batch) Do() ([]Result, error) {
	calls := b.calls
	b.calls = nil
	results := make([]Result, len(calls))
	var flags abi.Flags
	if b.StopOnError {
		flags = abi.FlagStopOnError
	}
	for start := 0; start < len(calls); start += abi.MaxBatch {
		end := min(start+abi.MaxBatch, len(calls))
		if err := b.c.roundTrip(flags, calls[start:end], results[start:end]); err != nil {
			closeFiles(results[:start])
			return nil, err
		}
		if b.StopOnError && failed(results[start:end]) {
			for i := end; i < len(calls); i++ {
				p := &calls[i]
				results[i] = Result{Call: p.sc().Name, Name: p.name,
					Err: callError(p, syscall.ECANCELED, "not executed: an earlier call in the batch failed")}
			}
			break
		}
	}
	return results, nil
}

func failed(rs []Result) bool {
	for _, r := range rs {
		if r.Err != nil {
			return true
		}
	}
	return false
}

func closeFiles(rs []Result) {
	for _, r := range rs {
		if r.File != nil {
			r.File.Close()
		}
	}
}

// String describes the result for logs: "shm_attach results/1: ok" or the
// error.
func (r Result) String() string {
	if r.Err != nil {
		return r.Err.Error()
	}
	s := r.Call
	if r.Name != "" {
		s += " " + r.Name
	}
	return fmt.Sprintf("%s: ok", s)
}
