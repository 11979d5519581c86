package syscalls

import (
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Seccomp user notification (SECCOMP_RET_USER_NOTIF): the raw interface of a
// listener, the descriptor seccomp(2) returns with
// SECCOMP_FILTER_FLAG_NEW_LISTENER (see SetSeccompFilterListener). Package
// syscalls/notify serves listeners with these wrappers.
//
// Every call that answers a notification fails with ENOENT when the
// notification is no longer pending: the target was killed, or (for a
// filter without SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) interrupted by a
// signal and its syscall restarted as a new notification. Callers drop the
// notification then.

// SeccompData is struct seccomp_data: the syscall as the filter saw it.
type SeccompData struct {
	Nr                 int32  // syscall number, for Arch
	Arch               uint32 // AUDIT_ARCH_*
	InstructionPointer uint64
	Args               [6]uint64
}

// SeccompNotif is struct seccomp_notif: one notified syscall.
type SeccompNotif struct {
	// ID identifies the notification for the answer and for
	// SeccompNotifIDValid; it is unique for the listener's filter.
	ID uint64
	// Pid is the thread id (not the process id) of the caller in the pid
	// namespace of the task that received the notification; 0 if the
	// caller is not visible there.
	Pid   uint32
	Flags uint32
	Data  SeccompData
}

// seccompNotifResp is struct seccomp_notif_resp.
type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32 // a negative errno, or 0
	Flags uint32
}

// seccompNotifAddfd is struct seccomp_notif_addfd.
type seccompNotifAddfd struct {
	ID         uint64
	Flags      uint32
	Srcfd      uint32
	Newfd      uint32
	NewfdFlags uint32
}

// SeccompNotifSizes returns the sizes of struct seccomp_notif,
// seccomp_notif_resp and seccomp_data the kernel uses
// (seccomp(SECCOMP_GET_NOTIF_SIZES)), to check the layouts above against.
func SeccompNotifSizes() (notif, resp, data uint16, err error) {
	var sizes struct{ notif, resp, data uint16 }
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_NOTIF_SIZES, 0, uintptr(unsafe.Pointer(&sizes)))
	if e != 0 {
		return 0, 0, 0, os.NewSyscallError("seccomp(SECCOMP_GET_NOTIF_SIZES)", e)
	}
	return sizes.notif, sizes.resp, sizes.data, nil
}

func notifIoctl(name string, fd int, req uint, arg unsafe.Pointer) (int, error) {
	r, err := retryN(func() (int, error) {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
		if e != 0 {
			return -1, e
		}
		return int(r), nil
	})
	if err != nil {
		return -1, os.NewSyscallError(name, err)
	}
	return r, nil
}

// SeccompNotifRecv receives the next notification into n
// (SECCOMP_IOCTL_NOTIF_RECV). It blocks while none is pending, whatever
// O_NONBLOCK says, so call it once the listener polls readable
// (PollSeccompListener). ENOENT means the notification that made the
// listener readable went away before it could be received.
func SeccompNotifRecv(fd int, n *SeccompNotif) error {
	*n = SeccompNotif{} // the kernel refuses a buffer that is not zeroed
	_, err := notifIoctl("ioctl(SECCOMP_IOCTL_NOTIF_RECV)", fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n))
	return err
}

// SeccompNotifIDValid reports whether notification id is still pending
// (SECCOMP_IOCTL_NOTIF_ID_VALID): nil if so, an error wrapping ENOENT if its
// target is gone. Check it after reading the target's memory and before
// acting on what was read: only then is the memory known to have been the
// target's, not that of a process that reused its pid.
func SeccompNotifIDValid(fd int, id uint64) error {
	_, err := notifIoctl("ioctl(SECCOMP_IOCTL_NOTIF_ID_VALID)", fd, unix.SECCOMP_IOCTL_NOTIF_ID_VALID, unsafe.Pointer(&id))
	return err
}

func seccompNotifSend(fd int, r *seccompNotifResp) error {
	_, err := notifIoctl("ioctl(SECCOMP_IOCTL_NOTIF_SEND)", fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(r))
	return err
}

// SeccompNotifRespondError completes notification id: the syscall fails
// with errno (which must not be 0).
func SeccompNotifRespondError(fd int, id uint64, errno syscall.Errno) error {
	if errno == 0 {
		return os.NewSyscallError("ioctl(SECCOMP_IOCTL_NOTIF_SEND)", unix.EINVAL)
	}
	return seccompNotifSend(fd, &seccompNotifResp{ID: id, Error: -int32(errno)})
}

// SeccompNotifRespondValue completes notification id: the syscall returns
// val.
func SeccompNotifRespondValue(fd int, id uint64, val int64) error {
	return seccompNotifSend(fd, &seccompNotifResp{ID: id, Val: val})
}

// SeccompNotifRespondContinue lets the kernel run the syscall of
// notification id as if the filter had allowed it
// (SECCOMP_USER_NOTIF_FLAG_CONTINUE). The kernel reads the syscall's
// arguments again, after the supervisor looked at them: any decision made
// on memory the arguments point to can be raced by another thread of the
// target. It is not a security boundary.
func SeccompNotifRespondContinue(fd int, id uint64) error {
	return seccompNotifSend(fd, &seccompNotifResp{ID: id, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE})
}

