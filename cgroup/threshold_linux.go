package cgroup

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
)

// MemoryUsage is an open handle on one cgroup's memory usage counter, for
// watching it: memory.usage_in_bytes on v1 (legacy and hybrid hosts),
// memory.current on v2. Read rereads the open file (pread at offset 0), so
// polling many cgroups costs no open(2)/close(2) per reading. On v1 it also
// arms the kernel's memory threshold notifications (NotifyAt), which cost
// nothing while usage does not cross them; cgroup v2 has no such
// notification for memory.current, so there the caller polls Read.
//
// A MemoryUsage holds one descriptor until Close. It does not keep the
// cgroup from being deleted: Read then fails with an error for which
// errors.Is(err, fs.ErrNotExist) or syscall.ENODEV holds. Methods are safe
// for concurrent use.
type MemoryUsage struct {
	mu    sync.Mutex
	f     *os.File // nil after Close
	path  string
	v1Dir string // the v1 memory directory (cgroup.event_control); "" on v2
	buf   [32]byte
}

// OpenMemoryUsage implements Cgroup.OpenMemoryUsage for v1 hierarchies.
func (c *v1Cgroup) OpenMemoryUsage() (*MemoryUsage, error) {
	dir := c.paths.V1["memory"]
	if dir == "" {
		return nil, fmt.Errorf("watching memory usage: the cgroup has no memory hierarchy: %w", ErrNotSupported)
	}
	return openMemoryUsage(dir, "memory.usage_in_bytes", true)
}

// OpenMemoryUsage implements Cgroup.OpenMemoryUsage on unified hosts.
func (c *v2Cgroup) OpenMemoryUsage() (*MemoryUsage, error) {
	return openMemoryUsage(c.paths.Unified, "memory.current", false)
}

// OpenMemoryPeak implements Cgroup.OpenMemoryPeak for v1 hierarchies.
func (c *v1Cgroup) OpenMemoryPeak() (*MemoryUsage, error) {
	dir := c.paths.V1["memory"]
	if dir == "" {
		return nil, fmt.Errorf("watching memory usage: the cgroup has no memory hierarchy: %w", ErrNotSupported)
	}
	return openMemoryUsage(dir, "memory.max_usage_in_bytes", false)
}

// OpenMemoryPeak implements Cgroup.OpenMemoryPeak on unified hosts.
// Kernels before 5.19 have no memory.peak: the current usage is read then.
func (c *v2Cgroup) OpenMemoryPeak() (*MemoryUsage, error) {
	m, err := openMemoryUsage(c.paths.Unified, "memory.peak", false)
	if errors.Is(err, ErrNotSupported) {
		return openMemoryUsage(c.paths.Unified, "memory.current", false)
	}
	return m, err
}

func openMemoryUsage(dir, name string, v1 bool) (*MemoryUsage, error) {
	p := filepath.Join(dir, name)
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) && dirExists(dir) {
		return nil, fmt.Errorf("watching memory usage: %s is missing (memory controller not enabled for this cgroup): %w", p, ErrNotSupported)
	}
	if err != nil {
		return nil, fmt.Errorf("watching memory usage: %w", err)
	}
	m := &MemoryUsage{f: f, path: p}
	if v1 {
		m.v1Dir = dir
	}
	return m, nil
}

// Read returns the memory charged to the cgroup now, in bytes.
func (m *MemoryUsage) Read() (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return 0, fmt.Errorf("reading %s: %w", m.path, ErrClosed)
	}
	n, err := m.f.ReadAt(m.buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("reading memory usage: %w", err)
	}
	v, err := parseLimit(m.buf[:n])
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", m.path, err)
	}
	return v, nil
}

// NotifyAt arms a kernel notification: from now on the kernel signals the
// eventfd efd each time the cgroup's memory usage crosses threshold bytes,
// upwards or downwards (checked as memory is charged and uncharged, every
// few hundred KiB of change). This is cgroup v1's cgroup.event_control
// interface; on v2 NotifyAt fails with an error wrapping ErrNotSupported.
//
// The registration belongs to efd, not to m: it lasts until efd's last
// descriptor is closed, which removes it, or until the cgroup is deleted,
// when the kernel removes it and signals efd one last time. Closing m does
// not affect it. Arm several thresholds with one eventfd each to tell them
// apart.
func (m *MemoryUsage) NotifyAt(efd int, threshold uint64) error {
	if m.v1Dir == "" {
		return fmt.Errorf("memory usage notifications: cgroup v2 has none for memory.current (poll MemoryUsage.Read instead): %w", ErrNotSupported)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return fmt.Errorf("arming a memory threshold on %s: %w", m.path, ErrClosed)
	}
	// "<event fd> <fd of the watched file> <threshold>", one write.
	line := strconv.Itoa(efd) + " " + strconv.Itoa(int(m.f.Fd())) + " " + strconv.FormatUint(threshold, 10)
	err := writeFile(m.v1Dir, "cgroup.event_control", line)
	runtime.KeepAlive(m.f)
	if err != nil {
		return fmt.Errorf("arming a memory threshold of %d bytes on %s: %w", threshold, m.v1Dir, err)
	}
	return nil
}

// Close releases the descriptor. Thresholds armed with NotifyAt stay armed.
// Close can be called more than once.
func (m *MemoryUsage) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return nil
	}
	err := m.f.Close()
	m.f = nil
	return err
}
