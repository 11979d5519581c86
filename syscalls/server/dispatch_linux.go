package server

import (
	"errors"
	"fmt"
	"math"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
)

// Every reply fits in one message. Each entry not yet answered keeps
// minEntry bytes in reserve: room for a failed entry with a reason of at
// least minReason bytes. An entry whose results would eat into that
// reserve is taken back and answered EMSGSIZE instead (in practice only
// list's results vary in size, and list sizes itself to what is left), and
// a reason is cut to the room there is.
const (
	minReason = 32
	minEntry  = abi.ReplyEntrySize + abi.ValueHeadSize + minReason
)

const reasonCanceled = "not executed: an earlier call in the batch failed (the request asked to stop at the first failure)"

// dispatchAll runs the calls of the request in w in order and builds the
// reply. bad reports a malformed entry.
func (c *conn) dispatchAll(w *work) (msg []byte, bad bool) {
	calls := w.req.Calls
	stop := w.req.Flags&abi.FlagStopOnError != 0
	failed := false
	w.rb.Reset(w.out[:0])
	for i := range calls {
		call := &calls[i]
		limit := abi.MaxMessage - (len(calls)-i-1)*minEntry
		switch {
		case call.Err != nil:
			bad, failed = true, true
			c.fail(w, call, limit, call.Err.Errno, call.Err.Reason)
			c.observe(call.Sysno, call.Err.Errno, 0)
		case stop && failed:
			c.fail(w, call, limit, abi.ECANCELED, reasonCanceled)
			c.observe(call.Sysno, abi.ECANCELED, 0)
		default:
			if c.execute(w, calls, i, limit) != 0 {
				failed = true
			}
		}
	}
	msg, err := w.rb.Finish()
	if err != nil {
		// Unreachable: every entry was kept within its limit. Refuse the
		// message as a whole rather than answer nothing.
		for _, fd := range w.fds {
			syscalls.Close(fd)
		}
		w.fds = w.fds[:0]
		return abi.AppendErrorReply(w.out[:0], abi.EIO, "encoding the reply failed: "+err.Error()), bad
	}
	return msg, bad
}

// fail appends a failed entry, its reason cut to the room left.
func (c *conn) fail(w *work, call *abi.Call, limit int, errno abi.Errno, reason string) {
	room := (limit - w.rb.Len() - abi.ReplyEntrySize - abi.ValueHeadSize) &^ 7
	w.rb.Fail(call.ID, call.Sysno, errno, abi.TruncateReason(reason, room))
}

// execute runs calls[i] and appends its entry; it returns the errno.
func (c *conn) execute(w *work, calls []abi.Call, i, limit int) abi.Errno {
	call := &calls[i]
	var start time.Time
	if c.opts.Observe != nil {
		start = time.Now()
	}
	mark := w.rb.Mark()
	w.rb.Begin(call.ID, call.Sysno)
	fd, err := c.call(&w.rb, call, calls[i+1:], limit)
	if err == nil {
		nfds := 0
		if fd >= 0 {
			nfds = 1
		}
		w.rb.End(0, nfds)
		switch {
		case w.rb.Err() != nil || w.rb.Len() > limit:
			if fd >= 0 {
				syscalls.Close(fd)
			}
			err = &abi.ProtocolError{Errno: abi.EMSGSIZE, Reason: "the results do not fit in the reply; make this call in a smaller batch"}
		case fd >= 0:
			w.fds = append(w.fds, fd)
		}
	}
	var errno abi.Errno
	if err != nil {
		w.rb.Rewind(mark)
		var reason string
		errno, reason = describe(err)
		c.fail(w, call, limit, errno, reason)
	}
	if c.opts.Observe != nil {
		c.opts.Observe(call.Sysno, errno, time.Since(start))
	}
	return errno
}

// describe returns the errno and reason an app is told for err.
func describe(err error) (abi.Errno, string) {
	if pe := (*abi.ProtocolError)(nil); errors.As(err, &pe) {
		return pe.Errno, pe.Reason
	}
	if ie := (*ipc.Error)(nil); errors.As(err, &ie) {
		return wireErrno(ie.Errno), ie.Reason
	}
	return wireErrno(ipc.ErrnoOf(err)), err.Error()
}

func wireErrno(e syscall.Errno) abi.Errno {
	if e == 0 || e > math.MaxUint16 {
		return abi.EIO
	}
	return abi.Errno(e)
}

