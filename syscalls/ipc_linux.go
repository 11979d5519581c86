package syscalls

import (
	"errors"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Wrappers for the IPC broker (package ipc): the kernel objects it creates
// (pipes, sealed memfds, files on detached tmpfs mounts, POSIX message
// queues), the fresh open file descriptions it hands out, and its private
// ipc namespace. Every descriptor made here is close-on-exec.

// File seals for AddSeals (fcntl(F_ADD_SEALS)).
const (
	SealSeal   = unix.F_SEAL_SEAL   // no more seals may be added
	SealShrink = unix.F_SEAL_SHRINK // the size may not shrink
	SealGrow   = unix.F_SEAL_GROW   // the size may not grow
	SealWrite  = unix.F_SEAL_WRITE  // the contents may not change
	SealExec   = unix.F_SEAL_EXEC   // the exec bits may not change
)

// Open flags for ReopenFD.
const (
	OpenReadOnly  = unix.O_RDONLY
	OpenWriteOnly = unix.O_WRONLY
	OpenReadWrite = unix.O_RDWR
	OpenNonblock  = unix.O_NONBLOCK
)

// RlimInfinity is RLIM_INFINITY: no limit.
const RlimInfinity uint64 = unix.RLIM_INFINITY

// MemfdCreate is memfd_create(name, MFD_CLOEXEC|MFD_ALLOW_SEALING|
// MFD_NOEXEC_SEAL): an anonymous shmem file that accepts seals and can
// never be made executable (F_SEAL_EXEC is set, exec bits clear). On a
// kernel without MFD_NOEXEC_SEAL (before 6.3) it is created without it.
// The name only labels the file in /proc/PID/maps and fd links ("memfd:name").
func MemfdCreate(name string) (int, error) {
	fd, err := retryN(func() (int, error) {
		return unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	})
	if errors.Is(err, unix.EINVAL) {
		fd, err = retryN(func() (int, error) {
			return unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
		})
	}
	if err != nil {
		return -1, os.NewSyscallError("memfd_create", err)
	}
	return fd, nil
}

// Ftruncate sets the size of the file fd refers to.
func Ftruncate(fd int, size int64) error {
	if err := retry(func() error { return unix.Ftruncate(fd, size) }); err != nil {
		return os.NewSyscallError("ftruncate", err)
	}
	return nil
}

// AddSeals adds seals (Seal* bits) to a memfd: fcntl(F_ADD_SEALS).
func AddSeals(fd, seals int) error {
	_, err := retryN(func() (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals) })
	if err != nil {
		return os.NewSyscallError("fcntl(F_ADD_SEALS)", err)
	}
	return nil
}

// Seals returns the seals of the file fd refers to: fcntl(F_GET_SEALS).
func Seals(fd int) (int, error) {
	s, err := retryN(func() (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0) })
	if err != nil {
		return 0, os.NewSyscallError("fcntl(F_GET_SEALS)", err)
	}
	return s, nil
}

// Fchmod sets the permission bits of the file fd refers to.
func Fchmod(fd int, mode uint32) error {
	if err := retry(func() error { return unix.Fchmod(fd, mode) }); err != nil {
		return os.NewSyscallError("fchmod", err)
	}
	return nil
}

// FileSize returns the size of the file fd refers to (fstat st_size).
func FileSize(fd int) (int64, error) {
	var st unix.Stat_t
	if err := retry(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return 0, os.NewSyscallError("fstat", err)
	}
	return st.Size, nil
}

// Pipe2 is pipe2(O_CLOEXEC): r is the read end, w the write end.
func Pipe2() (r, w int, err error) {
	var p [2]int
	if err := retry(func() error { return unix.Pipe2(p[:], unix.O_CLOEXEC) }); err != nil {
		return -1, -1, os.NewSyscallError("pipe2", err)
	}
	return p[0], p[1], nil
}

// PipeSize returns the capacity of the pipe fd is an end of, in bytes:
// fcntl(F_GETPIPE_SZ).
func PipeSize(fd int) (int, error) {
	n, err := retryN(func() (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_GETPIPE_SZ, 0) })
	if err != nil {
		return 0, os.NewSyscallError("fcntl(F_GETPIPE_SZ)", err)
	}
	return n, nil
}

// OpenFDDir opens /proc/self/fd as an O_PATH directory descriptor for
// ReopenFD. /proc/self is resolved now, so the descriptor stays the
// calling process's fd directory whichever thread later uses it.
func OpenFDDir() (int, error) {
	fd, err := retryN(func() (int, error) {
		return unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: "/proc/self/fd", Err: err}
	}
	return fd, nil
}

