package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
)

// work is the memory one message needs while it is in service. It comes
// from a pool when a message is waiting and goes back once the reply is
// sent, so that an idle app holds none of it.
type work struct {
	in    [abi.MaxMessage]byte
	inOOB [recvOOBSize]byte
	out   [abi.MaxMessage]byte
	// outOOB carries the reply's descriptors (capacity for MaxFDs).
	outOOB []byte
	req    abi.Request
	rb     abi.ReplyBuilder
	fds    []int // descriptors to send, in entry order
	got    []int // descriptors that came with the request, to close
}

// recvOOBSize has room for a handful of descriptors: what a client should
// never send. More than fit are closed by the kernel (MSG_CTRUNC), never
// installed in pinfold.
const recvOOBSize = 128

var (
	workPool = sync.Pool{New: func() any {
		return &work{
			outOOB: make([]byte, 0, syscalls.RightsSpace(abi.MaxFDs)),
			fds:    make([]int, 0, abi.MaxFDs),
			got:    make([]int, 0, recvOOBSize/4),
		}
	}}
	// borrowed counts the work buffers out of the pool, for tests that
	// check an idle server holds none.
	borrowed atomic.Int64
)

func getWork() *work {
	borrowed.Add(1)
	return workPool.Get().(*work)
}

func putWork(w *work) {
	w.fds = w.fds[:0]
	w.got = w.got[:0]
	workPool.Put(w)
	borrowed.Add(-1)
}

// conn is one app's channel in service.
type conn struct {
	rc   syscall.RawConn
	sess Session
	opts Options

	readFn, writeFn func(fd uintptr) bool

	// Set by readFn: the message received, or the end.
	w     *work
	msg   syscalls.CtlMsg
	eof   bool
	rerr  error
	tries int // readFn calls for this message: 1 when it was already waiting
	// Read by writeFn; werr is set by it.
	out, oob []byte
	werr     error

	malformed int

	// file is the channel; linger how long loop waits for a next message
	// before it returns errIdle (0: forever); stopped is set by Stop.
	file    *os.File
	linger  time.Duration
	stopped atomic.Bool
}

// errIdle: loop returns it when the app has sent nothing for linger.
var errIdle = errors.New("control channel idle")

// Serve serves the app's end of a control channel, conn, with sess until
// the app hangs up (it exited: Serve returns nil) or ctx ends (it returns
// ctx's error). It is NewConn, then Conn.Serve with ctx's end as Stop; see
// those for the details.
func Serve(ctx context.Context, conn *os.File, sess Session, opts Options) error {
	c, err := NewConn(conn, sess, opts)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, c.Stop)
	defer stop()
	err = c.Serve()
	if errors.Is(err, ErrStopped) && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Conn is the pinfold end of one app's control channel, ready to serve.
type Conn struct {
	f  *os.File
	fd int32
	c  *conn

	mu    sync.Mutex
	state connState
	done  func(error)
}

type connState uint8

const (
	connNew     connState = iota
	connIdle              // in the idle set, armed, no goroutine
	connServing           // a goroutine serves it
	connDone              // finished: closed, done called
)

// NewConn takes ownership of conn, the pinfold end of an app's control
// channel (a SOCK_SEQPACKET socket), to be served with sess. A conn
// already non-blocking (syscalls.ControlPair) is used as it is; any other
// is duplicated into one the runtime poller can wait on.
func NewConn(conn *os.File, sess Session, opts Options) (*Conn, error) {
	f, err := pollable(conn)
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("serving control channel: %w", err)
	}
	c := &Conn{f: f, c: newConn(rc, sess, opts)}
	_ = rc.Control(func(fd uintptr) { c.fd = int32(fd) })
	c.c.file = f
	c.c.linger = opts.linger()
	return c, nil
}

// Start serves the channel in the background and calls done once, with
// what Serve would return, when that ends. While the app sends nothing
// the channel waits in a set shared by all channels, with no goroutine of
// its own; a message (or the app hanging up) starts one, which serves
// until the app has been quiet for Options.Linger. Every failure is
// reported to done. Call Start or Serve once.
func (c *Conn) Start(done func(error)) {
	c.mu.Lock()
	if c.state == connDone { // stopped before it started
		c.mu.Unlock()
		done(ErrStopped)
		return
	}
	c.done, c.state = done, connIdle
	err := idle.init()
	if err == nil {
		err = idle.add(c)
	}
	c.mu.Unlock()
	if err != nil {
		c.finish(fmt.Errorf("serving control channel: %w", err))
	}
}