// SeccompNotifInject installs a copy of srcfd in the target of
// notification id and completes its syscall with the new descriptor number
// as the return value, in one step (SECCOMP_IOCTL_NOTIF_ADDFD with
// SECCOMP_ADDFD_FLAG_SEND, Linux 5.14+). cloexec sets O_CLOEXEC on the
// target's copy. It returns the target's descriptor number. srcfd stays
// open in the caller.
//
// ENOENT means the target is gone (nothing was installed). Any other error
// (EMFILE: the target is at its descriptor limit) leaves the notification
// pending: the caller must still answer it.
//
// The ioctl runs with every signal blocked on the calling thread. With
// SECCOMP_ADDFD_FLAG_SEND the kernel (seccomp_notify_addfd, as of 6.18)
// marks the notification answered, then waits interruptibly for the target
// to take the descriptor; a signal during that wait (Go's preemption
// signal, SIGCHLD) withdraws the descriptor but not the answer, so the
// target's syscall returns 0 — a descriptor it does not own — and the
// restarted ioctl fails with EINPROGRESS. Measured here about once in
// 5,000–50,000 injections before this was done.
func SeccompNotifInject(fd int, id uint64, srcfd int, cloexec bool) (int, error) {
	a := seccompNotifAddfd{ID: id, Flags: unix.SECCOMP_ADDFD_FLAG_SEND, Srcfd: uint32(srcfd)}
	if cloexec {
		a.NewfdFlags = unix.O_CLOEXEC
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var all, old unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^all.Val[i]
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, &old); err != nil {
		return -1, os.NewSyscallError("rt_sigprocmask", err)
	}
	defer func() { _ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil) }()
	return notifIoctl("ioctl(SECCOMP_IOCTL_NOTIF_ADDFD)", fd, unix.SECCOMP_IOCTL_NOTIF_ADDFD, unsafe.Pointer(&a))
}

// SeccompNotifSyncWakeUp asks the kernel to wake the target of each answer
// on the answering CPU (SECCOMP_IOCTL_NOTIF_SET_FLAGS with
// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, Linux 6.6+), which suits a
// supervisor that waits for the next notification right after answering.
// An error wrapping EINVAL means the kernel does not have it.
func SeccompNotifSyncWakeUp(fd int) error {
	_, err := retryN(func() (int, error) {
		_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SET_FLAGS, unix.SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
		if e != 0 {
			return 0, e
		}
		return 0, nil
	})
	return os.NewSyscallError("ioctl(SECCOMP_IOCTL_NOTIF_SET_FLAGS)", err)
}

// PollSeccompListener polls a listener without blocking: pending reports a
// notification waiting to be received, hangup that no task uses the filter
// any more (every process it was installed in has exited), so no
// notification can come.
func PollSeccompListener(fd int) (pending, hangup bool, err error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	_, err = retryN(func() (int, error) { return unix.Poll(fds, 0) })
	if err != nil {
		return false, false, os.NewSyscallError("poll", err)
	}
	ev := fds[0].Revents
	if ev&unix.POLLNVAL != 0 {
		return false, false, os.NewSyscallError("poll", unix.EBADF)
	}
	return ev&unix.POLLIN != 0, ev&(unix.POLLHUP|unix.POLLERR) != 0, nil
}

// ReadProcessMemory reads len(buf) bytes at addr in the address space of
// process (or thread) pid (process_vm_readv). It returns the number of bytes
// read, which is short only when the range runs into memory that is not
// mapped. An error wraps EFAULT when nothing at addr could be read, ESRCH
// when pid does not exist, EPERM when the caller may not read it.
func ReadProcessMemory(pid int, addr uint64, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := retryN(func() (int, error) { return unix.ProcessVMReadv(pid, local, remote, 0) })
	runtime.KeepAlive(buf)
	if err != nil {
		return 0, os.NewSyscallError("process_vm_readv", err)
	}
	return n, nil
}

// NativeAuditArch is the AUDIT_ARCH_* value of the architecture this
// program runs as, which notifications of native syscalls carry.
func NativeAuditArch() uint32 {
	switch runtime.GOARCH {
	case "amd64":
		return unix.AUDIT_ARCH_X86_64
	case "arm64":
		return unix.AUDIT_ARCH_AARCH64
	case "riscv64":
		return unix.AUDIT_ARCH_RISCV64
	case "s390x":
		return unix.AUDIT_ARCH_S390X
	case "ppc64le":
		return unix.AUDIT_ARCH_PPC64LE
	case "loong64":
		return unix.AUDIT_ARCH_LOONGARCH64
	}
	return 0
}

// IsSeccompListener reports whether fd is a seccomp notification listener
// (its /proc/self/fd link reads "anon_inode:seccomp notify").
func IsSeccompListener(fd int) bool {
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return err == nil && target == "anon_inode:seccomp notify"
}
