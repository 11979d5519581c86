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
// socket reads EOF), an *Error when it failed.
func (c *Channel) WaitExec() error {
	t, msg, err := c.recv()
	if errors.Is(err, ErrInitDied) {
		return nil
	}
	if err != nil {
		return err
	}
	if t == msgError {
		return decodeError(msg)
	}
	return fmt.Errorf("init stage sent unexpected message %q after ready", t)
}

func (c *Channel) recv() (byte, []byte, error) {
	// Replies are small: one byte, or an error message of a few hundred.
	buf := make([]byte, 64<<10)
	n, fds, err := syscalls.RecvMsg(c.fd(), buf, 0)
	for _, fd := range fds {
		_ = syscalls.Close(fd)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("reading from init stage: %w", err)
	}
	if n == 0 {
		return 0, nil, ErrInitDied
	}
	return buf[0], buf[:n], nil
}
