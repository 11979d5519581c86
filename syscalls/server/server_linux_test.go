package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/server"
	"github.com/pinfold/pinfold/syscalls/server/servertest"
)

// The broker's session is what pinfold serves in production.
var _ server.Session = (*ipc.Session)(nil)

// TestEverySyscall makes each call of the table through a real socketpair
// and checks its results and descriptors against the kernel objects.
func TestEverySyscall(t *testing.T) {
	s := start(t, nil, server.Options{})
	p := s.peer

	ok(t, p.one(abi.SysNop))
	if r := ok(t, p.one(abi.SysSelf)); r.s(0) != "app1" || r.s(1) != "pol" || r.u(2) != 64 || r.u(3) != 1<<20 || r.u(4) != 0 || r.u(5) != 0 {
		t.Fatalf("self = %+v", r.Values)
	}

	// shm_create: a read-write memfd of the size asked.
	shm := ok(t, p.one(abi.SysShmCreate, "shm/a", 4096))
	if shm.u(0) != 4096 || shm.file == nil {
		t.Fatalf("shm_create = %+v", shm)
	}
	if st, err := shm.file.Stat(); err != nil || st.Size() != 4096 {
		t.Fatalf("shm fd: %v, %v", st, err)
	}
	if _, err := shm.file.WriteAt([]byte("hello"), 100); err != nil {
		t.Fatal(err)
	}
	// shm_attach read: the same memory, read-only.
	ro := ok(t, p.one(abi.SysShmAttach, "shm/a", uint64(ipc.Read)))
	got := make([]byte, 5)
	if _, err := ro.file.ReadAt(got, 100); err != nil || string(got) != "hello" || ro.u(0) != 4096 {
		t.Fatalf("read back %q, %v; size %d", got, err, ro.u(0))
	}
	if _, err := ro.file.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("write through a read-only attach: %v, want EBADF", err)
	}

	// pipe_open: both ends of one pipe.
	w := ok(t, p.one(abi.SysPipeOpen, "pipe/p", uint64(ipc.Write)))
	r := ok(t, p.one(abi.SysPipeOpen, "pipe/p", uint64(ipc.Read)))
	if _, err := w.file.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(r.file, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("pipe read %q, %v", buf, err)
	}

	// region_map: created, then attached.
	reg := ok(t, p.one(abi.SysRegionMap, "reg", 8192, uint64(ipc.ReadWrite)))
	if reg.u(0) != 8192 || reg.u(1) != 1 {
		t.Fatalf("region_map create = %+v", reg.Values)
	}
	reg2 := ok(t, p.one(abi.SysRegionMap, "reg", 0, uint64(ipc.Read)))
	if reg2.u(0) != 8192 || reg2.u(1) != 0 {
		t.Fatalf("region_map attach = %+v", reg2.Values)
	}

	// mq_open: a queue that carries a message.
	q := ok(t, p.one(abi.SysMQOpen, "q", 4, 64, uint64(ipc.ReadWrite), 0))
	if q.u(0) != 4 || q.u(1) != 64 || q.u(2) != 1 {
		t.Fatalf("mq_open = %+v", q.Values)
	}
	if err := syscalls.MQTimedSend(int(q.file.Fd()), []byte("msg"), 3, time.Time{}); err != nil {
		t.Fatal(err)
	}
	mbuf := make([]byte, 64)
	n, prio, err := syscalls.MQTimedReceive(int(q.file.Fd()), mbuf, time.Now().Add(10*time.Second))
	if err != nil || string(mbuf[:n]) != "msg" || prio != 3 {
		t.Fatalf("mq receive %q prio %d: %v", mbuf[:n], prio, err)
	}
	qs := ok(t, p.one(abi.SysMQOpen, "q", 0, 0, uint64(ipc.Write), uint64(ipc.MQNonblock)))
	if qs.u(2) != 0 {
		t.Fatal("attaching an mq reported created")
	}

	// stat.
	st := ok(t, p.one(abi.SysStat, "shm/a"))
	if st.u(0) != uint64(ipc.Shm) || st.u(1) != 4096 || st.s(2) != "app1" || st.s(3) != "pol" || st.u(4) != 2 || st.u(5) != 0 || st.u(7) != 0 {
		t.Fatalf("stat = %+v", st.Values)
	}
	if created := time.Unix(0, int64(st.u(6))); created.Before(time.Now().Add(-time.Hour)) || created.After(time.Now().Add(time.Hour)) {
		t.Fatalf("stat created = %v", created)
	}
	if qst := ok(t, p.one(abi.SysStat, "q")); qst.u(0) != uint64(ipc.MQ) || qst.u(7) != 4 || qst.u(8) != 64 {
		t.Fatalf("stat q = %+v", qst.Values)
	}

	// list: sorted, with kinds, sizes and owners.
	l := ok(t, p.one(abi.SysList, 0))
	want := []struct {
		name string
		kind ipc.Kind
		size uint64
	}{{"pipe/p", ipc.Pipe, 64 << 10}, {"q", ipc.MQ, 256}, {"reg", ipc.Region, 8192}, {"shm/a", ipc.Shm, 4096}}
	if l.u(0) != uint64(len(want)) || len(l.Values) != 1+4*len(want) {
		t.Fatalf("list = %+v", l.Values)
	}
	for i, w := range want {
		v := l.Values[1+4*i:]
		if string(v[0].Bytes) != w.name || v[1].U64 != uint64(w.kind) || v[2].U64 != w.size || string(v[3].Bytes) != "app1" {
			t.Fatalf("list object %d = %+v, want %+v", i, v[:4], w)
		}
	}
	if l2 := ok(t, p.one(abi.SysList, 3)); l2.u(0) != 4 || len(l2.Values) != 5 || l2.s(1) != "shm/a" {
		t.Fatalf("list from 3 = %+v", l2.Values)
	}
	if l3 := ok(t, p.one(abi.SysList, ^uint64(0))); l3.u(0) != 4 || len(l3.Values) != 1 {
		t.Fatalf("list from 2^64-1 = %+v", l3.Values)
	}

	// unlink.
	ok(t, p.one(abi.SysUnlink, "shm/a"))
	fails(t, p.one(abi.SysStat, "shm/a"), abi.ENOENT, "no object named shm/a")
	if r := ok(t, p.one(abi.SysSelf)); r.u(4) != 3 {
		t.Fatalf("self after unlink = %+v", r.Values)
	}
}

