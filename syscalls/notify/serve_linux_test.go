package notify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/pinfold/pinfold/syscalls"
)

func TestStructSizes(t *testing.T) {
	notif, resp, data, err := syscalls.SeccompNotifSizes()
	if err != nil {
		t.Skipf("seccomp user notification is not available: %v", err)
	}
	if want := unsafe.Sizeof(syscalls.SeccompNotif{}); uintptr(notif) != want {
		t.Errorf("kernel struct seccomp_notif is %d bytes, ours %d", notif, want)
	}
	if want := unsafe.Sizeof(syscalls.SeccompData{}); uintptr(data) != want {
		t.Errorf("kernel struct seccomp_data is %d bytes, ours %d", data, want)
	}
	if resp != 24 {
		t.Errorf("kernel struct seccomp_notif_resp is %d bytes, ours 24", resp)
	}
}

// pipeProbe is a pipe whose read end a handler hands to Inject: once every
// copy of the read end is closed, writing gets EPIPE, which shows that the
// Server closed the descriptor it was given.
type pipeProbe struct{ r, w int }

func newPipeProbe(t testing.TB) *pipeProbe {
	t.Helper()
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(p[1]) })
	return &pipeProbe{r: p[0], w: p[1]}
}

// readerClosed reports whether every read end is closed.
func (p *pipeProbe) readerClosed() bool {
	_, err := syscall.Write(p.w, []byte{1})
	return errors.Is(err, syscall.EPIPE)
}

// blockingHandler returns a handler that, for the first notification,
// reports the request on entered and waits for release before injecting
// probe's read end.
func blockingHandler(probe *pipeProbe, entered chan<- *Request, release <-chan struct{}, after func(*Request)) Handler {
	return func(ctx context.Context, req *Request) Response {
		entered <- req
		<-release
		if after != nil {
			after(req)
		}
		return Inject(probe.r, true)
	}
}

func waitEntered(t *testing.T, entered <-chan *Request) *Request {
	t.Helper()
	select {
	case req := <-entered:
		return req
	case <-time.After(waitLimit):
		t.Fatalf("no notification reached the handler within %v", waitLimit)
	}
	return nil
}

// TestListenerClosedENOSYS: the supervisor stops serving (closes the
// listener) while the app waits in a notified mq_open: the call fails with
// ENOSYS, later ones too, and nothing hangs.
func TestListenerClosedENOSYS(t *testing.T) {
	requireNotify(t)
	a := startApp(t)
	probe := newPipeProbe(t)
	entered, release := make(chan *Request, 1), make(chan struct{})
	sv := a.serve(&Server{Handler: blockingHandler(probe, entered, release, nil)})

	a.send(command{Op: "open", Name: "blocked", Oflag: syscall.O_RDONLY})
	waitEntered(t, entered)
	if err := a.listener.Close(); err != nil {
		t.Fatal(err)
	}
	if r := a.result("mq_open pending when the listener closed"); r.Errno != syscall.ENOSYS {
		t.Errorf("pending mq_open = %d, %v; want ENOSYS", r.FD, r.Errno)
	}
	if r := a.do(command{Op: "open", Name: "later", Oflag: syscall.O_RDONLY}); r.Errno != syscall.ENOSYS {
		t.Errorf("mq_open after the listener closed = %d, %v; want ENOSYS", r.FD, r.Errno)
	}
	if r := a.do(command{Op: "unlink", Name: "later"}); r.Errno != syscall.ENOSYS {
		t.Errorf("mq_unlink after the listener closed = %v; want ENOSYS", r.Errno)
	}
	close(release)
	if err := sv.wait("the listener was closed and the handler returned"); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve = %v, want ErrClosed", err)
	}
	if !probe.readerClosed() {
		t.Error("the descriptor the handler answered with was not closed")
	}
}

