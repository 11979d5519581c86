package notify

import (
	"syscall"
	"unsafe"
)

// Raw POSIX message queue syscalls, as an app that knows nothing of pinfold
// makes them (glibc's mq_open strips the leading '/' and calls these), and
// as the test broker makes real queues.

func mqOpenRaw(name string, oflag int, attr *mqAttr) (int, syscall.Errno) {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return -1, syscall.EINVAL
	}
	return mqOpenPtr(uintptr(unsafe.Pointer(p)), oflag, attr)
}

func mqOpenPtr(name uintptr, oflag int, attr *mqAttr) (int, syscall.Errno) {
	r, _, e := syscall.Syscall6(syscall.SYS_MQ_OPEN, name, uintptr(oflag), 0o600, uintptr(unsafe.Pointer(attr)), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), 0
}

// mqOpenAttrPtr passes attr as a raw address (to test bad pointers).
func mqOpenAttrPtr(name string, oflag int, attr uintptr) (int, syscall.Errno) {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return -1, syscall.EINVAL
	}
	r, _, e := syscall.Syscall6(syscall.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(oflag), 0o600, attr, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), 0
}

func mqUnlinkRaw(name string) syscall.Errno {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return syscall.EINVAL
	}
	_, _, e := syscall.Syscall(syscall.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
	return e
}

func mqSendRaw(fd int, msg []byte) syscall.Errno {
	var p unsafe.Pointer
	if len(msg) > 0 {
		p = unsafe.Pointer(&msg[0])
	}
	_, _, e := syscall.Syscall6(syscall.SYS_MQ_TIMEDSEND, uintptr(fd), uintptr(p), uintptr(len(msg)), 0, 0, 0)
	return e
}

func mqReceiveRaw(fd int, size int) ([]byte, syscall.Errno) {
	buf := make([]byte, max(size, 1))
	var prio uint32
	r, _, e := syscall.Syscall6(syscall.SYS_MQ_TIMEDRECEIVE, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&prio)), 0, 0)
	if e != 0 {
		return nil, e
	}
	return buf[:r], 0
}

func mqGetAttrRaw(fd int) (mqAttr, syscall.Errno) {
	var a mqAttr
	_, _, e := syscall.Syscall(syscall.SYS_MQ_GETSETATTR, uintptr(fd), 0, uintptr(unsafe.Pointer(&a)))
	return a, e
}

func fdFlags(fd int) (int, syscall.Errno) {
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	return int(r), e
}