// TestErrors makes every errno a call can get through the server.
func TestErrors(t *testing.T) {
	sess := servertest.New("app1", "consumer")
	sess.MaxObjects = 3
	sess.MaxSize = 1 << 16
	sess.Fail = map[string]error{"gone": &ipc.Error{Op: "pipe_open", Name: "gone", Errno: syscall.EPIPE, Reason: "the read end of pipe gone is closed"}}
	p := start(t, sess, server.Options{}).peer
	ok(t, p.one(abi.SysShmCreate, "private/x", 4096))
	ok(t, p.one(abi.SysShmCreate, "results/1", 4096))
	long := strings.Repeat("a", ipc.MaxNameLen+1)

	for _, tc := range []struct {
		name   string
		call   call
		errno  abi.Errno
		reason string
	}{
		{"not granted", c(abi.SysShmAttach, "private/x", uint64(ipc.ReadWrite)), abi.EPERM,
			"not granted: no attach grant of policy consumer matches shm private/x with access readwrite"},
		{"no such object", c(abi.SysShmAttach, "results/2", uint64(ipc.Read)), abi.ENOENT, "no shm named results/2"},
		{"exists", c(abi.SysShmCreate, "results/1", 10), abi.EEXIST, "results/1 exists"},
		{"over size", c(abi.SysShmCreate, "big", 1<<17), abi.E2BIG, "over the limit"},
		{"size over int64", c(abi.SysShmCreate, "big", uint64(1)<<63), abi.E2BIG, "too large"},
		{"bad pipe end", c(abi.SysPipeOpen, "p", 3), abi.EINVAL, "pipe_open end must be 1 (read) or 2 (write), not 3"},
		{"bad access", c(abi.SysShmAttach, "results/1", 7), abi.EINVAL, "shm_attach access must be"},
		{"bad mq flags", c(abi.SysMQOpen, "q", 1, 1, 3, 4), abi.EINVAL, "mq_open flags 0x4"},
		{"wrong arg type", c(abi.SysStat, 5), abi.EINVAL, "stat takes (name str); argument 1 (name) is u64"},
		{"missing arg", c(abi.SysShmAttach, "results/1"), abi.EINVAL, "got 1 argument"},
		{"bad name", c(abi.SysStat, "a//b"), abi.EINVAL, "empty segment"},
		{"bad name char", c(abi.SysStat, "a b"), abi.EINVAL, "has the character"},
		{"name too long", c(abi.SysStat, long), abi.ENAMETOOLONG, "longer than 200"},
		{"huge name", c(abi.SysStat, strings.Repeat("a", 60000)), abi.ENAMETOOLONG, "object name of 60000 bytes"},
		{"pipe gone", c(abi.SysPipeOpen, "gone", uint64(ipc.Write)), abi.EPIPE, "the read end of pipe gone is closed"},
		{"unknown sysno", c(99), abi.ENOSYS, "unknown syscall number 99"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fails(t, p.do(0, tc.call)[0], tc.errno, tc.reason)
		})
	}
	t.Run("over quota", func(t *testing.T) {
		ok(t, p.one(abi.SysShmCreate, "third", 4096))
		fails(t, p.one(abi.SysShmCreate, "fourth", 4096), abi.ENOSPC, "over quota")
	})
	t.Run("malformed entry", func(t *testing.T) {
		// The middle entry's value has an unknown type; its neighbours run.
		msg := encode(t, 0, c(abi.SysNop), c(abi.SysStat, "x"), c(abi.SysNop))
		i := bytes.Index(msg, []byte{byte(abi.Bytes), 0, 0, 0, 1, 0, 0, 0, 'x'})
		msg[i] = 9
		r, _ := p.roundTrip(msg)
		if len(r.Results) != 3 || r.Results[0].Errno != 0 || r.Results[1].Errno != abi.EBADMSG || r.Results[2].Errno != 0 {
			t.Fatalf("results %+v", r.Results)
		}
		if r.Results[1].ID != 1001 || r.Results[1].Sysno != abi.SysStat || !strings.Contains(r.Results[1].Reason(), "unknown value type 9") {
			t.Fatalf("malformed entry answered %+v %q", r.Results[1], r.Results[1].Reason())
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		res := p.do(abi.FlagStopOnError, c(abi.SysStat, "nothing"), c(abi.SysNop))
		fails(t, res[0], abi.ENOENT, "no object named nothing")
		fails(t, res[1], abi.ECANCELED, "not executed")
	})
	t.Run("reply too large", func(t *testing.T) {
		// Owners so long that no object fits in the share of the reply a
		// list gets when 63 other lists follow it.
		big := servertest.New(strings.Repeat("o", 3000), "pol")
		bp := start(t, big, server.Options{}).peer
		ok(t, bp.one(abi.SysShmCreate, "a", 10))
		calls := make([]call, abi.MaxBatch)
		for i := range calls {
			calls[i] = c(abi.SysList, 0)
		}
		res := bp.do(0, calls...)
		// The first list's share is too small for an object; lists
		// later in the batch have room (the reserve for the calls after
		// a list shrinks as the batch goes on).
		fails(t, res[0], abi.EMSGSIZE, "no room left in the reply")
		served := 0
		for i, r := range res {
			switch r.Errno {
			case 0:
				if r.u(0) != 1 || len(r.Values) != 5 {
					t.Fatalf("list %d = %d values", i, len(r.Values))
				}
				served++
			case abi.EMSGSIZE:
			default:
				t.Fatalf("list %d: %s", i, r.Errno.Name())
			}
		}
		if served == 0 {
			t.Fatal("no list in the batch had room for an object")
		}
	})
}

