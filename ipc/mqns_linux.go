package ipc

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"github.com/pinfold/pinfold/syscalls"
)

// mqNamespace creates message queues in an ipc namespace private to the
// broker: one goroutine, locked to its OS thread for good, unshares
// CLONE_NEWIPC and then serves creation requests. POSIX queue names live in
// an ipc namespace, so nothing the broker creates ever has a name in the
// host's (or an app's) namespace, even for the instant between mq_open and
// mq_unlink, and a crash of pinfold leaves no queue behind: the namespace
// dies with the thread, the queues with their last descriptor.
//
// The namespace's /proc/sys/fs/mqueue limits are raised to the kernel's
// hard limits (65536 messages, 16 MiB per message) and queues_max to the
// broker's MaxObjects; they apply to this namespace only. The thread starts
// with the first queue.
type mqNamespace struct {
	rlimitErr error // from raising RLIMIT_MSGQUEUE in New
	maxQueues int64

	mu      sync.Mutex
	started bool
	err     error // why the namespace could not be made
	reqs    chan mqRequest
	done    chan struct{}
	// maxMsg and msgSize are the limits in force in the namespace.
	maxMsg, msgSize int64
}

// errMQBytes: the kernel refused a queue for lack of RLIMIT_MSGQUEUE; the
// app sees ENOSPC, like any quota.
var errMQBytes = &sentinel{"message queue memory limit reached", syscall.ENOSPC}

type mqRequest struct {
	maxMsg, msgSize int64
	reply           chan mqReply
}

type mqReply struct {
	fd  int
	err error
}

func (m *mqNamespace) startLocked() error {
	if m.started {
		return m.err
	}
	m.started = true
	m.reqs = make(chan mqRequest)
	m.done = make(chan struct{})
	ready := make(chan error)
	go m.serve(ready, nil)
	if err := <-ready; err != nil {
		m.err = fmt.Errorf("%w: message queues need a private ipc namespace: %w", ErrNotSupported, err)
		return m.err
	}
	return nil
}

func (m *mqNamespace) serve(ready chan<- error, locked chan<- struct{}) {
	// Locked for good: when this goroutine returns, the runtime ends the
	// thread, and with it the broker's ipc namespace. No other goroutine
	// ever runs on this thread.
	runtime.LockOSThread()
	if locked != nil {
		close(locked)
	}
	if syscalls.Gettid() == os.Getpid() {
		// This is the main thread, which the runtime never ends: a
		// namespace set here would stay with it (and with /proc/self)
		// for good. While this goroutine holds it, a new goroutine cannot
		// run on it; hand the work over to one, then let the main thread go.
		next := make(chan struct{})
		go m.serve(ready, next)
		<-next
		runtime.UnlockOSThread()
		return
	}
	defer close(m.done)
	if err := syscalls.UnshareIPCNS(); err != nil {
		ready <- err
		return
	}
	// Best effort: where /proc/sys is read-only the namespace keeps the
	// kernel's defaults (10 messages of 8 KiB), read back below and
	// enforced by the broker with a clear reason.
	_ = syscalls.SetMQSysctl("msg_max", MQMaxMsg)
	_ = syscalls.SetMQSysctl("msgsize_max", MQMaxMsgSize)
	_ = syscalls.SetMQSysctl("queues_max", max(m.maxQueues, 256))
	var err error
	if m.maxMsg, err = syscalls.MQSysctl("msg_max"); err == nil {
		m.msgSize, err = syscalls.MQSysctl("msgsize_max")
	}
	if err != nil {
		ready <- err
		return
	}
	ready <- nil
	var seq uint64
	for r := range m.reqs {
		seq++
		name := "pinfold." + strconv.FormatUint(seq, 10)
		fd, err := syscalls.MQOpenExclusive(name, r.maxMsg, r.msgSize)
		if err == nil {
			if uerr := syscalls.MQUnlink(name); uerr != nil {
				syscalls.Close(fd)
				fd, err = -1, uerr
			}
		}
		r.reply <- mqReply{fd, err}
	}
}

// create makes o's queue: mode 0, O_RDWR, its name already unlinked.
func (m *mqNamespace) create(o *object) error {
	m.mu.Lock()
	err := m.startLocked()
	reqs, maxMsg, msgSize := m.reqs, m.maxMsg, m.msgSize
	m.mu.Unlock()
	if err != nil {
		return err
	}
	if o.maxMsg > maxMsg || o.msgSize > msgSize {
		return fmt.Errorf("%w: this host allows queues of at most %d messages of %d bytes (fs.mqueue sysctls of the broker's ipc namespace could not be raised)", ErrInvalid, maxMsg, msgSize)
	}
	reply := make(chan mqReply, 1)
	reqs <- mqRequest{maxMsg: o.maxMsg, msgSize: o.msgSize, reply: reply}
	r := <-reply
	if r.err != nil {
		if errors.Is(r.err, syscall.EMFILE) {
			// The queue bytes of the broker's user (root) passed the
			// broker process's RLIMIT_MSGQUEUE.
			why := ""
			if m.rlimitErr != nil {
				why = fmt.Sprintf("; raising it failed: %v", m.rlimitErr)
			}
			return fmt.Errorf("%w: %w (the message queue bytes of the broker's user passed its RLIMIT_MSGQUEUE%s)", errMQBytes, r.err, why)
		}
		return r.err
	}
	o.fd = r.fd
	return nil
}

// stop ends the namespace's thread. Every creation must have returned.
func (m *mqNamespace) stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.started || m.reqs == nil {
		return
	}
	close(m.reqs)
	<-m.done
	m.reqs = nil
}
