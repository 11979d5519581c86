package notify

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/seccomp"
)

// The test binary plays three roles, chosen by roleEnv:
//
//   - the tests, which play the supervisor: they serve listeners;
//   - "app": an app that knows nothing of pinfold. It installs the filter
//     it is sent (as the init stage would), sends the listener back on
//     its control socket (fd 3), closes its own copy, and then makes the
//     raw syscalls the tests ask for, answering with their results;
//   - "holder": a supervisor stand-in that holds a listener (fd 3) and
//     blocks in its handler, to be SIGKILLed by a test.
const roleEnv = "PINFOLD_NOTIFY_TEST_ROLE"

// appFD is the app's control socket.
const appFD = 3

// waitLimit bounds every wait on another process. It only turns a hang
// into a clear failure; no test asserts how fast anything is.
const waitLimit = 30 * time.Second

func TestMain(m *testing.M) {
	switch role := os.Getenv(roleEnv); role {
	case "":
		os.Exit(m.Run())
	case "app":
		appMain()
	case "holder":
		holderMain()
	default:
		fmt.Fprintf(os.Stderr, "unknown role %q\n", role)
		os.Exit(2)
	}
	os.Exit(0)
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "test child: "+format+"\n", args...)
	os.Exit(3)
}

// command is what the tests ask the app to do; reply is its answer.
type command struct {
	Op      string // open, openptr, unlink, send, receive, getattr, fdflags, close, bench, getppid
	Name    string
	Ptr     uint64 // openptr: a raw name pointer
	Oflag   int
	Attr    *[2]int64 // mq_attr maxmsg, msgsize; nil passes NULL
	AttrPtr uint64    // non-zero: pass this raw attr pointer
	FD      int
	Msg     string
	N       int
}

type reply struct {
	FD    int
	Errno syscall.Errno
	Msg   string
	Attr  mqAttr
	Flags int
	// bench
	P50, P99, Mean time.Duration
}

// appMain is the "app" role.
func appMain() {
	runtime.LockOSThread()
	// Signals the tests send are handled (by Go's runtime, SA_RESTART),
	// not fatal.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGUSR1)
	// The filter: u32 flags, then the BPF.
	buf := make([]byte, 64<<10)
	n, _, err := syscalls.RecvMsg(appFD, buf, 0)
	if err != nil || n < 4 {
		die("receiving the filter: %v (%d bytes)", err, n)
	}
	flags := uint(binary.LittleEndian.Uint32(buf))
	if err := syscalls.SetNoNewPrivs(); err != nil {
		die("%v", err)
	}
	l, err := syscalls.SetSeccompFilterListener(buf[4:n], flags)
	if err != nil {
		die("installing the filter: %v", err)
	}
	if err := syscalls.SendMsg(appFD, []byte("L"), []int{l}); err != nil {
		die("sending the listener: %v", err)
	}
	syscall.Close(l)
	for {
		n, _, err := syscalls.RecvMsg(appFD, buf, 0)
		if err != nil {
			die("receiving a command: %v", err)
		}
		if n == 0 {
			return // the test is done with us
		}
		var c command
		if err := json.Unmarshal(buf[:n], &c); err != nil {
			die("command %q: %v", buf[:n], err)
		}
		r := appDo(c)
		out, _ := json.Marshal(r)
		if err := syscalls.SendMsg(appFD, out, nil); err != nil {
			die("replying: %v", err)
		}
	}
}