func invalid(format string, args ...any) error {
	return &abi.ProtocolError{Errno: abi.EINVAL, Reason: fmt.Sprintf(format, args...)}
}

// call runs one well-framed call: it checks the arguments against the
// table, calls the session and appends the results to b (between the
// entry's Begin and End). It returns the descriptor the call returned, or
// -1.
func (c *conn) call(b *abi.ReplyBuilder, call *abi.Call, later []abi.Call, limit int) (int, error) {
	sc, ok := abi.Lookup(call.Sysno)
	if !ok {
		return -1, &abi.ProtocolError{Errno: abi.ENOSYS,
			Reason: fmt.Sprintf("unknown syscall number %d (this pinfold serves 0 to %d)", call.Sysno, abi.NumSyscalls-1)}
	}
	if err := sc.CheckArgs(call.Args); err != nil {
		return -1, err
	}
	a := call.Args
	switch call.Sysno {
	case abi.SysNop:
		return -1, nil

	case abi.SysSelf:
		s := c.sess.Self()
		b.String(s.App)
		b.String(s.Policy)
		b.U64(u64(int64(s.MaxObjects)))
		b.U64(u64(s.MaxBytes))
		b.U64(u64(int64(s.Objects)))
		b.U64(u64(s.Bytes))
		return -1, nil

	case abi.SysList:
		return -1, c.list(b, a[0].U64, later, limit)

	case abi.SysStat:
		name, err := objectName(a[0])
		if err != nil {
			return -1, err
		}
		o, err := c.sess.Stat(name)
		if err != nil {
			return -1, err
		}
		var flags uint64
		if o.Persistent {
			flags |= abi.StatPersistent
		}
		if o.Unlinked {
			flags |= abi.StatUnlinked
		}
		var created uint64
		if !o.Created.IsZero() {
			created = u64(o.Created.UnixNano())
		}
		b.U64(uint64(o.Kind))
		b.U64(u64(o.Size))
		b.String(o.Owner)
		b.String(o.OwnerPolicy)
		b.U64(u64(int64(o.Holders)))
		b.U64(flags)
		b.U64(created)
		b.U64(u64(o.MaxMsg))
		b.U64(u64(o.MsgSize))
		return -1, nil

	case abi.SysUnlink:
		name, err := objectName(a[0])
		if err != nil {
			return -1, err
		}
		return -1, c.sess.Unlink(name)

	case abi.SysPipeOpen:
		name, err := objectName(a[0])
		if err != nil {
			return -1, err
		}
		end := a[1].U64
		if end != uint64(ipc.Read) && end != uint64(ipc.Write) {
			return -1, invalid("pipe_open end must be 1 (read) or 2 (write), not %d", end)
		}
		fd, err := c.sess.PipeOpen(name, ipc.Access(end))
		if err != nil {
			return -1, err
		}
		return fd, nil

	case abi.SysShmCreate:
		name, err := objectName(a[0])
		if err != nil {
			return -1, err
		}
		size, err := sizeArg("size", a[1].U64)
		if err != nil {
			return -1, err
		}
		fd, err := c.sess.ShmCreate(name, size)
		if err != nil {
			return -1, err
		}
		b.U64(uint64(size))
		return fd, nil

	case abi.SysShmAttach:
		name, err := objectName(a[0])
		if err != nil {
			return -1, err
		}
		access, err := accessArg("shm_attach", a[1].U64)
		if err != nil {
			return -1, err
		}
		fd, size, err := c.sess.ShmAttach(name, access)
		if err != nil {
			return -1, err
		}
		b.U64(u64(size))
		return fd, nil

	case abi.SysRegionMap:
		name, err := objectName(a[0])
		if err != nil {
			return -1, err
		}
		size, err := sizeArg("size", a[1].U64)
		if err != nil {
			return -1, err
		}
		access, err := accessArg("region_map", a[2].U64)
		if err != nil {
			return -1, err
		}
		fd, got, created, err := c.sess.RegionMap(name, size, access)
		if err != nil {
			return -1, err
		}
		b.U64(u64(got))
		b.U64(boolU64(created))
		return fd, nil

	case abi.SysMQOpen:
		name, err := objectName(a[0])
		if err != nil {
			return -1, err
		}
		maxMsg, err := sizeArg("maxmsg", a[1].U64)
		if err != nil {
			return -1, err
		}
		msgSize, err := sizeArg("msgsize", a[2].U64)
		if err != nil {
			return -1, err
		}
		access, err := accessArg("mq_open", a[3].U64)
		if err != nil {
			return -1, err
		}
		flags := a[4].U64
		if flags&^(abi.MQNonblock|abi.MQExclusive) != 0 {
			return -1, invalid("mq_open flags %#x: only 1 (nonblock) and 2 (exclusive create) are defined", flags)
		}
		fd, got, created, err := c.sess.MQOpen(name, ipc.MQAttr{MaxMsg: maxMsg, MsgSize: msgSize}, access, ipc.MQFlags(flags))
		if err != nil {
			return -1, err
		}
		b.U64(u64(got.MaxMsg))
		b.U64(u64(got.MsgSize))
		b.U64(boolU64(created))
		return fd, nil
	}
	// Unreachable: every sysno in the table is handled above.
	return -1, &abi.ProtocolError{Errno: abi.ENOSYS, Reason: fmt.Sprintf("syscall %s is not served", sc.Name)}
}

