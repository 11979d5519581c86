package server_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/server"
	"github.com/pinfold/pinfold/syscalls/server/servertest"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(benchAppEnv); mode != "" {
		if err := benchApp(mode); err != nil {
			fmt.Fprintln(os.Stderr, "bench app:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// Warm up what the runtime opens once (the netpoller's epoll and
	// wakeup descriptors), then count descriptors around all the tests.
	a, b, err := syscalls.SeqpacketPair()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fd, err := syscalls.DupCloexec(int(a.Fd()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = syscalls.SetNonblock(fd)
	os.NewFile(uintptr(fd), "warmup").Close()
	a.Close()
	b.Close()
	if err := server.Init(); err != nil { // the idle set lives as long as the process
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	before := openFDs()
	code := m.Run()
	if code == 0 {
		if after := openFDs(); len(after) != len(before) {
			fmt.Fprintf(os.Stderr, "descriptor leak: %d open before the tests, %d after:\n%s\n", len(before), len(after), strings.Join(after, "\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// openFDs lists this process's open descriptors and what they refer to.
func openFDs() []string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		panic(err)
	}
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+" -> "+target)
	}
	return out
}

// peer is the app's end of a control channel, speaking raw messages.
type peer struct {
	t   testing.TB
	f   *os.File
	rc  syscall.RawConn
	in  []byte
	oob []byte
	out []byte

	// results of the callbacks
	msg  syscalls.CtlMsg
	rerr error
	werr error
	send []byte
	sfds []byte
	rfn  func(uintptr) bool
	wfn  func(uintptr) bool
}

type served struct {
	peer *peer
	done chan error
	sess *servertest.Session
}

// start serves a fresh channel with sess (a new servertest.Session when
// nil). Cleanup hangs up and checks that Serve returned nil.
func start(t testing.TB, sess *servertest.Session, opts server.Options) *served {
	t.Helper()
	if sess == nil {
		sess = servertest.New("app1", "pol")
	}
	app, srv, err := syscalls.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- server.Serve(context.Background(), srv, sess, opts) }()
	p := newPeer(t, app)
	s := &served{peer: p, done: done, sess: sess}
	t.Cleanup(func() {
		p.f.Close()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, server.ErrHostile) {
				t.Errorf("Serve after hang-up: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return after the app hung up")
		}
		sess.Close()
	})
	return s
}

// newPeer makes f non-blocking and pollable so that reads can time out
// instead of hanging a broken test.
func newPeer(t testing.TB, f *os.File) *peer {
	t.Helper()
	fd, err := syscalls.DupCloexec(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscalls.SetNonblock(fd); err != nil {
		t.Fatal(err)
	}
	pf := os.NewFile(uintptr(fd), "app-ctl")
	rc, err := pf.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, f: pf, rc: rc,
		in:  make([]byte, abi.MaxMessage+1),
		oob: make([]byte, syscalls.RightsSpace(abi.MaxFDs)),
		out: make([]byte, 0, abi.MaxMessage)}
	p.rfn = func(fd uintptr) bool {
		m, wb, err := syscalls.CtlRecvmsg(int(fd), p.in, p.oob, true)
		if wb {
			return false
		}
		p.msg, p.rerr = m, err
		return true
	}
	p.wfn = func(fd uintptr) bool {
		wb, err := syscalls.CtlSendmsg(int(fd), p.send, p.sfds, true)
		if wb {
			return false
		}
		p.werr = err
		return true
	}
	return p
}

// sendRaw sends one datagram with fds attached.
func (p *peer) sendRaw(msg []byte, fds ...int) error {
	p.send, p.sfds, p.werr = msg, syscalls.AppendRights(p.sfds[:0], fds), nil
	_ = p.f.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if err := p.rc.Write(p.wfn); err != nil {
		return err
	}
	return p.werr
}

// recvRaw receives one datagram and its descriptors; n == 0 with no
// descriptors is the end of the channel.
func (p *peer) recvRaw() ([]byte, []int, error) {
	p.rerr = nil
	_ = p.f.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := p.rc.Read(p.rfn); err != nil {
		return nil, nil, err
	}
	if p.rerr != nil {
		return nil, nil, p.rerr
	}
	fds, err := syscalls.ParseRights(p.oob[:p.msg.OOBN], nil)
	if err != nil {
		return nil, fds, err
	}
	if p.msg.Truncated || p.msg.ControlTruncated {
		return nil, fds, fmt.Errorf("reply truncated: %+v", p.msg)
	}
	return p.in[:p.msg.N], fds, nil
}

// roundTrip sends msg and returns the decoded reply and its descriptors
// as files, closed at the end of the test.
func (p *peer) roundTrip(msg []byte, fds ...int) (*abi.Reply, []*os.File) {
	p.t.Helper()
	if err := p.sendRaw(msg, fds...); err != nil {
		p.t.Fatalf("sending: %v", err)
	}
	raw, rfds, err := p.recvRaw()
	files := make([]*os.File, len(rfds))
	for i, fd := range rfds {
		files[i] = os.NewFile(uintptr(fd), fmt.Sprintf("reply-fd-%d", i))
		f := files[i]
		p.t.Cleanup(func() { f.Close() })
	}
	if err != nil {
		p.t.Fatalf("receiving: %v", err)
	}
	if len(raw) > abi.MaxMessage {
		p.t.Fatalf("reply of %d bytes", len(raw))
	}
	var r abi.Reply
	if err := abi.DecodeReply(raw, &r); err != nil {
		p.t.Fatalf("decoding reply: %v", err)
	}
	n := 0
	for _, res := range r.Results {
		n += res.NFDs
	}
	if n != len(files) {
		p.t.Fatalf("entries claim %d descriptors, %d came", n, len(files))
	}
	return &r, files
}

// call is one request entry for do.
type call struct {
	sysno abi.Sysno
	args  []any // string or uint64 (or int)
}

func c(sysno abi.Sysno, args ...any) call { return call{sysno, args} }

func encode(t testing.TB, flags abi.Flags, calls ...call) []byte {
	t.Helper()
	var b abi.RequestBuilder
	b.Reset(nil, flags)
	for i, cl := range calls {
		b.Begin(uint64(1000+i), cl.sysno)
		for _, a := range cl.args {
			switch v := a.(type) {
			case string:
				b.String(v)
			case uint64:
				b.U64(v)
			case int:
				b.U64(uint64(v))
			default:
				t.Fatalf("argument of type %T", a)
			}
		}
		b.End()
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// result is one entry's outcome with its descriptor, if any.
type result struct {
	abi.Result
	file *os.File
}

// do sends calls as one message and returns one result per call, checking
// that the reply echoes ids and sysnos in order.
func (p *peer) do(flags abi.Flags, calls ...call) []result {
	p.t.Helper()
	r, files := p.roundTrip(encode(p.t, flags, calls...))
	if len(r.Results) != len(calls) {
		p.t.Fatalf("%d results for %d calls: %+v", len(r.Results), len(calls), r.Results)
	}
	out := make([]result, len(calls))
	for i, res := range r.Results {
		if res.ID != uint64(1000+i) || res.Sysno != calls[i].sysno {
			p.t.Fatalf("entry %d answers id %d sysno %d, want %d %d", i, res.ID, res.Sysno, 1000+i, calls[i].sysno)
		}
		if res.Errno == 0 {
			sc, ok := abi.Lookup(res.Sysno)
			if ok {
				if err := sc.CheckResults(res.Values); err != nil {
					p.t.Fatalf("entry %d: %v", i, err)
				}
			}
		}
		// Copy the values out of the receive buffer.
		vals := make([]abi.Value, len(res.Values))
		for j, v := range res.Values {
			vals[j] = abi.Value{Type: v.Type, U64: v.U64, Bytes: append([]byte(nil), v.Bytes...)}
		}
		res.Values = vals
		out[i].Result = res
		if res.NFDs == 1 {
			out[i].file, files = files[0], files[1:]
		}
	}
	return out
}

// one does a single call.
func (p *peer) one(sysno abi.Sysno, args ...any) result {
	p.t.Helper()
	return p.do(0, c(sysno, args...))[0]
}

func (r result) u(i int) uint64 { return r.Values[i].U64 }
func (r result) s(i int) string { return string(r.Values[i].Bytes) }

// ok fails the test unless r succeeded.
func ok(t testing.TB, r result) result {
	t.Helper()
	if r.Errno != 0 {
		t.Fatalf("%s failed: %s: %s", r.Sysno, r.Errno.Name(), r.Reason())
	}
	return r
}

// fails checks that r failed with errno and a reason containing want.
func fails(t testing.TB, r result, errno abi.Errno, want string) {
	t.Helper()
	if r.Errno != errno {
		t.Fatalf("%s: errno %s (%q), want %s", r.Sysno, r.Errno.Name(), r.Reason(), errno.Name())
	}
	if r.NFDs != 0 || r.file != nil {
		t.Fatalf("%s failed with a descriptor", r.Sysno)
	}
	if !strings.Contains(r.Reason(), want) {
		t.Fatalf("%s: reason %q does not contain %q", r.Sysno, r.Reason(), want)
	}
}

// waitIdle waits until no server holds a message buffer. Servers give the
// buffer back right after sending a reply, so this only waits for the
// scheduler.
func waitIdle(t testing.TB) {
	t.Helper()
	for i := 0; server.Borrowed() != 0; i++ {
		if i > 10000 {
			t.Fatalf("%d buffers still borrowed", server.Borrowed())
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}
