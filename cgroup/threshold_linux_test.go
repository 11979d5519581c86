package cgroup

import (
	"errors"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/syscalls"
)

func TestMemoryUsage(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		cg := newCgroupT(t, m, Config{Name: testName(t, "app"), Resources: &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr[int64](64 << 20)},
		}})
		mu, err := cg.OpenMemoryUsage()
		if err != nil {
			t.Fatal(err)
		}
		defer mu.Close()
		before, err := mu.Read()
		if err != nil {
			t.Fatal(err)
		}

		// A threshold 4 MiB above the current usage: on v1 the kernel
		// signals the eventfd when a helper allocates past it.
		efd := -1
		err = mu.NotifyAt(0, before+4<<20)
		if m.Mode() == ModeUnified {
			if !errors.Is(err, ErrNotSupported) {
				t.Errorf("NotifyAt on cgroup v2: %v, want ErrNotSupported", err)
			}
		} else {
			// fd 0 is not an eventfd: the kernel refuses it.
			if !errors.Is(err, syscall.EBADF) && !errors.Is(err, syscall.EINVAL) {
				t.Errorf("NotifyAt with a descriptor that is not an eventfd: %v, want EBADF or EINVAL", err)
			}
			if efd, err = syscalls.EventFD(); err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(efd)
			if err := mu.NotifyAt(efd, before+4<<20); err != nil {
				t.Fatal(err)
			}
		}
		h := startHelper(t, cg, "alloc", "16")
		h.start(t)
		if err := h.cmd.Wait(); err != nil {
			t.Fatalf("allocating 16 MiB: %v (output %q)", err, h.out.String())
		}
		if efd >= 0 {
			// The kernel signals from the charging task itself, so the
			// crossing is counted before the helper has exited.
			n, err := syscalls.ReadEventFD(efd)
			if err != nil {
				t.Fatal(err)
			}
			if n < 1 {
				t.Errorf("the eventfd was signalled %d times after usage crossed the threshold, want ≥ 1", n)
			}
		}

		// Sleeping children keep their memory: Read, on the same open
		// file, sees it.
		h = startHelper(t, cg, "spawn", "2")
		h.start(t)
		if err := h.cmd.Wait(); err != nil {
			t.Fatalf("spawning: %v (output %q)", err, h.out.String())
		}
		after, err := mu.Read()
		if err != nil {
			t.Fatal(err)
		}
		if after <= before {
			t.Errorf("usage %d with two sleeping Go processes, %d before", after, before)
		}
		t.Logf("usage before %d, with two sleeping Go processes %d", before, after)

		if err := mu.Close(); err != nil {
			t.Fatal(err)
		}
		if err := mu.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := mu.Read(); !errors.Is(err, ErrClosed) {
			t.Errorf("Read after Close: %v, want ErrClosed", err)
		}
		if m.Mode() != ModeUnified {
			if err := mu.NotifyAt(efd, 1<<20); !errors.Is(err, ErrClosed) {
				t.Errorf("NotifyAt after Close: %v, want ErrClosed", err)
			}
		}
	})
}

// BenchmarkMemoryUsageRead is one poll of an app's memory usage (what a
// Watcher does for every app on cgroup v2 hosts, every 250 ms by default).
func BenchmarkMemoryUsageRead(b *testing.B) {
	m := managers(b)[0]
	cg, err := m.New(Config{Name: testPrefix + "/bench-usage"})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := errors.Join(cg.Delete(), cg.Close()); err != nil {
			b.Error(err)
		}
	}()
	mu, err := cg.OpenMemoryUsage()
	if err != nil {
		b.Fatal(err)
	}
	defer mu.Close()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := mu.Read(); err != nil {
			b.Fatal(err)
		}
	}
}
