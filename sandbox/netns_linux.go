package sandbox

import (
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/pinfold/pinfold/syscalls"
)

// newNetNS makes a network namespace with only lo, up, and returns a handle
// on it. Creating a network namespace is the most expensive part of a
// sandbox's clone (~0.9 ms here: every per-net subsystem initialises), so
// the supervisor does it on another thread while it prepares the rest, and
// the init stage joins it with setns instead of cloning with CLONE_NEWNET.
//
// The thread that made the namespace is never used again: its goroutine
// returns locked, and the runtime then terminates the thread rather than
// hand a thread in a foreign namespace to other goroutines.
func newNetNS() (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := syscalls.UnshareNetNS(); err != nil {
			ch <- result{err: err}
			return
		}
		f, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{err: err}
			return
		}
		// The netlink socket is opened on this thread, in the new
		// namespace. lo is always interface 1 there.
		if err := netlink.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo"}}); err != nil {
			f.Close()
			ch <- result{err: fmt.Errorf("bringing up lo: %w", err)}
			return
		}
		ch <- result{f: f}
	}()
	r := <-ch
	if r.err != nil {
		return nil, fmt.Errorf("creating network namespace: %w", r.err)
	}
	return r.f, nil
}

// loopbackUpIn brings lo up in the network namespace of process pid.
func loopbackUpIn(pid int) error {
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return fmt.Errorf("opening the sandbox's network namespace: %w", err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("opening netlink in the sandbox's network namespace: %w", err)
	}
	defer h.Close()
	if err := h.LinkSetUp(&netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: 1, Name: "lo"}}); err != nil {
		return fmt.Errorf("bringing up lo in the sandbox: %w", err)
	}
	return nil
}
