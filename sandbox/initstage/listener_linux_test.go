package initstage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/notify"
	"github.com/pinfold/pinfold/syscalls/seccomp"
)

// The test binary plays three roles besides the tests: the init stage
// (first argument Arg), the app it execs (roleEnv=app), and a process that
// makes a seccomp listener and sends it on fd 3 (roleEnv=make-listener).
const roleEnv = "PINFOLD_INITSTAGE_TEST_ROLE"

// waitLimit bounds waits on children; it only turns a hang into a failure.
const waitLimit = 30 * time.Second

func init() {
	// The init stage's per-thread settings must be the exec'd app's: keep
	// the main goroutine on the main thread from the start.
	runtime.LockOSThread()
}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		Main() // never returns
	}
	switch os.Getenv(roleEnv) {
	case "app":
		os.Exit(appMain())
	case "make-listener":
		os.Exit(makeListenerMain())
	}
	runtime.UnlockOSThread()
	os.Exit(m.Run())
}

// appMain is the app the init stage execs: it calls mq_unlink, which its
// filter notifies, and prints the errno it got.
func appMain() int {
	name := []byte("pinfold-initstage-test-no-such-queue\x00")
	_, _, e := syscall.Syscall(syscall.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(&name[0])), 0, 0)
	fmt.Println(int(e))
	return 0
}

// makeListenerMain installs a filter with a notification rule for a syscall
// nothing here makes and sends its listener on fd 3, twice (the second a
// copy), for the tests of what the supervisor accepts.
func makeListenerMain() int {
	prog, err := seccomp.Compile(seccomp.WithNotify(nil, "mq_notify"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := syscalls.SetSeccompFilterListener(prog.Insns, prog.Flags)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := syscalls.SendMsg(3, []byte("L"), []int{l, l}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the init stage sets credentials and capabilities")
	}
	if _, _, _, err := syscalls.SeccompNotifSizes(); err != nil {
		t.Skipf("seccomp user notification is not available: %v", err)
	}
}

// realListeners returns two descriptors of one real seccomp listener, made
// by a child process that has exited since.
func realListeners(t *testing.T) (int, int) {
	t.Helper()
	ours, theirs, err := syscalls.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer ours.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=make-listener")
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	err = cmd.Run()
	theirs.Close()
	if err != nil {
		t.Fatalf("listener maker: %v", err)
	}
	buf := make([]byte, 8)
	n, fds, err := syscalls.RecvMsg(int(ours.Fd()), buf, 2)
	if err != nil || n != 1 || len(fds) != 2 {
		t.Fatalf("receiving listeners: %v (%d bytes, %d fds)", err, n, len(fds))
	}
	for _, fd := range fds {
		if !syscalls.IsSeccompListener(fd) {
			t.Fatalf("descriptor %d is not a seccomp listener", fd)
		}
	}
	return fds[0], fds[1]
}

// fakeInit is the init stage's end of a channel, driven by a test.
type fakeInit struct {
	t    *testing.T
	ch   *Channel
	init *os.File
}

func newFakeInit(t *testing.T, wantListener bool) *fakeInit {
	t.Helper()
	parent, child, err := syscalls.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	ch := NewChannel(parent)
	ch.wantListener = wantListener
	t.Cleanup(func() { ch.Close(); child.Close() })
	return &fakeInit{t: t, ch: ch, init: child}
}

func (f *fakeInit) send(msg string, fds ...int) {
	f.t.Helper()
	if err := syscalls.SendMsg(int(f.init.Fd()), []byte(msg), fds); err != nil {
		f.t.Fatal(err)
	}
}

// exec closes the init stage's end, as a successful execve does.
func (f *fakeInit) exec() { f.init.Close() }

// probePipe returns a pipe's read end to send, and a check that every copy
// of it was closed (a write then fails with EPIPE).
func probePipe(t *testing.T) (int, func() bool) {
	t.Helper()
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(p[1]) })
	closed := func() bool {
		_, err := syscall.Write(p[1], []byte{1})
		return errors.Is(err, syscall.EPIPE)
	}
	return p[0], closed
}

func TestWaitExecListenerRefuses(t *testing.T) {
	t.Run("listener not asked for", func(t *testing.T) {
		f := newFakeInit(t, false)
		r, closed := probePipe(t)
		f.send("L", r)
		syscall.Close(r)
		f.exec()
		if l, err := f.ch.WaitExecListener(); err == nil || l != -1 {
			t.Errorf("WaitExecListener = %d, %v; want an error", l, err)
		}
		if !closed() {
			t.Error("the unexpected descriptor was not closed")
		}
	})
	t.Run("not a listener", func(t *testing.T) {
		f := newFakeInit(t, true)
		r, closed := probePipe(t)
		f.send("L", r)
		syscall.Close(r)
		f.exec()
		if l, err := f.ch.WaitExecListener(); err == nil || l != -1 {
			t.Errorf("WaitExecListener = %d, %v; want an error", l, err)
		}
		if !closed() {
			t.Error("the descriptor was not closed")
		}
	})
	t.Run("two descriptors", func(t *testing.T) {
		f := newFakeInit(t, true)
		r1, closed1 := probePipe(t)
		r2, closed2 := probePipe(t)
		f.send("L", r1, r2)
		syscall.Close(r1)
		syscall.Close(r2)
		f.exec()
		if l, err := f.ch.WaitExecListener(); err == nil || l != -1 {
			t.Errorf("WaitExecListener = %d, %v; want an error", l, err)
		}
		if !closed1() || !closed2() {
			t.Error("descriptors were not closed")
		}
	})
	t.Run("EOF without the listener", func(t *testing.T) {
		f := newFakeInit(t, true)
		f.exec()
		if l, err := f.ch.WaitExecListener(); !errors.Is(err, ErrInitDied) || l != -1 {
			t.Errorf("WaitExecListener = %d, %v; want ErrInitDied", l, err)
		}
	})
	t.Run("WaitExec when a listener is asked for", func(t *testing.T) {
		f := newFakeInit(t, true)
		f.exec()
		if err := f.ch.WaitExec(); err == nil {
			t.Error("WaitExec accepted a start that asked for a listener")
		}
	})
	t.Run("no listener asked for, none sent", func(t *testing.T) {
		f := newFakeInit(t, false)
		f.exec()
		if l, err := f.ch.WaitExecListener(); err != nil || l != -1 {
			t.Errorf("WaitExecListener = %d, %v; want -1, nil", l, err)
		}
	})
}