// TestProtocolErrors sends messages refused as a whole and checks each
// reply: one entry, id 0, sysno 0, the errno; the channel stays open.
func TestProtocolErrors(t *testing.T) {
	p := start(t, nil, server.Options{}).peer
	nop := encode(t, 0, c(abi.SysNop))
	withLen := func(msg []byte, n uint32) []byte {
		m := append([]byte(nil), msg...)
		binary.LittleEndian.PutUint32(m[8:], n)
		return m
	}
	withCount := func(msg []byte, n uint16) []byte {
		m := append([]byte(nil), msg...)
		binary.LittleEndian.PutUint16(m[4:], n)
		return m
	}
	over := make([]byte, abi.MaxMessage+1)
	copy(over, nop)
	for _, tc := range []struct {
		name  string
		msg   []byte
		errno abi.Errno
	}{
		{"garbage", []byte("\x00\x01garbage that is not a message at all"), abi.EBADMSG},
		{"truncated header", nop[:9], abi.EBADMSG},
		{"one byte", []byte{'P'}, abi.EBADMSG},
		{"empty datagram", nil, abi.EBADMSG},
		{"length says more", withLen(nop, uint32(len(nop)+16)), abi.EBADMSG},
		{"length says less", withLen(nop, uint32(len(nop)-16)), abi.EBADMSG},
		{"count says more", withCount(nop, 2), abi.EBADMSG},
		{"count 0", withCount(nop, 0), abi.EBADMSG},
		{"count 65", withCount(nop, 65), abi.E2BIG},
		{"version 2", append([]byte{'P', 'F', 2}, nop[3:]...), abi.EPROTONOSUPPORT},
		{"reply type", append([]byte{'P', 'F', 1, 2}, nop[4:]...), abi.EBADMSG},
		{"unknown flag", append(append([]byte(nil), nop[:6]...), append([]byte{0x80, 0}, nop[8:]...)...), abi.EINVAL},
		{"64 KiB + 1", over, abi.E2BIG},
		{"exactly 64 KiB, bad", make([]byte, abi.MaxMessage), abi.EBADMSG},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, files := p.roundTrip(tc.msg)
			if len(files) != 0 || !r.IsMessageError() || r.Results[0].Errno != tc.errno || r.Results[0].Reason() == "" {
				t.Fatalf("reply %+v (%q), want a message error %s", r.Results, r.Results[0].Reason(), tc.errno.Name())
			}
			ok(t, p.one(abi.SysNop))
		})
	}
	t.Run("64 KiB batch", func(t *testing.T) {
		// The largest request there is: 64 stats whose names fill the
		// message to exactly MaxMessage bytes.
		// 63 entries of 1024 bytes and one of 1008 fill the 65520 bytes
		// after the header.
		calls := make([]call, abi.MaxBatch)
		for i := range calls {
			calls[i] = c(abi.SysStat, strings.Repeat("n", 1024-abi.RequestEntrySize-abi.ValueHeadSize))
		}
		calls[0] = c(abi.SysStat, strings.Repeat("n", 1008-abi.RequestEntrySize-abi.ValueHeadSize))
		msg := encode(t, 0, calls...)
		if len(msg) != abi.MaxMessage {
			t.Fatalf("message of %d bytes", len(msg))
		}
		for _, r := range p.do(0, calls...) {
			fails(t, r, abi.ENAMETOOLONG, "longer than 200")
		}
	})
}

