package notify

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/pinfold/pinfold/syscalls"
)

// Request is one notified syscall, waiting for its answer.
//
// Its arguments are the values in the target's registers. Memory they point
// to belongs to the target and may change under the supervisor's eyes (any
// other thread of the target can write it): read it once, check Valid, and
// decide on the copy. Answers that complete the syscall from the
// supervisor (Errno, Value, Inject) are then safe whatever the target does
// with its memory afterwards; Continue is not.
type Request struct {
	// ID identifies the notification to the kernel.
	ID uint64
	// TID is the calling thread's id in the supervisor's pid namespace
	// (a thread id, not a process id), or 0 if the thread is not visible
	// there.
	TID int
	// Nr is the syscall number, for Arch.
	Nr int
	// Arch is the AUDIT_ARCH_* value of the calling convention; syscall
	// numbers and argument layouts depend on it (see Native).
	Arch uint32
	// InstructionPointer is where the syscall was made.
	InstructionPointer uint64
	// Args are the syscall's six arguments as the registers held them.
	Args [6]uint64

	l *Listener
}

func newRequest(l *Listener, n *syscalls.SeccompNotif) *Request {
	return &Request{
		ID:                 n.ID,
		TID:                int(n.Pid),
		Nr:                 int(n.Data.Nr),
		Arch:               n.Data.Arch,
		InstructionPointer: n.Data.InstructionPointer,
		Args:               n.Data.Args,
		l:                  l,
	}
}

var nativeArch = syscalls.NativeAuditArch()

// Native reports whether the syscall was made through the supervisor's own
// architecture, the only one whose syscall numbers and structure layouts
// the handlers here decode. (Profiles that allow 32-bit entry paths, like
// Docker's, notify those calls too.)
func (r *Request) Native() bool { return nativeArch != 0 && r.Arch == nativeArch }

// Valid reports whether the notification is still pending: nil if so, an
// error wrapping ErrGone if its target was killed or its syscall
// interrupted. Call it after reading the target's memory and before acting
// on what was read: the thread id could have been reused by another
// process in between, whose memory would then have been read.
func (r *Request) Valid() error {
	err := r.l.control(func(fd int) error { return syscalls.SeccompNotifIDValid(fd, r.ID) })
	if errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("notification %d: %w", r.ID, ErrGone)
	}
	return err
}

// ReadBytes copies n bytes at addr from the target's memory. An error
// wraps EFAULT when any of them is not mapped, ESRCH when the target is
// gone.
func (r *Request) ReadBytes(addr uint64, n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("reading target memory: negative length %d", n)
	}
	buf := make([]byte, n)
	got, err := syscalls.ReadProcessMemory(r.TID, addr, buf)
	if err == nil && got < n {
		err = os.NewSyscallError("process_vm_readv", syscall.EFAULT)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %d bytes at %#x in thread %d: %w", n, addr, r.TID, err)
	}
	return buf, nil
}

// ReadStruct fills v, a pointer to a fixed-size value (as for
// encoding/binary), from the target's memory at addr, in the native byte
// order.
func (r *Request) ReadStruct(addr uint64, v any) error {
	size := binary.Size(v)
	if size < 0 {
		return fmt.Errorf("reading target memory: %T has no fixed size", v)
	}
	b, err := r.ReadBytes(addr, size)
	if err != nil {
		return err
	}
	if _, err := binary.Decode(b, binary.NativeEndian, v); err != nil {
		return fmt.Errorf("decoding %T from target memory: %w", v, err)
	}
	return nil
}

// ReadString reads a NUL-terminated string of at most max bytes (not
// counting the NUL) at addr in the target's memory. It reads page by page,
// so a short string at the end of a mapping is read. An error wraps
// ErrTooLong when no NUL is within max+1 bytes, EFAULT when the string runs
// into unmapped memory first.
func (r *Request) ReadString(addr uint64, max int) (string, error) {
	if max < 0 {
		return "", fmt.Errorf("reading target memory: negative limit %d", max)
	}
	page := uint64(os.Getpagesize())
	start := addr
	var out []byte
	limit := max + 1 // room for the NUL
	for len(out) < limit {
		chunk := min(page-addr%page, uint64(limit-len(out)))
		b, err := r.ReadBytes(addr, int(chunk))
		if err != nil {
			return "", err
		}
		if i := bytes.IndexByte(b, 0); i >= 0 {
			return string(append(out, b[:i]...)), nil
		}
		out = append(out, b...)
		addr += chunk
	}
	return "", fmt.Errorf("string at %#x in thread %d: %w (%d bytes)", start, r.TID, ErrTooLong, max)
}
