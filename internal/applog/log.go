package applog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
)

// DefaultMax is the size cap of an app's log when its policy sets none.
const DefaultMax = 8 << 20

// Log is the bounded output log of one app. Write, Close, Remove and the
// accessors are safe for concurrent use; so is creating readers.
type Log struct {
	path string
	max  uint64

	mu      sync.Mutex
	f       *os.File // nil once closed
	written uint64   // bytes written since Open: the end of the stream
	start   uint64   // bytes before this were dropped after a failed write
	closed  bool
	removed bool
	// wake is closed by the next write, Close or Remove. It is nil while
	// no reader waits, so a write allocates nothing when nobody follows.
	wake chan struct{}
}

// Open creates the log file at path, replacing any file there, and returns a
// log that holds at most max bytes (at least 1). The file is readable by its
// owner only: an app's output may hold secrets.
func Open(path string, max int64) (*Log, error) {
	if max < 1 {
		return nil, fmt.Errorf("opening app log %s: size cap %d bytes: %w (give at least 1 byte)", path, max, ErrInvalidSize)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening app log: %w", err)
	}
	return &Log{path: path, max: uint64(max), f: f}, nil
}

// Path returns the log file's path.
func (l *Log) Path() string { return l.path }

// Write appends p to the log, overwriting the oldest bytes once the log holds
// max bytes; of a p longer than max only the last max bytes are kept. It
// never waits for readers and wakes the ones following the log.
//
// If the file cannot be written (the disk is full), what the log held is
// dropped — the file may now mix old and new bytes — and counted in Dropped,
// and the error is returned; the log stays usable.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, fmt.Errorf("writing app log %s: %w", l.path, ErrClosed)
	}
	if len(p) == 0 {
		return 0, nil
	}
	end := l.written + uint64(len(p))
	keep := p
	if uint64(len(keep)) > l.max {
		keep = keep[uint64(len(keep))-l.max:]
	}
	err := l.writeAt(keep, end-uint64(len(keep)))
	l.written = end
	if err != nil {
		l.start = end
	}
	l.signal()
	if err != nil {
		return 0, fmt.Errorf("writing app log: %w", err)
	}
	return len(p), nil
}

// writeAt stores b, which starts at stream offset off and is at most max
// bytes long, in the ring: one pwrite, or two when it wraps.
func (l *Log) writeAt(b []byte, off uint64) error {
	at := off % l.max
	first := min(uint64(len(b)), l.max-at)
	if _, err := l.f.WriteAt(b[:first], int64(at)); err != nil {
		return err
	}
	if rest := b[first:]; len(rest) > 0 {
		if _, err := l.f.WriteAt(rest, 0); err != nil {
			return err
		}
	}
	return nil
}

// oldest returns the stream offset of the oldest byte the log holds. The
// caller holds l.mu.
func (l *Log) oldest() uint64 {
	o := l.start
	if l.written > l.max {
		o = max(o, l.written-l.max)
	}
	return o
}

// signal wakes every waiting reader. The caller holds l.mu.
func (l *Log) signal() {
	if l.wake != nil {
		close(l.wake)
		l.wake = nil
	}
}

// waiter returns the channel the next write closes. The caller holds l.mu.
func (l *Log) waiter() <-chan struct{} {
	if l.wake == nil {
		l.wake = make(chan struct{})
	}
	return l.wake
}

// Dropped returns how many bytes were written but are no longer held.
func (l *Log) Dropped() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.oldest()
}

// Size returns how many bytes the log holds: at most its cap.
func (l *Log) Size() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written - l.oldest()
}

// Close marks the log complete: later writes fail with ErrClosed, and
// following readers return io.EOF once they have read everything. It closes
// the log's file; the log stays readable through new readers until Remove.
// Closing a closed log does nothing.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closeLocked()
}

func (l *Log) closeLocked() error {
	if l.closed {
		return nil
	}
	l.closed = true
	l.signal()
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("closing app log: %w", err)
	}
	return nil
}

// Remove closes the log if it is open and deletes its file. Readers open at
// that moment keep their own descriptor: they read what the log held and then
// see io.EOF, and the file's blocks are freed when the last of them closes.
// NewReader on a removed log returns a reader that fails with ErrRemoved.
func (l *Log) Remove() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.closeLocked()
	if l.removed {
		return err
	}
	l.removed = true
	if rerr := os.Remove(l.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		return errors.Join(err, fmt.Errorf("removing app log: %w", rerr))
	}
	return err
}
