package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pinfold/pinfold/syscalls"
)

// unifiedDir is a cgroup2 directory: the app's cgroup on unified hosts, the
// tracking directory on hybrid hosts. It implements the core cgroup2
// interface files, which exist with or without controllers: cgroup.procs,
// cgroup.kill, cgroup.freeze and cgroup.events.
type unifiedDir struct {
	path string

	mu sync.Mutex
	fd *os.File // O_PATH descriptor for CLONE_INTO_CGROUP; nil when closed or missing

	// noKillFile makes kill ignore cgroup.kill, as on kernels before 5.14, so
	// tests can exercise the freeze-and-signal fallback.
	noKillFile bool
}

func openUnifiedDir(path string) (*unifiedDir, error) {
	u := &unifiedDir{path: path}
	fd, err := syscalls.OpenDirPath(path)
	switch {
	case err == nil:
		u.fd = os.NewFile(uintptr(fd), path)
	case errors.Is(err, fs.ErrNotExist):
		// Already removed (recovery after a partial Delete): no descriptor.
	default:
		return nil, fmt.Errorf("opening cgroup %s: %w", path, err)
	}
	return u, nil
}

func (u *unifiedDir) cgroupFD() (int, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.fd == nil {
		return -1, false
	}
	return int(u.fd.Fd()), true
}

func (u *unifiedDir) close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.fd == nil {
		return nil
	}
	err := u.fd.Close()
	u.fd = nil
	return err
}

// contains reports whether /proc/<pid>/cgroup places pid in this directory
// exactly, seen from a mount of the whole hierarchy at mountPoint. A false
// answer is always safe: the caller then moves the process.
func (u *unifiedDir) contains(pid int, mountPoint string) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return filepath.Join(mountPoint, p) == u.path
		}
	}
	return false
}

func (u *unifiedDir) addProc(pid int) error {
	if err := writeFile(u.path, "cgroup.procs", strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("adding process %d to cgroup %s: %w", pid, u.path, err)
	}
	return nil
}

func (u *unifiedDir) populated() (bool, error) {
	kv, err := readKeyValues(u.path, "cgroup.events")
	if errors.Is(err, fs.ErrNotExist) && !dirExists(u.path) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading cgroup %s state: %w", u.path, err)
	}
	return kv["populated"] != 0, nil
}

// kill empties the cgroup: cgroup.kill (Linux 5.14+) SIGKILLs every task in
// the cgroup and below and keeps new forks from escaping; then wait for
// "populated 0". Without cgroup.kill it freezes, signals and thaws.
func (u *unifiedDir) kill(ctx context.Context) error {
	if !dirExists(u.path) {
		return nil
	}
	if !u.noKillFile {
		err := writeFile(u.path, "cgroup.kill", "1")
		switch {
		case err == nil:
			return u.waitEvent(ctx, "populated", 0)
		case !dirExists(u.path):
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("killing cgroup %s: %w", u.path, err)
		}
		// No cgroup.kill: an old kernel.
	}
	if err := killByFreezing(ctx, u, func() ([]int, error) { return listProcs(u.path) }); err != nil {
		return err
	}
	// cgroup.procs empties as tasks exit; "populated" drops a little
	// later, once their exit is accounted. Callers rely on the latter.
	return u.waitEvent(ctx, "populated", 0)
}

func (u *unifiedDir) freeze(ctx context.Context) error {
	if err := writeFile(u.path, "cgroup.freeze", "1"); err != nil {
		return fmt.Errorf("freezing cgroup %s: %w", u.path, err)
	}
	if err := u.waitEvent(ctx, "frozen", 1); err != nil {
		// Do not leave it half frozen.
		_ = writeFile(u.path, "cgroup.freeze", "0")
		return fmt.Errorf("freezing: %w", err)
	}
	return nil
}

func (u *unifiedDir) thaw(ctx context.Context) error {
	if err := writeFile(u.path, "cgroup.freeze", "0"); err != nil {
		return fmt.Errorf("thawing cgroup %s: %w", u.path, err)
	}
	if err := u.waitEvent(ctx, "frozen", 0); err != nil {
		return fmt.Errorf("thawing: %w", err)
	}
	return nil
}

// waitEvent waits until key in cgroup.events has value want. kernfs marks
// the open file with POLLPRI whenever the content changes after it was last
// read, so this sleeps in poll(2) between changes instead of spinning. Each
// poll is capped at 100 ms so a cancelled ctx without a deadline is still
// seen. A cgroup that disappears counts as "populated 0" and "frozen 0".
func (u *unifiedDir) waitEvent(ctx context.Context, key string, want uint64) error {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	name := filepath.Join(u.path, "cgroup.events")
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && want == 0 && !dirExists(u.path) {
			return nil
		}
		return fmt.Errorf("watching cgroup %s: %w", u.path, err)
	}
	defer f.Close()
	buf := make([]byte, 256)
	for {
		n, err := f.ReadAt(buf, 0)
		if vanished(err) && want == 0 {
			return nil // removed meanwhile, so empty and thawed
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		kv, err := parseKeyValues(buf[:n])
		if err != nil {
			return fmt.Errorf("parsing %s: %w", name, err)
		}
		got, ok := kv[key]
		if !ok {
			return fmt.Errorf("%s has no %q: %w", name, key, ErrNotSupported)
		}
		if got == want {
			return nil
		}
		wait := 100 * time.Millisecond
		if dl, ok := ctx.Deadline(); ok {
			wait = min(wait, time.Until(dl))
		}
		if err := ctx.Err(); err != nil || wait <= 0 {
			if err == nil {
				err = context.DeadlineExceeded
			}
			return fmt.Errorf("waiting for %q in %s (still %d): %w", key+" "+strconv.FormatUint(want, 10), name, got, err)
		}
		_, err = syscalls.PollPri(int(f.Fd()), wait)
		runtime.KeepAlive(f)
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", name, err)
		}
	}
}
