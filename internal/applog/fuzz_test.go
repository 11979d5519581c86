package applog

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// FuzzLog runs a sequence of writes and reads, decoded from the input, on a
// log and on a model (the whole stream and each reader's position), and
// checks that every read returns what the model says: the bytes at the
// reader's position after skipping those no longer held.
func FuzzLog(f *testing.F) {
	f.Add(uint16(100), []byte{0, 50, 1, 10, 0, 200, 3, 30, 2, 255})
	f.Add(uint16(1), []byte{0, 3, 1, 1, 0, 1, 1, 1})
	f.Add(uint16(4096), []byte{0, 255, 0, 255, 1, 255, 5, 7})
	f.Fuzz(func(t *testing.T, capacity uint16, ops []byte) {
		max := uint64(capacity%5000) + 1
		l, err := Open(filepath.Join(t.TempDir(), "log"), int64(max))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Remove()
		var written uint64
		readers := make([]*Reader, 2)
		pos := make([]uint64, 2)
		for i := range readers {
			readers[i] = l.NewReader(true)
			defer readers[i].Close()
		}
		// An already cancelled context turns "wait for more" into an error.
		done, cancel := context.WithCancel(context.Background())
		cancel()
		for len(ops) >= 2 {
			op, arg := ops[0], int(ops[1])*int(ops[0]>>2+1)
			ops = ops[2:]
			if op&3 == 0 {
				if _, err := l.Write(stream(written, arg)); err != nil {
					t.Fatal(err)
				}
				written += uint64(arg)
				continue
			}
			i := int(op&3) % 2
			buf := make([]byte, arg+1)
			n, missed, err := readers[i].ReadChunk(done, buf)
			oldest := written - min(written, max)
			wantMissed := uint64(0)
			if pos[i] < oldest {
				wantMissed = oldest - pos[i]
			}
			wantN := min(uint64(len(buf)), written-pos[i]-wantMissed)
			if missed != wantMissed || uint64(n) != wantN {
				t.Fatalf("reader %d at %d of %d written (cap %d): read %d, missed %d; want %d, missed %d",
					i, pos[i], written, max, n, missed, wantN, wantMissed)
			}
			pos[i] += missed
			if !bytes.Equal(buf[:n], stream(pos[i], n)) {
				t.Fatalf("reader %d at %d: wrong bytes", i, pos[i])
			}
			pos[i] += uint64(n)
			if n == 0 && missed == 0 && !errors.Is(err, context.Canceled) {
				t.Fatalf("reader %d at the end: %v, want context.Canceled", i, err)
			}
			if (n > 0 || missed > 0) && err != nil {
				t.Fatalf("reader %d: %v", i, err)
			}
		}
	})
}