// ReopenFD opens the file that this process's descriptor fd refers to
// again, through its /proc/self/fd link (fdDir from OpenFDDir), with flags
// (OpenReadOnly, OpenWriteOnly or OpenReadWrite, optionally |OpenNonblock)
// plus O_CLOEXEC. The result is a new open file description: its access
// mode and status flags are its own, not shared with fd's. The open is
// checked against the file's permission bits like any open, which is what
// keeps a process without CAP_DAC_OVERRIDE from upgrading a read-only
// descriptor to a mode-0 file.
func ReopenFD(fdDir, fd, flags int) (int, error) {
	nfd, err := retryN(func() (int, error) {
		return unix.Openat(fdDir, strconv.Itoa(fd), flags|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	})
	if err != nil {
		return -1, os.NewSyscallError("open(/proc/self/fd/"+strconv.Itoa(fd)+")", err)
	}
	return nfd, nil
}

// ClearNonblock clears O_NONBLOCK on fd's open file description.
func ClearNonblock(fd int) error {
	return os.NewSyscallError("fcntl(F_SETFL)", unix.SetNonblock(fd, false))
}

// OpenTmpfile creates an unnamed regular file with permission bits mode in
// the directory dirfd refers to (which may be the root of a detached
// mount) and opens it read-write: openat(dirfd, ".", O_TMPFILE|O_RDWR|
// O_CLOEXEC, mode). The file never has a name; it is freed when its last
// descriptor closes.
func OpenTmpfile(dirfd int, mode uint32) (int, error) {
	fd, err := retryN(func() (int, error) {
		return unix.Openat(dirfd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, mode)
	})
	if err != nil {
		return -1, os.NewSyscallError("openat(O_TMPFILE)", err)
	}
	return fd, nil
}

// MQAttr is struct mq_attr.
type MQAttr struct {
	Flags   int64 // 0 or O_NONBLOCK (of the descriptor asked about)
	MaxMsg  int64 // most messages on the queue
	MsgSize int64 // largest message, bytes
	CurMsgs int64 // messages on the queue now
	_       [4]int64
}

// MQOpenExclusive creates the POSIX message queue name (raw-syscall form:
// no leading '/') in the calling thread's ipc namespace with mode 0, and
// opens it O_RDWR|O_CLOEXEC: mq_open(name, O_RDWR|O_CREAT|O_EXCL|O_CLOEXEC,
// 0, {maxMsg, msgSize}). An existing name fails with EEXIST. Attributes
// above the namespace's /proc/sys/fs/mqueue limits fail with EINVAL; going
// over the process's RLIMIT_MSGQUEUE fails with EMFILE.
func MQOpenExclusive(name string, maxMsg, msgSize int64) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, os.NewSyscallError("mq_open", err)
	}
	attr := MQAttr{MaxMsg: maxMsg, MsgSize: msgSize}
	fd, err := retryN(func() (int, error) {
		r, _, e := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)),
			unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0, uintptr(unsafe.Pointer(&attr)), 0, 0)
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	})
	if err != nil {
		return -1, os.NewSyscallError("mq_open", err)
	}
	return fd, nil
}

// MQUnlink removes the queue name (no leading '/') from the calling
// thread's ipc namespace; open descriptors keep working.
func MQUnlink(name string) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return os.NewSyscallError("mq_unlink", err)
	}
	err = retry(func() error {
		_, _, e := unix.Syscall(unix.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
		if e != 0 {
			return e
		}
		return nil
	})
	return os.NewSyscallError("mq_unlink", err)
}

// MQGetAttr returns the attributes of the queue mq descriptor fd refers to.
func MQGetAttr(fd int) (MQAttr, error) {
	var attr MQAttr
	err := retry(func() error {
		_, _, e := unix.Syscall(unix.SYS_MQ_GETSETATTR, uintptr(fd), 0, uintptr(unsafe.Pointer(&attr)))
		if e != 0 {
			return e
		}
		return nil
	})
	if err != nil {
		return MQAttr{}, os.NewSyscallError("mq_getsetattr", err)
	}
	return attr, nil
}

// MQSend is mq_timedsend(fd, msg, prio, NULL): it blocks while the queue is
// full unless fd is non-blocking (then EAGAIN).
func MQSend(fd int, msg []byte, prio uint) error {
	var p unsafe.Pointer
	if len(msg) > 0 {
		p = unsafe.Pointer(&msg[0])
	}
	err := retry(func() error {
		_, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(fd), uintptr(p), uintptr(len(msg)), uintptr(prio), 0, 0)
		if e != 0 {
			return e
		}
		return nil
	})
	return os.NewSyscallError("mq_timedsend", err)
}

