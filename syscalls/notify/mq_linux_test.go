package notify

import (
	"maps"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pinfold/pinfold/ipc"
)

// The broker's sessions are what the MQ handler serves in pinfold.
var _ MQBroker = (*ipc.Session)(nil)

func TestMQName(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Errno
	}{
		{"jobs", 0},
		{"jobs/42/out.ring", 0}, // broker names may have segments
		{"a-b_c.d", 0},
		{"", syscall.ENOENT},            // mq_open("/")
		{"/jobs", syscall.EACCES},       // mq_open("//jobs")
		{"jobs/", syscall.EACCES},       // the kernel's lookup refuses '/'
		{"a//b", syscall.EACCES},        //
		{".", syscall.EACCES},           //
		{"..", syscall.EACCES},          //
		{"a/../b", syscall.EACCES},      //
		{"a b", syscall.EINVAL},         // a character the broker does not allow
		{"caf\xc3\xa9", syscall.EINVAL}, //
		{strings.Repeat("x", ipc.MaxNameLen), 0},
		{strings.Repeat("x", ipc.MaxNameLen+1), syscall.ENAMETOOLONG},
		{strings.Repeat("x", nameMax+1), syscall.ENAMETOOLONG},
	}
	for _, tt := range tests {
		got, errno := mqName(tt.in)
		if errno != tt.want || (errno == 0 && got != tt.in) {
			t.Errorf("mqName(%q) = %q, %v; want %v", tt.in, got, errno, tt.want)
		}
	}
}

func TestDecodeOflag(t *testing.T) {
	tests := []struct {
		oflag int
		want  mqOpen
		errno syscall.Errno
	}{
		{syscall.O_RDONLY, mqOpen{access: ipc.Read}, 0},
		{syscall.O_WRONLY, mqOpen{access: ipc.Write}, 0},
		{syscall.O_RDWR, mqOpen{access: ipc.ReadWrite}, 0},
		{syscall.O_WRONLY | syscall.O_RDWR, mqOpen{}, syscall.EINVAL},
		{syscall.O_RDWR | syscall.O_CREAT, mqOpen{access: ipc.ReadWrite, create: true}, 0},
		{syscall.O_RDWR | syscall.O_CREAT | syscall.O_EXCL, mqOpen{access: ipc.ReadWrite, create: true, flags: ipc.MQExclusive}, 0},
		{syscall.O_RDWR | syscall.O_EXCL, mqOpen{access: ipc.ReadWrite}, 0}, // O_EXCL without O_CREAT: ignored
		{syscall.O_RDONLY | syscall.O_NONBLOCK, mqOpen{access: ipc.Read, flags: ipc.MQNonblock}, 0},
		{syscall.O_RDONLY | syscall.O_CLOEXEC | syscall.O_TRUNC, mqOpen{access: ipc.Read}, 0}, // ignored, as by the kernel
	}
	for _, tt := range tests {
		got, errno := decodeOflag(tt.oflag)
		if errno != tt.errno || errno == 0 && got != tt.want {
			t.Errorf("decodeOflag(%#o) = %+v, %v; want %+v, %v", tt.oflag, got, errno, tt.want, tt.errno)
		}
	}
}

func FuzzMQName(f *testing.F) {
	for _, s := range []string{"jobs", "a/b", "", ".", "a//b", "a b", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, errno := mqName(s)
		if errno != 0 {
			return
		}
		// What is accepted is a valid broker name, returned unchanged.
		if got != s || ipc.ValidName(s) != nil || len(s) > nameMax {
			t.Fatalf("mqName(%q) accepted %q", s, got)
		}
	})
}

