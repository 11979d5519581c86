package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/client"
	"github.com/pinfold/pinfold/syscalls/server"
	"github.com/pinfold/pinfold/syscalls/server/servertest"
)

func TestMain(m *testing.M) {
	before := countFDs()
	code := m.Run()
	if code == 0 {
		if after := countFDs(); after != before {
			// The runtime's poller descriptors may appear during the
			// tests; anything beyond them is a leak.
			if after > before+3 {
				fmt.Fprintf(os.Stderr, "descriptor leak: %d open before the tests, %d after\n", before, after)
				code = 1
			}
		}
	}
	os.Exit(code)
}

func countFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		panic(err)
	}
	return len(ents)
}

// connect serves a fresh channel with sess and returns a Client on it.
// Cleanup closes the client and waits for the server.
func connect(t testing.TB, sess *servertest.Session) *client.Client {
	t.Helper()
	if sess == nil {
		sess = servertest.New("app1", "consumer")
	}
	app, srv, err := syscalls.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- server.Serve(context.Background(), srv, sess, server.Options{}) }()
	c, err := client.New(app)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		sess.Close()
	})
	return c
}

func TestCalls(t *testing.T) {
	sess := servertest.New("app1", "consumer")
	c := connect(t, sess)
	if err := c.Nop(); err != nil {
		t.Fatal(err)
	}
	self, err := c.Self()
	if err != nil || self != (client.Self{App: "app1", Policy: "consumer", MaxObjects: 64, MaxBytes: 1 << 20}) {
		t.Fatalf("Self = %+v, %v", self, err)
	}

	f, err := c.ShmCreate("results/1", 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("from the creator"), 10); err != nil {
		t.Fatal(err)
	}
	ro, size, err := c.ShmAttach("results/1", ipc.Read)
	if err != nil || size != 8192 {
		t.Fatalf("ShmAttach = %d, %v", size, err)
	}
	defer ro.Close()
	buf := make([]byte, 16)
	if _, err := ro.ReadAt(buf, 10); err != nil || string(buf) != "from the creator" {
		t.Fatalf("read %q, %v", buf, err)
	}

	w, err := c.PipeOpen("pipe", ipc.Write)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.PipeOpen("pipe", ipc.Read)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fmt.Fprint(w, "through the pipe")
	w.Close()
	pbuf := make([]byte, 16)
	if _, err := io.ReadFull(r, pbuf); err != nil || string(pbuf) != "through the pipe" {
		t.Fatalf("pipe read %q, %v", pbuf, err)
	}

	reg, size, created, err := c.RegionMap("region", 4096, ipc.ReadWrite)
	if err != nil || size != 4096 || !created {
		t.Fatalf("RegionMap = %d %v %v", size, created, err)
	}
	reg.Close()

	q, attr, err := c.MQOpen("queue", 8, 128, ipc.ReadWrite, 0)
	if err != nil || attr != (ipc.MQAttr{MaxMsg: 8, MsgSize: 128}) {
		t.Fatalf("MQOpen = %+v, %v", attr, err)
	}
	mq := client.NewMQ(q, attr)
	defer mq.Close()
	if err := mq.Send([]byte("hello"), 1, time.Time{}); err != nil {
		t.Fatal(err)
	}
	msg, prio, err := mq.Receive(nil, time.Now().Add(10*time.Second))
	if err != nil || string(msg) != "hello" || prio != 1 {
		t.Fatalf("Receive = %q %d %v", msg, prio, err)
	}

	o, err := c.Stat("results/1")
	if err != nil || o.Name != "results/1" || o.Kind != ipc.Shm || o.Size != 8192 || o.Owner != "app1" ||
		o.OwnerPolicy != "consumer" || o.Holders != 2 || o.Created.IsZero() {
		t.Fatalf("Stat = %+v, %v", o, err)
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range list {
		names = append(names, o.Name+":"+o.Kind.String())
	}
	if got := strings.Join(names, " "); got != "pipe:pipe queue:mq region:region results/1:shm" {
		t.Fatalf("List = %s", got)
	}
	if err := c.Unlink("results/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat("results/1"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("Stat after Unlink: %v", err)
	}
}

func TestErrors(t *testing.T) {
	sess := servertest.New("app1", "consumer")
	c := connect(t, sess)
	f, err := c.ShmCreate("private/x", 4096)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, _, err = c.ShmAttach("private/x", ipc.ReadWrite)
	var e *client.Error
	if !errors.As(err, &e) || !errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOENT) {
		t.Fatalf("ShmAttach = %#v", err)
	}
	want := "pinfold shm_attach private/x: EPERM: not granted: no attach grant of policy consumer matches shm private/x with access readwrite"
	if err.Error() != want || e.Call != "shm_attach" || e.Name != "private/x" || e.Errno != syscall.EPERM {
		t.Fatalf("error %q (%+v)\nwant %q", err, e, want)
	}
	for _, tc := range []struct {
		err   error
		errno syscall.Errno
	}{
		{func() error { _, err := c.Stat("nothing"); return err }(), syscall.ENOENT},
		{func() error { _, err := c.ShmCreate("private/x", 1); return err }(), syscall.EEXIST},
		{func() error { _, err := c.ShmCreate("huge", 1<<30); return err }(), syscall.E2BIG},
		{func() error { _, err := c.PipeOpen("p", ipc.ReadWrite); return err }(), syscall.EINVAL},
		{func() error { _, err := c.Stat(strings.Repeat("n", 300)); return err }(), syscall.ENAMETOOLONG},
		{func() error { _, err := c.Stat("bad name"); return err }(), syscall.EINVAL},
	} {
		if !errors.Is(tc.err, tc.errno) {
			t.Errorf("got %v, want %s", tc.err, abi.Errno(tc.errno).Name())
		}
	}
}

