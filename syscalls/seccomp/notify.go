package seccomp

import (
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// WithNotify returns a copy of p in which the supervisor decides the named
// syscalls through seccomp user notification: every rule p has for them is
// removed (a rule left with no names is dropped) and one SCMP_ACT_NOTIFY
// rule for all of them is added, so whatever p said about them, the
// notification decides. A nil p is an allow-all base (defaultAction
// SCMP_ACT_ALLOW). p is not modified.
//
// The profile also gets SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: once the
// supervisor has received a notification, only a fatal signal interrupts
// the waiting thread. Without it any signal (Go's preemption signal, a
// timer) makes the kernel drop the notification and restart the syscall
// as a new one after the supervisor may already have acted: a brokered
// mq_open(O_CREAT|O_EXCL) would then create the queue and fail with EEXIST
// on the restart. The cost: a thread waiting for the supervisor runs its
// signal handlers only after the answer.
//
// The compiled Program has FilterFlagNewListener (Program.NeedsListener):
// install it with syscalls.SetSeccompFilterListener and serve the listener
// (package syscalls/notify). Keep names to syscalls no hot path uses: a
// notified syscall costs a round trip to the supervisor (tens of µs), every
// other syscall is unaffected.
func WithNotify(p *specs.LinuxSeccomp, names ...string) *specs.LinuxSeccomp {
	var out *specs.LinuxSeccomp
	if p == nil {
		out = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	} else {
		out = cloneProfile(p)
	}
	if len(names) == 0 {
		return out
	}
	kept := out.Syscalls[:0]
	for _, r := range out.Syscalls {
		r.Names = slices.DeleteFunc(r.Names, func(n string) bool { return slices.Contains(names, n) })
		if len(r.Names) > 0 {
			kept = append(kept, r)
		}
	}
	out.Syscalls = append(kept, specs.LinuxSyscall{Names: slices.Clone(names), Action: specs.ActNotify})
	if !slices.Contains(out.Flags, flagWaitKillableRecv) {
		out.Flags = append(out.Flags, flagWaitKillableRecv)
	}
	return out
}

// NeedsListener reports whether the program has SCMP_ACT_NOTIFY rules, so
// that it must be installed with SECCOMP_FILTER_FLAG_NEW_LISTENER
// (syscalls.SetSeccompFilterListener) and its listener served.
func (p *Program) NeedsListener() bool { return p.Flags&FilterFlagNewListener != 0 }

// cloneProfile returns a deep copy of p.
func cloneProfile(p *specs.LinuxSeccomp) *specs.LinuxSeccomp {
	c := *p
	c.DefaultErrnoRet = clonePtr(p.DefaultErrnoRet)
	c.Architectures = slices.Clone(p.Architectures)
	c.Flags = slices.Clone(p.Flags)
	c.Syscalls = make([]specs.LinuxSyscall, len(p.Syscalls))
	for i, r := range p.Syscalls {
		c.Syscalls[i] = specs.LinuxSyscall{
			Names:    slices.Clone(r.Names),
			Action:   r.Action,
			ErrnoRet: clonePtr(r.ErrnoRet),
			Args:     slices.Clone(r.Args),
		}
	}
	return &c
}
