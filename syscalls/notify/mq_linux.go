package notify

import (
	"context"
	"errors"
	"strings"
	"syscall"

	"github.com/pinfold/pinfold/ipc"
)

// MQBroker is what the MQ handler needs of the IPC broker: one app's
// session (*ipc.Session implements it).
type MQBroker interface {
	// MQOpen opens the queue name with access, creating it with attr when
	// it does not exist and attr is not zero (a zero attr only attaches).
	// fd is a new descriptor the caller owns; got is the queue's actual
	// attributes; created reports that this call created it.
	MQOpen(name string, attr ipc.MQAttr, access ipc.Access, flags ipc.MQFlags) (fd int, got ipc.MQAttr, created bool, err error)
	// Unlink removes the name of an object the app may remove.
	Unlink(name string) error
}

// MQSyscalls are the syscalls the MQ handler serves: the names to notify
// (seccomp.WithNotify(p, MQSyscalls...)).
var MQSyscalls = []string{"mq_open", "mq_unlink"}

// The kernel's defaults for a queue created without attributes
// (/proc/sys/fs/mqueue/msg_default and msgsize_default).
const (
	DefaultMaxMsg  = 10
	DefaultMsgSize = 8192
)

// nameMax is NAME_MAX: the longest queue name the kernel accepts.
const nameMax = 255

// MQ brokers an app's own POSIX message queue calls. Its filter notifies
// mq_open(2) and mq_unlink(2) (seccomp.WithNotify(p, "mq_open",
// "mq_unlink")); MQ reads the name and attributes from the app's memory,
// asks Broker, and injects the broker's descriptor as mq_open's return
// value. Every other queue call (mq_timedsend, mq_timedreceive,
// mq_getsetattr, mq_notify, close) then works on that descriptor without
// pinfold.
//
// The app sees mq_open(3) and mq_unlink(3) as the kernel documents them,
// with these differences:
//
//   - Names follow the broker's grammar (ipc.ValidName): letters, digits,
//     '.', '_', '-', at most ipc.MaxNameLen bytes, and '/' between
//     segments, which the kernel would refuse with EACCES. A name with
//     other characters fails with EINVAL, a longer one with ENAMETOOLONG,
//     an empty one with ENOENT, and a name with an empty, "." or ".."
//     segment with EACCES, as in the kernel.
//   - mode is ignored: broker queues have mode 0 and belong to root; who
//     may open them is decided by the policy's grants. A refusal by the
//     grants is EACCES (the broker's EPERM is reported as EACCES, which
//     is what mq_open(3) and mq_unlink(3) document for permission).
//   - O_CREAT with attributes that are not positive fails with EINVAL even
//     when the queue exists (the kernel checks them only when it creates
//     the queue). Limits on maxmsg and msgsize are the policy's, not the
//     app's ipc namespace's.
//   - The attributes argument is read only with O_CREAT.
//   - Only native calls are served: a 32-bit or x32 mq_open, which
//     profiles such as Docker's let through, fails with ENOSYS.
//
// The descriptor is installed close-on-exec, as the kernel's own mq_open
// installs it.
type MQ struct {
	Broker MQBroker
}

// Handle is the Handler for mq_open and mq_unlink notifications; any other
// syscall gets ENOSYS.
func (m *MQ) Handle(ctx context.Context, req *Request) Response {
	if !req.Native() {
		return Errno(syscall.ENOSYS)
	}
	switch req.Nr {
	case syscall.SYS_MQ_OPEN:
		return m.open(req)
	case syscall.SYS_MQ_UNLINK:
		return m.unlink(req)
	}
	return Errno(syscall.ENOSYS)
}

// mqOpen is a decoded mq_open.
type mqOpen struct {
	access ipc.Access
	flags  ipc.MQFlags
	create bool
}

