package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/notify"
	"github.com/pinfold/pinfold/syscalls/server"
)

// The environment that tells an app where its IPC descriptors are.
const (
	// EnvCtlFD is the descriptor of the app's control channel to pinfold's
	// broker (a SOCK_SEQPACKET socket speaking syscalls/abi).
	EnvCtlFD = "PINFOLD_CTL_FD"
	// EnvFDs lists the pre-wired channels: "name:fd,name:fd", in the order
	// of the policy (in the spirit of systemd's LISTEN_FDS).
	EnvFDs = "PINFOLD_FDS"
)

// appIPC is what an app holds of the broker: its session and, until they
// are sent to the init stage, the descriptors the app gets. (The control
// channel's server is owned by its cleanup release.)
type appIPC struct {
	sess *ipc.Session

	mu     sync.Mutex
	ctlApp *os.File // the app's end of the control channel, until sent
	appFDs []int    // its descriptor, then the channels'; nil once closed
	names  []string // the channels' names
}

// setupIPC joins the broker, makes the control channel and opens the
// pre-wired channels. The descriptors the app gets are placed after
// ExtraFiles (control channel first, then channels in policy order) and
// announced in the environment. Each acquisition registers its release.
func (a *App) setupIPC() error {
	s, spec := a.sup, &a.spec
	policyName := spec.Policy
	if policyName == "" {
		policyName = spec.Name
	}
	sess, err := s.broker.Join(ipc.AppInfo{ID: a.ID, Policy: policyName, Grants: spec.IPC})
	if err != nil {
		return fmt.Errorf("joining the IPC broker: %w", err)
	}
	x := &appIPC{sess: sess}
	a.ipc = x
	// Released after the app's processes are gone (registered before the
	// spawn): peers then see EOF/EPIPE, objects it owned are removed.
	a.cleanup.add(ResIPCSession, a.ID, func() error {
		if a.started.IsZero() {
			sess.Abort() // it never ran: its pipe ends were never used
		} else {
			sess.Close()
		}
		return nil
	})

	ours, theirs, err := syscalls.ControlPair()
	if err != nil {
		return fmt.Errorf("creating the control channel: %w", err)
	}
	x.ctlApp = theirs
	x.appFDs = append(x.appFDs, int(theirs.Fd()))
	srv, err := server.NewConn(ours, sess, a.sup.serverOptions(a)) // closes ours on failure
	if err != nil {
		x.closeAppFDs()
		return fmt.Errorf("creating the control channel: %w", err)
	}
	served := make(chan error, 1)
	// Once the app's processes are gone its end is closed and Serve has
	// returned by itself; Stop is for the paths where it has not.
	a.cleanup.add(ResControl, "control channel", func() error {
		x.closeAppFDs()
		srv.Stop()
		return <-served
	})
	// The server has no goroutine while the app is idle (server.Conn.Start).
	srv.Start(func(err error) {
		switch {
		case errors.Is(err, server.ErrStopped):
			err = nil
		case errors.Is(err, server.ErrHostile):
			// The app's doing, not a failure of pinfold's cleanup:
			// reported as an event; the app keeps running without
			// its channel.
			sess.ReportHostile(err.Error())
			err = nil
		}
		served <- err
	})

	for _, c := range spec.IPC.Channels {
		fd, err := sess.OpenChannel(c)
		if err != nil {
			return fmt.Errorf("opening channel %s: %w", c.Name, err)
		}
		x.mu.Lock()
		x.appFDs = append(x.appFDs, fd)
		x.names = append(x.names, c.Name)
		x.mu.Unlock()
	}

	first := 3 + len(spec.ExtraFiles)
	env := EnvCtlFD + "=" + strconv.Itoa(first)
	spec.Process.Env = setEnv(spec.Process.Env, env)
	if len(x.names) > 0 {
		fds := make([]int, len(x.names))
		for i := range fds {
			fds[i] = first + 1 + i
		}
		spec.Process.Env = setEnv(spec.Process.Env, EnvFDs+"="+ipc.FDsEnv(x.names, fds))
	}
	return nil
}

// closeAppFDs closes the supervisor's copies of the app's descriptors once
// the init stage has them (or the start failed).
func (x *appIPC) closeAppFDs() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.ctlApp != nil {
		x.ctlApp.Close()
		x.ctlApp = nil
	}
	// Index 0 was the control channel's; the rest are raw descriptors.
	for _, fd := range x.appFDs[min(1, len(x.appFDs)):] {
		_ = syscalls.Close(fd)
	}
	x.appFDs = nil
}

// fds returns the descriptors the app gets, in placement order.
func (x *appIPC) fds() []int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]int(nil), x.appFDs...)
}

// setEnv replaces or appends one NAME=value entry.
func setEnv(env []string, kv string) []string {
	name := kv[:strings.IndexByte(kv, '=')+1]
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if !strings.HasPrefix(e, name) {
			out = append(out, e)
		}
	}
	return append(out, kv)
}

// serveNotify serves the seccomp listener the init stage sent: the app's
// mq_open/mq_unlink are brokered (Grants.POSIXMQ). The server ends by
// itself when the app's last process exits; the release closes the
// listener, after which any notified syscall still coming fails with
// ENOSYS rather than waiting.
func (a *App) serveNotify(fd int) error {
	l, err := notify.NewListener(fd)
	if err != nil {
		_ = syscalls.Close(fd)
		return fmt.Errorf("serving seccomp notifications: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := &notify.Server{Handler: (&notify.MQ{Broker: a.ipc.sess}).Handle}
	if h := a.sup.opts.NotifyHook; h != nil {
		id := a.ID
		srv.Observe = func(o notify.Observation) { h(id, o) }
	}
	go func() { done <- srv.Serve(ctx, l) }()
	a.cleanup.add(ResListener, "seccomp listener", func() error {
		cancel()
		err := <-done
		cerr := l.Close()
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		return errors.Join(err, cerr)
	})
	return nil
}