func TestBatch(t *testing.T) {
	c := connect(t, nil)
	b := c.Batch()
	b.ShmCreate("a", 4096)
	b.Stat("a")
	b.Stat("missing")
	b.PipeOpen("p", ipc.Read)
	b.Self()
	b.List(0)
	res, err := b.Do()
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 6 || b.Len() != 0 {
		t.Fatalf("%d results, %d calls left", len(res), b.Len())
	}
	defer res[0].File.Close()
	defer res[3].File.Close()
	if res[0].Err != nil || res[0].File == nil || res[0].Size != 4096 {
		t.Fatalf("shm_create: %v", res[0])
	}
	if res[1].Err != nil || res[1].Object.Size != 4096 || res[1].Object.Kind != ipc.Shm {
		t.Fatalf("stat: %+v", res[1])
	}
	if !errors.Is(res[2].Err, syscall.ENOENT) || res[2].Name != "missing" || res[2].Call != "stat" {
		t.Fatalf("stat missing: %+v", res[2])
	}
	if st, err := res[3].File.Stat(); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("pipe_open: %v %v", st, err)
	}
	if res[4].Self.Objects != 2 || res[5].Total != 2 || len(res[5].Objects) != 2 {
		t.Fatalf("self %+v, list %+v", res[4].Self, res[5])
	}

	// Stop at the first failure.
	b.StopOnError = true
	b.Stat("missing")
	b.ShmCreate("never", 4096)
	res, err = b.Do()
	if err != nil || !errors.Is(res[0].Err, syscall.ENOENT) || !errors.Is(res[1].Err, syscall.ECANCELED) {
		t.Fatalf("stop on error: %v %v", res, err)
	}
	if _, err := c.Stat("never"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("a cancelled call ran: %v", err)
	}

	// More than MaxBatch calls take several round trips; a failure in
	// the first stops the rest.
	for i := range abi.MaxBatch + 10 {
		b.Stat("a")
		if i == 3 {
			b.Stat("missing")
		}
	}
	res, err = b.Do()
	if err != nil || len(res) != abi.MaxBatch+11 {
		t.Fatalf("%d results, %v", len(res), err)
	}
	for i, r := range res {
		want := syscall.ECANCELED
		switch {
		case i < 4:
			want = 0
		case i == 4:
			want = syscall.ENOENT
		}
		if (want == 0 && r.Err != nil) || (want != 0 && !errors.Is(r.Err, want)) {
			t.Fatalf("result %d: %v, want %v", i, r.Err, want)
		}
	}
	b.StopOnError = false
	for range 2*abi.MaxBatch + 1 {
		b.Nop()
	}
	res, err = b.Do()
	if err != nil || len(res) != 2*abi.MaxBatch+1 || failedAny(res) {
		t.Fatalf("%d results, %v", len(res), err)
	}
}

