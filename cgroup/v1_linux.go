package cgroup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// v1Cgroup is an app cgroup on a legacy or hybrid host: one directory per v1
// hierarchy, plus, on hybrid hosts, a cgroup2 directory without controllers
// that tracks the same processes and provides CLONE_INTO_CGROUP,
// cgroup.kill, cgroup.freeze and cgroup.events.
type v1Cgroup struct {
	paths   Paths
	unified *unifiedDir // nil on legacy hosts
}

func newV1Cgroup(p Paths, unified *unifiedDir) *v1Cgroup {
	return &v1Cgroup{paths: p, unified: unified}
}

func (c *v1Cgroup) Paths() Paths {
	p := c.paths
	p.V1 = maps.Clone(p.V1)
	return p
}

func (c *v1Cgroup) CgroupFD() (int, bool) {
	if c.unified == nil {
		return -1, false
	}
	return c.unified.cgroupFD()
}

func (c *v1Cgroup) AddProc(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("adding process %d: %w", pid, ErrInvalid)
	}
	// A process started with CgroupFD is in the cgroup2 directory already;
	// moving it there again would still cost the kernel a full migration
	// (about 50-100 µs here), so check first.
	if c.unified != nil && !c.unified.contains(pid, hybridUnifiedPath) {
		if err := c.unified.addProc(pid); err != nil {
			return err
		}
	}
	// Every hierarchy, memory first (the one limits are enforced by).
	for _, ctrl := range v1Controllers {
		dir, ok := c.paths.V1[ctrl]
		if !ok {
			continue
		}
		if err := writeFile(dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("adding process %d to cgroup %s: %w", pid, dir, err)
		}
	}
	return nil
}

func (c *v1Cgroup) Update(r *specs.LinuxResources) error {
	if err := checkResources(r); err != nil {
		return fmt.Errorf("updating cgroup %s: %w", c.paths.V1["memory"], err)
	}
	if r != nil && r.BlockIO != nil && r.BlockIO.Weight != nil && c.paths.V1["blkio"] == "" {
		return fmt.Errorf("updating cgroup: resources.blockIO.weight: the blkio hierarchy is not mounted: %w", ErrNotSupported)
	}
	return c.apply(r, false)
}

