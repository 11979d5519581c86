package initstage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// The sync protocol between the supervisor and the init stage.
//
// The init stage is started with one end of a SOCK_SEQPACKET|SOCK_CLOEXEC
// socketpair as fd 3 (SyncFD). Every message is one packet whose first byte is
// its type. Because the socket is close-on-exec, the supervisor reads EOF at
// the moment execve of the app succeeds; a message after "ready" can only be
// the listener or an error.
//
//	supervisor                                           init stage (pid 1 of the new namespaces)
//	    | clone(NEWPID|NEWNS|NEWUTS|NEWIPC|NEWNET[|NEWUSER]) into the cgroup (v2)
//	    | add pid to the v1 cgroups                                         |
//	    |--- 'G' go: u32 len | config (wire.go) | BPF  + SCM_RIGHTS fds ---->|
//	    |                                 [setns(net)], unshare(CLONE_NEWCGROUP), rootfs, pivot_root,
//	    |                                 hostname, rlimits, fds, bounding set,
//	    |                                 setgroups/setresgid/setresuid, pdeathsig,
//	    |                                 capset, no_new_privs, resolve the command
//	    |<-- 'R' ready ------------------------------------------------------|
//	    |--- 'S' start (only when Config.WaitStart) ------------------------->|
//	    |                                 seccomp(TSYNC[, NEW_LISTENER])
//	    |<-- 'L' listener + SCM_RIGHTS 1 fd (only when Config.WantsListener) -|
//	    |                                 execve
//	    |<-- EOF (execve succeeded) -----------------------------------------|
//	    |<-- 'E' error: JSON {step, errno, message}; then the init exits 255 |
//
// Any step may fail; the init stage reports the first failure and exits. The
// supervisor never trusts anything after the app could have run (after
// 'R'): an 'E' after 'R' is only accepted until EOF and only as an exec
// failure report, since the app has not been exec'd yet when it is sent.
// An 'L' is accepted once, with exactly one descriptor that is a seccomp
// listener, between 'R' and EOF, and only when the config asked for one; any
// other descriptor, a second 'L' or an 'L' nobody asked for fails the start
// and is closed. A config that asks for a listener and reaches EOF without
// one means the init stage died before exec (it sends 'L' or fails first).
const (
	msgGo       byte = 'G'
	msgReady    byte = 'R'
	msgStart    byte = 'S'
	msgListener byte = 'L'
	msgError    byte = 'E'
)

// ProtocolVersion is bumped whenever Config or the framing changes
// incompatibly; supervisor and init stage must agree on it.
const ProtocolVersion = 4

// SyncFD is the descriptor the init stage finds its sync socket at.
const SyncFD = 3

// maxMessage bounds what either side accepts in one packet.
const maxMessage = 4 << 20

// Arg is the first argument that selects the init-stage role when a binary
// that also has other roles (pinfold itself, a test binary) is re-executed.
const Arg = "__pinfold_init"

// encodeGo frames the go message: type, config length, config, BPF.
func encodeGo(cfg *Config, bpf []byte) ([]byte, error) {
	if err := checkProgram(cfg, bpf); err != nil {
		return nil, err
	}
	js, err := cfg.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("encoding init config: %w", err)
	}
	msg := make([]byte, 0, 5+len(js)+len(bpf))
	msg = append(msg, msgGo)
	msg = binary.LittleEndian.AppendUint32(msg, uint32(len(js)))
	msg = append(msg, js...)
	msg = append(msg, bpf...)
	if len(msg) > maxMessage {
		return nil, fmt.Errorf("init config is %d bytes, more than the %d the sync channel carries", len(msg), maxMessage)
	}
	return msg, nil
}

// decodeGo is the inverse of encodeGo.
func decodeGo(msg []byte) (*Config, []byte, error) {
	if len(msg) < 5 || msg[0] != msgGo {
		return nil, nil, errors.New("malformed go message")
	}
	n := binary.LittleEndian.Uint32(msg[1:5])
	if uint64(n) > uint64(len(msg)-5) {
		return nil, nil, errors.New("malformed go message: config length out of range")
	}
	var cfg Config
	if err := cfg.UnmarshalBinary(msg[5 : 5+n]); err != nil {
		return nil, nil, fmt.Errorf("decoding init config: %w", err)
	}
	bpf := msg[5+n:]
	if err := checkProgram(&cfg, bpf); err != nil {
		return nil, nil, err
	}
	return &cfg, bpf, nil
}

// checkProgram refuses seccomp flags without a program to apply them to: a
// listener asked for and no program would be a start that never serves.
func checkProgram(cfg *Config, bpf []byte) error {
	if len(bpf) == 0 && cfg.SeccompFlags != 0 {
		return fmt.Errorf("%w: seccomp flags %#x without a seccomp program", errMalformed, cfg.SeccompFlags)
	}
	return nil
}

// wireError is the payload of an error message: u32 errno, step, message
// (strings as in wire.go).
type wireError struct {
	Step    string
	Errno   int
	Message string
}

func encodeError(step string, err error) []byte {
	we := wireError{Step: step, Message: err.Error()}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		we.Errno = int(errno)
		we.Message = errno.Error()
	}
	return encodeWire(we)
}

func encodeWire(we wireError) []byte {
	e := encoder{b: []byte{msgError}}
	e.u32(uint32(we.Errno))
	e.str(we.Step)
	e.str(we.Message)
	return e.b
}

// Error is a failure of one step of the init stage, as reported to the
// supervisor: "sandbox init: pivot_root: invalid argument".
type Error struct {
	Step  string
	Errno syscall.Errno
	Msg   string
}

func (e *Error) Error() string {
	return "sandbox init: " + e.Step + ": " + e.Msg
}

// Unwrap exposes the errno so callers can use errors.Is(err, syscall.ENOENT).
func (e *Error) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// IsExecStep reports whether the failure was in finding or executing the
// app's command (as opposed to setting up the sandbox).
func (e *Error) IsExecStep() bool { return e.Step == StepExec }

func decodeError(msg []byte) *Error {
	d := decoder{b: msg[1:]}
	errno := d.u32()
	step, message := d.str(), d.str()
	if d.err != nil || len(d.b) != 0 || step == "" {
		return &Error{Step: "protocol", Msg: fmt.Sprintf("malformed error message from init stage (%d bytes)", len(msg))}
	}
	return &Error{Step: step, Errno: syscall.Errno(errno), Msg: message}
}
