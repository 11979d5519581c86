package cgroup

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Limits of the values the kernel accepts.
const (
	minCPUPeriod = 1000    // µs, cpu.cfs_period_us and cpu.max
	maxCPUPeriod = 1000000 // µs
	defCPUPeriod = 100000  // µs, the kernel's default period
	minBlkWeight = 10      // OCI / v1 blkio weight range
	maxBlkWeight = 1000
	minShares    = 2 // v1 cpu.shares range
	maxShares    = 262144
)

// checkResources reports, in one error, every field of r that pinfold does not
// apply (wrapping ErrNotSupported) or that holds an impossible value
// (wrapping ErrInvalid). A nil r is valid.
func checkResources(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	var errs []error
	unsupported := func(field string) {
		errs = append(errs, fmt.Errorf("resources.%s: %w (remove it from the policy)", field, ErrNotSupported))
	}
	invalid := func(field, problem string) {
		errs = append(errs, fmt.Errorf("resources.%s: %s: %w", field, problem, ErrInvalid))
	}

	if len(r.Devices) > 0 {
		unsupported("devices")
	}
	if len(r.HugepageLimits) > 0 {
		unsupported("hugepageLimits")
	}
	if r.Network != nil {
		unsupported("network")
	}
	if len(r.Rdma) > 0 {
		unsupported("rdma")
	}
	if len(r.Unified) > 0 {
		unsupported("unified")
	}

	if m := r.Memory; m != nil {
		if m.Kernel != nil {
			unsupported("memory.kernel (kernel-memory limits are ignored by Linux 5.4 and later)")
		}
		if m.KernelTCP != nil {
			unsupported("memory.kernelTCP")
		}
		if m.Swappiness != nil {
			unsupported("memory.swappiness")
		}
		if m.DisableOOMKiller != nil {
			unsupported("memory.disableOOMKiller")
		}
		if m.UseHierarchy != nil {
			unsupported("memory.useHierarchy")
		}
		if m.CheckBeforeUpdate != nil {
			unsupported("memory.checkBeforeUpdate")
		}
		limit := valueOr(m.Limit, 0)
		swap := valueOr(m.Swap, 0)
		if limit < -1 {
			invalid("memory.limit", fmt.Sprintf("%d is neither a byte count nor -1 (unlimited)", limit))
		}
		if swap < -1 {
			invalid("memory.swap", fmt.Sprintf("%d is neither a byte count nor -1 (unlimited)", swap))
		}
		if swap > 0 && limit <= 0 {
			invalid("memory.swap", "a memory+swap limit needs a memory limit too")
		}
		if swap > 0 && limit > 0 && swap < limit {
			invalid("memory.swap", fmt.Sprintf("memory+swap %d is below the memory limit %d (swap is memory plus swap, not swap alone)", swap, limit))
		}
		if v := valueOr(m.Reservation, 0); v < -1 {
			invalid("memory.reservation", fmt.Sprintf("%d is neither a byte count nor -1", v))
		}
	}

	if c := r.CPU; c != nil {
		if c.Burst != nil {
			unsupported("cpu.burst")
		}
		if c.RealtimeRuntime != nil || c.RealtimePeriod != nil {
			unsupported("cpu.realtimeRuntime/realtimePeriod")
		}
		if c.Cpus != "" || c.Mems != "" {
			unsupported("cpu.cpus/mems (cpuset)")
		}
		if c.Idle != nil {
			unsupported("cpu.idle")
		}
		if c.Shares != nil && (*c.Shares < minShares || *c.Shares > maxShares) {
			invalid("cpu.shares", fmt.Sprintf("%d is outside %d..%d", *c.Shares, minShares, maxShares))
		}
		if c.Period != nil && (*c.Period < minCPUPeriod || *c.Period > maxCPUPeriod) {
			invalid("cpu.period", fmt.Sprintf("%dµs is outside %d..%dµs", *c.Period, minCPUPeriod, maxCPUPeriod))
		}
		if q := valueOr(c.Quota, 0); q < -1 || (q > 0 && q < minCPUPeriod) {
			invalid("cpu.quota", fmt.Sprintf("%dµs is neither at least %dµs nor -1 (unlimited)", q, minCPUPeriod))
		}
	}

	if p := r.Pids; p != nil && p.Limit != nil && *p.Limit < -1 {
		invalid("pids.limit", fmt.Sprintf("%d is neither a count nor -1 or 0 (unlimited)", *p.Limit))
	}

	if b := r.BlockIO; b != nil {
		if b.LeafWeight != nil {
			unsupported("blockIO.leafWeight")
		}
		if len(b.WeightDevice) > 0 {
			unsupported("blockIO.weightDevice")
		}
		if len(b.ThrottleReadBpsDevice)+len(b.ThrottleWriteBpsDevice)+
			len(b.ThrottleReadIOPSDevice)+len(b.ThrottleWriteIOPSDevice) > 0 {
			unsupported("blockIO.throttle*")
		}
		if b.Weight != nil && (*b.Weight < minBlkWeight || *b.Weight > maxBlkWeight) {
			invalid("blockIO.weight", fmt.Sprintf("%d is outside %d..%d", *b.Weight, minBlkWeight, maxBlkWeight))
		}
	}
	return errors.Join(errs...)
}

func valueOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// fileValue is one write to a cgroup interface file.
type fileValue struct {
	file, value string
}

// v2Values converts checked resources to cgroup v2 interface file writes.
//
// OCI expresses swap as memory+swap (the v1 memsw limit); v2 limits swap
// alone, so memory.swap.max = Swap - Limit. CPU shares (2..262144, default
// 1024) map onto cpu.weight (1..10000, default 100) along the curve that
// keeps the three reference points (2→1, 1024→100, 262144→10000), and a
// blkio weight (10..1000) maps linearly onto io.weight (1..10000).
func v2Values(r *specs.LinuxResources) []fileValue {
	if r == nil {
		return nil
	}
	var out []fileValue
	add := func(file, value string) { out = append(out, fileValue{file, value}) }
	if m := r.Memory; m != nil {
		limit := valueOr(m.Limit, 0)
		switch {
		case limit == -1:
			add("memory.max", "max")
		case limit > 0:
			add("memory.max", strconv.FormatInt(limit, 10))
		}
		switch swap := valueOr(m.Swap, 0); {
		case swap == -1:
			add("memory.swap.max", "max")
		case swap > 0:
			add("memory.swap.max", strconv.FormatInt(swap-limit, 10))
		}
		switch res := valueOr(m.Reservation, 0); {
		case res == -1:
			add("memory.low", "max")
		case res > 0:
			add("memory.low", strconv.FormatInt(res, 10))
		}
	}
	if c := r.CPU; c != nil {
		if c.Shares != nil {
			add("cpu.weight", strconv.FormatUint(sharesToWeight(*c.Shares), 10))
		}
		if c.Quota != nil || c.Period != nil {
			period := valueOr(c.Period, defCPUPeriod)
			quota := "max"
			if q := valueOr(c.Quota, 0); q > 0 {
				quota = strconv.FormatInt(q, 10)
			}
			add("cpu.max", quota+" "+strconv.FormatUint(period, 10))
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil {
		add("pids.max", pidsMax(*p.Limit))
	}
	if b := r.BlockIO; b != nil && b.Weight != nil {
		add("io.weight", "default "+strconv.FormatUint(blkioToIOWeight(*b.Weight), 10))
	}
	return out
}

// pidsMax is the pids.max value for an OCI pids limit (0 or -1: unlimited).
func pidsMax(limit int64) string {
	if limit <= 0 {
		return "max"
	}
	return strconv.FormatInt(limit, 10)
}

// sharesToWeight maps v1 cpu.shares onto v2 cpu.weight. With l = log2(shares),
// the exponent (l² + 125·l)/612 − 7/34 is a quadratic through (1, 0), (10, 2)
// and (18, 4), so shares 2, 1024 and 262144 become weights 1, 100 and 10000.
func sharesToWeight(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 100
	case shares <= minShares:
		return 1
	case shares >= maxShares:
		return 10000
	}
	l := math.Log2(float64(shares))
	w := math.Ceil(math.Pow(10, (l*l+125*l)/612-7.0/34))
	return uint64(min(max(w, 1), 10000))
}

// blkioToIOWeight maps a blkio weight (10..1000) linearly onto io.weight
// (1..10000).
func blkioToIOWeight(w uint16) uint64 {
	if w < minBlkWeight {
		w = minBlkWeight
	}
	if w > maxBlkWeight {
		w = maxBlkWeight
	}
	return 1 + (uint64(w)-minBlkWeight)*9999/(maxBlkWeight-minBlkWeight)
}