// list appends list's results: the total, then as many objects from offset
// as fit in the room left, keeping room for the calls after it.
func (c *conn) list(b *abi.ReplyBuilder, offset uint64, later []abi.Call, limit int) error {
	for _, l := range later {
		limit -= reserveFor(l.Sysno) - minEntry // minEntry is already kept
	}
	const minObject = abi.U64Size*2 + abi.ValueHeadSize*2 + 8 // a 1-byte name, no owner
	room := limit - b.Len() - abi.U64Size
	want := max(min(room/minObject, abi.MaxMessage/minObject), 1)
	off := int(min(offset, math.MaxInt32))
	total, objs := c.sess.List(off, want)
	b.U64(u64(int64(total)))
	n := 0
	for _, o := range objs {
		size := abi.BytesSize(len(o.Name)) + 2*abi.U64Size + abi.BytesSize(len(o.Owner))
		if b.Len()+size > limit {
			break
		}
		b.String(o.Name)
		b.U64(uint64(o.Kind))
		b.U64(u64(o.Size))
		b.String(o.Owner)
		n++
	}
	if n == 0 && off < total {
		return &abi.ProtocolError{Errno: abi.EMSGSIZE, Reason: "no room left in the reply for the next object; call list in a smaller batch"}
	}
	return nil
}

// reserveFor is the room list leaves for a later call in its batch: what
// its results usually take (names of ipc.MaxNameLen bytes), and at least a
// 256-byte reason.
func reserveFor(n abi.Sysno) int {
	sc, ok := abi.Lookup(n)
	if !ok {
		return minEntry
	}
	if len(sc.Each) > 0 {
		return 1024
	}
	size := abi.ReplyEntrySize
	for _, p := range sc.Results {
		if p.Type == abi.U64 {
			size += abi.U64Size
		} else {
			size += abi.BytesSize(ipc.MaxNameLen)
		}
	}
	return max(size, abi.ReplyEntrySize+abi.BytesSize(256))
}

// objectName reads an object-name argument. A name longer than
// ipc.MaxNameLen is refused before it is copied.
func objectName(v abi.Value) (string, error) {
	if len(v.Bytes) > ipc.MaxNameLen {
		return "", &abi.ProtocolError{Errno: abi.ENAMETOOLONG,
			Reason: fmt.Sprintf("object name of %d bytes is longer than %d", len(v.Bytes), ipc.MaxNameLen)}
	}
	name := string(v.Bytes)
	if err := ipc.ValidName(name); err != nil {
		return "", err
	}
	return name, nil
}

// sizeArg reads a size or count argument: at most math.MaxInt64 (larger is
// over any limit: E2BIG).
func sizeArg(what string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, &abi.ProtocolError{Errno: abi.E2BIG, Reason: fmt.Sprintf("%s %d is too large", what, v)}
	}
	return int64(v), nil
}

func accessArg(call string, v uint64) (ipc.Access, error) {
	if v < uint64(ipc.Read) || v > uint64(ipc.ReadWrite) {
		return 0, invalid("%s access must be 1 (read), 2 (write) or 3 (readwrite), not %d", call, v)
	}
	return ipc.Access(v), nil
}

func u64(v int64) uint64 {
	if v < 0 {
		return 0
	}
	return uint64(v)
}

func boolU64(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