// TestRequestFDsClosed sends descriptors with requests: pinfold refuses the
// message and closes them at once (the write end of a pipe it got shows
// EOF on the read end once the test closes its own copy).
func TestRequestFDsClosed(t *testing.T) {
	p := start(t, nil, server.Options{})
	for _, n := range []int{1, 3, 100} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			fds := make([]int, n)
			for i := range fds {
				fds[i] = int(w.Fd())
			}
			rep, files := p.peer.roundTrip(encode(t, 0, c(abi.SysNop)), fds...)
			if len(files) != 0 || !rep.IsMessageError() || rep.Results[0].Errno != abi.EINVAL ||
				!strings.Contains(rep.Results[0].Reason(), "file descriptors") {
				t.Fatalf("reply %+v %q", rep.Results, rep.Results[0].Reason())
			}
			w.Close()
			_ = r.SetReadDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.ReadAll(r); err != nil {
				t.Fatalf("the pipe stays open: pinfold kept a descriptor it was sent (%v)", err)
			}
		})
	}
}

// TestBatchFDs checks that descriptors arrive with the right entries.
func TestBatchFDs(t *testing.T) {
	p := start(t, nil, server.Options{}).peer
	res := p.do(0,
		c(abi.SysShmCreate, "a", 4096),
		c(abi.SysNop),
		c(abi.SysStat, "missing"),
		c(abi.SysShmCreate, "b", 8192),
		c(abi.SysPipeOpen, "p", uint64(ipc.Read)),
		c(abi.SysShmAttach, "missing", uint64(ipc.Read)),
		c(abi.SysRegionMap, "r", 12288, uint64(ipc.ReadWrite)),
		c(abi.SysMQOpen, "q", 2, 32, uint64(ipc.Read), 0),
	)
	wantSize := []int64{4096, -1, -1, 8192, 0, -1, 12288, 0}
	for i, r := range res {
		if (r.file != nil) != (wantSize[i] >= 0) {
			t.Fatalf("entry %d: descriptor %v, errno %s", i, r.file, r.Errno.Name())
		}
		if r.file == nil {
			continue
		}
		st, err := r.file.Stat()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i == 4 && st.Mode()&os.ModeNamedPipe == 0:
			t.Fatalf("entry %d: %v is not a pipe", i, st.Mode())
		case i == 7:
			if _, err := syscalls.MQGetAttr(int(r.file.Fd())); err != nil {
				t.Fatalf("entry %d is not a queue: %v", i, err)
			}
		case i != 4 && st.Size() != wantSize[i]:
			t.Fatalf("entry %d: size %d, want %d", i, st.Size(), wantSize[i])
		}
	}
	fails(t, res[2], abi.ENOENT, "missing")
	fails(t, res[5], abi.ENOENT, "missing")
}