func failedAny(rs []client.Result) bool {
	for _, r := range rs {
		if r.Err != nil {
			return true
		}
	}
	return false
}

func TestListPages(t *testing.T) {
	sess := servertest.New("app1", "consumer")
	sess.MaxObjects = 1000
	sess.MaxBytes = 1 << 40
	c := connect(t, sess)
	const n = 700
	for i := range n {
		f, err := c.ShmCreate(fmt.Sprintf("obj/%04d/%s", i, strings.Repeat("x", 180)), 1)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	list, err := c.List()
	if err != nil || len(list) != n {
		t.Fatalf("List: %d objects, %v", len(list), err)
	}
	for i, o := range list {
		if !strings.HasPrefix(o.Name, fmt.Sprintf("obj/%04d/", i)) {
			t.Fatalf("object %d is %s", i, o.Name)
		}
	}
}

func TestMQ(t *testing.T) {
	c := connect(t, nil)
	f, attr, err := c.MQOpen("q", 2, 16, ipc.ReadWrite, ipc.MQNonblock)
	if err != nil {
		t.Fatal(err)
	}
	q := client.NewMQ(f, attr)
	defer q.Close()
	if _, _, err := q.Receive(nil, time.Time{}); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("receive on an empty nonblocking queue: %v, want EAGAIN", err)
	}
	if err := q.Send(make([]byte, 17), 0, time.Time{}); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("oversized send: %v, want EMSGSIZE", err)
	}
	for i := range 2 {
		if err := q.Send([]byte{byte(i)}, uint(i), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Send([]byte("x"), 0, time.Time{}); !errors.Is(err, syscall.EAGAIN) {
		t.Fatalf("send on a full nonblocking queue: %v, want EAGAIN", err)
	}
	// Highest priority first.
	if msg, prio, err := q.Receive(make([]byte, 16), time.Time{}); err != nil || prio != 1 || msg[0] != 1 {
		t.Fatalf("receive: %v %d %v", msg, prio, err)
	}
	if _, _, err := q.Receive(make([]byte, 8), time.Time{}); !errors.Is(err, syscall.EMSGSIZE) {
		t.Fatalf("receive into a short buffer: %v, want EMSGSIZE", err)
	}

	// A blocking queue waits until the deadline.
	bf, battr, err := c.MQOpen("blocking", 1, 8, ipc.ReadWrite, 0)
	if err != nil {
		t.Fatal(err)
	}
	bq := client.NewMQ(bf, battr)
	defer bq.Close()
	if _, _, err := bq.Receive(nil, time.Now().Add(20*time.Millisecond)); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("receive past the deadline: %v, want ETIMEDOUT", err)
	}
	if _, _, err := bq.Receive(nil, time.Unix(0, 0)); !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("receive with a past deadline: %v, want ETIMEDOUT", err)
	}
	got := make(chan string, 1)
	go func() {
		msg, _, err := bq.Receive(nil, time.Time{})
		if err != nil {
			got <- err.Error()
			return
		}
		got <- string(msg)
	}()
	if err := bq.Send([]byte("wake up"), 0, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "wake up" {
		t.Fatalf("blocked receive got %q", m)
	}
}

