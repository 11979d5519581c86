package applog

import (
	"fmt"
	"os"
	"testing"
)

// TestMain fails the run if the tests leave file descriptors open: every log
// and every reader holds one and must release it.
func TestMain(m *testing.M) {
	// The runtime's poller keeps descriptors of its own once any pollable
	// file was opened; open one first so they are counted before.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	before, err := openFDs()
	code := m.Run()
	if err == nil && code == 0 {
		after, err := openFDs()
		if err == nil && after > before {
			fmt.Fprintf(os.Stderr, "tests leaked %d file descriptors\n", after-before)
			code = 1
		}
	}
	os.Exit(code)
}

func openFDs() (int, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	return len(entries), err
}