// Serve serves the channel until the app hangs up (it exited: Serve
// returns nil), Stop is called (it returns ErrStopped) or the channel
// fails. It closes the channel before returning, which the app sees as the
// end of its channel. An app that sends opts.MaxMalformed malformed
// messages in a row has its channel closed and Serve returns an error
// wrapping ErrHostile. It is Start, waiting for the end.
//
// The channel is read in Go's netpoller while the app makes calls, and
// watched by the idle set (see Start) when it has been quiet for
// Options.Linger: an idle app costs no goroutine and holds no buffer. It
// serves one message at a time, so an app has at most MaxBatch calls in
// service; what else it sends waits in its own socket buffer. Between
// messages it yields the processor (runtime.Gosched when the next message
// is already waiting, parking when it is not), so that an app flooding
// requests takes turns with the other apps' servers.
func (c *Conn) Serve() error {
	ch := make(chan error, 1)
	c.Start(func(err error) { ch <- err })
	return <-ch
}

// wake is called by the idle set when the channel is ready.
func (c *Conn) wake() {
	c.mu.Lock()
	if c.state != connIdle {
		c.mu.Unlock()
		return
	}
	c.state = connServing
	c.mu.Unlock()
	go c.burst()
}

// burst serves messages until the app is quiet for Linger (then the
// channel goes back to the idle set) or the channel ends.
func (c *Conn) burst() {
	err := c.c.loop()
	if errors.Is(err, errIdle) {
		c.mu.Lock()
		if c.c.stopped.Load() {
			c.mu.Unlock()
			c.finish(ErrStopped)
			return
		}
		c.state = connIdle
		err = idle.rearm(c)
		c.mu.Unlock()
		if err == nil {
			return
		}
		err = fmt.Errorf("serving control channel: %w", err)
	}
	if c.c.stopped.Load() && (err == nil || errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed)) {
		err = ErrStopped
	}
	c.finish(err)
}

// finish ends the channel once: out of the idle set, closed, done called.
func (c *Conn) finish(err error) {
	c.mu.Lock()
	if c.state == connDone {
		c.mu.Unlock()
		return
	}
	c.state = connDone
	c.mu.Unlock()
	idle.remove(c)
	c.f.Close()
	if c.done != nil {
		c.done(err)
	}
}

// Stop makes Serve return ErrStopped at once: a read or write in progress
// fails, and a message being dispatched is not answered. Safe to call at
// any time, from any goroutine, more than once.
func (c *Conn) Stop() {
	c.c.stopped.Store(true)
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	switch st {
	case connIdle, connNew:
		c.finish(ErrStopped)
	case connServing:
		_ = c.f.SetDeadline(time.Unix(1, 0)) // fails only once finish closed f
	}
}

// pollable returns conn's socket as a non-blocking *os.File registered with
// the netpoller: conn itself when its descriptor is non-blocking (then
// os.NewFile registered it), else a duplicate of its descriptor with
// O_NONBLOCK set (on the shared open file description, which only pinfold
// uses: the app holds the other socket of the pair), closing conn.
func pollable(conn *os.File) (*os.File, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("serving control channel: %w", err)
	}
	var nfd int
	var nonblock bool
	var derr error
	if err := rc.Control(func(fd uintptr) {
		if nonblock, derr = syscalls.IsNonblock(int(fd)); derr != nil || nonblock {
			return
		}
		nfd, derr = syscalls.DupCloexec(int(fd))
	}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("serving control channel: %w", err)
	}
	if derr != nil {
		conn.Close()
		return nil, fmt.Errorf("serving control channel: %w", derr)
	}
	if nonblock {
		return conn, nil
	}
	conn.Close()
	if err := syscalls.SetNonblock(nfd); err != nil {
		syscalls.Close(nfd)
		return nil, fmt.Errorf("serving control channel: %w", err)
	}
	return os.NewFile(uintptr(nfd), "pinfold-ctl"), nil
}

func newConn(rc syscall.RawConn, sess Session, opts Options) *conn {
	c := &conn{rc: rc, sess: sess, opts: opts}
	// The callbacks are made once: a closure made per message would be an
	// allocation on every round trip.
	c.readFn = func(fd uintptr) bool {
		c.tries++
		w := getWork()
		m, wouldBlock, err := syscalls.CtlRecvmsg(int(fd), w.in[:], w.inOOB[:], true)
		if wouldBlock {
			putWork(w) // nothing waiting: park without a buffer
			return false
		}
		c.w, c.msg, c.rerr = w, m, err
		if err == nil && m.N == 0 && m.OOBN == 0 && !m.Truncated {
			// An end of file, or a zero-length datagram.
			c.eof = syscalls.CtlPeerClosed(int(fd))
		}
		return true
	}
	c.writeFn = func(fd uintptr) bool {
		wouldBlock, err := syscalls.CtlSendmsg(int(fd), c.out, c.oob, true)
		if wouldBlock {
			return false
		}
		c.werr = err
		return true
	}
	return c
}

