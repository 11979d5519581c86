package server

import (
	"fmt"
	"os"
	"sync"

	"github.com/pinfold/pinfold/syscalls"
)

// idleSet watches the control channels of idle apps: one epoll instance,
// itself waited on by one goroutine in the runtime poller, holds every
// channel whose server has no goroutine. A channel is armed one-shot; when
// it becomes readable (or its app hangs up) the watcher starts a goroutine
// that serves it until it has been quiet for Options.Linger, then arms it
// again. So an idle app costs an epoll entry, not a parked goroutine.
type idleSet struct {
	once sync.Once
	err  error
	ep   *os.File // the epoll instance, in the runtime poller
	epfd int      // its descriptor (never ep.Fd(), which would make it blocking)

	mu    sync.Mutex
	conns map[int32]*Conn
}

var idle idleSet

// Init makes the idle set (an epoll descriptor and a goroutine that live
// as long as the process); Start does it on first use. A supervisor calls
// it when it starts, so that its first app does not add them.
func Init() error { return idle.init() }

func (s *idleSet) init() error {
	s.once.Do(func() {
		fd, err := syscalls.EpollCreate()
		if err != nil {
			s.err = fmt.Errorf("watching idle control channels: %w", err)
			return
		}
		s.epfd = fd
		s.ep = os.NewFile(uintptr(fd), "pinfold-ctl-idle")
		s.conns = make(map[int32]*Conn)
		go s.watch()
	})
	return s.err
}

// watch wakes the channels the kernel reports ready. It runs for the life
// of the process (the set is shared by every supervisor in it).
func (s *idleSet) watch() {
	rc, err := s.ep.SyscallConn()
	if err != nil {
		panic(fmt.Sprintf("server: idle channel set: %v", err))
	}
	var evs [64]syscalls.EpollEvent
	var n int
	var werr error
	wait := func(fd uintptr) bool {
		n, werr = syscalls.EpollWait(int(fd), evs[:], 0)
		return werr != nil || n > 0
	}
	for {
		if err := rc.Read(wait); err != nil {
			panic(fmt.Sprintf("server: idle channel set: %v", err))
		}
		if werr != nil {
			panic(fmt.Sprintf("server: idle channel set: %v", werr))
		}
		for _, ev := range evs[:n] {
			s.mu.Lock()
			c := s.conns[ev.Fd]
			s.mu.Unlock()
			if c != nil {
				c.wake()
			}
		}
	}
}

// add watches c's channel, armed.
func (s *idleSet) add(c *Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := syscalls.EpollWatchOnce(s.epfd, int(c.fd)); err != nil {
		return err
	}
	s.conns[c.fd] = c
	return nil
}

// rearm arms c's channel again after a wakeup.
func (s *idleSet) rearm(c *Conn) error {
	return syscalls.EpollRearm(s.epfd, int(c.fd))
}

// remove stops watching c's channel (before it is closed, so that its
// number, once reused, cannot wake c).
func (s *idleSet) remove(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns[c.fd] == c {
		delete(s.conns, c.fd)
		_ = syscalls.EpollDelete(s.epfd, int(c.fd))
	}
}