func appDo(c command) reply {
	var r reply
	var attr *mqAttr
	if c.Attr != nil {
		attr = &mqAttr{MaxMsg: c.Attr[0], MsgSize: c.Attr[1]}
	}
	switch c.Op {
	case "open":
		if c.AttrPtr != 0 {
			r.FD, r.Errno = mqOpenAttrPtr(c.Name, c.Oflag, uintptr(c.AttrPtr))
			break
		}
		r.FD, r.Errno = mqOpenRaw(c.Name, c.Oflag, attr)
	case "openptr":
		r.FD, r.Errno = mqOpenPtr(uintptr(c.Ptr), c.Oflag, attr)
	case "unlink":
		r.Errno = mqUnlinkRaw(c.Name)
	case "send":
		r.Errno = mqSendRaw(c.FD, []byte(c.Msg))
	case "receive":
		var b []byte
		b, r.Errno = mqReceiveRaw(c.FD, c.N)
		r.Msg = string(b)
	case "getattr":
		r.Attr, r.Errno = mqGetAttrRaw(c.FD)
	case "fdflags":
		r.Flags, r.Errno = fdFlags(c.FD)
	case "close":
		_, _, r.Errno = syscall.Syscall(syscall.SYS_CLOSE, uintptr(c.FD), 0, 0)
	case "bench":
		// c.N mq_open round trips of an existing queue, each timed.
		d := make([]time.Duration, c.N)
		total := time.Now()
		for i := range d {
			t0 := time.Now()
			fd, e := mqOpenRaw(c.Name, c.Oflag, nil)
			d[i] = time.Since(t0)
			if e != 0 {
				r.Errno = e
				return r
			}
			syscall.Close(fd)
		}
		r.Mean = time.Since(total) / time.Duration(max(c.N, 1))
		r.P50, r.P99 = percentiles(d)
	case "fillfds":
		// Leave no free descriptor: a limit of 64, all taken.
		lim := syscall.Rlimit{Cur: 64, Max: 64}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			die("setrlimit: %v", err)
		}
		for {
			_, _, e := syscall.Syscall(syscall.SYS_DUP, 0, 0, 0)
			if e != 0 {
				r.Errno = e
				break
			}
		}
	case "getppid":
		t0 := time.Now()
		for range c.N {
			syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
		}
		r.Mean = time.Since(t0) / time.Duration(max(c.N, 1))
	default:
		die("unknown op %q", c.Op)
	}
	return r
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}

// holderMain is the "holder" role: it serves the listener at fd 3 with a
// handler that reports each notification on stdout and never answers.
func holderMain() {
	l, err := NewListener(3)
	if err != nil {
		die("%v", err)
	}
	err = Serve(context.Background(), l, func(ctx context.Context, req *Request) Response {
		fmt.Println("notified")
		select {} // never answer: the test SIGKILLs us
	})
	die("Serve returned: %v", err)
}

// notifyProgram is the filter of the app role: allow everything, notify
// mq_open and mq_unlink.
var notifyProgram = sync.OnceValues(func() (*seccomp.Program, error) {
	return seccomp.Compile(seccomp.WithNotify(nil, "mq_open", "mq_unlink"))
})

// requireNotify skips when the kernel has no seccomp user notification with
// descriptor injection, and when the test cannot make ipc namespaces (the
// app runs in its own, so that only brokered queues are shared).
func requireNotify(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the app runs in its own ipc namespace")
	}
	if _, _, _, err := syscalls.SeccompNotifSizes(); err != nil {
		t.Skipf("seccomp user notification is not available: %v", err)
	}
	if !linuxAtLeast(5, 19) {
		t.Skipf("needs Linux 5.19 (SECCOMP_ADDFD_FLAG_SEND, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV); this is %s", syscalls.KernelRelease())
	}
}

func linuxAtLeast(major, minor int) bool {
	var a, b int
	if _, err := fmt.Sscanf(syscalls.KernelRelease(), "%d.%d", &a, &b); err != nil {
		return false
	}
	return a > major || a == major && b >= minor
}

// app is a running app-role child.
type app struct {
	t    testing.TB
	cmd  *exec.Cmd
	conn *net.UnixConn
	// listener is the child's listener, received by the test.
	listener *Listener
	exited   chan struct{}
}

