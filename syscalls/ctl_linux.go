package syscalls

import (
	"errors"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Wrappers for an app's control channel (syscalls/server serves it,
// syscalls/client speaks it): recvmsg and sendmsg that write into and read
// from caller buffers without allocating, so that a round trip through
// pinfold stays in the microseconds, and mq_timedsend/mq_timedreceive with
// deadlines for the client's message-queue helper.

// CtlMsg describes a message CtlRecvmsg received.
type CtlMsg struct {
	// N is the number of bytes received into buf; OOBN the number of
	// control bytes received into oob.
	N, OOBN int
	// Truncated (MSG_TRUNC): the datagram was larger than buf and its
	// tail was discarded.
	Truncated bool
	// ControlTruncated (MSG_CTRUNC): there was more control data than oob
	// holds; descriptors that did not fit were closed by the kernel.
	ControlTruncated bool
}

// CtlRecvmsg receives one datagram into buf and its control data into oob
// (descriptors arrive close-on-exec: MSG_CMSG_CLOEXEC). With nonblock it
// passes MSG_DONTWAIT and reports wouldBlock instead of waiting; without,
// it waits unless the socket itself is non-blocking (wouldBlock then too).
// It retries EINTR and does not allocate.
func CtlRecvmsg(fd int, buf, oob []byte, nonblock bool) (m CtlMsg, wouldBlock bool, err error) {
	var iov unix.Iovec
	var msg unix.Msghdr
	if len(buf) > 0 {
		iov.Base = &buf[0]
		iov.SetLen(len(buf))
		msg.Iov = &iov
		msg.SetIovlen(1)
	}
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	flags := uintptr(unix.MSG_CMSG_CLOEXEC)
	if nonblock {
		flags |= unix.MSG_DONTWAIT
	}
	for {
		r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), flags)
		switch e {
		case 0:
			m.N = int(r)
			m.OOBN = int(msg.Controllen)
			m.Truncated = msg.Flags&unix.MSG_TRUNC != 0
			m.ControlTruncated = msg.Flags&unix.MSG_CTRUNC != 0
			return m, false, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return CtlMsg{}, true, nil
		}
		return CtlMsg{}, false, os.NewSyscallError("recvmsg", e)
	}
}

// CtlSendmsg sends msg as one datagram with the control data oob (see
// AppendRights), never raising SIGPIPE (MSG_NOSIGNAL: a gone peer is
// EPIPE). nonblock is as for CtlRecvmsg. It retries EINTR and does not
// allocate.
func CtlSendmsg(fd int, buf, oob []byte, nonblock bool) (wouldBlock bool, err error) {
	var iov unix.Iovec
	var msg unix.Msghdr
	if len(buf) > 0 {
		iov.Base = &buf[0]
		iov.SetLen(len(buf))
		msg.Iov = &iov
		msg.SetIovlen(1)
	}
	if len(oob) > 0 {
		msg.Control = &oob[0]
		msg.SetControllen(len(oob))
	}
	flags := uintptr(unix.MSG_NOSIGNAL)
	if nonblock {
		flags |= unix.MSG_DONTWAIT
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), flags)
		switch e {
		case 0:
			return false, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return true, nil
		}
		return false, os.NewSyscallError("sendmsg", e)
	}
}

// RightsSpace is the control-buffer size that carries n descriptors in one
// SCM_RIGHTS message.
func RightsSpace(n int) int { return unix.CmsgSpace(4 * n) }

// AppendRights appends one SCM_RIGHTS control message carrying fds to oob
// (nothing when fds is empty). It allocates only when oob lacks room.
func AppendRights(oob []byte, fds []int) []byte {
	if len(fds) == 0 {
		return oob
	}
	start := len(oob)
	n := unix.CmsgSpace(4 * len(fds))
	for range n {
		oob = append(oob, 0)
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[start]))
	h.Level = unix.SOL_SOCKET
	h.Type = unix.SCM_RIGHTS
	h.SetLen(unix.CmsgLen(4 * len(fds)))
	data := oob[start+unix.CmsgLen(0):]
	for i, fd := range fds {
		*(*int32)(unsafe.Pointer(&data[4*i])) = int32(fd)
	}
	return oob
}

// ParseRights appends to fds every descriptor carried by SCM_RIGHTS
// messages in the control data oob, skipping other control messages. It
// stops at the first malformed header; the descriptors found before it are
// returned with the error, so that the caller can close them.
func ParseRights(oob []byte, fds []int) ([]int, error) {
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return fds, errors.New("malformed control message")
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_RIGHTS {
			data := oob[hdr:l]
			for i := 0; i+4 <= len(data); i += 4 {
				fds = append(fds, int(*(*int32)(unsafe.Pointer(&data[i]))))
			}
		}
		next := unix.CmsgSpace(l - hdr)
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return fds, nil
}

