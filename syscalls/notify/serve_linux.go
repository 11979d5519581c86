package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/syscalls"
)

// Handler decides one notified syscall. It runs on the Server's goroutine,
// one call at a time per listener; the target thread waits (signals other
// than fatal ones stay pending) until it returns. ctx is the Serve context.
// A zero Response answers ENOSYS.
type Handler func(ctx context.Context, req *Request) Response

// Response is a Handler's answer: build it with Errno, Value, Inject or
// Continue.
type Response struct {
	kind    Result
	errno   syscall.Errno
	val     int64
	fd      int
	cloexec bool
	undo    func()
}

// maxErrno is the largest errno a syscall can return (MAX_ERRNO).
const maxErrno = 4095

// Errno fails the syscall with e. An e that no syscall could return (0 or
// above 4095) is answered as EIO.
func Errno(e syscall.Errno) Response {
	if e <= 0 || e > maxErrno {
		e = syscall.EIO
	}
	return Response{kind: ResultErrno, errno: e}
}

// Value completes the syscall with return value v (v >= 0; a negative v
// would read as an error, use Errno).
func Value(v int64) Response { return Response{kind: ResultValue, val: v} }

// Inject installs a copy of fd in the target as its lowest free descriptor
// and completes the syscall with that descriptor's number, in one step
// (SECCOMP_ADDFD_FLAG_SEND): the target never runs between getting the
// descriptor and learning its number. cloexec sets O_CLOEXEC on the
// target's copy.
//
// The Server takes ownership of fd and closes it once the target has its
// copy, or once injecting failed. If the target is at its descriptor limit
// the syscall fails with the error (EMFILE).
func Inject(fd int, cloexec bool) Response {
	return Response{kind: ResultInjected, fd: fd, cloexec: cloexec}
}

// Continue lets the kernel run the syscall as if the filter had allowed it
// (SECCOMP_USER_NOTIF_FLAG_CONTINUE). It is NOT a security boundary: the
// kernel reads the syscall's pointer arguments again after the handler
// looked at them, and another thread of the target can change them in
// between. Use it only where the handler's decision does not depend on
// memory the arguments point to, or does not matter for security.
func Continue() Response { return Response{kind: ResultContinued} }

// OnFailure returns r with undo to be called if r cannot be delivered while
// the target still waits: an injection the target has no room for, so
// that the target sees the syscall fail. The handler uses it to take back
// what it did for a syscall that, as far as the target can tell, failed
// (e.g. unlink a queue that mq_open created); it runs before the target is
// told of the failure. It is not called when the
// target is gone (it was killed during the syscall; nothing is undone, as
// the kernel would not have undone it either).
func (r Response) OnFailure(undo func()) Response {
	r.undo = undo
	return r
}

// release closes what the response owns that was not delivered.
func (r Response) release() {
	if r.kind == ResultInjected && r.fd >= 0 {
		_ = syscalls.Close(r.fd)
	}
}

// Result is what became of a notification.
type Result uint8

// Results.
const (
	// ResultValue: the syscall returned a value.
	ResultValue Result = iota + 1
	// ResultErrno: the syscall failed with an errno.
	ResultErrno
	// ResultInjected: the syscall returned a descriptor injected into
	// the target.
	ResultInjected
	// ResultContinued: the kernel ran the syscall itself.
	ResultContinued
	// ResultGone: the target no longer waited when the answer came (it
	// was killed, or a signal restarted its syscall); nothing was
	// delivered.
	ResultGone
)

func (r Result) String() string {
	switch r {
	case ResultValue:
		return "value"
	case ResultErrno:
		return "errno"
	case ResultInjected:
		return "injected"
	case ResultContinued:
		return "continued"
	case ResultGone:
		return "gone"
	}
	return fmt.Sprintf("result(%d)", uint8(r))
}

// Observation describes one handled notification, for metrics.
type Observation struct {
	// Nr is the syscall number (for Native requests; see Request.Arch).
	Nr   int
	Arch uint32
	// Took is the time from receiving the notification to delivering the
	// answer, handler included.
	Took   time.Duration
	Result Result
	// Errno is the errno the syscall failed with, for ResultErrno.
	Errno syscall.Errno
}