// decodeOflag maps mq_open's oflag as the kernel reads it: the access mode
// (O_RDONLY, O_WRONLY, O_RDWR; both write bits is EINVAL), O_CREAT, O_EXCL
// (only with O_CREAT) and O_NONBLOCK; other bits are ignored.
func decodeOflag(oflag int) (mqOpen, syscall.Errno) {
	var op mqOpen
	switch oflag & syscall.O_ACCMODE {
	case syscall.O_RDONLY:
		op.access = ipc.Read
	case syscall.O_WRONLY:
		op.access = ipc.Write
	case syscall.O_RDWR:
		op.access = ipc.ReadWrite
	default:
		return op, syscall.EINVAL
	}
	if oflag&syscall.O_NONBLOCK != 0 {
		op.flags |= ipc.MQNonblock
	}
	if oflag&syscall.O_CREAT != 0 {
		op.create = true
		if oflag&syscall.O_EXCL != 0 {
			op.flags |= ipc.MQExclusive
		}
	}
	return op, 0
}

// mqAttr is struct mq_attr (four longs).
type mqAttr struct {
	Flags, MaxMsg, MsgSize, CurMsgs int64
}

func (m *MQ) open(req *Request) Response {
	name, errno := readName(req, req.Args[0])
	if errno != 0 {
		return Errno(errno)
	}
	op, errno := decodeOflag(int(int32(req.Args[1])))
	if errno != 0 {
		return Errno(errno)
	}
	var attr ipc.MQAttr
	if op.create {
		attr = ipc.MQAttr{MaxMsg: DefaultMaxMsg, MsgSize: DefaultMsgSize}
		if p := req.Args[3]; p != 0 {
			var a mqAttr
			if err := req.ReadStruct(p, &a); err != nil {
				return Errno(syscall.EFAULT)
			}
			if a.MaxMsg <= 0 || a.MsgSize <= 0 {
				return Errno(syscall.EINVAL)
			}
			attr = ipc.MQAttr{MaxMsg: a.MaxMsg, MsgSize: a.MsgSize}
		}
	}
	// Everything read from the target was read while the target waited
	// in this syscall: decide on it. (Changes to the name after this
	// point change nothing; the answer is this decision's.)
	if err := req.Valid(); err != nil {
		return Errno(syscall.ENOENT) // dropped: the target is gone
	}
	fd, _, created, err := m.Broker.MQOpen(name, attr, op.access, op.flags)
	if err != nil {
		return Errno(brokerErrno(err))
	}
	resp := Inject(fd, true)
	if created {
		// The kernel makes no queue when it has no descriptor for it.
		resp = resp.OnFailure(func() { _ = m.Broker.Unlink(name) })
	}
	return resp
}

func (m *MQ) unlink(req *Request) Response {
	name, errno := readName(req, req.Args[0])
	if errno != 0 {
		return Errno(errno)
	}
	if err := req.Valid(); err != nil {
		return Errno(syscall.ENOENT) // dropped: the target is gone
	}
	if err := m.Broker.Unlink(name); err != nil {
		return Errno(brokerErrno(err))
	}
	return Value(0)
}

// readName reads a queue name argument and checks it (see mqName).
func readName(req *Request, addr uint64) (string, syscall.Errno) {
	s, err := req.ReadString(addr, nameMax)
	switch {
	case errors.Is(err, ErrTooLong):
		return "", syscall.ENAMETOOLONG
	case err != nil:
		return "", syscall.EFAULT
	}
	return mqName(s)
}

// mqName checks a queue name as the raw syscall receives it (glibc has
// removed the leading '/'), returning the errno the app gets for a name
// that is refused.
func mqName(s string) (string, syscall.Errno) {
	switch {
	case s == "":
		return "", syscall.ENOENT // as getname(""): mq_open("/")
	case len(s) > nameMax:
		return "", syscall.ENAMETOOLONG
	}
	for seg := range strings.SplitSeq(s, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", syscall.EACCES // what the kernel's lookup says
		}
	}
	if err := ipc.ValidName(s); err != nil {
		if errors.Is(err, syscall.ENAMETOOLONG) {
			return "", syscall.ENAMETOOLONG
		}
		return "", syscall.EINVAL
	}
	return s, 0
}

// brokerErrno is the errno the app sees for a broker error: the broker's
// own, except EPERM (not granted), which mq_open and mq_unlink report as
// EACCES.
func brokerErrno(err error) syscall.Errno {
	e := ipc.ErrnoOf(err)
	if e == syscall.EPERM {
		return syscall.EACCES
	}
	return e
}
