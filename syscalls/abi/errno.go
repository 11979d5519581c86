package abi

import "strconv"

// Errno is an error number as it travels on the wire: Linux's numbering on
// every system (on Linux it converts to syscall.Errno unchanged). 0 means
// success.
type Errno uint16

// The errnos pinfold answers with. Any other Linux errno may also appear
// (Name knows them all).
const (
	EPERM           Errno = 1   // not granted
	ENOENT          Errno = 2   // no such object
	EIO             Errno = 5   // an unexpected failure inside pinfold
	E2BIG           Errno = 7   // over a size limit; message or batch too large
	EAGAIN          Errno = 11  // try again (a nonblocking queue is empty or full)
	ENOMEM          Errno = 12  // out of memory
	EACCES          Errno = 13  // permission denied by the kernel
	EBUSY           Errno = 16  // busy
	EEXIST          Errno = 17  // the object exists (exclusive create)
	EINVAL          Errno = 22  // bad argument
	EMFILE          Errno = 24  // too many open files
	ENOSPC          Errno = 28  // over quota
	EPIPE           Errno = 32  // the other end of a pipe is gone
	ENAMETOOLONG    Errno = 36  // object name too long
	ENOSYS          Errno = 38  // unknown sysno
	EBADMSG         Errno = 74  // malformed message or entry
	EMSGSIZE        Errno = 90  // the reply would not fit in one message
	EPROTONOSUPPORT Errno = 93  // unknown protocol version
	ETOOMANYREFS    Errno = 109 // too many descriptors in flight
	ETIMEDOUT       Errno = 110 // timed out
	ECANCELED       Errno = 125 // not executed: the batch stopped earlier
)

// Error returns the errno's name, so that an Errno is an error.
func (e Errno) Error() string { return e.Name() }

// Name returns the errno's symbolic Linux name ("EPERM"), or "errno N" for
// a number Linux does not define.
func (e Errno) Name() string {
	if int(e) < len(errnoNames) && errnoNames[e] != "" {
		return errnoNames[e]
	}
	return "errno " + strconv.Itoa(int(e))
}

// ErrnoByName returns the errno named name ("EPERM").
func ErrnoByName(name string) (Errno, bool) {
	for i, n := range errnoNames {
		if n != "" && n == name {
			return Errno(i), true
		}
	}
	return 0, false
}

// MaxErrnoName is the largest errno Name knows by name.
const MaxErrnoName = Errno(len(errnoNames) - 1)

// errnoNames are Linux's names (asm-generic/errno-base.h, errno.h), with
// EAGAIN, EDEADLK and EOPNOTSUPP for the numbers that have two names.
var errnoNames = [...]string{
	1:   "EPERM",
	2:   "ENOENT",
	3:   "ESRCH",
	4:   "EINTR",
	5:   "EIO",
	6:   "ENXIO",
	7:   "E2BIG",
	8:   "ENOEXEC",
	9:   "EBADF",
	10:  "ECHILD",
	11:  "EAGAIN",
	12:  "ENOMEM",
	13:  "EACCES",
	14:  "EFAULT",
	15:  "ENOTBLK",
	16:  "EBUSY",
	17:  "EEXIST",
	18:  "EXDEV",
	19:  "ENODEV",
	20:  "ENOTDIR",
	21:  "EISDIR",
	22:  "EINVAL",
	23:  "ENFILE",
	24:  "EMFILE",
	25:  "ENOTTY",
	26:  "ETXTBSY",
	27:  "EFBIG",
	28:  "ENOSPC",
	29:  "ESPIPE",
	30:  "EROFS",
	31:  "EMLINK",
	32:  "EPIPE",
	33:  "EDOM",
	34:  "ERANGE",
	35:  "EDEADLK",
	36:  "ENAMETOOLONG",
	37:  "ENOLCK",
	38:  "ENOSYS",
	39:  "ENOTEMPTY",
	40:  "ELOOP",
	42:  "ENOMSG",
	43:  "EIDRM",
	44:  "ECHRNG",
	45:  "EL2NSYNC",
	46:  "EL3HLT",
	47:  "EL3RST",
	48:  "ELNRNG",
	49:  "EUNATCH",
	50:  "ENOCSI",
	51:  "EL2HLT",
	52:  "EBADE",
	53:  "EBADR",
	54:  "EXFULL",
	55:  "ENOANO",
	56:  "EBADRQC",
	57:  "EBADSLT",
	59:  "EBFONT",
	60:  "ENOSTR",
	61:  "ENODATA",
	62:  "ETIME",
	63:  "ENOSR",
	64:  "ENONET",
	65:  "ENOPKG",
	66:  "EREMOTE",
	67:  "ENOLINK",
	68:  "EADV",
	69:  "ESRMNT",
	70:  "ECOMM",
	71:  "EPROTO",
	72:  "EMULTIHOP",
	73:  "EDOTDOT",
	74:  "EBADMSG",
	75:  "EOVERFLOW",
	76:  "ENOTUNIQ",
	77:  "EBADFD",
	78:  "EREMCHG",
	79:  "ELIBACC",
	80:  "ELIBBAD",
	81:  "ELIBSCN",
	82:  "ELIBMAX",
	83:  "ELIBEXEC",
	84:  "EILSEQ",
	85:  "ERESTART",
	86:  "ESTRPIPE",
	87:  "EUSERS",
	88:  "ENOTSOCK",
	89:  "EDESTADDRREQ",
	90:  "EMSGSIZE",
	91:  "EPROTOTYPE",
	92:  "ENOPROTOOPT",
	93:  "EPROTONOSUPPORT",
	94:  "ESOCKTNOSUPPORT",
	95:  "EOPNOTSUPP",
	96:  "EPFNOSUPPORT",
	97:  "EAFNOSUPPORT",
	98:  "EADDRINUSE",
	99:  "EADDRNOTAVAIL",
	100: "ENETDOWN",
	101: "ENETUNREACH",
	102: "ENETRESET",
	103: "ECONNABORTED",
	104: "ECONNRESET",
	105: "ENOBUFS",
	106: "EISCONN",
	107: "ENOTCONN",
	108: "ESHUTDOWN",
	109: "ETOOMANYREFS",
	110: "ETIMEDOUT",
	111: "ECONNREFUSED",
	112: "EHOSTDOWN",
	113: "EHOSTUNREACH",
	114: "EALREADY",
	115: "EINPROGRESS",
	116: "ESTALE",
	117: "EUCLEAN",
	118: "ENOTNAM",
	119: "ENAVAIL",
	120: "EISNAM",
	121: "EREMOTEIO",
	122: "EDQUOT",
	123: "ENOMEDIUM",
	124: "EMEDIUMTYPE",
	125: "ECANCELED",
	126: "ENOKEY",
	127: "EKEYEXPIRED",
	128: "EKEYREVOKED",
	129: "EKEYREJECTED",
	130: "EOWNERDEAD",
	131: "ENOTRECOVERABLE",
	132: "ERFKILL",
	133: "EHWPOISON",
}
