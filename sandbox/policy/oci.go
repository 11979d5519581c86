package policy

import (
	"fmt"
	"slices"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// OCI converts the resources to OCI runtime-spec form:
//
//   - Memory.Limit is memory; Memory.Swap is memory + memorySwap (the cgroup
//     v1 memory.memsw.limit_in_bytes meaning: memory and swap together).
//   - CPU.Quota and CPU.Period, in microseconds, give cpu cores per period;
//     both are unset when cpu is 0 (no limit). CPU.Shares is cpuShares.
//   - Pids.Limit is pids; BlockIO.Weight is ioWeight.
//
// The resources should have passed validation.
func (r Resources) OCI() *specs.LinuxResources {
	limit := int64(r.Memory)
	swap := limit + int64(r.MemorySwap)
	pids := r.Pids
	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: &limit, Swap: &swap},
		Pids:   &specs.LinuxPids{Limit: &pids},
	}
	if r.CPU > 0 || r.CPUShares > 0 {
		res.CPU = &specs.LinuxCPU{}
	}
	if r.CPU > 0 {
		quota := int64(r.cpuQuota() / time.Microsecond)
		period := uint64(r.CPUPeriod / time.Microsecond)
		res.CPU.Quota, res.CPU.Period = &quota, &period
	}
	if r.CPUShares > 0 {
		shares := r.CPUShares
		res.CPU.Shares = &shares
	}
	if r.IOWeight > 0 {
		w := r.IOWeight
		res.BlockIO = &specs.LinuxBlockIO{Weight: &w}
	}
	return res
}

// Resolve returns the seccomp profile the app runs under: the base profile
// (defaultProfile for ProfileDefault, the file for a path, none for
// ProfileNone with DefaultAction) with the inline rules on top. A syscall
// named by an inline rule is removed from the base profile's rules first, so
// the policy's rules decide it whatever the profile said.
//
// defaultProfile is pinfold's built-in profile; it is not modified.
func (s Seccomp) Resolve(defaultProfile *specs.LinuxSeccomp) (*specs.LinuxSeccomp, error) {
	var base *specs.LinuxSeccomp
	switch s.Profile {
	case ProfileDefault:
		if defaultProfile == nil {
			return nil, fmt.Errorf("resolving seccomp profile %s: %w", s.Profile, ErrNoSeccompBase)
		}
		base = defaultProfile
	case ProfileNone:
		if s.DefaultAction == "" {
			return nil, fmt.Errorf("resolving seccomp profile none: no defaultAction: %w", ErrMissingField)
		}
		base = &specs.LinuxSeccomp{DefaultAction: s.DefaultAction}
	default:
		p, err := loadProfile(s.Profile)
		if err != nil {
			return nil, fmt.Errorf("resolving seccomp profile: %w", err)
		}
		base = p
	}
	return OverlaySyscalls(base, s.Syscalls), nil
}

// OverlaySyscalls returns a copy of base with rules on top: every syscall
// named in rules is first removed from base's rules (a base rule left with no
// names is dropped), then rules are appended. The policy's rules thus decide
// the syscalls they name, whatever base said about them, and libseccomp never
// sees two conflicting rules for one syscall. base is not modified.
func OverlaySyscalls(base *specs.LinuxSeccomp, rules []specs.LinuxSyscall) *specs.LinuxSeccomp {
	out := cloneSeccomp(base)
	var named []string
	for _, r := range rules {
		named = append(named, r.Names...)
	}
	if len(named) > 0 {
		var kept []specs.LinuxSyscall
		for _, r := range out.Syscalls {
			r.Names = slices.DeleteFunc(r.Names, func(n string) bool { return slices.Contains(named, n) })
			if len(r.Names) > 0 {
				kept = append(kept, r)
			}
		}
		out.Syscalls = kept
	}
	for _, r := range rules {
		out.Syscalls = append(out.Syscalls, cloneRule(r))
	}
	return out
}

func cloneSeccomp(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	c := *p
	if p.DefaultErrnoRet != nil {
		v := *p.DefaultErrnoRet
		c.DefaultErrnoRet = &v
	}
	c.Architectures = slices.Clone(p.Architectures)
	c.Flags = slices.Clone(p.Flags)
	c.Syscalls = nil
	for _, r := range p.Syscalls {
		c.Syscalls = append(c.Syscalls, cloneRule(r))
	}
	return &c
}

func cloneRule(r specs.LinuxSyscall) specs.LinuxSyscall {
	c := r
	c.Names = slices.Clone(r.Names)
	c.Args = slices.Clone(r.Args)
	if r.ErrnoRet != nil {
		v := *r.ErrnoRet
		c.ErrnoRet = &v
	}
	return c
}