// Server serves a Listener.
type Server struct {
	// Handler decides each notification. Required.
	Handler Handler
	// Observe, if set, is called after each notification with what
	// became of it, on the serving goroutine (keep it cheap).
	Observe func(Observation)
}

// Serve serves l with h until l's app has exited; see Server.Serve.
func Serve(ctx context.Context, l *Listener, h Handler) error {
	return (&Server{Handler: h}).Serve(ctx, l)
}

// Serve receives notifications from l and answers them with s.Handler, one
// at a time, until:
//
//   - no task uses the filter any more (the app and all its processes
//     exited): it returns nil;
//   - ctx ends: it returns ctx.Err(), after answering the notification in
//     hand (the Handler gets ctx and should return early);
//   - l is closed: it returns ErrClosed.
//
// Serve does not close l; close it when Serve returns, so that any
// notified syscall still to come fails with ENOSYS rather than waiting for
// a server that is gone. A notification whose target went away before the
// answer is dropped (ResultGone), and a descriptor it was to get is closed.
func (s *Server) Serve(ctx context.Context, l *Listener) error {
	if s.Handler == nil {
		return errors.New("notify: Server has no Handler")
	}
	if !l.serving.CompareAndSwap(false, true) {
		return ErrBusy
	}
	defer l.serving.Store(false)
	if err := l.f.SetReadDeadline(time.Time{}); err != nil {
		return l.closedError(err)
	}
	// Ending ctx interrupts the wait in the poller.
	stop := context.AfterFunc(ctx, func() { _ = l.f.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	var n syscalls.SeccompNotif
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := l.receive(&n)
		switch {
		case errors.Is(err, errHangup):
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			if err := ctx.Err(); err != nil {
				return err
			}
			// The deadline of an earlier Serve's context, set late:
			// not ours.
			if err := l.f.SetReadDeadline(time.Time{}); err != nil {
				return l.closedError(err)
			}
			continue
		case err != nil:
			return fmt.Errorf("receiving seccomp notification: %w", err)
		}
		start := time.Now()
		req := newRequest(l, &n)
		resp := s.Handler(ctx, req)
		obs, err := l.answer(req, resp)
		if err != nil {
			return err
		}
		if s.Observe != nil {
			obs.Nr, obs.Arch, obs.Took = req.Nr, req.Arch, time.Since(start)
			s.Observe(obs)
		}
	}
}

// answer delivers resp for req. It returns an error only when the listener
// cannot be used any more.
func (l *Listener) answer(req *Request, resp Response) (Observation, error) {
	defer resp.release()
	if resp.kind == 0 {
		resp = Errno(syscall.ENOSYS) // a zero Response: the handler answered nothing
	}
	obs := Observation{Result: resp.kind}
	err := l.control(func(fd int) error {
		switch resp.kind {
		case ResultInjected:
			_, err := syscalls.SeccompNotifInject(fd, req.ID, resp.fd, resp.cloexec)
			var errno syscall.Errno
			if err == nil || errors.Is(err, syscall.ENOENT) || !errors.As(err, &errno) {
				return err
			}
			// Not installed, and the target still waits: it gets
			// the error (EMFILE at its descriptor limit), after the
			// effect is undone, so that it never sees a queue it was
			// told was not opened.
			obs.Result, obs.Errno = ResultErrno, errno
			if resp.undo != nil {
				resp.undo()
			}
			return syscalls.SeccompNotifRespondError(fd, req.ID, errno)
		case ResultErrno:
			obs.Errno = resp.errno
			return syscalls.SeccompNotifRespondError(fd, req.ID, resp.errno)
		case ResultValue:
			return syscalls.SeccompNotifRespondValue(fd, req.ID, resp.val)
		case ResultContinued:
			return syscalls.SeccompNotifRespondContinue(fd, req.ID)
		}
		return fmt.Errorf("notify: unknown response kind %d", resp.kind)
	})
	switch {
	case err == nil:
		return obs, nil
	case errors.Is(err, syscall.ENOENT):
		return Observation{Result: ResultGone}, nil
	case errors.Is(err, ErrClosed):
		return obs, ErrClosed
	}
	return obs, fmt.Errorf("answering seccomp notification %d: %w", req.ID, err)
}