// TestStopOnError checks that FlagStopOnError cancels, and does not run,
// the calls after the first failure, and that without it they run.
func TestStopOnError(t *testing.T) {
	p := start(t, nil, server.Options{}).peer
	res := p.do(abi.FlagStopOnError, c(abi.SysNop), c(abi.SysStat, "missing"), c(abi.SysShmCreate, "c", 4096), c(abi.SysNop))
	ok(t, res[0])
	fails(t, res[1], abi.ENOENT, "missing")
	fails(t, res[2], abi.ECANCELED, "not executed")
	fails(t, res[3], abi.ECANCELED, "not executed")
	fails(t, p.one(abi.SysStat, "c"), abi.ENOENT, "no object named c")

	res = p.do(0, c(abi.SysStat, "missing"), c(abi.SysShmCreate, "c", 4096))
	fails(t, res[0], abi.ENOENT, "missing")
	ok(t, res[1])
	ok(t, p.one(abi.SysStat, "c"))
}

// TestMalformedFlood sends 10000 garbage messages: the server answers
// MaxMalformed of them, then closes the channel and returns ErrHostile.
func TestMalformedFlood(t *testing.T) {
	app, srv, err := syscalls.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	sess := servertest.New("app1", "pol")
	defer sess.Close()
	var refused atomic.Int64
	opts := server.Options{Observe: func(s abi.Sysno, e abi.Errno, _ time.Duration) {
		if s == server.MessageRefused && e == abi.EBADMSG {
			refused.Add(1)
		}
	}}
	done := make(chan error, 1)
	go func() { done <- server.Serve(context.Background(), srv, sess, opts) }()
	p := newPeer(t, app)
	defer p.f.Close()

	sent := make(chan error, 1)
	go func() {
		for i := range 10000 {
			if err := p.sendRaw([]byte("garbage")); err != nil {
				sent <- fmt.Errorf("send %d: %w", i, err)
				return
			}
		}
		sent <- nil
	}()
	replies := 0
	for {
		raw, fds, err := p.recvRaw()
		if errors.Is(err, syscall.ECONNRESET) {
			break // the channel ended with requests unread
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) == 0 && len(fds) == 0 {
			break // the channel ended
		}
		replies++
	}
	if err := <-done; !errors.Is(err, server.ErrHostile) {
		t.Fatalf("Serve = %v, want ErrHostile", err)
	}
	// The app may not read every reply: closing a socket with requests
	// unread resets the connection, which can overtake queued replies.
	if n := refused.Load(); n != server.DefaultMaxMalformed || replies > server.DefaultMaxMalformed {
		t.Fatalf("%d messages refused, %d replies read before the channel closed; want %d", n, replies, server.DefaultMaxMalformed)
	}
	if err := <-sent; !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("sender: %v, want EPIPE or ECONNRESET after the channel closed", err)
	}
}

