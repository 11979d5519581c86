package ipc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pinfold/pinfold/syscalls"
)

// The test binary plays other processes when PINFOLD_IPC_ROLE is set:
//
//	reopen   an app handed read-only descriptors (fd 3..): as uid 65534, or
//	         as uid 0 without capabilities, it tries to get more access.
//	mqpeer   an app in its own ipc namespace: sends on fd 3, receives on fd 4.
//	mqlist   lists the queues of its (the host's) ipc namespace.
//	toucher  an app in a test memory cgroup that touches memory it was
//	         handed, on command.
const roleEnv = "PINFOLD_IPC_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		runtime.LockOSThread()
		var err error
		switch role {
		case "reopen":
			err = roleReopen(os.Getenv("PINFOLD_IPC_CRED"), os.Getenv("PINFOLD_IPC_FDS"))
		case "mqpeer":
			err = roleMQPeer()
		case "mqlist":
			err = roleMQList()
		case "toucher":
			err = roleToucher()
		default:
			err = fmt.Errorf("unknown role %q", role)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "role", role+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// roleReopen drops to cred ("uid65534" or "root-nocaps") on this locked
// thread, then, for each "fd:kind" in fds (descriptors handed out
// read-only), checks that the kernel refuses every way to write.
func roleReopen(cred, fds string) error {
	switch cred {
	case "uid65534":
		if err := syscalls.SetResGID(65534); err != nil {
			return err
		}
		if err := syscalls.SetResUID(65534); err != nil {
			return err
		}
	case "root-nocaps":
		if err := syscalls.SetCaps(nil); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown cred %q", cred)
	}
	st, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return err
	}
	if !strings.Contains(string(st), "CapEff:\t0000000000000000") {
		return errors.New("capabilities were not dropped")
	}
	for f := range strings.SplitSeq(fds, ",") {
		fdStr, kind, _ := strings.Cut(f, ":")
		fd, _ := strconv.Atoi(fdStr)
		link := "/proc/self/fd/" + fdStr
		for _, mode := range []int{syscall.O_RDWR, syscall.O_WRONLY} {
			nfd, err := syscall.Open(link, mode|syscall.O_CLOEXEC, 0)
			if err == nil {
				syscall.Close(nfd)
				return fmt.Errorf("%s fd %d: reopen %s with mode %d succeeded", cred, fd, kind, mode)
			}
			if !errors.Is(err, syscall.EACCES) {
				return fmt.Errorf("%s fd %d: reopen %s with mode %d: %v, want EACCES", cred, fd, kind, mode, err)
			}
		}
		if kind == "shm" || kind == "region" {
			if _, err := syscall.Mmap(fd, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED); !errors.Is(err, syscall.EACCES) {
				return fmt.Errorf("%s fd %d: mmap(PROT_WRITE, MAP_SHARED) of a read-only %s: %v, want EACCES", cred, fd, kind, err)
			}
			if err := syscall.Ftruncate(fd, 1<<20); !errors.Is(err, syscall.EINVAL) {
				return fmt.Errorf("%s fd %d: ftruncate of a read-only %s: %v, want EINVAL", cred, fd, kind, err)
			}
			if _, err := syscall.Write(fd, []byte("x")); !errors.Is(err, syscall.EBADF) {
				return fmt.Errorf("%s fd %d: write to a read-only %s: %v, want EBADF", cred, fd, kind, err)
			}
			m, err := syscall.Mmap(fd, 0, 4096, syscall.PROT_READ, syscall.MAP_SHARED)
			if err != nil {
				return fmt.Errorf("%s fd %d: mmap(PROT_READ) of a read-only %s: %v", cred, fd, kind, err)
			}
			syscall.Munmap(m)
		}
		if kind == "mq" {
			if err := syscalls.MQSend(fd, []byte("x"), 0); !errors.Is(err, syscall.EBADF) {
				return fmt.Errorf("%s fd %d: mq_send on a read-only queue: %v, want EBADF", cred, fd, err)
			}
		}
	}
	return nil
}

// roleMQPeer runs in its own ipc namespace: it sends "from peer" on fd 3
// and prints what it receives on fd 4.
func roleMQPeer() error {
	if err := syscalls.MQSend(3, []byte("from peer"), 7); err != nil {
		return err
	}
	a, err := syscalls.MQGetAttr(4)
	if err != nil {
		return err
	}
	buf := make([]byte, a.MsgSize)
	n, prio, err := syscalls.MQReceive(4, buf)
	if err != nil {
		return err
	}
	fmt.Printf("%s/%d\n", buf[:n], prio)
	return nil
}

