package probe

import (
	"errors"
	"fmt"
	"syscall"
)

// errnoNames are the errno names the probe reports (the syscall package
// only has their messages).
var errnoNames = map[syscall.Errno]string{
	syscall.EPERM:           "EPERM",
	syscall.ENOENT:          "ENOENT",
	syscall.ESRCH:           "ESRCH",
	syscall.EINTR:           "EINTR",
	syscall.EIO:             "EIO",
	syscall.ENXIO:           "ENXIO",
	syscall.E2BIG:           "E2BIG",
	syscall.ENOEXEC:         "ENOEXEC",
	syscall.EBADF:           "EBADF",
	syscall.ECHILD:          "ECHILD",
	syscall.EAGAIN:          "EAGAIN",
	syscall.ENOMEM:          "ENOMEM",
	syscall.EACCES:          "EACCES",
	syscall.EFAULT:          "EFAULT",
	syscall.EBUSY:           "EBUSY",
	syscall.EEXIST:          "EEXIST",
	syscall.EXDEV:           "EXDEV",
	syscall.ENODEV:          "ENODEV",
	syscall.ENOTDIR:         "ENOTDIR",
	syscall.EISDIR:          "EISDIR",
	syscall.EINVAL:          "EINVAL",
	syscall.ENFILE:          "ENFILE",
	syscall.EMFILE:          "EMFILE",
	syscall.ENOTTY:          "ENOTTY",
	syscall.EFBIG:           "EFBIG",
	syscall.ENOSPC:          "ENOSPC",
	syscall.ESPIPE:          "ESPIPE",
	syscall.EROFS:           "EROFS",
	syscall.EMLINK:          "EMLINK",
	syscall.EPIPE:           "EPIPE",
	syscall.ERANGE:          "ERANGE",
	syscall.ENAMETOOLONG:    "ENAMETOOLONG",
	syscall.ENOSYS:          "ENOSYS",
	syscall.ENOTEMPTY:       "ENOTEMPTY",
	syscall.ELOOP:           "ELOOP",
	syscall.ENOKEY:          "ENOKEY",
	syscall.EKEYREJECTED:    "EKEYREJECTED",
	syscall.EDQUOT:          "EDQUOT",
	syscall.ENOTSOCK:        "ENOTSOCK",
	syscall.EPROTOTYPE:      "EPROTOTYPE",
	syscall.EPROTONOSUPPORT: "EPROTONOSUPPORT",
	syscall.ESOCKTNOSUPPORT: "ESOCKTNOSUPPORT",
	syscall.EOPNOTSUPP:      "EOPNOTSUPP",
	syscall.EAFNOSUPPORT:    "EAFNOSUPPORT",
	syscall.EADDRINUSE:      "EADDRINUSE",
	syscall.EADDRNOTAVAIL:   "EADDRNOTAVAIL",
	syscall.ENETDOWN:        "ENETDOWN",
	syscall.ENETUNREACH:     "ENETUNREACH",
	syscall.ECONNREFUSED:    "ECONNREFUSED",
	syscall.EHOSTUNREACH:    "EHOSTUNREACH",
	syscall.ETIMEDOUT:       "ETIMEDOUT",
	syscall.ECANCELED:       "ECANCELED",
}

// ErrnoName is the name of errno e ("EPERM"), or "errno N" for one the
// probe does not know.
func ErrnoName(e syscall.Errno) string {
	if n, ok := errnoNames[e]; ok {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

// outcome is "ok" for nil, the errno name for an error wrapping an errno,
// and the error text otherwise.
func outcome(err error) string {
	if err == nil {
		return OK
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if e == 0 {
			return OK
		}
		return ErrnoName(e)
	}
	return err.Error()
}

func errnoOutcome(e syscall.Errno) string {
	if e == 0 {
		return OK
	}
	return ErrnoName(e)
}