func (c *v1Cgroup) apply(r *specs.LinuxResources, creating bool) error {
	if r == nil {
		return nil
	}
	if err := writeV1CPU(c.paths.V1["cpu"], r.CPU); err != nil {
		return fmt.Errorf("setting limits: %w", err)
	}
	if p := r.Pids; p != nil && p.Limit != nil && *p.Limit > 0 {
		if err := writeFile(c.paths.V1["pids"], "pids.max", strconv.FormatInt(*p.Limit, 10)); err != nil {
			return fmt.Errorf("setting limits: %w", err)
		}
	}
	if m := r.Memory; m != nil {
		if err := writeV1MemoryLimits(c.paths.V1["memory"], valueOr(m.Limit, 0), valueOr(m.Swap, 0)); err != nil {
			return fmt.Errorf("setting limits: %w", err)
		}
		if v := valueOr(m.Reservation, 0); v != 0 {
			if v == -1 {
				v = math.MaxInt64
			}
			if err := writeFile(c.paths.V1["memory"], "memory.soft_limit_in_bytes", strconv.FormatInt(v, 10)); err != nil {
				return fmt.Errorf("setting limits: %w", err)
			}
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil && *p.Limit <= 0 && !creating {
		if err := writeFile(c.paths.V1["pids"], "pids.max", "max"); err != nil {
			return fmt.Errorf("setting limits: %w", err)
		}
	}
	if b := r.BlockIO; b != nil && b.Weight != nil {
		if err := writeBlkioWeight(c.paths.V1["blkio"], *b.Weight); err != nil {
			return fmt.Errorf("setting limits: %w", err)
		}
	}
	return nil
}

// writeV1CPU sets cpu.shares and the CFS bandwidth (period first: the
// kernel checks the quota against the period in force). A quota of 0 or
// less means no limit (-1).
func writeV1CPU(dir string, c *specs.LinuxCPU) error {
	if c == nil {
		return nil
	}
	if c.Shares != nil && *c.Shares != 0 {
		if err := writeFile(dir, "cpu.shares", strconv.FormatUint(*c.Shares, 10)); err != nil {
			return err
		}
	}
	if c.Period != nil && *c.Period != 0 {
		if err := writeFile(dir, "cpu.cfs_period_us", strconv.FormatUint(*c.Period, 10)); err != nil {
			return err
		}
	}
	if c.Quota != nil {
		q := *c.Quota
		if q <= 0 {
			q = -1
		}
		if err := writeFile(dir, "cpu.cfs_quota_us", strconv.FormatInt(q, 10)); err != nil {
			return err
		}
	}
	return nil
}

// writeV1MemoryLimits sets memory.limit_in_bytes and
// memory.memsw.limit_in_bytes (0: leave as is; -1: unlimited). The kernel
// keeps limit ≤ memsw at every step, so when the new limit is above the
// current memsw limit, memsw goes first.
func writeV1MemoryLimits(dir string, limit, memsw int64) error {
	if limit == 0 && memsw == 0 {
		return nil
	}
	unlimited := func(v int64) int64 {
		if v == -1 {
			return math.MaxInt64
		}
		return v
	}
	writeLimit := func() error {
		if limit == 0 {
			return nil
		}
		return writeFile(dir, "memory.limit_in_bytes", strconv.FormatInt(limit, 10))
	}
	writeMemsw := func() error {
		if memsw == 0 {
			return nil
		}
		err := writeFile(dir, "memory.memsw.limit_in_bytes", strconv.FormatInt(memsw, 10))
		if errors.Is(err, fs.ErrNotExist) && dirExists(dir) {
			return fmt.Errorf("memory+swap limit: swap accounting is off in this kernel (boot with swapaccount=1): %w", ErrNotSupported)
		}
		return err
	}
	first, second := writeLimit, writeMemsw
	if limit != 0 && memsw != 0 {
		cur, err := os.ReadFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"))
		if err != nil {
			return err
		}
		curMemsw, err := strconv.ParseInt(strings.TrimSpace(string(cur)), 10, 64)
		if err != nil {
			return fmt.Errorf("parsing memory.memsw.limit_in_bytes: %w", err)
		}
		if unlimited(limit) > curMemsw {
			first, second = writeMemsw, writeLimit
		}
	}
	if err := first(); err != nil {
		return err
	}
	return second()
}

// writeBlkioWeight sets the proportional I/O weight: blkio.weight on kernels
// with CFQ or the BFQ compatibility file, else blkio.bfq.weight (BFQ only;
// it affects devices whose scheduler is bfq).
func writeBlkioWeight(dir string, weight uint16) error {
	v := strconv.FormatUint(uint64(weight), 10)
	err := writeFile(dir, "blkio.weight", v)
	if errors.Is(err, fs.ErrNotExist) && dirExists(dir) {
		err = writeFile(dir, "blkio.bfq.weight", v)
		if errors.Is(err, fs.ErrNotExist) && dirExists(dir) {
			return fmt.Errorf("blkio weight: this kernel has neither blkio.weight nor blkio.bfq.weight: %w", ErrNotSupported)
		}
	}
	return err
}

func (c *v1Cgroup) OOMKills() (uint64, error) {
	kv, err := readKeyValues(c.paths.V1["memory"], "memory.oom_control")
	if err != nil {
		return 0, fmt.Errorf("reading cgroup OOM kills: %w", err)
	}
	return kv["oom_kill"], nil
}

func (c *v1Cgroup) Stats() (*Stats, error) {
	mem, cpu, acct, pids := c.paths.V1["memory"], c.paths.V1["cpu"], c.paths.V1["cpuacct"], c.paths.V1["pids"]
	r := statReader{optional: map[string]bool{"pids.peak": true}}
	s := &Stats{
		MemoryCurrent: r.limit(mem, "memory.usage_in_bytes"),
		MemoryPeak:    r.limit(mem, "memory.max_usage_in_bytes"),
		MemoryLimit:   r.limit(mem, "memory.limit_in_bytes"),
		OOMKills:      r.keyValues(mem, "memory.oom_control")["oom_kill"],
		CPUUsage:      time.Duration(r.limit(acct, "cpuacct.usage")),
		CPUUser:       time.Duration(r.limit(acct, "cpuacct.usage_user")),
		CPUSystem:     time.Duration(r.limit(acct, "cpuacct.usage_sys")),
		PidsCurrent:   r.limit(pids, "pids.current"),
		PidsPeak:      r.limit(pids, "pids.peak"),
		PidsLimit:     r.limit(pids, "pids.max"),
		PidsLimitHits: r.keyValues(pids, "pids.events")["max"],
	}
	cpuStat := r.keyValues(cpu, "cpu.stat")
	s.CPUThrottledPeriods = cpuStat["nr_throttled"]
	s.CPUThrottled = time.Duration(cpuStat["throttled_time"])
	if r.err != nil {
		return nil, fmt.Errorf("reading cgroup stats: %w", r.err)
	}
	return s, nil
}

func (c *v1Cgroup) freezer() freezer {
	if c.unified != nil {
		return c.unified
	}
	return v1Freezer{dir: c.paths.V1["freezer"]}
}

func (c *v1Cgroup) Freeze(ctx context.Context) error { return c.freezer().freeze(ctx) }

func (c *v1Cgroup) Thaw(ctx context.Context) error { return c.freezer().thaw(ctx) }

func (c *v1Cgroup) Kill(ctx context.Context) error {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	if c.unified != nil {
		if err := c.unified.kill(ctx); err != nil {
			return err
		}
	}
	// On hybrid hosts the cgroup2 kill has emptied the v1 directories too
	// (a process is in one cgroup per hierarchy), unless a process was added
	// to v1 only.
	if pids, err := c.procs(); err == nil && len(pids) == 0 {
		return nil
	}
	// Tasks still listed here after the cgroup2 kill are exiting (or were
	// added to v1 only): freeze (with cgroup2's freezer on hybrid hosts,
	// which have no v1 freezer cgroup per app), kill, thaw.
	if err := killByFreezing(ctx, c.freezer(), c.procs); err != nil {
		return fmt.Errorf("killing cgroup %s: %w", c.paths.V1["memory"], err)
	}
	return nil
}

// procs lists the processes in every v1 directory and below, once each.
func (c *v1Cgroup) procs() ([]int, error) {
	var all []int
	for _, ctrl := range v1Controllers {
		dir, ok := c.paths.V1[ctrl]
		if !ok {
			continue
		}
		pids, err := listProcs(dir)
		if err != nil {
			return nil, err
		}
		all = append(all, pids...)
	}
	slices.Sort(all)
	return slices.Compact(all), nil
}

func (c *v1Cgroup) Populated() (bool, error) {
	if c.unified != nil {
		if ok, err := c.unified.populated(); ok || err != nil {
			return ok, err
		}
	}
	pids, err := c.procs()
	return len(pids) > 0, err
}

func (c *v1Cgroup) Delete() error { return deleteDirs(c.paths) }

func (c *v1Cgroup) Close() error {
	if c.unified == nil {
		return nil
	}
	return c.unified.close()
}

// v1Freezer drives a v1 freezer cgroup. The kernel does not announce state
// changes there, so it polls freezer.state with a backoff.
type v1Freezer struct{ dir string }

func (f v1Freezer) freeze(ctx context.Context) error {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	var b backoff
	for {
		// Rewriting FROZEN while FREEZING is harmless and picks up tasks
		// that the previous pass missed.
		err := f.set("FROZEN")
		if err == nil {
			var state string
			state, err = f.state()
			if state == "FROZEN" {
				return nil
			}
		}
		if err == nil {
			err = b.wait(ctx)
		}
		if err != nil {
			return errors.Join(fmt.Errorf("freezing cgroup %s: %w", f.dir, err), f.set("THAWED"))
		}
	}
}

func (f v1Freezer) thaw(ctx context.Context) error {
	ctx, cancel := withDefaultDeadline(ctx)
	defer cancel()
	var b backoff
	for {
		err := f.set("THAWED")
		if err == nil {
			var state string
			state, err = f.state()
			if state == "THAWED" {
				return nil
			}
		}
		if err == nil {
			err = b.wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("thawing cgroup %s: %w", f.dir, err)
		}
	}
}

func (f v1Freezer) set(state string) error {
	if f.dir == "" {
		return fmt.Errorf("no freezer hierarchy: %w", ErrNotSupported)
	}
	return writeFile(f.dir, "freezer.state", state)
}

func (f v1Freezer) state() (string, error) {
	data, err := os.ReadFile(filepath.Join(f.dir, "freezer.state"))
	return strings.TrimSpace(string(data)), err
}