// roleMQList runs in a private mount namespace and the host's ipc
// namespace: it mounts an mqueue filesystem and prints its entries.
func roleMQList() error {
	if err := syscalls.MakeRPrivate("/"); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "mqlist")
	if err != nil {
		return err
	}
	defer os.Remove(dir)
	if err := syscall.Mount("mqueue", dir, "mqueue", 0, ""); err != nil {
		return err
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		fmt.Println(e.Name())
	}
	return nil
}

// roleToucher waits for commands on stdin: "shm N" touches N bytes of the
// shared memory at fd 3, "pipe N" writes N bytes to the pipe at fd 4, "mq
// N" sends N messages of the queue's msgsize on fd 5. It answers "ok" on
// stdout after each.
func roleToucher() error {
	var cmd string
	var n int
	for {
		if _, err := fmt.Scan(&cmd, &n); err != nil {
			return nil // stdin closed: done
		}
		switch cmd {
		case "shm":
			m, err := syscall.Mmap(3, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
			if err != nil {
				return err
			}
			for i := 0; i < n; i += 4096 {
				m[i] = 1
			}
			syscall.Munmap(m)
		case "pipe":
			if _, err := syscall.Write(4, make([]byte, n)); err != nil {
				return err
			}
		case "mq":
			a, err := syscalls.MQGetAttr(5)
			if err != nil {
				return err
			}
			for range n {
				if err := syscalls.MQSend(5, make([]byte, a.MsgSize), 0); err != nil {
					return err
				}
			}
		}
		fmt.Println("ok")
	}
}

// roleCmd returns a command that runs this test binary as role, with
// files at fd 3 on.
func roleCmd(t *testing.T, role string, files []*os.File, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{roleEnv + "=" + role}, env...)...)
	cmd.ExtraFiles = files
	cmd.Stderr = new(strings.Builder)
	return cmd
}

// needRoot skips a test on a machine where the broker cannot run at all:
// it needs root's capabilities (CAP_DAC_OVERRIDE to reopen its mode-0
// objects, CAP_SYS_ADMIN for namespaces and mounts).
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the IPC broker needs root (CAP_SYS_ADMIN, CAP_DAC_OVERRIDE); run the tests as root")
	}
}

// recorder collects a broker's events.
type recorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *recorder) add(e Event) {
	r.mu.Lock()
	r.evs = append(r.evs, e)
	r.mu.Unlock()
}

func (r *recorder) events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.evs...)
}

// last returns the last event of kind k, or false.
func (r *recorder) last(k EventKind) (Event, bool) {
	evs := r.events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Kind == k {
			return evs[i], true
		}
	}
	return Event{}, false
}

// newBroker returns a broker that records its events and is closed (and
// checked empty) at the end of the test, with the process's descriptor
// count back where it was.
func newBroker(t *testing.T, opts Options) (*Broker, *recorder) {
	t.Helper()
	needRoot(t)
	before := countFDs(t)
	rec := &recorder{}
	opts.Events = rec.add
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if st := b.Stats(); st.Objects != 0 || st.FDs != 0 || st.Bytes != 0 || st.Sessions != 0 {
			t.Errorf("after Close: %+v", st)
		}
		if after := countFDs(t); after != before {
			t.Errorf("descriptors: %d before the broker, %d after Close", before, after)
		}
	})
	return b, rec
}

func countFDs(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory's own descriptor
}

func join(t *testing.T, b *Broker, id, policy string, g Grants) *Session {
	t.Helper()
	s, err := b.Join(AppInfo{ID: id, Policy: policy, Grants: g})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// closeFD closes a descriptor handed out by the broker.
func closeFD(t testing.TB, fd int) {
	t.Helper()
	if err := syscall.Close(fd); err != nil {
		t.Errorf("close %d: %v", fd, err)
	}
}

func wantErrno(t *testing.T, what string, err error, want syscall.Errno) {
	t.Helper()
	if want == 0 {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return
	}
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Reason == "" {
		t.Fatalf("%s: %v is not an *Error with a reason", what, err)
	}
}
