package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// v2Cgroup is an app cgroup on a unified (cgroup v2 only) host: one
// directory with the memory, cpu, pids and (when delegated) io controllers.
type v2Cgroup struct {
	paths Paths
	dir   *unifiedDir
}

func (c *v2Cgroup) Paths() Paths { return c.paths }

func (c *v2Cgroup) CgroupFD() (int, bool) { return c.dir.cgroupFD() }

func (c *v2Cgroup) AddProc(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("adding process %d: %w", pid, ErrInvalid)
	}
	return c.dir.addProc(pid)
}

func (c *v2Cgroup) Update(r *specs.LinuxResources) error {
	if err := checkResources(r); err != nil {
		return fmt.Errorf("updating cgroup %s: %w", c.paths.Unified, err)
	}
	return c.apply(r, false)
}

func (c *v2Cgroup) apply(r *specs.LinuxResources, _ bool) error {
	for _, v := range v2Values(r) {
		err := writeFile(c.paths.Unified, v.file, v.value)
		if errors.Is(err, fs.ErrNotExist) && dirExists(c.paths.Unified) {
			return fmt.Errorf("setting limits on cgroup %s: %s is missing (controller not enabled for this cgroup): %w", c.paths.Unified, v.file, ErrNotSupported)
		}
		if err != nil {
			return fmt.Errorf("setting limits on cgroup %s: %w", c.paths.Unified, err)
		}
	}
	return nil
}

func (c *v2Cgroup) OOMKills() (uint64, error) {
	kv, err := readKeyValues(c.paths.Unified, "memory.events")
	if err != nil {
		return 0, fmt.Errorf("reading cgroup OOM kills: %w", err)
	}
	return kv["oom_kill"], nil
}

func (c *v2Cgroup) Stats() (*Stats, error) {
	dir := c.paths.Unified
	r := statReader{optional: map[string]bool{"memory.peak": true, "pids.peak": true}}
	s := &Stats{
		MemoryCurrent: r.limit(dir, "memory.current"),
		MemoryPeak:    r.limit(dir, "memory.peak"),
		MemoryLimit:   r.limit(dir, "memory.max"),
		OOMKills:      r.keyValues(dir, "memory.events")["oom_kill"],
		PidsCurrent:   r.limit(dir, "pids.current"),
		PidsPeak:      r.limit(dir, "pids.peak"),
		PidsLimit:     r.limit(dir, "pids.max"),
		PidsLimitHits: r.keyValues(dir, "pids.events")["max"],
	}
	cpu := r.keyValues(dir, "cpu.stat")
	s.CPUUsage = time.Duration(cpu["usage_usec"]) * time.Microsecond
	s.CPUUser = time.Duration(cpu["user_usec"]) * time.Microsecond
	s.CPUSystem = time.Duration(cpu["system_usec"]) * time.Microsecond
	s.CPUThrottledPeriods = cpu["nr_throttled"]
	s.CPUThrottled = time.Duration(cpu["throttled_usec"]) * time.Microsecond
	if r.err != nil {
		return nil, fmt.Errorf("reading cgroup stats: %w", r.err)
	}
	return s, nil
}

func (c *v2Cgroup) Freeze(ctx context.Context) error { return c.dir.freeze(ctx) }

func (c *v2Cgroup) Thaw(ctx context.Context) error { return c.dir.thaw(ctx) }

func (c *v2Cgroup) Kill(ctx context.Context) error { return c.dir.kill(ctx) }

func (c *v2Cgroup) Populated() (bool, error) { return c.dir.populated() }

func (c *v2Cgroup) Delete() error { return deleteDirs(c.paths) }

func (c *v2Cgroup) Close() error { return c.dir.close() }
