package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/syscalls"
)

// Small file helpers for cgroupfs. cgroup interface files are opened without
// O_CREAT (a missing file is a missing feature, not something to create) and
// written in one write(2), as the kernel parses each write whole.

func writeFile(dir, name, value string) error {
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("writing %q: %w", value, err)
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %q to %s: %w", value, p, err)
	}
	return nil
}

func readKeyValues(dir, name string) (map[string]uint64, error) {
	p := filepath.Join(dir, name)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	kv, err := parseKeyValues(data)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", p, err)
	}
	return kv, nil
}

func readLimit(dir, name string) (uint64, error) {
	p := filepath.Join(dir, name)
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	v, err := parseLimit(data)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", p, err)
	}
	return v, nil
}

// statReader reads several files of one cgroup, keeps the first error, and
// treats files in optional as 0 when the kernel lacks them.
type statReader struct {
	err      error
	optional map[string]bool
}

func (r *statReader) limit(dir, name string) uint64 {
	if r.err != nil {
		return 0
	}
	v, err := readLimit(dir, name)
	if err != nil && !(r.optional[name] && errors.Is(err, fs.ErrNotExist) && dirExists(dir)) {
		r.err = err
	}
	return v
}

func (r *statReader) keyValues(dir, name string) map[string]uint64 {
	if r.err != nil {
		return nil
	}
	kv, err := readKeyValues(dir, name)
	if err != nil && !(r.optional[name] && errors.Is(err, fs.ErrNotExist) && dirExists(dir)) {
		r.err = err
	}
	return kv
}

func dirExists(dir string) bool {
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}

// listProcs returns the processes in dir and every cgroup below it. A
// directory that disappears while it is read counts as empty.
func listProcs(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for _, f := range strings.Fields(string(data)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return fmt.Errorf("parsing %s/cgroup.procs: %w", p, err)
			}
			pids = append(pids, pid)
		}
		return nil
	})
	return pids, err
}

// removeTree removes the cgroup dir and any cgroups below it, deepest first.
// A missing dir is not an error. A cgroup that still has processes gives an
// error wrapping ErrBusy.
func removeTree(dir string) error {
	// The common case is a leaf: apps cannot create child cgroups (they
	// have no capabilities and at most a read-only view of cgroupfs).
	switch err := syscalls.Rmdir(dir); {
	case err == nil || errors.Is(err, fs.ErrNotExist):
		return nil
	case !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EBUSY):
		return err
	}
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing cgroup %s: %w", dir, err)
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := rmdir(dirs[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rmdir removes one cgroup directory. The kernel refuses while the cgroup has
// tasks; tasks that are exiting leave within moments, so EBUSY is retried
// briefly before it is reported (wrapping ErrBusy).
func rmdir(dir string) error {
	delay := time.Millisecond
	for attempt := 0; ; attempt++ {
		err := syscalls.Rmdir(dir)
		switch {
		case err == nil || errors.Is(err, fs.ErrNotExist):
			return nil
		case errors.Is(err, syscall.EBUSY) && attempt < 6:
			time.Sleep(delay)
			delay *= 2
			continue
		case errors.Is(err, syscall.EBUSY):
			return fmt.Errorf("%w (kill its processes first): %w", ErrBusy, err)
		default:
			return err
		}
	}
}

// removeParents removes up to n empty ancestors of leaf, nearest first. It
// stops at the first one that is still in use (another app's cgroup is in
// it), which is not an error; a missing one is skipped.
func removeParents(leaf string, n int) error {
	dir := leaf
	for range n {
		dir = filepath.Dir(dir)
		err := syscalls.Rmdir(dir)
		switch {
		case err == nil || errors.Is(err, fs.ErrNotExist):
			continue
		case errors.Is(err, syscall.EBUSY) || errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, fs.ErrExist):
			return nil
		default:
			return fmt.Errorf("removing empty parent cgroup: %w", err)
		}
	}
	return nil
}

// vanished reports whether err means the cgroup directory went away under
// the caller: ENOENT, or ENODEV, which kernfs returns for the files of a
// cgroup that is being removed.
func vanished(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV)
}

// withDefaultDeadline bounds ctx by DefaultTimeout when it has no deadline.
func withDefaultDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultTimeout)
}

// backoff sleeps between polls of a state the kernel does not announce (v1
// freezer.state, v1 cgroup.procs): 1 ms doubling up to 32 ms, or until ctx
// ends. It returns ctx's error when ctx ended.
type backoff struct{ d time.Duration }

func (b *backoff) wait(ctx context.Context) error {
	if b.d == 0 {
		b.d = time.Millisecond
	}
	t := time.NewTimer(b.d)
	defer t.Stop()
	if b.d < 32*time.Millisecond {
		b.d *= 2
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