// TestSupervisorKilledENOSYS: the process holding the listener is
// SIGKILLed while the app waits in a notified mq_open: the call fails with
// ENOSYS. (The app has no parent-death signal, so it lives on to see it.)
func TestSupervisorKilledENOSYS(t *testing.T) {
	requireNotify(t)
	a := startApp(t)
	holder := exec.Command(os.Args[0], "-test.run=^$")
	holder.Env = append(os.Environ(), roleEnv+"=holder")
	holder.ExtraFiles = []*os.File{a.listener.f}
	holder.Stderr = os.Stderr
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	holderDone := make(chan struct{})
	go func() { _ = holder.Wait(); close(holderDone) }()
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		<-holderDone
	})
	// Only the holder has the listener now.
	if err := a.listener.Close(); err != nil {
		t.Fatal(err)
	}

	a.send(command{Op: "open", Name: "blocked", Oflag: syscall.O_RDWR | syscall.O_CREAT})
	lines := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		lines <- s
	}()
	select {
	case s := <-lines:
		if s != "notified\n" {
			t.Fatalf("holder said %q", s)
		}
	case <-time.After(waitLimit):
		t.Fatalf("the holder got no notification within %v", waitLimit)
	}
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-holderDone:
	case <-time.After(waitLimit):
		t.Fatalf("holder not reaped %v after SIGKILL", waitLimit)
	}
	if r := a.result("mq_open pending when the supervisor died"); r.Errno != syscall.ENOSYS {
		t.Errorf("pending mq_open = %d, %v; want ENOSYS", r.FD, r.Errno)
	}
	if r := a.do(command{Op: "open", Name: "later", Oflag: syscall.O_RDONLY}); r.Errno != syscall.ENOSYS {
		t.Errorf("mq_open after the supervisor died = %v; want ENOSYS", r.Errno)
	}
}

// TestTargetGone: the app is killed while the handler works on its
// mq_open; the answer finds no one (ENOENT), which the Server drops, and
// the descriptor the handler made is closed, not leaked.
func TestTargetGone(t *testing.T) {
	requireNotify(t)
	a := startApp(t)
	probe := newPipeProbe(t)
	entered, release := make(chan *Request, 1), make(chan struct{})
	var validErr error
	var results []Result
	sv := a.serve(&Server{
		Handler: blockingHandler(probe, entered, release, func(req *Request) { validErr = req.Valid() }),
		Observe: func(o Observation) { results = append(results, o.Result) },
	})
	a.send(command{Op: "open", Name: "victim", Oflag: syscall.O_RDONLY})
	waitEntered(t, entered)
	a.kill()
	close(release)
	if err := sv.wait("the app was killed"); err != nil {
		t.Errorf("Serve = %v, want nil (the filter has no users left)", err)
	}
	if !errors.Is(validErr, ErrGone) {
		t.Errorf("Valid after the target died = %v, want ErrGone", validErr)
	}
	if len(results) != 1 || results[0] != ResultGone {
		t.Errorf("observed %v, want [gone]", results)
	}
	if !probe.readerClosed() {
		t.Error("the descriptor made for the dead target leaked")
	}
}