// MQReceive is mq_timedreceive(fd, buf, len(buf), &prio, NULL): it blocks
// while the queue is empty unless fd is non-blocking (then EAGAIN). buf
// must hold the queue's MsgSize (else EMSGSIZE).
func MQReceive(fd int, buf []byte) (n int, prio uint, err error) {
	if len(buf) == 0 {
		return 0, 0, os.NewSyscallError("mq_timedreceive", unix.EMSGSIZE)
	}
	var pr uint32
	n, err = retryN(func() (int, error) {
		r, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])),
			uintptr(len(buf)), uintptr(unsafe.Pointer(&pr)), 0, 0)
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	})
	if err != nil {
		return 0, 0, os.NewSyscallError("mq_timedreceive", err)
	}
	return n, uint(pr), nil
}

// UnshareIPCNS moves the calling thread (only it) into a new ipc
// namespace: its own System V IPC objects and POSIX message queues. Call it
// on a goroutine locked to its OS thread that never unlocks, so that the
// runtime never runs anything else on the thread and ends the thread with
// the goroutine.
func UnshareIPCNS() error {
	if err := unix.Unshare(unix.CLONE_NEWIPC); err != nil {
		return os.NewSyscallError("unshare(CLONE_NEWIPC)", err)
	}
	return nil
}

// MQSysctl reads /proc/sys/fs/mqueue/<name> ("msg_max", "msgsize_max",
// "queues_max") of the calling thread's ipc namespace.
func MQSysctl(name string) (int64, error) {
	path := "/proc/sys/fs/mqueue/" + name
	fd, err := retryN(func() (int, error) { return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [32]byte
	n, err := retryN(func() (int, error) { return unix.Read(fd, buf[:]) })
	if err != nil {
		return 0, &os.PathError{Op: "read", Path: path, Err: err}
	}
	for n > 0 && (buf[n-1] == '\n' || buf[n-1] == ' ') {
		n--
	}
	v, err := strconv.ParseInt(string(buf[:n]), 10, 64)
	if err != nil {
		return 0, &os.PathError{Op: "parse", Path: path, Err: err}
	}
	return v, nil
}

// SetMQSysctl writes v to /proc/sys/fs/mqueue/<name> of the calling
// thread's ipc namespace (the open and the write both happen on the
// calling thread: lock the goroutine to it).
func SetMQSysctl(name string, v int64) error {
	path := "/proc/sys/fs/mqueue/" + name
	fd, err := retryN(func() (int, error) { return unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if _, err := retryN(func() (int, error) { return unix.Write(fd, []byte(strconv.FormatInt(v, 10))) }); err != nil {
		return &os.PathError{Op: "write", Path: path, Err: err}
	}
	return nil
}

// RaiseMsgQueueRlimit raises the process's RLIMIT_MSGQUEUE (the bytes of
// POSIX message queues its user may have; checked against the creating
// process's limit, charged to the user) to at least limit, soft and hard.
// It never lowers either. Raising the hard limit needs CAP_SYS_RESOURCE;
// without it the soft limit is raised to the hard one and the error
// returned.
func RaiseMsgQueueRlimit(limit uint64) error {
	var cur unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_MSGQUEUE, nil, &cur); err != nil {
		return os.NewSyscallError("prlimit(RLIMIT_MSGQUEUE)", err)
	}
	if cur.Cur >= limit && cur.Max >= limit {
		return nil
	}
	next := unix.Rlimit{Cur: max(cur.Cur, limit), Max: max(cur.Max, limit)}
	if err := unix.Prlimit(0, unix.RLIMIT_MSGQUEUE, &next, nil); err != nil {
		if cur.Cur < cur.Max {
			_ = unix.Prlimit(0, unix.RLIMIT_MSGQUEUE, &unix.Rlimit{Cur: cur.Max, Max: cur.Max}, nil)
		}
		return os.NewSyscallError("prlimit(RLIMIT_MSGQUEUE)", err)
	}
	return nil
}

// MsgQueueRlimit returns the process's RLIMIT_MSGQUEUE (soft, hard).
func MsgQueueRlimit() (soft, hard uint64, err error) {
	var cur unix.Rlimit
	if err := unix.Prlimit(0, unix.RLIMIT_MSGQUEUE, nil, &cur); err != nil {
		return 0, 0, os.NewSyscallError("prlimit(RLIMIT_MSGQUEUE)", err)
	}
	return cur.Cur, cur.Max, nil
}

// Gettid returns the calling thread's id (equal to the process id on the
// main thread).
func Gettid() int { return unix.Gettid() }