// startApp starts an app in its own ipc namespace with the notify program
// installed and returns it with its listener.
func startApp(t testing.TB) *app {
	t.Helper()
	prog, err := notifyProgram()
	if err != nil {
		t.Fatalf("compiling the notify program: %v", err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "app-ctl"), os.NewFile(uintptr(fds[1]), "app-ctl-child")
	defer theirs.Close()
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		t.Fatal(err)
	}
	conn := c.(*net.UnixConn)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=app")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	// No Pdeathsig: the app must outlive a dead supervisor to show what
	// its notified syscalls do then.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWIPC}
	if err := cmd.Start(); err != nil {
		conn.Close()
		t.Fatalf("starting the app: %v", err)
	}
	a := &app{t: t, cmd: cmd, conn: conn, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(a.exited) }()
	t.Cleanup(a.stop)

	msg := binary.LittleEndian.AppendUint32(nil, uint32(prog.Flags))
	msg = append(msg, prog.Insns...)
	if _, err := conn.Write(msg); err != nil {
		t.Fatalf("sending the filter: %v", err)
	}
	buf, oob := make([]byte, 16), make([]byte, syscall.CmsgSpace(4))
	_ = conn.SetReadDeadline(time.Now().Add(waitLimit))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil || string(buf[:n]) != "L" {
		t.Fatalf("receiving the listener: %v (%q)", err, buf[:n])
	}
	got := parseRights(t, oob[:oobn])
	if len(got) != 1 {
		t.Fatalf("received %d descriptors with the listener, want 1", len(got))
	}
	l, err := NewListener(got[0])
	if err != nil {
		t.Fatal(err)
	}
	a.listener = l
	return a
}

func parseRights(t testing.TB, oob []byte) []int {
	t.Helper()
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		t.Fatal(err)
	}
	var fds []int
	for _, m := range msgs {
		got, err := syscall.ParseUnixRights(&m)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, got...)
	}
	return fds
}

// send asks the app to do c without waiting for the answer.
func (a *app) send(c command) {
	a.t.Helper()
	b, _ := json.Marshal(c)
	if _, err := a.conn.Write(b); err != nil {
		a.t.Fatalf("sending %s to the app: %v", c.Op, err)
	}
}

// result waits (at most waitLimit) for the answer to the last command sent.
func (a *app) result(what string) reply {
	a.t.Helper()
	buf := make([]byte, 4096)
	_ = a.conn.SetReadDeadline(time.Now().Add(waitLimit))
	n, err := a.conn.Read(buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		a.t.Fatalf("%s: no answer from the app within %v: it is stuck in the syscall", what, waitLimit)
	}
	if err != nil || n == 0 {
		a.t.Fatalf("%s: reading the app's answer: %v (the app died?)", what, err)
	}
	var r reply
	if err := json.Unmarshal(buf[:n], &r); err != nil {
		a.t.Fatalf("%s: answer %q: %v", what, buf[:n], err)
	}
	return r
}

// do runs c in the app and returns its result.
func (a *app) do(c command) reply {
	a.t.Helper()
	a.send(c)
	return a.result(fmt.Sprintf("%s %q", c.Op, c.Name))
}

// kill SIGKILLs the app and waits for it.
func (a *app) kill() {
	a.t.Helper()
	_ = a.cmd.Process.Kill()
	a.waitExit("SIGKILL")
}

// exit lets the app exit (it reads EOF on its control socket) and waits
// for it.
func (a *app) exit() {
	a.t.Helper()
	a.conn.Close()
	a.waitExit("closing its control socket")
}

func (a *app) waitExit(after string) {
	a.t.Helper()
	select {
	case <-a.exited:
	case <-time.After(waitLimit):
		_ = a.cmd.Process.Kill()
		a.t.Fatalf("app pid %d still running %v after %s", a.cmd.Process.Pid, waitLimit, after)
	}
}