// TestSignalDuringNotification: a signal to the waiting thread after the
// supervisor received its mq_open(O_CREAT|O_EXCL) stays pending until the
// answer (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, set by WithNotify).
// Otherwise the kernel would drop the notification and restart the
// syscall, whose second run would find the queue the first one created
// and fail with EEXIST.
func TestSignalDuringNotification(t *testing.T) {
	requireNotify(t)
	a := startApp(t)
	b := newTestBroker(t)
	entered, release := make(chan *Request, 1), make(chan struct{})
	var calls atomic.Int32
	var current *Request
	b.before = func(name string, fd int) {
		entered <- current
		<-release
	}
	mq := &MQ{Broker: b}
	a.serve(&Server{Handler: func(ctx context.Context, req *Request) Response {
		calls.Add(1)
		current = req
		return mq.Handle(ctx, req)
	}})
	a.send(command{Op: "open", Name: "excl", Oflag: syscall.O_RDWR | syscall.O_CREAT | syscall.O_EXCL, Attr: &[2]int64{2, 64}})
	req := waitEntered(t, entered)

	const sigusr1Bit = 1 << (syscall.SIGUSR1 - 1)
	if err := syscall.Tgkill(a.cmd.Process.Pid, req.TID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// With the flag the thread sleeps killably ("D") with the signal
	// pending until we answer. Without it, the signal wakes it and the
	// kernel drops the notification (Valid fails).
	deadline := time.Now().Add(waitLimit)
	for {
		if err := req.Valid(); err != nil {
			t.Errorf("the signal interrupted the notified syscall: %v", err)
			break
		}
		state, pending, err := threadStatus(a.cmd.Process.Pid, req.TID)
		if err != nil {
			t.Fatal(err)
		}
		if pending&sigusr1Bit != 0 && state == "D" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d: state %s, pending signals %#x %v after SIGUSR1", req.TID, state, pending, waitLimit)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	r := a.result("mq_open(O_CREAT|O_EXCL) signalled during the notification")
	if r.Errno != 0 || r.FD < 0 {
		t.Errorf("mq_open = %d, %v; want a descriptor", r.FD, r.Errno)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("the handler saw the syscall %d times, want once", n)
	}
}

// threadStatus returns a thread's state letter and the signals pending for
// it (State, SigPnd).
func threadStatus(pid, tid int) (state string, pending uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
	if err != nil {
		return "", 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "State:"); ok {
			state, _, _ = strings.Cut(strings.TrimSpace(v), " ")
		}
		if v, ok := strings.CutPrefix(line, "SigPnd:"); ok {
			if pending, err = strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil {
				return "", 0, err
			}
		}
	}
	return state, pending, nil
}

// TestInjectEMFILE: the app has no free descriptor for the queue. It sees
// mq_open fail with EMFILE, and the queue the broker created for it is
// unlinked again, since the kernel would not have created it.
func TestInjectEMFILE(t *testing.T) {
	requireNotify(t)
	a := startApp(t)
	b := newTestBroker(t)
	var results []Observation
	sv := a.serve(&Server{Handler: (&MQ{Broker: b}).Handle, Observe: func(o Observation) { results = append(results, o) }})
	if r := a.do(command{Op: "fillfds"}); r.Errno != syscall.EMFILE {
		t.Fatalf("filling the app's descriptor table: %v", r.Errno)
	}
	if r := a.do(command{Op: "open", Name: "nofd", Oflag: syscall.O_RDWR | syscall.O_CREAT, Attr: &[2]int64{2, 64}}); r.Errno != syscall.EMFILE {
		t.Errorf("mq_open with no free descriptor = %d, %v; want EMFILE", r.FD, r.Errno)
	}
	if fd, e := mqOpenRaw(b.kernelName("nofd"), syscall.O_RDONLY, nil); e != syscall.ENOENT {
		if e == 0 {
			syscall.Close(fd)
		}
		t.Errorf("the queue created for the failed mq_open: %v, want ENOENT (unlinked)", e)
	}
	a.exit()
	if err := sv.wait("the app exited"); err != nil {
		t.Errorf("Serve: %v", err)
	}
	if len(results) != 1 || results[0].Result != ResultErrno || results[0].Errno != syscall.EMFILE {
		t.Errorf("observed %+v, want one EMFILE", results)
	}
}

// TestServeContext: ending the context stops Serve with ctx.Err(); the
// listener can then be served again. Two Serves at once are refused.
func TestServeContext(t *testing.T) {
	requireNotify(t)
	a := startApp(t)
	b := newTestBroker(t)
	h := (&MQ{Broker: b}).Handle
	sv := a.serve(&Server{Handler: h})
	if r := a.do(command{Op: "open", Name: "q", Oflag: syscall.O_RDWR | syscall.O_CREAT}); r.Errno != 0 {
		t.Fatalf("mq_open: %v", r.Errno)
	}
	if err := Serve(context.Background(), a.listener, h); !errors.Is(err, ErrBusy) {
		t.Errorf("a second Serve = %v, want ErrBusy", err)
	}
	if err := sv.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve after cancel = %v, want context.Canceled", err)
	}
	sv2 := a.serve(&Server{Handler: h})
	if r := a.do(command{Op: "open", Name: "q", Oflag: syscall.O_RDONLY}); r.Errno != 0 {
		t.Errorf("mq_open served by a second Serve: %v", r.Errno)
	}
	if err := sv2.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("second Serve after cancel = %v", err)
	}
	// Closing the listener ends a Serve that waits for notifications.
	sv3 := a.serve(&Server{Handler: h})
	time.Sleep(10 * time.Millisecond) // let it wait in the poller (it returns ErrClosed either way)
	a.listener.Close()
	if err := sv3.wait("the listener was closed"); !errors.Is(err, ErrClosed) {
		t.Errorf("Serve after Close = %v, want ErrClosed", err)
	}
}