// TestMalformedCountResets checks that a well-formed message in between
// resets the count: an app that errs now and then keeps its channel.
func TestMalformedCountResets(t *testing.T) {
	p := start(t, nil, server.Options{MaxMalformed: 4}).peer
	for range 5 {
		for range 3 {
			if r, _ := p.roundTrip([]byte("junk")); !r.IsMessageError() {
				t.Fatal("junk was not refused")
			}
		}
		ok(t, p.one(abi.SysNop))
	}
}

// TestHangUp checks that Serve returns nil when the app exits, also with a
// request in flight whose reply carries descriptors (they are closed: the
// descriptor count is checked after all tests).
func TestHangUp(t *testing.T) {
	for _, inFlight := range []bool{false, true} {
		t.Run(fmt.Sprint("in flight ", inFlight), func(t *testing.T) {
			app, srv, err := syscalls.SeqpacketPair()
			if err != nil {
				t.Fatal(err)
			}
			sess := servertest.New("app1", "pol")
			defer sess.Close()
			done := make(chan error, 1)
			go func() { done <- server.Serve(context.Background(), srv, sess, server.Options{}) }()
			if inFlight {
				if err := syscalls.SendMsg(int(app.Fd()), encode(t, 0, c(abi.SysShmCreate, "a", 4096), c(abi.SysPipeOpen, "p", 1)), nil); err != nil {
					t.Fatal(err)
				}
			}
			app.Close()
			if err := <-done; err != nil {
				t.Fatalf("Serve = %v, want nil", err)
			}
		})
	}
}

// TestCancel checks that ending the context ends Serve, closing the
// channel.
func TestCancel(t *testing.T) {
	app, srv, err := syscalls.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	sess := servertest.New("app1", "pol")
	defer sess.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Serve(ctx, srv, sess, server.Options{}) }()
	p := newPeer(t, app)
	defer p.f.Close()
	ok(t, p.one(abi.SysNop))
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v, want context.Canceled", err)
	}
	if raw, fds, err := p.recvRaw(); err != nil || len(raw) != 0 || len(fds) != 0 {
		t.Fatalf("after cancel the app reads %d bytes, %v; want the end of the channel", len(raw), err)
	}
}