func TestConcurrentUse(t *testing.T) {
	c := connect(t, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				name := fmt.Sprintf("g%d/%d", g, i%4)
				f, err := c.ShmCreate(name, 4096)
				if err != nil {
					t.Error(err)
					return
				}
				f.Close()
				if o, err := c.Stat(name); err != nil || o.Name != name {
					t.Errorf("Stat(%s) = %+v, %v", name, o, err)
					return
				}
				if err := c.Unlink(name); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestClosed(t *testing.T) {
	app, srv, err := syscalls.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	sess := servertest.New("app1", "pol")
	defer sess.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Serve(ctx, srv, sess, server.Options{}) }()
	c, err := client.New(app)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Nop(); err != nil {
		t.Fatal(err)
	}
	cancel()
	<-done
	if err := c.Nop(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Nop after pinfold closed the channel: %v, want ErrClosed", err)
	}
	c.Close()
	if err := c.Nop(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Nop after Close: %v, want ErrClosed", err)
	}
}

// TestBadReplies answers the client with replies that do not match its
// request: it reports ErrProtocol and closes any descriptors that came.
func TestBadReplies(t *testing.T) {
	reply := func(t *testing.T, build func(req *abi.Request) []byte, withFD bool) error {
		app, srv, err := syscalls.SeqpacketPair()
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.New(app)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		served := make(chan struct{})
		defer func() { <-served; srv.Close() }()
		go func() {
			defer close(served)
			buf := make([]byte, abi.MaxMessage)
			n, _, err := syscalls.RecvMsg(int(srv.Fd()), buf, 0)
			if err != nil {
				return
			}
			var req abi.Request
			if err := abi.DecodeRequest(buf[:n], &req); err != nil {
				return
			}
			var fds []int
			if withFD {
				fds = []int{int(os.Stdin.Fd())}
			}
			syscalls.SendMsg(int(srv.Fd()), build(&req), fds)
		}()
		_, _, err = c.ShmAttach("x", ipc.Read)
		return err
	}
	reply1 := func(r abi.Result) func(req *abi.Request) []byte {
		return func(req *abi.Request) []byte {
			if r.ID == 0 {
				r.ID = req.Calls[0].ID
			}
			msg, err := abi.AppendReply(nil, &abi.Reply{Results: []abi.Result{r}})
			if err != nil {
				panic(err)
			}
			return msg
		}
	}
	size := []abi.Value{abi.U64Value(1)}
	for name, tc := range map[string]struct {
		build  func(req *abi.Request) []byte
		withFD bool
	}{
		"garbage":          {func(*abi.Request) []byte { return []byte("garbage") }, false},
		"wrong id":         {reply1(abi.Result{ID: 99, Sysno: abi.SysShmAttach, NFDs: 1, Values: size}), true},
		"wrong sysno":      {reply1(abi.Result{Sysno: abi.SysStat, NFDs: 1, Values: size}), true},
		"missing fd":       {reply1(abi.Result{Sysno: abi.SysShmAttach, NFDs: 1, Values: size}), false},
		"fd not announced": {reply1(abi.Result{Sysno: abi.SysShmAttach, Values: size}), true},
		"wrong values":     {reply1(abi.Result{Sysno: abi.SysShmAttach, NFDs: 1, Values: []abi.Value{abi.StringValue("x")}}), true},
		"error with fd":    {func(*abi.Request) []byte { return abi.AppendErrorReply(nil, abi.EPERM, "no") }, true},
	} {
		t.Run(name, func(t *testing.T) {
			before := countFDs()
			if err := reply(t, tc.build, tc.withFD); !errors.Is(err, client.ErrProtocol) {
				t.Fatalf("got %v, want ErrProtocol", err)
			}
			if after := countFDs(); after > before {
				t.Fatalf("%d descriptors before, %d after: the client kept one", before, after)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	t.Setenv(client.CtlFDEnv, "")
	os.Unsetenv(client.CtlFDEnv)
	if _, err := client.FromEnv(); !errors.Is(err, client.ErrNotUnderPinfold) ||
		err.Error() != "not running under pinfold: PINFOLD_CTL_FD is not set" {
		t.Fatalf("unset: %v", err)
	}
	for _, v := range []string{"x", "-1", "07", " 7", "99999"} {
		t.Setenv(client.CtlFDEnv, v)
		if _, err := client.FromEnv(); err == nil {
			t.Fatalf("PINFOLD_CTL_FD=%q accepted", v)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	t.Setenv(client.CtlFDEnv, strconv.Itoa(int(r.Fd())))
	if _, err := client.FromEnv(); err == nil || !strings.Contains(err.Error(), "not a pinfold control channel") {
		t.Fatalf("a pipe: %v", err)
	}

	app, srv, err := syscalls.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	sess := servertest.New("app1", "pol")
	defer sess.Close()
	done := make(chan error, 1)
	go func() { done <- server.Serve(context.Background(), srv, sess, server.Options{}) }()
	fd, err := syscalls.DupCloexec(int(app.Fd()))
	app.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscalls.SetCloexec(fd, false); err != nil {
		t.Fatal(err)
	}
	t.Setenv(client.CtlFDEnv, strconv.Itoa(fd))
	c, err := client.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if self, err := c.Self(); err != nil || self.App != "app1" {
		t.Fatalf("Self = %+v, %v", self, err)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestChannels(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "chan")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Setenv(client.FDsEnv, "")
	if m, err := client.Channels(); err != nil || len(m) != 0 {
		t.Fatalf("empty: %v %v", m, err)
	}
	fd, err := syscalls.DupCloexec(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(client.FDsEnv, "results/in:"+strconv.Itoa(fd))
	m, err := client.Channels()
	if err != nil || len(m) != 1 || m["results/in"] == nil {
		t.Fatalf("Channels = %v, %v", m, err)
	}
	m["results/in"].Close()
	// A descriptor that is not open is an error (Channels must not wrap,
	// and later close, whatever gets that number).
	t.Setenv(client.FDsEnv, "results/in:999999")
	if _, err := client.Channels(); err == nil || !strings.Contains(err.Error(), "not open") {
		t.Fatalf("closed descriptor: %v", err)
	}
}

func TestParseChannels(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]int
		err  string
	}{
		{"", map[string]int{}, ""},
		{"a:3", map[string]int{"a": 3}, ""},
		{"jobs/in:3,jobs/out:4,q:10", map[string]int{"jobs/in": 3, "jobs/out": 4, "q": 10}, ""},
		{"a", nil, "is not name:fd"},
		{"a:", nil, "is not a descriptor number"},
		{":3", nil, "empty object name"},
		{"a:3,", nil, "entry 2"},
		{"a:-3", nil, "is not a descriptor number"},
		{"a:+3", nil, "is not a descriptor number"},
		{"a:03", nil, "is not a descriptor number"},
		{"a:3:4", nil, "is not a descriptor number"},
		{"a b:3", nil, "has the character"},
		{"a:3,a:4", nil, "lists channel a twice"},
		{"a:3,b:3", nil, "lists descriptor 3 for both a and b"},
		{"a:99999999999999999999", nil, "is not a descriptor number"},
	} {
		got, err := client.ParseChannels(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseChannels(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ParseChannels(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// FuzzParseChannels checks that ParseChannels never panics and that what
// it accepts round-trips through ipc.FDsEnv, the format pinfold writes.
func FuzzParseChannels(f *testing.F) {
	for _, s := range []string{"", "a:3", "jobs/in:3,jobs/out:4", "a:3,a:4", "a:03", ":", ",", "a:3,,b:4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := client.ParseChannels(s)
		if err != nil {
			return
		}
		var names []string
		var fds []int
		for n, fd := range m {
			if ipc.ValidName(n) != nil || fd < 0 {
				t.Fatalf("accepted %q -> %q:%d", s, n, fd)
			}
			names = append(names, n)
			fds = append(fds, fd)
		}
		again, err := client.ParseChannels(ipc.FDsEnv(names, fds))
		if err != nil || fmt.Sprint(again) != fmt.Sprint(m) {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
	})
}

// BenchmarkNop is a nop through the Go client and the server, both in this
// process (see syscalls/server's benchmarks for the cross-process figures).
func BenchmarkNop(b *testing.B) {
	c := connect(b, nil)
	b.ReportAllocs()
	for range b.N {
		if err := c.Nop(); err != nil {
			b.Fatal(err)
		}
	}
}