// TestSyncWakeUp checks that the kernel takes the flag (6.6+).
func TestSyncWakeUp(t *testing.T) {
	requireNotify(t)
	if !linuxAtLeast(6, 6) {
		t.Skipf("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP needs Linux 6.6; this is %s", syscalls.KernelRelease())
	}
	a := startApp(t)
	if err := a.listener.SetSyncWakeUp(); err != nil {
		t.Fatal(err)
	}
	a.serve(&Server{Handler: (&MQ{Broker: newTestBroker(t)}).Handle})
	if r := a.do(command{Op: "open", Name: "q", Oflag: syscall.O_RDWR | syscall.O_CREAT}); r.Errno != 0 {
		t.Errorf("mq_open with synchronous wake-up: %v", r.Errno)
	}
}

func TestNewListenerRejects(t *testing.T) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	if _, err := NewListener(p[0]); err == nil {
		t.Error("NewListener accepted a pipe")
	}
	if _, err := NewListener(-1); err == nil {
		t.Error("NewListener accepted -1")
	}
}

// TestReadMemory reads strings and structures at page boundaries of this
// process's own memory, as the handlers read an app's.
func TestReadMemory(t *testing.T) {
	page := os.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 2*page, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(mem)
	if err := syscall.Mprotect(mem[page:], syscall.PROT_NONE); err != nil {
		t.Fatal(err)
	}
	base := uint64(uintptr(unsafe.Pointer(&mem[0])))
	req := &Request{TID: os.Getpid()}

	copy(mem[page-6:], "hello\x00")
	if s, err := req.ReadString(base+uint64(page-6), 255); err != nil || s != "hello" {
		t.Errorf("string ending at the mapping's end: %q, %v", s, err)
	}
	copy(mem[page-300:], strings.Repeat("a", 250)+"\x00")
	if s, err := req.ReadString(base+uint64(page-300), 255); err != nil || len(s) != 250 {
		t.Errorf("250-byte string: %d bytes, %v", len(s), err)
	}
	if _, err := req.ReadString(base+uint64(page-300), 100); !errors.Is(err, ErrTooLong) {
		t.Errorf("string longer than the limit: %v, want ErrTooLong", err)
	}
	copy(mem[page-3:], "abc")
	if _, err := req.ReadString(base+uint64(page-3), 255); !errors.Is(err, syscall.EFAULT) {
		t.Errorf("string running into an unreadable page: %v, want EFAULT", err)
	}
	if _, err := req.ReadString(0, 255); !errors.Is(err, syscall.EFAULT) {
		t.Errorf("string at address 0: %v, want EFAULT", err)
	}
	if _, err := req.ReadBytes(base+uint64(page-8), 16); !errors.Is(err, syscall.EFAULT) {
		t.Errorf("bytes across into an unreadable page: %v, want EFAULT", err)
	}
	attr := (*mqAttr)(unsafe.Pointer(&mem[64]))
	*attr = mqAttr{Flags: 1, MaxMsg: 7, MsgSize: 99, CurMsgs: 3}
	var got mqAttr
	if err := req.ReadStruct(base+64, &got); err != nil || got != *attr {
		t.Errorf("ReadStruct = %+v, %v; want %+v", got, err, *attr)
	}
	if err := req.ReadStruct(base, &[]int{}); err == nil {
		t.Error("ReadStruct accepted a slice")
	}
}
