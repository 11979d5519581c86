package ipc

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/syscalls"
)

// blockedRead starts a read(2) on fd that blocks until data or end of
// file, and returns where its result arrives.
func blockedRead(fd int) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		buf := make([]byte, 64)
		n, err := syscall.Read(fd, buf)
		for errors.Is(err, syscall.EINTR) {
			n, err = syscall.Read(fd, buf)
		}
		ch <- readResult{string(buf[:max(n, 0)]), n, err}
	}()
	return ch
}

type readResult struct {
	data string
	n    int
	err  error
}

// await returns the read's result, failing the test if it never comes (a
// hang guard, not a timing assertion).
func await(t *testing.T, ch <-chan readResult) readResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("read still blocked after 30s")
	}
	return readResult{}
}

// TestPipeWriterExit: the reader app (the owner) blocks in read; the
// writer app writes, then exits; the reader sees end of file only then.
func TestPipeWriterExit(t *testing.T) {
	b, rec := newBroker(t, Options{})
	reader := join(t, b, "reader", "p", allGrants)
	writer := join(t, b, "writer", "q", allGrants)
	rfd, err := reader.PipeOpen("jobs", Read)
	wantErrno(t, "reader", err, 0)
	defer closeFD(t, rfd)
	wfd, err := writer.PipeOpen("jobs", Write)
	wantErrno(t, "writer", err, 0)

	got := blockedRead(rfd)
	if _, err := syscall.Write(wfd, []byte("job 1")); err != nil {
		t.Fatal(err)
	}
	if r := await(t, got); r.data != "job 1" {
		t.Fatalf("read %+v", r)
	}
	// The writer's process is gone (its descriptor closed), but until its
	// session closes the broker keeps the write end: no end of file yet.
	closeFD(t, wfd)
	if syscalls.Readable(rfd) {
		t.Fatal("end of file before the writer's session closed")
	}
	got = blockedRead(rfd)
	writer.Close()
	if r := await(t, got); r.n != 0 || r.err != nil {
		t.Fatalf("read after the writer exited: %+v, want end of file", r)
	}
	_, err = writer.PipeOpen("jobs", Write)
	wantErrno(t, "closed session", err, syscall.ESHUTDOWN)
	late := join(t, b, "late", "q", allGrants)
	_, err = late.PipeOpen("jobs", Write)
	wantErrno(t, "a new writer after the last one exited", err, syscall.EPIPE)
	if info, err := reader.Stat("jobs"); err != nil || info.Holders != 1 {
		t.Errorf("stat: %+v %v", info, err)
	}
	if e, ok := rec.last(Released); !ok || e.App != "writer" || !strings.Contains(e.Reason, "released 1 handle") {
		t.Errorf("released event %+v", e)
	}
	// The reader exits: both ends are gone and so is the pipe.
	reader.Close()
	if st := b.Stats(); st.Objects != 0 || st.FDs != 0 {
		t.Errorf("after both exited: %+v", st)
	}
}

// TestPipeReaderExit: the writer app (the owner) writes after the reader
// app exited and gets EPIPE; nobody may open either end any more.
func TestPipeReaderExit(t *testing.T) {
	b, _ := newBroker(t, Options{})
	writer := join(t, b, "writer", "p", allGrants)
	reader := join(t, b, "reader", "q", allGrants)
	wfd, err := writer.PipeOpen("out", Write)
	wantErrno(t, "writer", err, 0)
	defer closeFD(t, wfd)
	rfd, err := reader.PipeOpen("out", Read)
	wantErrno(t, "reader", err, 0)
	if _, err := syscall.Write(wfd, []byte("x")); err != nil {
		t.Fatal(err)
	}
	closeFD(t, rfd)
	// The broker's copy of the read end keeps the pipe open for a reader
	// that has not exited.
	if _, err := syscall.Write(wfd, []byte("y")); err != nil {
		t.Fatalf("write with the reader's session open: %v", err)
	}
	reader.Close()
	if _, err := syscall.Write(wfd, []byte("z")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write after the reader exited: %v, want EPIPE", err)
	}
	_, err = writer.PipeOpen("out", Write)
	wantErrno(t, "the write end without a reader", err, syscall.EPIPE)
	_, err = writer.PipeOpen("out", Read)
	wantErrno(t, "the read end after its holders exited", err, syscall.EPIPE)
}

