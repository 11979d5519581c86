package initstage

import (
	"errors"
	"fmt"
	"os"

	"github.com/pinfold/pinfold/syscalls"
)

// ErrInitDied is returned when the init stage closed the sync channel without
// reporting ready or an error: it was killed or crashed.
var ErrInitDied = errors.New("init stage exited without reporting")

// Channel is the supervisor's end of the sync socket to one init stage.
type Channel struct {
	f *os.File
	// wantListener: the config sent asked for a seccomp listener.
	wantListener bool
}

// NewChannel wraps the supervisor's end of the socket pair.
func NewChannel(f *os.File) *Channel { return &Channel{f: f} }

// Close closes the supervisor's end.
func (c *Channel) Close() error { return c.f.Close() }

func (c *Channel) fd() int { return int(c.f.Fd()) }

// SendGo sends the config, the seccomp program (may be empty) and the app's
// descriptors. The init stage starts its work when it receives them.
// With cfg.JoinNetNS, netns is the network namespace to join; fds are the
// app's.
func (c *Channel) SendGo(cfg *Config, bpf []byte, netns int, fds []int) error {
	cfg.Version = ProtocolVersion
	cfg.NumFDs = len(fds)
	if cfg.JoinNetNS {
		fds = append([]int{netns}, fds...)
	}
	msg, err := encodeGo(cfg, bpf)
	if err != nil {
		return err
	}
	if err := syscalls.SendMsg(c.fd(), msg, fds); err != nil {
		return fmt.Errorf("sending config to init stage: %w", err)
	}
	c.wantListener = cfg.WantsListener()
	return nil
}

// WaitReady waits for the init stage to finish setting up the sandbox and
// returns the phases it reported. It returns an *Error naming the failed
// step, or ErrInitDied.
func (c *Channel) WaitReady() ([]Phase, error) {
	t, msg, err := c.recv()
	if err != nil {
		return nil, err
	}
	switch t {
	case msgReady:
		return parsePhases(msg), nil
	case msgError:
		return nil, decodeError(msg)
	}
	return nil, fmt.Errorf("init stage sent unexpected message %q while setting up", t)
}

// Start lets an init stage that was told to wait (Config.WaitStart) exec.
func (c *Channel) Start() error {
	if err := syscalls.SendMsg(c.fd(), []byte{msgStart}, nil); err != nil {
		return fmt.Errorf("starting app: %w", err)
	}
	return nil
}

// WaitExec waits for the app's execve: nil when it succeeded (the close-on-exec
// socket reads EOF), an *Error when it failed. A config that asked for a
// seccomp listener must use WaitExecListener instead.
func (c *Channel) WaitExec() error {
	if c.wantListener {
		return errors.New("init stage: the seccomp program has notification rules: wait with WaitExecListener, which returns the listener to serve")
	}
	_, err := c.WaitExecListener() // with no listener asked for, none is accepted
	return err
}

// WaitExecListener waits for the app's execve like WaitExec and returns the
// seccomp notification listener the init stage sent, when the config asked
// for one (Config.WantsListener), or -1. The caller owns the listener (a
// close-on-exec descriptor) and serves it (package syscalls/notify); until
// it does, the app's notified syscalls wait, and once it is closed they
// fail with ENOSYS.
//
// It accepts exactly one listener, and only when asked for: a descriptor
// that is not a seccomp listener, a second one, or one nobody asked for is
// closed and fails the start, as does EOF without the listener asked for
// (the init stage died before execve).
func (c *Channel) WaitExecListener() (listener int, err error) {
	listener = -1
	fail := func(err error) (int, error) {
		if listener >= 0 {
			_ = syscalls.Close(listener)
		}
		return -1, err
	}
	for {
		t, msg, fds, err := c.recvFDs(1)
		if errors.Is(err, ErrInitDied) {
			if c.wantListener && listener < 0 {
				return -1, fmt.Errorf("%w: it ended without sending the seccomp listener (a profile with SCMP_ACT_NOTIFY rules must allow sendmsg, which the init stage uses after loading it)", ErrInitDied)
			}
			return listener, nil
		}
		if err != nil {
			return fail(err)
		}
		if t == msgListener && c.wantListener && listener < 0 && len(msg) == 1 && len(fds) == 1 && syscalls.IsSeccompListener(fds[0]) {
			listener = fds[0]
			continue
		}
		for _, fd := range fds {
			_ = syscalls.Close(fd)
		}
		switch t {
		case msgError:
			return fail(decodeError(msg))
		case msgListener:
			return fail(fmt.Errorf("init stage sent an unexpected seccomp listener (%d descriptors; asked for one: %v; already received: %v)", len(fds), c.wantListener, listener >= 0))
		}
		return fail(fmt.Errorf("init stage sent unexpected message %q after ready", t))
	}
}

func (c *Channel) recv() (byte, []byte, error) {
	t, msg, _, err := c.recvFDs(0)
	return t, msg, err
}

// recvFDs receives one message with at most maxFDs descriptors, which the
// caller must close. More descriptors than that fail the receive (the
// kernel closes those that do not fit, RecvMsg those that did).
func (c *Channel) recvFDs(maxFDs int) (byte, []byte, []int, error) {
	// Replies are small: one byte, or an error message of a few hundred.
	buf := make([]byte, 64<<10)
	n, fds, err := syscalls.RecvMsg(c.fd(), buf, maxFDs)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading from init stage: %w", err)
	}
	if n == 0 {
		for _, fd := range fds {
			_ = syscalls.Close(fd)
		}
		return 0, nil, nil, ErrInitDied
	}
	return buf[0], buf[:n], fds, nil
}
