package applog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
)

// Reader reads a Log from the oldest byte it held when the reader was created.
// A following reader waits for new bytes until the log is closed; any other
// reader stops at the end the log had when the reader was created. One
// Reader's reads are serialized; Close may be called at any time, from any
// goroutine, and wakes a waiting read.
type Reader struct {
	log    *Log
	follow bool
	f      *os.File // the reader's own descriptor; nil if err is set
	err    error    // why the reader could not be opened
	done   chan struct{}
	once   sync.Once
	missed atomic.Uint64 // every byte skipped so far

	mu    sync.Mutex // one read at a time: the position is shared
	pos   uint64     // stream offset of the next byte to return
	limit uint64     // end of a non-following reader

	// afterRead, if set, runs between reading the file and checking what
	// was dropped meanwhile: tests overwrite the log there.
	afterRead func()
}

// NewReader returns a reader positioned at the oldest byte the log holds.
// With follow, reads block for new bytes until the log is closed or removed,
// and then return io.EOF; without, reads return io.EOF at the end the log had
// now. A reader on a closed log reads what the log holds; on a removed one it
// fails with ErrRemoved. Close the reader when done: it holds a descriptor.
func (l *Log) NewReader(follow bool) *Reader {
	r := &Reader{log: l, follow: follow, done: make(chan struct{})}
	// The lock orders opening the file against Remove: a reader either
	// opens the file before it is unlinked or sees removed.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.removed {
		r.err = fmt.Errorf("reading app log %s: %w", l.path, ErrRemoved)
		return r
	}
	f, err := os.Open(l.path)
	if err != nil {
		r.err = fmt.Errorf("reading app log: %w", err)
		return r
	}
	r.f = f
	r.pos, r.limit = l.oldest(), l.written
	return r
}

// ReadChunk reads up to len(buf) bytes into buf. missed is the number of
// bytes the reader skipped since its last read because the log dropped them
// before the reader got to them (a reader more than the cap behind the
// writer); the n bytes returned follow the missed ones in the stream. Callers
// should handle n and missed before err.
//
// When the reader is at the end, a following reader waits until the log grows
// or is closed, ctx is done (err is ctx.Err()) or the reader is closed (err
// wraps ErrReaderClosed). At the end of a closed log, or of a non-following
// reader's range, err is io.EOF.
func (r *Reader) ReadChunk(ctx context.Context, buf []byte) (n int, missed uint64, err error) {
	if r.err != nil {
		return 0, 0, r.err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() { r.missed.Add(missed) }()
	l := r.log
	for {
		select {
		case <-r.done:
			return 0, missed, ErrReaderClosed
		default:
		}
		l.mu.Lock()
		oldest, end, closed := l.oldest(), l.written, l.closed
		var wake <-chan struct{}
		if r.follow && !closed && r.pos >= end {
			wake = l.waiter()
		}
		l.mu.Unlock()
		if !r.follow {
			end = r.limit
			oldest = min(oldest, end)
		}
		if r.pos < oldest {
			missed += oldest - r.pos
			r.pos = oldest
		}
		if r.pos < end {
			if len(buf) == 0 {
				return 0, missed, nil
			}
			n, lost, err := r.readAt(buf[:min(uint64(len(buf)), end-r.pos)])
			missed += lost
			if err != nil || n > 0 {
				return n, missed, err
			}
			continue // everything read was overwritten under us: read on
		}
		if missed > 0 {
			return 0, missed, nil
		}
		if wake == nil {
			return 0, 0, io.EOF
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-r.done:
			return 0, 0, ErrReaderClosed
		}
	}
}

// readAt fills buf from the stream at r.pos and advances r.pos past what it
// returns and what it lost. The file is read without the log's lock, so a
// write may overwrite the part being read; since writes are published under
// the lock after they complete, the dropped offset read afterwards covers
// every byte that may have been overwritten during the read, and that prefix
// is dropped from buf and counted as lost.
func (r *Reader) readAt(buf []byte) (n int, lost uint64, err error) {
	l := r.log
	at := r.pos % l.max
	first := min(uint64(len(buf)), l.max-at)
	_, err = r.f.ReadAt(buf[:first], int64(at))
	if err == nil && uint64(len(buf)) > first {
		_, err = r.f.ReadAt(buf[first:], 0)
	}
	if r.afterRead != nil {
		r.afterRead()
	}
	l.mu.Lock()
	oldest := l.oldest()
	l.mu.Unlock()
	if oldest > r.pos {
		lost = min(uint64(len(buf)), oldest-r.pos)
		r.pos += lost
	}
	if uint64(len(buf)) == lost {
		return 0, lost, nil // whatever the read did, none of it counts
	}
	if err != nil {
		select {
		case <-r.done:
			return 0, lost, ErrReaderClosed
		default:
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file is shorter than what it must hold
		}
		return 0, lost, fmt.Errorf("reading app log: %w", err)
	}
	n = copy(buf, buf[lost:])
	r.pos += uint64(n)
	return n, lost, nil
}

// Read implements io.Reader without a context: it blocks like ReadChunk with
// context.Background and leaves skipped bytes out silently; Missed counts
// them.
func (r *Reader) Read(p []byte) (int, error) {
	for {
		n, _, err := r.ReadChunk(context.Background(), p)
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
	}
}

// Missed returns how many bytes this reader skipped so far.
func (r *Reader) Missed() uint64 { return r.missed.Load() }

// Close releases the reader's descriptor and makes a read in progress, and
// every later one, return ErrReaderClosed. Closing twice does nothing.
func (r *Reader) Close() error {
	var err error
	r.once.Do(func() {
		close(r.done)
		if r.f != nil {
			err = r.f.Close()
		}
	})
	return err
}