func (a *app) stop() {
	a.conn.Close()
	select {
	case <-a.exited:
	case <-time.After(waitLimit):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
	a.listener.Close()
}

// serving is a Serve running in the background.
type serving struct {
	t      testing.TB
	cancel context.CancelFunc
	done   chan error
	err    error
	ended  bool
}

// serve serves the app's listener with s in the background.
func (a *app) serve(s *Server) *serving {
	ctx, cancel := context.WithCancel(context.Background())
	sv := &serving{t: a.t, cancel: cancel, done: make(chan error, 1)}
	go func() { sv.done <- s.Serve(ctx, a.listener) }()
	a.t.Cleanup(func() { sv.stop() })
	return sv
}

// wait waits for Serve to return by itself and returns its error.
func (sv *serving) wait(why string) error {
	sv.t.Helper()
	if !sv.ended {
		select {
		case sv.err = <-sv.done:
			sv.ended = true
		case <-time.After(waitLimit):
			sv.t.Fatalf("Serve did not return %v after %s", waitLimit, why)
		}
	}
	return sv.err
}

// stop ends Serve's context and returns its error.
func (sv *serving) stop() error {
	sv.cancel()
	if !sv.ended {
		select {
		case sv.err = <-sv.done:
			sv.ended = true
		case <-time.After(waitLimit):
			sv.err = fmt.Errorf("Serve did not return %v after its context ended", waitLimit)
		}
	}
	return sv.err
}

// testBroker stands in for the IPC broker (*ipc.Session) behind the MQ
// handler: it makes real kernel queues in the test process's ipc
// namespace (not the app's), named with a per-test prefix, and refuses
// names starting with "secret" as the broker refuses what the grants do
// not allow.
type testBroker struct {
	t      testing.TB
	prefix string

	mu      sync.Mutex
	created []string // kernel names, unlinked at cleanup
	opens   atomic.Int32
	// before, if set, runs in MQOpen after the queue is open (with its
	// descriptor), before it is returned.
	before func(name string, fd int)
}

func newTestBroker(t testing.TB) *testBroker {
	b := &testBroker{t: t, prefix: fmt.Sprintf("pinfold-notify-test-%d-%s-", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "."))}
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, n := range b.created {
			_ = mqUnlinkRaw(n) // may already be unlinked by the app
		}
	})
	return b
}

func (b *testBroker) kernelName(name string) string {
	return b.prefix + strings.ReplaceAll(name, "/", ".")
}

func (b *testBroker) MQOpen(name string, attr ipc.MQAttr, access ipc.Access, flags ipc.MQFlags) (int, ipc.MQAttr, bool, error) {
	b.opens.Add(1)
	if strings.HasPrefix(name, "secret") {
		return -1, ipc.MQAttr{}, false, &ipc.Error{Op: "mq_open", Name: name, Errno: syscall.EPERM, Reason: "not granted by the test policy"}
	}
	oflag := map[ipc.Access]int{ipc.Read: syscall.O_RDONLY, ipc.Write: syscall.O_WRONLY, ipc.ReadWrite: syscall.O_RDWR}[access]
	if flags&ipc.MQNonblock != 0 {
		oflag |= syscall.O_NONBLOCK
	}
	kname := b.kernelName(name)
	created := false
	fd, e := -1, syscall.Errno(0)
	if attr != (ipc.MQAttr{}) {
		fd, e = mqOpenRaw(kname, oflag|syscall.O_CREAT|syscall.O_EXCL, &mqAttr{MaxMsg: attr.MaxMsg, MsgSize: attr.MsgSize})
		created = e == 0
		if e == syscall.EEXIST && flags&ipc.MQExclusive == 0 {
			fd, e = mqOpenRaw(kname, oflag, nil)
		}
	} else {
		fd, e = mqOpenRaw(kname, oflag, nil)
	}
	if e != 0 {
		return -1, ipc.MQAttr{}, false, &ipc.Error{Op: "mq_open", Name: name, Errno: e, Reason: e.Error()}
	}
	if created {
		b.mu.Lock()
		b.created = append(b.created, kname)
		b.mu.Unlock()
	}
	got, _ := mqGetAttrRaw(fd)
	if b.before != nil {
		b.before(name, fd)
	}
	return fd, ipc.MQAttr{MaxMsg: got.MaxMsg, MsgSize: got.MsgSize}, created, nil
}

func (b *testBroker) Unlink(name string) error {
	if strings.HasPrefix(name, "secret") {
		return &ipc.Error{Op: "unlink", Name: name, Errno: syscall.EPERM, Reason: "not granted by the test policy"}
	}
	if e := mqUnlinkRaw(b.kernelName(name)); e != 0 {
		return &ipc.Error{Op: "unlink", Name: name, Errno: e, Reason: e.Error()}
	}
	return nil
}

// openFDs counts the test process's open descriptors.
func openFDs(t testing.TB) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(des) - 1 // the directory being read
}
