package applog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The tests write a stream whose byte at offset i is pattern(i). The period
// 251 does not divide the caps used, so a byte overwritten by a later one
// differs from it and a torn read shows.
func pattern(i uint64) byte { return byte(i % 251) }

func stream(from uint64, n int) []byte {
	b := make([]byte, n)
	for k := range b {
		b[k] = pattern(from + uint64(k))
	}
	return b
}

func openLog(t *testing.T, max int64) *Log {
	t.Helper()
	l, err := Open(filepath.Join(t.TempDir(), "app.log"), max)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Remove(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func newReader(t *testing.T, l *Log, follow bool) *Reader {
	t.Helper()
	r := l.NewReader(follow)
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// writeStream writes n bytes of the pattern stream, continuing at the log's end.
func writeStream(t testing.TB, l *Log, n int) {
	t.Helper()
	l.mu.Lock()
	from := l.written
	l.mu.Unlock()
	if got, err := l.Write(stream(from, n)); err != nil || got != n {
		t.Fatalf("Write(%d bytes) = %d, %v", n, got, err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		max  int64
		is   error
	}{
		{"zero cap", filepath.Join(dir, "a"), 0, ErrInvalidSize},
		{"negative cap", filepath.Join(dir, "b"), -1, ErrInvalidSize},
		{"missing directory", filepath.Join(dir, "nope", "c"), 10, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Open(tt.path, tt.max)
			if !errors.Is(err, tt.is) {
				if l != nil {
					l.Remove()
				}
				t.Fatalf("Open(%q, %d) = %v, want %v", tt.path, tt.max, err, tt.is)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed Open left %v", entries)
	}
}

// TestCap writes far more than the cap and checks after every write that the
// file never exceeds it, that the log holds exactly the newest bytes and
// counts the rest as dropped.
func TestCap(t *testing.T) {
	tests := []struct {
		name   string
		max    int64
		writes []int
	}{
		{"under the cap", 1000, []int{1, 10, 100}},
		{"exactly the cap", 1000, []int{400, 600}},
		{"small writes wrap", 1000, slices.Repeat([]int{7}, 1000)},
		{"write of the cap", 1000, []int{3, 1000, 1000, 5}},
		{"write larger than the cap", 1000, []int{10, 2500, 1, 999, 3001}},
		{"one-byte cap", 1, []int{1, 5, 1, 2}},
		{"random sizes", 4093, randomSizes(500, 9000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t, tt.max)
			var total uint64
			for _, n := range tt.writes {
				writeStream(t, l, n)
				total += uint64(n)
				fi, err := os.Stat(l.Path())
				if err != nil {
					t.Fatal(err)
				}
				if fi.Size() > tt.max {
					t.Fatalf("after %d bytes written the file has %d bytes, cap %d", total, fi.Size(), tt.max)
				}
				held := min(total, uint64(tt.max))
				if got := l.Size(); got != held {
					t.Fatalf("after %d bytes written Size() = %d, want %d", total, got, held)
				}
				if got := l.Dropped(); got != total-held {
					t.Fatalf("after %d bytes written Dropped() = %d, want %d", total, got, total-held)
				}
			}
			held := min(total, uint64(tt.max))
			r := newReader(t, l, false)
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if want := stream(total-held, int(held)); !bytes.Equal(got, want) {
				t.Errorf("the log holds %d bytes starting %v, want the newest %d bytes starting %v",
					len(got), head(got), len(want), head(want))
			}
			if r.Missed() != 0 {
				t.Errorf("a new reader missed %d bytes", r.Missed())
			}
		})
	}
}

func randomSizes(n, maxSize int) []int {
	rng := rand.New(rand.NewPCG(1, 2))
	s := make([]int, n)
	for i := range s {
		s[i] = 1 + rng.IntN(maxSize)
	}
	return s
}

func head(b []byte) []byte { return b[:min(len(b), 8)] }

// TestFollow: a following reader gets every write as it happens and io.EOF
// after the log is closed and read to the end.
func TestFollow(t *testing.T) {
	l := openLog(t, 1<<16)
	r := newReader(t, l, true)
	type chunk struct {
		data   []byte
		missed uint64
		err    error
	}
	chunks := make(chan chunk)
	go func() {
		for {
			buf := make([]byte, 64)
			n, missed, err := r.ReadChunk(context.Background(), buf)
			chunks <- chunk{buf[:n], missed, err}
			if err != nil {
				return
			}
		}
	}()
	var written, read uint64
	for i, n := range []int{1, 63, 64, 65, 200} {
		writeStream(t, l, n)
		written += uint64(n)
		for read < written {
			c := <-chunks
			if c.err != nil || c.missed != 0 {
				t.Fatalf("write %d: read %d bytes, missed %d, %v", i, len(c.data), c.missed, c.err)
			}
			if want := stream(read, len(c.data)); !bytes.Equal(c.data, want) {
				t.Fatalf("write %d: read %v, want %v", i, c.data, want)
			}
			read += uint64(len(c.data))
		}
		if read != written {
			t.Fatalf("read %d bytes of %d", read, written)
		}
	}
	writeStream(t, l, 10) // written before Close: must still be read
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var tail []byte
	for c := range chunks {
		tail = append(tail, c.data...)
		if errors.Is(c.err, io.EOF) {
			break
		}
		if c.err != nil {
			t.Fatalf("after Close: %v, want io.EOF", c.err)
		}
	}
	if want := stream(written, 10); !bytes.Equal(tail, want) {
		t.Errorf("after Close read %v, want %v then EOF", tail, want)
	}
	if _, err := l.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
}

// TestSlowReader: a reader that falls more than the cap behind skips to the
// oldest byte held and says how many it missed.
func TestSlowReader(t *testing.T) {
	for _, follow := range []bool{true, false} {
		t.Run(fmt.Sprintf("follow=%v", follow), func(t *testing.T) {
			l := openLog(t, 1000)
			writeStream(t, l, 600)
			r := newReader(t, l, follow)
			buf := make([]byte, 100)
			if n, missed, err := r.ReadChunk(context.Background(), buf); n != 100 || missed != 0 || err != nil {
				t.Fatalf("first read = %d, %d, %v", n, missed, err)
			}
			writeStream(t, l, 1500) // written 2100: bytes 0..1099 are gone
			buf = make([]byte, 4096)
			n, missed, err := r.ReadChunk(context.Background(), buf)
			if err != nil {
				t.Fatal(err)
			}
			if follow {
				// From 1100 to the end.
				if missed != 1000 || !bytes.Equal(buf[:n], stream(1100, 1000)) {
					t.Errorf("read %d bytes starting %v, missed %d; want 1000 bytes from offset 1100, missed 1000", n, head(buf[:n]), missed)
				}
			} else {
				// A non-following reader stops at the 600 bytes the
				// log had when it was created; all 500 left were lost.
				if missed != 500 || n != 0 {
					t.Errorf("read %d bytes, missed %d; want 0 bytes, missed 500", n, missed)
				}
				if n, missed, err := r.ReadChunk(context.Background(), buf); n != 0 || missed != 0 || err != io.EOF {
					t.Errorf("read past the end = %d, %d, %v; want io.EOF", n, missed, err)
				}
			}
			if want := uint64(500); !follow && r.Missed() != want || follow && r.Missed() != 1000 {
				t.Errorf("Missed() = %d", r.Missed())
			}
		})
	}
}

// TestTornRead makes a write overwrite the part of the file a reader is
// reading, between its read and its check, and expects the overwritten bytes
// to be counted as missed rather than returned.
func TestTornRead(t *testing.T) {
	tests := []struct {
		name       string
		overwrite  int // bytes written during the read
		wantMissed uint64
		wantFrom   uint64 // stream offset of the first byte returned
		wantN      int
	}{
		{"nothing overwritten", 0, 0, 0, 400},
		{"prefix overwritten", 150, 150, 150, 250},
		{"all overwritten", 1000, 1000, 1000, 400}, // read again from the new oldest
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t, 1000)
			writeStream(t, l, 1000) // full, nothing dropped yet
			r := newReader(t, l, true)
			once := false
			r.afterRead = func() {
				if !once {
					once = true
					writeStream(t, l, tt.overwrite)
				}
			}
			buf := make([]byte, 400)
			n, missed, err := r.ReadChunk(context.Background(), buf)
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.wantN || missed != tt.wantMissed || !bytes.Equal(buf[:n], stream(tt.wantFrom, n)) {
				t.Errorf("read %d bytes starting %v, missed %d; want %d bytes from offset %d, missed %d",
					n, head(buf[:n]), missed, tt.wantN, tt.wantFrom, tt.wantMissed)
			}
		})
	}
}

// TestConcurrentWriters: writers (stdout and stderr copiers) and following
// readers at once. Every write lands whole; run with -race.
func TestConcurrentWriters(t *testing.T) {
	const writers, lines = 8, 300
	l := openLog(t, 1<<20) // holds everything
	readers := make([]*Reader, 3)
	got := make([][]byte, len(readers))
	var rwg sync.WaitGroup
	for i := range readers {
		readers[i] = newReader(t, l, true)
		rwg.Go(func() {
			b, err := io.ReadAll(readers[i])
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		})
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				if _, err := fmt.Fprintf(l, "writer %d line %04d\n", w, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rwg.Wait()
	for i, b := range got {
		seen := map[string]int{}
		for line := range strings.Lines(string(b)) {
			seen[line]++
		}
		for w := range writers {
			for k := range lines {
				line := fmt.Sprintf("writer %d line %04d\n", w, k)
				if seen[line] != 1 {
					t.Fatalf("reader %d saw %q %d times", i, line, seen[line])
				}
				delete(seen, line)
			}
		}
		if len(seen) != 0 {
			t.Errorf("reader %d saw lines nobody wrote (torn writes?): %q", i, slices.Collect(mapKeys(seen)))
		}
	}
}

func mapKeys(m map[string]int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestRacingReaders: one writer laps a small log many times while readers
// with small buffers follow it. Every byte a reader returns must be the
// stream's byte at that offset (no torn reads), and what each reader read
// plus what it missed must add up to everything written.
func TestRacingReaders(t *testing.T) {
	const max, total = 1000, 2_000_000
	l := openLog(t, max)
	var rwg sync.WaitGroup
	for i, size := range []int{1, 7, 100, 999, 4096} {
		r := newReader(t, l, true)
		rwg.Go(func() {
			buf := make([]byte, size)
			var pos, missed uint64
			for {
				n, m, err := r.ReadChunk(context.Background(), buf)
				pos += m
				missed += m
				if !bytes.Equal(buf[:n], stream(pos, n)) {
					t.Errorf("reader %d: at offset %d read %v, want %v", i, pos, head(buf[:n]), head(stream(pos, n)))
					return
				}
				pos += uint64(n)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
			if pos != total {
				t.Errorf("reader %d ended at offset %d, want %d", i, pos, total)
			}
			t.Logf("reader %d (buffer %d bytes) missed %d bytes", i, size, missed)
		})
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for written := 0; written < total; {
		n := min(1+rng.IntN(3*max/2), total-written)
		writeStream(t, l, n)
		written += n
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rwg.Wait()
}

// TestUnblock: a following reader waiting at the end returns when its context
// is cancelled, when it is closed, and (with io.EOF) when the log is closed
// or removed.
func TestUnblock(t *testing.T) {
	tests := []struct {
		name    string
		unblock func(l *Log, r *Reader, cancel context.CancelFunc)
		want    error
	}{
		{"context cancelled", func(_ *Log, _ *Reader, cancel context.CancelFunc) { cancel() }, context.Canceled},
		{"reader closed", func(_ *Log, r *Reader, _ context.CancelFunc) { r.Close() }, ErrReaderClosed},
		{"log closed", func(l *Log, _ *Reader, _ context.CancelFunc) { l.Close() }, io.EOF},
		{"log removed", func(l *Log, _ *Reader, _ context.CancelFunc) { l.Remove() }, io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := openLog(t, 100)
			writeStream(t, l, 10)
			r := newReader(t, l, true)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			buf := make([]byte, 100)
			if n, _, err := r.ReadChunk(ctx, buf); n != 10 || err != nil {
				t.Fatalf("first read = %d, %v", n, err)
			}
			done := make(chan error)
			go func() {
				n, missed, err := r.ReadChunk(ctx, buf)
				if n != 0 || missed != 0 {
					err = fmt.Errorf("read %d bytes, missed %d", n, missed)
				}
				done <- err
			}()
			tt.unblock(l, r, cancel)
			if err := <-done; !errors.Is(err, tt.want) {
				t.Errorf("blocked read returned %v, want %v", err, tt.want)
			}
		})
	}
}

// TestNonFollowing: a reader without follow reads what the log held when the
// reader was created, even while the log grows, and returns io.EOF without
// waiting for a log that is still open.
func TestNonFollowing(t *testing.T) {
	l := openLog(t, 1000)
	writeStream(t, l, 300)
	r := newReader(t, l, false)
	writeStream(t, l, 200)
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, stream(0, 300)) {
		t.Errorf("read %d bytes, want the 300 held at creation", len(got))
	}
}

// TestReadAfterClose: the log of an exited app stays readable until Remove.
func TestReadAfterClose(t *testing.T) {
	for _, follow := range []bool{true, false} {
		t.Run(fmt.Sprintf("follow=%v", follow), func(t *testing.T) {
			l := openLog(t, 1000)
			writeStream(t, l, 1234)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			got, err := io.ReadAll(newReader(t, l, follow))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, stream(234, 1000)) {
				t.Errorf("read %d bytes starting %v, want 1000 from offset 234", len(got), head(got))
			}
		})
	}
}

// TestRemove: Remove leaves nothing in the directory, even with a reader
// open (which still reads what the log held); readers created afterwards
// fail with ErrRemoved.
func TestRemove(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(filepath.Join(dir, "app.log"), 100)
	if err != nil {
		t.Fatal(err)
	}
	writeStream(t, l, 150)
	r := l.NewReader(true)
	defer r.Close()
	if err := l.Remove(); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("after Remove the directory holds %v (%v)", entries, err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, stream(50, 100)) {
		t.Errorf("a reader open before Remove read %d bytes, %v; want the 100 held", len(got), err)
	}
	if err := l.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if _, err := l.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Remove = %v, want ErrClosed", err)
	}
	late := l.NewReader(false)
	defer late.Close()
	if _, _, err := late.ReadChunk(context.Background(), make([]byte, 10)); !errors.Is(err, ErrRemoved) {
		t.Errorf("a reader created after Remove read: %v, want ErrRemoved", err)
	}
}

// TestWriteError: a write that fails leaves a log that drops what it held
// (the file may be half overwritten), says so, and keeps working.
func TestWriteError(t *testing.T) {
	l := openLog(t, 1000)
	writeStream(t, l, 300)
	r := newReader(t, l, true)
	good := l.f
	ro, err := os.Open(l.Path()) // writes to it fail with EBADF
	if err != nil {
		t.Fatal(err)
	}
	l.f = ro
	if n, err := l.Write(stream(300, 50)); err == nil || n != 0 {
		t.Errorf("Write to a read-only descriptor = %d, %v; want an error", n, err)
	}
	l.f = good
	ro.Close()
	if got, want := l.Dropped(), uint64(350); got != want {
		t.Errorf("Dropped() = %d, want %d", got, want)
	}
	writeStream(t, l, 20)
	buf := make([]byte, 100)
	n, missed, err := r.ReadChunk(context.Background(), buf)
	if err != nil || missed != 350 || !bytes.Equal(buf[:n], stream(350, 20)) {
		t.Errorf("read %d bytes, missed %d, %v; want the 20 bytes written after the failure, missed 350", n, missed, err)
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{64, 4096} {
		for _, follow := range []bool{false, true} {
			b.Run(fmt.Sprintf("size=%d/follower=%v", size, follow), func(b *testing.B) {
				l, err := Open(filepath.Join(b.TempDir(), "app.log"), DefaultMax)
				if err != nil {
					b.Fatal(err)
				}
				defer l.Remove()
				var wg sync.WaitGroup
				if follow {
					r := l.NewReader(true)
					defer r.Close()
					wg.Go(func() { io.Copy(io.Discard, r) })
				}
				p := stream(0, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := l.Write(p); err != nil {
						b.Fatal(err)
					}
				}
				l.Close()
				wg.Wait()
			})
		}
	}
}
