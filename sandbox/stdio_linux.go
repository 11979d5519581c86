package sandbox

import (
	"errors"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/pinfold/pinfold/syscalls"
)

// stdio connects an app's fds 0-2 to the spec's readers and writers: an
// *os.File is passed straight through; anything else goes through a pipe
// and a copying goroutine, as os/exec does; nil is /dev/null.
type stdio struct {
	child       [3]*os.File // what the app gets
	closeInSelf []*os.File  // our copies of the child's ends, closed after the clone
	copies      sync.WaitGroup
	mu          sync.Mutex
	err         error
}

func newStdio(in io.Reader, out, errw io.Writer) (*stdio, error) {
	s := &stdio{}
	if err := s.input(in); err != nil {
		s.abort()
		return nil, err
	}
	if err := s.output(1, out); err != nil {
		s.abort()
		return nil, err
	}
	// One writer for both (as os/exec does): one pipe, so the writer sees
	// stdout and stderr in the order the app wrote them.
	if out != nil && sameWriter(out, errw) {
		s.child[2] = s.child[1]
		return s, nil
	}
	if err := s.output(2, errw); err != nil {
		s.abort()
		return nil, err
	}
	return s, nil
}

// sameWriter reports whether a and b are the same comparable writer.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false // not comparable
		}
	}()
	return a == b
}

func (s *stdio) devNull(flag int) (*os.File, error) {
	f, err := os.OpenFile(os.DevNull, flag, 0)
	if err != nil {
		return nil, err
	}
	s.closeInSelf = append(s.closeInSelf, f)
	return f, nil
}

func (s *stdio) input(r io.Reader) error {
	var err error
	switch r := r.(type) {
	case nil:
		s.child[0], err = s.devNull(os.O_RDONLY)
		return err
	case *os.File:
		s.child[0] = r
		return nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	s.child[0] = pr
	s.closeInSelf = append(s.closeInSelf, pr)
	// Not waited for: the reader may block forever after the app is gone
	// (an interactive stdin); the write end is closed when the copy ends.
	go func() {
		_, err := io.Copy(pw, r)
		// A reader the app stopped reading from is not an error.
		if errors.Is(err, os.ErrClosed) || errors.Is(err, syscall.EPIPE) {
			err = nil
		}
		s.record(err)
		pw.Close()
	}()
	return nil
}

func (s *stdio) output(fd int, w io.Writer) error {
	var err error
	switch w := w.(type) {
	case nil:
		s.child[fd], err = s.devNull(os.O_WRONLY)
		return err
	case *os.File:
		s.child[fd] = w
		return nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	s.child[fd] = pw
	s.closeInSelf = append(s.closeInSelf, pw)
	s.copies.Add(1)
	go func() {
		defer s.copies.Done()
		s.record(copyWhenReady(w, pr))
		pr.Close()
	}()
	return nil
}

// copyBuffers are the buffers of the output copiers. A copier takes one
// only while data is waiting in its pipe, so a daemon with a thousand idle
// apps holds no buffer per app.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyWhenReady copies a pipe to w until EOF, waiting for data in the
// runtime's poller without holding a buffer.
func copyWhenReady(w io.Writer, pr *os.File) error {
	rc, err := pr.SyscallConn()
	if err != nil {
		_, err = io.Copy(w, pr)
		return err
	}
	var werr, rerr error
	eof := false
	for !eof && werr == nil {
		// Wait in the poller, with no buffer, until there is something
		// to read; then borrow a buffer for one read.
		if err := rc.Read(func(fd uintptr) bool { return syscalls.Readable(int(fd)) }); err != nil {
			rerr = err
			break
		}
		bp := copyBuffers.Get().(*[]byte)
		var n int
		err := rc.Read(func(fd uintptr) bool {
			var wouldBlock bool
			n, wouldBlock, rerr = syscalls.ReadNonblock(int(fd), *bp)
			return !wouldBlock
		})
		switch {
		case err != nil:
			rerr = err
			eof = true
		case rerr != nil:
			eof = true
		case n == 0:
			eof = true
		default:
			_, werr = w.Write((*bp)[:n])
		}
		copyBuffers.Put(bp)
	}
	if werr != nil {
		return werr
	}
	if rerr != nil && !errors.Is(rerr, os.ErrClosed) {
		return rerr
	}
	return nil
}

func (s *stdio) record(err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// fds returns the descriptors the app gets as 0, 1, 2.
func (s *stdio) fds() []uintptr {
	return []uintptr{s.child[0].Fd(), s.child[1].Fd(), s.child[2].Fd()}
}

// started closes our copies of the child's ends so the copiers see EOF
// when the app's processes are gone.
func (s *stdio) started() {
	for _, f := range s.closeInSelf {
		f.Close()
	}
	s.closeInSelf = nil
}

// abort is started for a clone that never happened.
func (s *stdio) abort() { s.started() }

// wait waits for the copiers to drain (after the app's processes are gone).
func (s *stdio) wait() error {
	s.copies.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