func TestWaitExecListenerRealListener(t *testing.T) {
	requireRoot(t)
	t.Run("one listener", func(t *testing.T) {
		f := newFakeInit(t, true)
		a, b := realListeners(t)
		syscall.Close(b)
		f.send("L", a)
		syscall.Close(a)
		f.exec()
		l, err := f.ch.WaitExecListener()
		if err != nil || l < 0 || !syscalls.IsSeccompListener(l) {
			t.Fatalf("WaitExecListener = %d, %v", l, err)
		}
		syscall.Close(l)
	})
	t.Run("a second listener", func(t *testing.T) {
		f := newFakeInit(t, true)
		a, b := realListeners(t)
		f.send("L", a)
		f.send("L", b)
		syscall.Close(a)
		syscall.Close(b)
		f.exec()
		if l, err := f.ch.WaitExecListener(); err == nil || l != -1 {
			t.Errorf("WaitExecListener = %d, %v; want an error", l, err)
		}
	})
	t.Run("exec failure after the listener", func(t *testing.T) {
		f := newFakeInit(t, true)
		a, b := realListeners(t)
		syscall.Close(b)
		f.send("L", a)
		syscall.Close(a)
		f.send(string(encodeError(StepExec, syscall.ENOENT)))
		f.exec()
		var ie *Error
		if l, err := f.ch.WaitExecListener(); !errors.As(err, &ie) || l != -1 {
			t.Errorf("WaitExecListener = %d, %v; want the exec error", l, err)
		}
	})
}

// startInit runs the real init stage (this binary with Arg) with cfg and
// prog, up to the exec, and returns the channel and the process.
func startInit(t *testing.T, cfg *Config, prog *seccomp.Program, stdout *bytes.Buffer) (*Channel, *exec.Cmd) {
	t.Helper()
	parent, child, err := syscalls.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	ch := NewChannel(parent)
	t.Cleanup(func() { ch.Close() })
	cmd := exec.Command(os.Args[0], Arg)
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stdout, cmd.Stderr = stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	child.Close()
	cfg.SeccompFlags = prog.Flags
	if err := ch.SendGo(cfg, prog.Insns, -1, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.WaitReady(); err != nil {
		t.Fatalf("init stage: %v", err)
	}
	return ch, cmd
}

func appConfig() *Config {
	return &Config{
		Args: []string{os.Args[0], "-test.run=^$"},
		Env:  []string{roleEnv + "=app"},
		Cwd:  "/",
	}
}

// TestInitStageListener runs the real init stage with a program that
// notifies mq_unlink: the supervisor receives the listener before the
// execve and answers the app's call.
func TestInitStageListener(t *testing.T) {
	requireRoot(t)
	prog, err := seccomp.Compile(seccomp.WithNotify(nil, "mq_unlink"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ch, cmd := startInit(t, appConfig(), prog, &out)
	l, err := ch.WaitExecListener()
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("WaitExecListener: %v", err)
	}
	listener, err := notify.NewListener(l)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	var calls int
	served := make(chan error, 1)
	go func() {
		served <- notify.Serve(context.Background(), listener, func(ctx context.Context, req *notify.Request) notify.Response {
			calls++
			return notify.Errno(syscall.EXDEV)
		})
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("app: %v", err)
		}
	case <-time.After(waitLimit):
		_ = cmd.Process.Kill()
		t.Fatalf("app still running after %v", waitLimit)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after the app exited: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Serve still running %v after the app exited", waitLimit)
	}
	if got := strings.TrimSpace(out.String()); got != fmt.Sprint(int(syscall.EXDEV)) || calls != 1 {
		t.Errorf("the app's mq_unlink got errno %s after %d notifications; want %d (the supervisor's answer) after 1", got, calls, int(syscall.EXDEV))
	}
}

// TestInitStageNoListener: a program without notification rules is
// installed without a listener, and none is sent.
func TestInitStageNoListener(t *testing.T) {
	requireRoot(t)
	prog, err := seccomp.Compile(seccomp.Default())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ch, cmd := startInit(t, appConfig(), prog, &out)
	l, err := ch.WaitExecListener()
	if err != nil || l != -1 {
		t.Errorf("WaitExecListener = %d, %v; want -1, nil", l, err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("app: %v", err)
	}
	// Not notified: the kernel's own answer (no such queue).
	if got := strings.TrimSpace(out.String()); got != fmt.Sprint(int(syscall.ENOENT)) {
		t.Errorf("the app's mq_unlink got errno %s, want %d", got, int(syscall.ENOENT))
	}
}