// TestIdleHoldsNoBuffer serves many idle apps and checks that none holds a
// message buffer and that each costs far less memory than one.
func TestIdleHoldsNoBuffer(t *testing.T) {
	const apps = 300
	sess := servertest.New("app1", "pol")
	defer sess.Close()
	msg := encode(t, 0, c(abi.SysNop))
	buf := make([]byte, abi.MaxMessage)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	ends := make([]*os.File, apps)
	done := make(chan error, apps)
	for i := range ends {
		app, srv, err := syscalls.SeqpacketPair()
		if err != nil {
			t.Fatal(err)
		}
		ends[i] = app
		go func() { done <- server.Serve(context.Background(), srv, sess, server.Options{}) }()
		// Each app has been served a message, with the test's one buffer.
		if err := syscalls.SendMsg(int(app.Fd()), msg, nil); err != nil {
			t.Fatal(err)
		}
		if n, _, err := syscalls.RecvMsg(int(app.Fd()), buf, 0); err != nil || n == 0 {
			t.Fatalf("reply: %d bytes, %v", n, err)
		}
	}
	waitIdle(t) // pool accounting: no server holds a buffer
	runtime.GC()
	runtime.ReadMemStats(&ms)
	perApp := (int64(ms.HeapInuse) - int64(before)) / apps
	t.Logf("heap in use per idle app: %d bytes", perApp)
	if !raceEnabled && perApp > 16<<10 { // the race detector adds its own per-goroutine memory
		t.Fatalf("each idle app holds %d bytes of heap; a message buffer is %d", perApp, abi.MaxMessage)
	}
	for _, app := range ends {
		app.Close()
	}
	for range apps {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestObserve checks the per-call hook: one call per entry, with the
// errno, and MessageRefused for a message refused as a whole.
func TestObserve(t *testing.T) {
	type obs struct {
		sysno abi.Sysno
		errno abi.Errno
	}
	var mu sync.Mutex
	var got []obs
	p := start(t, nil, server.Options{Observe: func(s abi.Sysno, e abi.Errno, d time.Duration) {
		if d < 0 {
			t.Errorf("negative duration %v", d)
		}
		mu.Lock()
		got = append(got, obs{s, e})
		mu.Unlock()
	}}).peer
	p.do(abi.FlagStopOnError, c(abi.SysNop), c(abi.SysStat, "missing"), c(abi.SysNop))
	p.roundTrip([]byte("junk"))
	mu.Lock()
	defer mu.Unlock()
	want := []obs{{abi.SysNop, 0}, {abi.SysStat, abi.ENOENT}, {abi.SysNop, abi.ECANCELED}, {server.MessageRefused, abi.EBADMSG}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("observed %v, want %v", got, want)
	}
}

// TestRoundTripAllocs checks that a nop round trip allocates nothing, in
// the server or in a client that reuses its buffers.
func TestRoundTripAllocs(t *testing.T) {
	p := start(t, nil, server.Options{Observe: func(abi.Sysno, abi.Errno, time.Duration) {}}).peer
	msg := encode(t, 0, c(abi.SysNop))
	var rep abi.Reply
	roundTrip := func() {
		if err := p.sendRaw(msg); err != nil {
			t.Fatal(err)
		}
		raw, _, err := p.recvRaw()
		if err != nil {
			t.Fatal(err)
		}
		if err := abi.DecodeReply(raw, &rep); err != nil || rep.Results[0].Errno != 0 {
			t.Fatal(err)
		}
	}
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	roundTrip()
	if allocs := testing.AllocsPerRun(1000, roundTrip); allocs > 0 {
		t.Fatalf("%v allocations per nop round trip, want 0", allocs)
	}
}

// TestListPaging lists more objects than one reply holds: every page
// fits in a message and paging by offset visits each object once, in order.
func TestListPaging(t *testing.T) {
	sess := servertest.New("app1", "pol")
	sess.MaxObjects = 2000
	sess.MaxBytes = 1 << 40
	p := start(t, sess, server.Options{}).peer
	const n = 1500
	var want []string
	for i := range n {
		name := fmt.Sprintf("%04d/%s", i, strings.Repeat("x", 150))
		want = append(want, name)
		r := p.one(abi.SysShmCreate, name, 1)
		ok(t, r)
		r.file.Close()
	}
	var got []string
	pages := 0
	for {
		l := ok(t, p.one(abi.SysList, len(got)))
		if l.u(0) != n {
			t.Fatalf("total %d", l.u(0))
		}
		objs := (len(l.Values) - 1) / 4
		if objs == 0 {
			break
		}
		pages++
		for i := range objs {
			got = append(got, string(l.Values[1+4*i].Bytes))
		}
	}
	if pages < 2 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%d pages, %d names; want all %d in order over several pages", pages, len(got), n)
	}
}

// TestConcurrentApps serves many apps at once, each making calls that
// return descriptors.
func TestConcurrentApps(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 32 {
		p := start(t, nil, server.Options{}).peer
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				r := p.do(0, c(abi.SysShmCreate, fmt.Sprintf("s%d", j), 4096), c(abi.SysStat, fmt.Sprintf("s%d", j)), c(abi.SysUnlink, fmt.Sprintf("s%d", j)))
				if r[0].Errno != 0 || r[1].Errno != 0 || r[2].Errno != 0 || r[0].file == nil {
					t.Errorf("app %d call %d: %+v", i, j, r)
					return
				}
				r[0].file.Close()
			}
		}()
	}
	wg.Wait()
	waitIdle(t)
}