// TestPipeOwnerExit: an owner that exits takes its (not persistent) pipe
// with it: the name is free again and the reader sees end of file.
func TestPipeOwnerExit(t *testing.T) {
	b, rec := newBroker(t, Options{})
	owner := join(t, b, "owner", "p", allGrants)
	reader := join(t, b, "reader", "q", allGrants)
	wantErrno(t, "create", owner.Create(Channel{Name: "p", Kind: Pipe}), 0)
	rfd, err := reader.PipeOpen("p", Read)
	wantErrno(t, "reader", err, 0)
	defer closeFD(t, rfd)
	got := blockedRead(rfd)
	owner.Close()
	if r := await(t, got); r.n != 0 || r.err != nil {
		t.Fatalf("read after the owner exited: %+v, want end of file", r)
	}
	e, ok := rec.last(Removed)
	if !ok || e.Object != "p" || e.Owner != "owner" || !strings.Contains(e.Reason, "owner owner exited") {
		t.Errorf("removed event %+v", e)
	}
	objs := b.Objects()
	if len(objs) != 1 || !objs[0].Unlinked || objs[0].Holders != 1 {
		t.Errorf("objects after the owner exited: %+v", objs)
	}
	// The name is free for a new pipe.
	fd, err := reader.PipeOpen("p", Write)
	wantErrno(t, "new pipe under the old name", err, 0)
	closeFD(t, fd)
	reader.Close()
	if st := b.Stats(); st.Objects != 0 {
		t.Errorf("after the reader exited: %+v", st)
	}
}

// TestPipeFreshDescriptions: every descriptor handed out is its own open
// file description, so O_NONBLOCK set by one app does not change another's.
func TestPipeFreshDescriptions(t *testing.T) {
	b, _ := newBroker(t, Options{})
	a := join(t, b, "a", "p", allGrants)
	c := join(t, b, "c", "q", allGrants)
	r1, err := a.PipeOpen("p", Read)
	wantErrno(t, "r1", err, 0)
	defer closeFD(t, r1)
	r2, err := c.PipeOpen("p", Read)
	wantErrno(t, "r2", err, 0)
	defer closeFD(t, r2)
	if fcntlFlags(t, r1)&syscall.O_NONBLOCK != 0 {
		t.Fatal("a handed-out pipe end is non-blocking")
	}
	if err := syscall.SetNonblock(r1, true); err != nil {
		t.Fatal(err)
	}
	if fcntlFlags(t, r2)&syscall.O_NONBLOCK != 0 {
		t.Error("O_NONBLOCK on one app's descriptor changed another's")
	}
	if _, err := syscall.Read(r1, make([]byte, 1)); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("non-blocking read of an empty pipe: %v, want EAGAIN", err)
	}
	if fcntlFlags(t, r2)&syscall.O_ACCMODE != syscall.O_RDONLY {
		t.Error("read end not O_RDONLY")
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(r2, &st); err != nil || st.Mode&0o7777 != 0 {
		t.Errorf("pipe mode %o (%v), want 0", st.Mode&0o7777, err)
	}
	if info, err := a.Stat("p"); err != nil || info.Size != 65536 || info.Holders != 2 {
		t.Errorf("stat: %+v %v", info, err)
	}
}

// TestAbortKeepsPipeEnds: an app that never ran (Abort) does not count as
// an exited holder: the end it was handed stays open in the broker for the
// next app; an app that ran and exited (Close) closes it.
func TestAbortKeepsPipeEnds(t *testing.T) {
	for _, abort := range []bool{true, false} {
		b, _ := newBroker(t, Options{})
		a := join(t, b, "a", "p", allGrants)
		w, err := a.PipeOpen("wire", Write)
		wantErrno(t, "writer", err, 0)
		c := join(t, b, "c", "q", allGrants)
		r, err := c.PipeOpen("wire", Read)
		wantErrno(t, "first reader", err, 0)
		closeFD(t, r) // the app's copy died with it
		if abort {
			c.Abort()
		} else {
			c.Close()
		}
		d := join(t, b, "d", "q", allGrants)
		r, err = d.PipeOpen("wire", Read)
		if !abort {
			wantErrno(t, "reader after a reader exited", err, syscall.EPIPE)
		} else {
			wantErrno(t, "reader after a reader never ran", err, 0)
			if _, err := syscall.Write(w, []byte("hi")); err != nil {
				t.Errorf("write after the aborted reader: %v", err)
			}
			buf := make([]byte, 8)
			if n, err := syscall.Read(r, buf); err != nil || string(buf[:n]) != "hi" {
				t.Errorf("read = %q, %v; want hi", buf[:n], err)
			}
			closeFD(t, r)
		}
		closeFD(t, w)
		d.Close()
		a.Close()
	}
}