func (c *conn) loop() error {
	for served := false; ; served = true {
		c.w, c.eof, c.rerr, c.tries = nil, false, nil, 0
		if c.linger > 0 {
			_ = c.file.SetReadDeadline(time.Now().Add(c.linger))
		}
		// After the deadline, so that Stop's own deadline cannot be lost.
		if c.stopped.Load() {
			return ErrStopped
		}
		if err := c.rc.Read(c.readFn); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) && !c.stopped.Load() {
				return errIdle
			}
			return fmt.Errorf("reading control channel: %w", err)
		}
		if served && c.tries == 1 {
			// The app sent this message before its previous reply was
			// out: it is flooding. Take turns with the other apps'
			// servers instead of monopolising the processor. (An app
			// that waits for its replies parks the goroutine between
			// messages, which yields already.)
			runtime.Gosched()
		}
		w := c.w
		if c.rerr != nil {
			putWork(w)
			if peerGone(c.rerr) {
				return nil
			}
			return fmt.Errorf("reading control channel: %w", c.rerr)
		}
		if c.eof {
			putWork(w)
			return nil
		}
		done, err := c.serve(w)
		putWork(w)
		if done || err != nil {
			return err
		}
	}
}

// serve answers the message in w. done reports that the channel must end
// (the app is gone, or hostile: then err says so).
func (c *conn) serve(w *work) (done bool, err error) {
	m := c.msg
	got, perr := syscalls.ParseRights(w.inOOB[:m.OOBN], w.got[:0])
	for _, fd := range got {
		syscalls.Close(fd)
	}
	var errno abi.Errno
	var reason string
	switch {
	case m.Truncated:
		errno, reason = abi.E2BIG, fmt.Sprintf("message larger than %d bytes", abi.MaxMessage)
	case len(got) > 0 || m.ControlTruncated || perr != nil:
		errno, reason = abi.EINVAL, "requests may not carry file descriptors (pinfold closed them)"
	case m.N == 0:
		errno, reason = abi.EBADMSG, "empty message"
	default:
		if err := abi.DecodeRequest(w.in[:m.N], &w.req); err != nil {
			errno, reason = abi.EBADMSG, err.Error()
			if pe := (*abi.ProtocolError)(nil); errors.As(err, &pe) {
				errno, reason = pe.Errno, pe.Reason
			}
		}
	}
	if errno != 0 {
		c.observe(MessageRefused, errno, 0)
		c.malformed++
		if gone, err := c.send(w, abi.AppendErrorReply(w.out[:0], errno, reason), false); gone || err != nil {
			return true, err
		}
		if c.malformed >= c.opts.maxMalformed() {
			return true, fmt.Errorf("%w (%d in a row)", ErrHostile, c.malformed)
		}
		return false, nil
	}

	msg, bad := c.dispatchAll(w)
	if bad {
		c.malformed++
	} else {
		c.malformed = 0
	}
	if gone, err := c.send(w, msg, true); gone || err != nil {
		return true, err
	}
	if c.malformed >= c.opts.maxMalformed() {
		return true, fmt.Errorf("%w (%d in a row)", ErrHostile, c.malformed)
	}
	return false, nil
}

// send sends a reply with w's descriptors and closes them. When the
// descriptors cannot be passed (too many in flight: ETOOMANYREFS), the
// app gets a reply refusing the whole message instead. gone reports that
// the app has hung up.
func (c *conn) send(w *work, msg []byte, withFDs bool) (gone bool, err error) {
	c.out, c.oob, c.werr = msg, nil, nil
	if withFDs {
		c.oob = syscalls.AppendRights(w.outOOB[:0], w.fds)
	}
	err = c.rc.Write(c.writeFn)
	for _, fd := range w.fds {
		syscalls.Close(fd)
	}
	w.fds = w.fds[:0]
	if err != nil {
		return true, fmt.Errorf("writing control channel: %w", err)
	}
	if c.werr == nil {
		return false, nil
	}
	if peerGone(c.werr) {
		return true, nil
	}
	if len(c.oob) > 0 {
		var errno syscall.Errno
		if errors.As(c.werr, &errno) {
			reason := "passing the reply's file descriptors failed: " + c.werr.Error()
			return c.send(w, abi.AppendErrorReply(w.out[:0], abi.Errno(errno), reason), false)
		}
	}
	return true, fmt.Errorf("writing control channel: %w", c.werr)
}

func peerGone(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

func (c *conn) observe(sysno abi.Sysno, errno abi.Errno, d time.Duration) {
	if c.opts.Observe != nil {
		c.opts.Observe(sysno, errno, d)
	}
}