// TestMQ runs an app that knows nothing of pinfold, in its own ipc
// namespace, through the POSIX queue calls it would make, with the MQ
// handler serving its listener.
func TestMQ(t *testing.T) {
	requireNotify(t)
	fdsBefore := openFDs(t)
	a := startApp(t)
	b := newTestBroker(t)
	var mu sync.Mutex
	results := map[Result]int{}
	sv := a.serve(&Server{Handler: (&MQ{Broker: b}).Handle, Observe: func(o Observation) {
		mu.Lock()
		results[o.Result]++
		mu.Unlock()
	}})

	attr := &[2]int64{4, 128}
	r := a.do(command{Op: "open", Name: "jobs", Oflag: syscall.O_RDWR | syscall.O_CREAT, Attr: attr})
	if r.Errno != 0 || r.FD < 0 {
		t.Fatalf("mq_open(jobs, O_CREAT|O_RDWR) = %d, %v", r.FD, r.Errno)
	}
	jobs := r.FD
	if r := a.do(command{Op: "fdflags", FD: jobs}); r.Errno != 0 || r.Flags&syscall.FD_CLOEXEC == 0 {
		t.Errorf("the injected queue descriptor has fd flags %#x, %v; want FD_CLOEXEC, as the kernel's mq_open sets", r.Flags, r.Errno)
	}
	if r := a.do(command{Op: "getattr", FD: jobs}); r.Errno != 0 || r.Attr.MaxMsg != 4 || r.Attr.MsgSize != 128 || r.Attr.Flags != 0 {
		t.Errorf("mq_getattr = %+v, %v; want maxmsg 4, msgsize 128, blocking", r.Attr, r.Errno)
	}

	// A message crosses between the app (own ipc namespace) and a holder
	// of the broker's queue: the queue is the broker's.
	peer, e := mqOpenRaw(b.kernelName("jobs"), syscall.O_RDWR, nil)
	if e != 0 {
		t.Fatalf("opening the broker's queue: %v", e)
	}
	t.Cleanup(func() {
		if peer >= 0 {
			syscall.Close(peer)
		}
	})
	if r := a.do(command{Op: "send", FD: jobs, Msg: "from the app"}); r.Errno != 0 {
		t.Fatalf("mq_send: %v", r.Errno)
	}
	if msg, e := mqReceiveRaw(peer, 128); e != 0 || string(msg) != "from the app" {
		t.Fatalf("the broker's queue holds %q, %v; want the app's message", msg, e)
	}
	if e := mqSendRaw(peer, []byte("to the app")); e != 0 {
		t.Fatal(e)
	}
	if r := a.do(command{Op: "receive", FD: jobs, N: 128}); r.Errno != 0 || r.Msg != "to the app" {
		t.Fatalf("mq_receive = %q, %v", r.Msg, r.Errno)
	}

	errnoCases := []struct {
		what string
		c    command
		want syscall.Errno
	}{
		{"O_EXCL on an existing queue", command{Op: "open", Name: "jobs", Oflag: syscall.O_RDWR | syscall.O_CREAT | syscall.O_EXCL, Attr: attr}, syscall.EEXIST},
		{"attach a missing queue", command{Op: "open", Name: "missing", Oflag: syscall.O_RDONLY}, syscall.ENOENT},
		{"a name the grants refuse", command{Op: "open", Name: "secret", Oflag: syscall.O_RDWR | syscall.O_CREAT, Attr: attr}, syscall.EACCES},
		{"empty name", command{Op: "open", Name: "", Oflag: syscall.O_RDONLY}, syscall.ENOENT},
		{"bad character", command{Op: "open", Name: "a b", Oflag: syscall.O_RDONLY | syscall.O_CREAT}, syscall.EINVAL},
		{"dot-dot segment", command{Op: "open", Name: "a/../b", Oflag: syscall.O_RDONLY}, syscall.EACCES},
		{"name too long", command{Op: "open", Name: strings.Repeat("n", 300), Oflag: syscall.O_RDONLY}, syscall.ENAMETOOLONG},
		{"access mode 3", command{Op: "open", Name: "jobs", Oflag: syscall.O_WRONLY | syscall.O_RDWR}, syscall.EINVAL},
		{"zero maxmsg", command{Op: "open", Name: "zero", Oflag: syscall.O_RDWR | syscall.O_CREAT, Attr: &[2]int64{0, 128}}, syscall.EINVAL},
		{"negative msgsize", command{Op: "open", Name: "zero", Oflag: syscall.O_RDWR | syscall.O_CREAT, Attr: &[2]int64{1, -1}}, syscall.EINVAL},
		{"unmapped name", command{Op: "openptr", Ptr: 8, Oflag: syscall.O_RDONLY}, syscall.EFAULT},
		{"unmapped attr", command{Op: "open", Name: "fault", Oflag: syscall.O_RDWR | syscall.O_CREAT, AttrPtr: 8}, syscall.EFAULT},
	}
	for _, tt := range errnoCases {
		if r := a.do(tt.c); r.Errno != tt.want {
			t.Errorf("%s: mq_open = %d, %v; want %v", tt.what, r.FD, r.Errno, tt.want)
		}
	}

	// O_NONBLOCK and a write-only end of the same queue.
	r = a.do(command{Op: "open", Name: "jobs", Oflag: syscall.O_WRONLY | syscall.O_NONBLOCK})
	if r.Errno != 0 {
		t.Fatalf("mq_open(jobs, O_WRONLY|O_NONBLOCK): %v", r.Errno)
	}
	wo := r.FD
	if r := a.do(command{Op: "getattr", FD: wo}); r.Attr.Flags&syscall.O_NONBLOCK == 0 {
		t.Errorf("mq_getattr flags = %#x, want O_NONBLOCK", r.Attr.Flags)
	}
	if r := a.do(command{Op: "receive", FD: wo, N: 128}); r.Errno != syscall.EBADF {
		t.Errorf("mq_receive on a write-only descriptor: %v, want EBADF", r.Errno)
	}
	for i := range 4 {
		if r := a.do(command{Op: "send", FD: wo, Msg: "x"}); r.Errno != 0 {
			t.Fatalf("send %d: %v", i, r.Errno)
		}
	}
	if r := a.do(command{Op: "send", FD: wo, Msg: "x"}); r.Errno != syscall.EAGAIN {
		t.Errorf("send on a full queue through O_NONBLOCK: %v, want EAGAIN", r.Errno)
	}

	// O_CREAT without attributes: the kernel's defaults.
	r = a.do(command{Op: "open", Name: "fresh", Oflag: syscall.O_RDONLY | syscall.O_CREAT})
	if r.Errno != 0 {
		t.Fatalf("mq_open(fresh, O_CREAT, NULL): %v", r.Errno)
	}
	if r := a.do(command{Op: "getattr", FD: r.FD}); r.Attr.MaxMsg != DefaultMaxMsg || r.Attr.MsgSize != DefaultMsgSize {
		t.Errorf("queue created without attributes has %+v, want %d x %d", r.Attr, DefaultMaxMsg, DefaultMsgSize)
	}

	// mq_unlink.
	if r := a.do(command{Op: "unlink", Name: "jobs"}); r.Errno != 0 {
		t.Fatalf("mq_unlink(jobs): %v", r.Errno)
	}
	if r := a.do(command{Op: "open", Name: "jobs", Oflag: syscall.O_RDONLY}); r.Errno != syscall.ENOENT {
		t.Errorf("mq_open after mq_unlink: %v, want ENOENT", r.Errno)
	}
	if r := a.do(command{Op: "unlink", Name: "jobs"}); r.Errno != syscall.ENOENT {
		t.Errorf("second mq_unlink: %v, want ENOENT", r.Errno)
	}
	if r := a.do(command{Op: "unlink", Name: "secret"}); r.Errno != syscall.EACCES {
		t.Errorf("mq_unlink of a name the grants refuse: %v, want EACCES", r.Errno)
	}
	// The descriptors the app holds still work after the unlink.
	if r := a.do(command{Op: "receive", FD: jobs, N: 128}); r.Errno != 0 || r.Msg != "x" {
		t.Errorf("mq_receive after mq_unlink: %q, %v", r.Msg, r.Errno)
	}

	// The app exits: Serve sees the listener hang up and returns nil.
	a.exit()
	if err := sv.wait("the app exited"); err != nil {
		t.Errorf("Serve after the app exited: %v, want nil", err)
	}
	mu.Lock()
	want := map[Result]int{ResultInjected: 3, ResultValue: 1, ResultErrno: len(errnoCases) + 3}
	if !maps.Equal(results, want) {
		t.Errorf("observed results %v; want %v", results, want)
	}
	mu.Unlock()
	a.listener.Close()
	syscall.Close(peer)
	peer = -1
	if n := openFDs(t); n != fdsBefore {
		t.Errorf("%d descriptors open before the test, %d after", fdsBefore, n)
	}
}
