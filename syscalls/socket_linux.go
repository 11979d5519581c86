package syscalls

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SeqpacketPair returns a connected pair of close-on-exec AF_UNIX
// SOCK_SEQPACKET sockets: message boundaries are kept and a closed peer reads
// as EOF, which is what the supervisor/init-stage sync channel relies on.
func SeqpacketPair() (a, b *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), "sync-parent"), os.NewFile(uintptr(fds[1]), "sync-child"), nil
}

// ControlPair returns a connected SOCK_SEQPACKET pair for an app's control
// channel: pinfold's end non-blocking (os.NewFile registers it with the
// runtime poller), the app's end blocking, as an app expects. Both are
// close-on-exec.
func ControlPair() (pinfold, app *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, os.NewSyscallError("fcntl(O_NONBLOCK)", err)
	}
	return os.NewFile(uintptr(fds[0]), "pinfold-ctl"), os.NewFile(uintptr(fds[1]), "app-ctl"), nil
}

// SendMsg sends one message on a SOCK_SEQPACKET socket, with fds attached as
// SCM_RIGHTS when there are any.
func SendMsg(fd int, msg []byte, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	return os.NewSyscallError("sendmsg", retry(func() error {
		return unix.Sendmsg(fd, msg, oob, nil, unix.MSG_NOSIGNAL)
	}))
}

// RecvMsg receives one message into buf, returning its length and any fds
// that came with it (close-on-exec). n == 0 with no error means the peer
// closed the socket. A message larger than buf is an error (MSG_TRUNC), never
// silently cut.
func RecvMsg(fd int, buf []byte, maxFDs int) (n int, fds []int, err error) {
	var oob []byte
	if maxFDs > 0 {
		oob = make([]byte, unix.CmsgSpace(4*maxFDs))
	}
	var oobn, flags int
	err = retry(func() error {
		var e error
		n, oobn, flags, _, e = unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		return e
	})
	if err != nil {
		return 0, nil, os.NewSyscallError("recvmsg", err)
	}
	if oobn > 0 {
		msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
		if perr != nil {
			return 0, nil, os.NewSyscallError("recvmsg", perr)
		}
		for _, m := range msgs {
			got, perr := unix.ParseUnixRights(&m)
			if perr != nil {
				continue
			}
			fds = append(fds, got...)
		}
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		for _, f := range fds {
			unix.Close(f)
		}
		return 0, nil, os.NewSyscallError("recvmsg", unix.EMSGSIZE)
	}
	return n, fds, nil
}

// PeekMsgSize returns the size of the next message on a SOCK_SEQPACKET socket
// without consuming it.
func PeekMsgSize(fd int) (int, error) {
	n, err := retryN(func() (int, error) {
		n, _, e := unix.Recvfrom(fd, nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		return n, e
	})
	if err != nil {
		return 0, os.NewSyscallError("recvfrom", err)
	}
	return n, nil
}

// Ucred is the identity of a unix socket's peer process.
type Ucred struct {
	PID      int32
	UID, GID uint32
}

// PeerCred returns the credentials of the process on the other end of a
// connected unix socket (SO_PEERCRED: as of connect(2)).
func PeerCred(fd int) (*Ucred, error) {
	c, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return nil, os.NewSyscallError("getsockopt(SO_PEERCRED)", err)
	}
	return &Ucred{PID: c.Pid, UID: c.Uid, GID: c.Gid}, nil
}

// PeerGroups returns the supplementary groups of the process on the other
// end of a connected unix socket, as of connect(2) (SO_PEERGROUPS, Linux
// 4.13+): unlike /proc/PID/status it cannot name another process after a
// pid reuse, and it works across pid namespaces.
func PeerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 64)
	for {
		size := uint32(len(buf) * 4)
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if e == unix.ERANGE && int(size/4) > len(buf) && size <= 65536*4 {
			buf = make([]uint32, size/4)
			continue
		}
		if e != 0 {
			return nil, os.NewSyscallError("getsockopt(SO_PEERGROUPS)", e)
		}
		return buf[:size/4], nil
	}
}