// CtlPeerClosed reports, without waiting, whether the peer of a connected
// socket has closed or shut down its sending side (POLLRDHUP or POLLHUP):
// what tells a zero-length datagram from an end of file.
func CtlPeerClosed(fd int) bool {
	fds := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	for {
		n, err := unix.Poll(fds[:], 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP) != 0
	}
}

// IsSeqpacket reports whether fd is a SOCK_SEQPACKET socket (EBADF when fd
// is not open, ENOTSOCK when it is not a socket).
func IsSeqpacket(fd int) (bool, error) {
	t, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return false, os.NewSyscallError("getsockopt(SO_TYPE)", err)
	}
	return t == unix.SOCK_SEQPACKET, nil
}

// DupCloexec duplicates fd to the lowest free descriptor, close-on-exec
// (fcntl F_DUPFD_CLOEXEC).
func DupCloexec(fd int) (int, error) {
	nfd, err := retryN(func() (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) })
	if err != nil {
		return -1, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
	}
	return nfd, nil
}

// MQTimedSend is mq_timedsend(fd, msg, prio, deadline): it waits while the
// queue is full until deadline (ETIMEDOUT), or forever when deadline is
// zero, unless fd is non-blocking (then EAGAIN). EINTR is retried with the
// same absolute deadline.
func MQTimedSend(fd int, msg []byte, prio uint, deadline time.Time) error {
	var p unsafe.Pointer
	if len(msg) > 0 {
		p = unsafe.Pointer(&msg[0])
	}
	ts := deadlineTimespec(deadline)
	err := retry(func() error {
		_, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDSEND, uintptr(fd), uintptr(p), uintptr(len(msg)), uintptr(prio),
			uintptr(unsafe.Pointer(ts)), 0)
		if e != 0 {
			return e
		}
		return nil
	})
	return os.NewSyscallError("mq_timedsend", err)
}

// MQTimedReceive is mq_timedreceive(fd, buf, len(buf), &prio, deadline):
// it waits while the queue is empty until deadline (ETIMEDOUT), or forever
// when deadline is zero, unless fd is non-blocking (then EAGAIN). buf must
// hold the queue's message size (else EMSGSIZE).
func MQTimedReceive(fd int, buf []byte, deadline time.Time) (n int, prio uint, err error) {
	if len(buf) == 0 {
		return 0, 0, os.NewSyscallError("mq_timedreceive", unix.EMSGSIZE)
	}
	ts := deadlineTimespec(deadline)
	var pr uint32
	n, err = retryN(func() (int, error) {
		r, _, e := unix.Syscall6(unix.SYS_MQ_TIMEDRECEIVE, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])),
			uintptr(len(buf)), uintptr(unsafe.Pointer(&pr)), uintptr(unsafe.Pointer(ts)), 0)
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

// deadlineTimespec converts a deadline to the absolute CLOCK_REALTIME
// timespec the mq calls take; a zero deadline is a nil pointer (wait
// forever). A deadline before the epoch is the epoch (already passed).
func deadlineTimespec(deadline time.Time) *unix.Timespec {
	if deadline.IsZero() {
		return nil
	}
	if deadline.Unix() < 0 {
		return &unix.Timespec{}
	}
	return &unix.Timespec{Sec: deadline.Unix(), Nsec: int64(deadline.Nanosecond())}
}

// Events a control channel is watched for while idle: readable, or the
// peer hung up; one-shot, re-armed with EpollRearm after each wakeup.
const ctlIdleEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

// EpollWatchOnce adds fd to epfd, to be reported once (by its number) when
// it is readable or its peer hung up; EpollRearm arms it again.
func EpollWatchOnce(epfd, fd int) error {
	ev := unix.EpollEvent{Events: ctlIdleEvents, Fd: int32(fd)}
	return os.NewSyscallError("epoll_ctl(ADD)", unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev))
}

// EpollRearm arms a one-shot fd of epfd again (EpollWatchOnce).
func EpollRearm(epfd, fd int) error {
	ev := unix.EpollEvent{Events: ctlIdleEvents, Fd: int32(fd)}
	return os.NewSyscallError("epoll_ctl(MOD)", unix.EpollCtl(epfd, unix.EPOLL_CTL_MOD, fd, &ev))
}
