package abi

import "fmt"

// ProtocolError is a message or entry the decoder or encoder refused. Errno
// is what the peer is answered with: EBADMSG (malformed), EPROTONOSUPPORT
// (another version), E2BIG (too large), EINVAL (bad argument or flag).
type ProtocolError struct {
	Errno  Errno
	Reason string
}

func (e *ProtocolError) Error() string { return e.Errno.Name() + ": " + e.Reason }

// Is matches the errno: errors.Is(err, abi.EBADMSG).
func (e *ProtocolError) Is(target error) bool {
	t, ok := target.(Errno)
	return ok && t == e.Errno
}

func protoErr(errno Errno, format string, args ...any) *ProtocolError {
	return &ProtocolError{Errno: errno, Reason: fmt.Sprintf(format, args...)}
}
