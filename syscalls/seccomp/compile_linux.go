package seccomp

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

// SECCOMP_FILTER_FLAG_* values that can appear in Program.Flags (the
// kernel's numbering). SECCOMP_FILTER_FLAG_TSYNC is never among them: the
// installer always adds it.
const (
	FilterFlagLog              = 0x2  // log every action except ALLOW
	FilterFlagSpecAllow        = 0x4  // do not force the Speculative Store Bypass mitigation
	FilterFlagNewListener      = 0x8  // the program has SCMP_ACT_NOTIFY rules: return a listener
	FilterFlagWaitKillableRecv = 0x20 // notified tasks wait killably once the supervisor received them
)

// Program is a seccomp filter compiled to classic BPF, ready for
// syscalls.SetSeccompFilter (or SetSeccompFilterListener when Flags has
// FilterFlagNewListener). It is plain data: it can be stored, sent to
// another process and installed without libseccomp.
type Program struct {
	// Insns is the raw struct sock_filter array, 8 bytes per instruction,
	// in the native byte order.
	Insns []byte
	// Flags are the SECCOMP_FILTER_FLAG_* bits to pass to seccomp(2).
	Flags uint
	// Hash identifies the program: the hex SHA-256 of the profile's
	// canonical encoding, the native architecture, the libseccomp version
	// and pinfold's compilation format (see Cache).
	Hash string
	// Skipped lists the syscall names this libseccomp does not know, whose
	// rules were left out (their calls get the default action). Docker's
	// profile names syscalls newer than some libseccomp releases.
	Skipped []string
}

// Len returns the number of BPF instructions.
func (p *Program) Len() int { return len(p.Insns) / bpfInsnSize }

// clone returns a deep copy, so that callers of Cache.Program cannot change
// the cached program.
func (p *Program) clone() *Program {
	return &Program{Insns: slices.Clone(p.Insns), Flags: p.Flags, Hash: p.Hash, Skipped: slices.Clone(p.Skipped)}
}

// libEnv is what, besides the profile, decides the compiled program.
type libEnv struct {
	arch                string // libseccomp's name of the native architecture
	major, minor, micro uint
	api                 uint
}

func (e libEnv) atLeast(major, minor uint) bool {
	return e.major > major || e.major == major && e.minor >= minor
}

func (e libEnv) version() string { return fmt.Sprintf("%d.%d.%d", e.major, e.minor, e.micro) }

var environment = sync.OnceValues(func() (libEnv, error) {
	var e libEnv
	e.major, e.minor, e.micro = libseccomp.GetLibraryVersion()
	if !e.atLeast(2, 5) {
		return e, fmt.Errorf("libseccomp %s is too old: pinfold needs 2.5 or later: %w", e.version(), ErrNotSupported)
	}
	api, err := libseccomp.GetAPI()
	if err != nil {
		return e, fmt.Errorf("reading the libseccomp API level: %w", err)
	}
	e.api = api
	arch, err := libseccomp.GetNativeArch()
	if err != nil {
		return e, fmt.Errorf("reading the native architecture from libseccomp: %w", err)
	}
	e.arch = arch.String()
	return e, nil
})

// Compile translates an OCI seccomp profile into a BPF program with
// libseccomp. The profile is validated first (see Validate); rules are added
// as runc adds them: several names in a rule are separate rules, several
// rules for one name are alternatives (OR), the conditions of a rule must all
// hold (AND; see ruleCount for several conditions on one argument), errnoRet
// defaults to EPERM, and a rule whose action equals the default action is
// dropped. Unlike runc:
//
//   - syscalls made through an architecture the profile does not name kill
//     the process (runc answers ENOSYS);
//   - a syscall name unknown to libseccomp is skipped and listed in
//     Program.Skipped, but is an error if its rule is stricter than the
//     default action, since the rule cannot be enforced;
//   - a syscall with an unconditional rule and another rule with a
//     different action is an error: libseccomp would silently keep only
//     the unconditional one;
//   - the filter uses libseccomp's binary-tree layout (when available),
//     which makes argument-dependent syscalls much cheaper in large filters.
func Compile(p *specs.LinuxSeccomp) (*Program, error) {
	if err := Validate(p); err != nil {
		return nil, err
	}
	env, err := environment()
	if err != nil {
		return nil, err
	}
	prog, err := compile(p, env)
	if err != nil {
		return nil, err
	}
	key := profileKey(p, env)
	prog.Hash = hex.EncodeToString(key[:])
	return prog, nil
}

// compile does the work of Compile for a validated profile, without the hash.
func compile(p *specs.LinuxSeccomp, env libEnv) (*Program, error) {
	defAct, err := scmpAction(p.DefaultAction, p.DefaultErrnoRet)
	if err != nil {
		return nil, &ProfileError{Field: "defaultAction", Msg: err.Error()}
	}
	f, err := libseccomp.NewFilter(defAct)
	if err != nil {
		return nil, fmt.Errorf("creating a libseccomp filter: %w", err)
	}
	defer f.Release()

	// Kill the whole process, not just the thread, on a foreign
	// architecture: a process with one thread gone is in no state to go on.
	if err := f.SetBadArchAction(libseccomp.ActKillProcess); err != nil {
		return nil, fmt.Errorf("setting the bad-architecture action: %w", err)
	}
	if env.atLeast(2, 5) && env.api >= 4 {
		if err := f.SetOptimize(2); err != nil {
			return nil, fmt.Errorf("selecting libseccomp's binary-tree layout: %w", err)
		}
	}
	for _, a := range p.Architectures {
		name, _ := archName(a) // checked by Validate
		arch, err := libseccomp.GetArchFromString(name)
		if err == nil {
			err = f.AddArch(arch)
		}
		if err != nil {
			return nil, &ProfileError{Field: "architectures", Msg: fmt.Sprintf("%s: libseccomp %s cannot add it: %v", a, env.version(), err), Err: ErrNotSupported}
		}
	}

	var flags uint
	for _, fl := range p.Flags {
		switch fl {
		case flagLog:
			flags |= FilterFlagLog
		case flagSpecAllow:
			flags |= FilterFlagSpecAllow
		case flagWaitKillableRecv:
			flags |= FilterFlagWaitKillableRecv
		}
	}

	// Rules seen per syscall, to find those libseccomp would merge silently.
	seen := map[libseccomp.ScmpSyscall][]seenRule{}
	var skipped []string
	type add struct {
		index int
		name  string
		nr    libseccomp.ScmpSyscall
		act   libseccomp.ScmpAction
		conds [][]libseccomp.ScmpCondition
	}
	var adds []add
	for i, s := range p.Syscalls {
		act, err := scmpAction(s.Action, s.ErrnoRet)
		if err != nil {
			return nil, &ProfileError{Field: fmt.Sprintf("syscalls[%d].action", i), Syscall: first(s.Names), Msg: err.Error()}
		}
		if act == libseccomp.ActNotify {
			flags |= FilterFlagNewListener
		}
		conds, err := conditions(s.Args)
		if err != nil {
			return nil, &ProfileError{Field: fmt.Sprintf("syscalls[%d].args", i), Syscall: first(s.Names), Msg: err.Error()}
		}
		for j, name := range s.Names {
			nr, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				if stricter(act, defAct) {
					return nil, &ProfileError{Field: fmt.Sprintf("syscalls[%d].names[%d]", i, j), Syscall: name, Err: ErrNotSupported,
						Msg: fmt.Sprintf("libseccomp %s does not know this syscall, so the rule (%s) cannot be enforced and the call would get the more permissive default action; upgrade libseccomp or remove the name", env.version(), s.Action)}
				}
				if !slices.Contains(skipped, name) {
					skipped = append(skipped, name)
				}
				continue
			}
			r := seenRule{i, act, len(s.Args) == 0}
			for _, o := range seen[nr] {
				if (o.uncond || r.uncond) && o.action != r.action {
					return nil, conflict(p, o, r, name)
				}
			}
			seen[nr] = append(seen[nr], r)
			if act == defAct {
				continue // libseccomp refuses rules that repeat the default; they change nothing
			}
			adds = append(adds, add{i, name, nr, act, conds})
		}
	}
	for _, a := range adds {
		for _, c := range a.conds {
			var err error
			if len(c) == 0 {
				err = f.AddRule(a.nr, a.act)
			} else {
				err = f.AddRuleConditional(a.nr, a.act, c)
			}
			if errors.Is(err, syscall.EEXIST) {
				return nil, &ProfileError{Field: fmt.Sprintf("syscalls[%d]", a.index), Syscall: a.name,
					Msg: "another rule for this syscall has the same conditions and a different action; remove one of them"}
			}
			if err != nil {
				return nil, &ProfileError{Field: fmt.Sprintf("syscalls[%d]", a.index), Syscall: a.name, Msg: "libseccomp refused the rule: " + err.Error()}
			}
		}
	}

	insns, err := exportBPF(f, env)
	if err != nil {
		return nil, fmt.Errorf("exporting the seccomp filter: %w", err)
	}
	if n := len(insns) / bpfInsnSize; n > bpfMaxInsns {
		return nil, &ProfileError{Field: "syscalls", Msg: fmt.Sprintf("the profile compiles to %d BPF instructions, more than the kernel accepts (%d); use fewer argument conditions", n, bpfMaxInsns)}
	}
	if err := checkBPF(insns); err != nil {
		return nil, fmt.Errorf("libseccomp %s produced an unusable program: %w", env.version(), err)
	}
	return &Program{Insns: insns, Flags: flags, Skipped: skipped}, nil
}

// seenRule is a rule Compile has added for one syscall.
type seenRule struct {
	index  int // in the profile's syscalls
	action libseccomp.ScmpAction
	uncond bool // no argument conditions
}

// conflict reports two rules for one syscall, one of them unconditional,
// with different actions: libseccomp would keep the unconditional one and
// silently drop the other.
func conflict(p *specs.LinuxSeccomp, a, b seenRule, name string) error {
	u, o := a, b
	if !u.uncond {
		u, o = b, a
	}
	kind := "conditional"
	if o.uncond {
		kind = "unconditional"
	}
	return &ProfileError{Field: fmt.Sprintf("syscalls[%d]", b.index), Syscall: name,
		Msg: fmt.Sprintf("syscalls[%d] has an unconditional %s rule for it, so the %s %s rule of syscalls[%d] would be silently dropped by libseccomp (an unconditional rule absorbs every other rule for the syscall); remove one of them, or give the unconditional one conditions",
			u.index, p.Syscalls[u.index].Action, kind, p.Syscalls[o.index].Action, o.index)}
}

// scmpAction converts an OCI action; errno applies to ERRNO and TRACE and
// defaults to EPERM, as in runc.
func scmpAction(a specs.LinuxSeccompAction, errno *uint) (libseccomp.ScmpAction, error) {
	code := int16(syscall.EPERM)
	if errno != nil {
		code = int16(*errno) // at most maxErrno, checked by Validate
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return libseccomp.ActKillThread, nil
	case specs.ActKillProcess:
		return libseccomp.ActKillProcess, nil
	case specs.ActTrap:
		return libseccomp.ActTrap, nil
	case specs.ActErrno:
		return libseccomp.ActErrno.SetReturnCode(code), nil
	case specs.ActTrace:
		return libseccomp.ActTrace.SetReturnCode(code), nil
	case specs.ActAllow:
		return libseccomp.ActAllow, nil
	case specs.ActLog:
		return libseccomp.ActLog, nil
	case specs.ActNotify:
		return libseccomp.ActNotify, nil
	}
	return libseccomp.ActInvalid, fmt.Errorf("%q is not a seccomp action", a)
}

// precedence orders actions as the kernel does when several filters answer:
// a higher value wins.
func precedence(a libseccomp.ScmpAction) int {
	switch a & 0xffff {
	case libseccomp.ActKillProcess:
		return 7
	case libseccomp.ActKillThread:
		return 6
	case libseccomp.ActTrap:
		return 5
	case libseccomp.ActErrno:
		return 4
	case libseccomp.ActNotify:
		return 3
	case libseccomp.ActTrace:
		return 2
	case libseccomp.ActLog:
		return 1
	}
	return 0 // ALLOW
}

// stricter reports whether a denies more than b.
func stricter(a, b libseccomp.ScmpAction) bool { return precedence(a) > precedence(b) }

var scmpOps = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

// conditions returns the condition sets a rule expands to (see ruleCount):
// one empty set for a rule without arguments.
func conditions(args []specs.LinuxSeccompArg) ([][]libseccomp.ScmpCondition, error) {
	var per [maxSyscallArgs][]libseccomp.ScmpCondition
	for _, a := range args {
		op, ok := scmpOps[a.Op]
		if !ok {
			return nil, fmt.Errorf("%q is not a comparison", a.Op)
		}
		var c libseccomp.ScmpCondition
		var err error
		if a.Op == specs.OpMaskedEqual {
			// OCI and libseccomp agree: value is the mask, valueTwo the
			// expected result of argument&mask.
			c, err = libseccomp.MakeCondition(a.Index, op, a.Value, a.ValueTwo)
		} else {
			c, err = libseccomp.MakeCondition(a.Index, op, a.Value)
		}
		if err != nil {
			return nil, err
		}
		per[a.Index] = append(per[a.Index], c)
	}
	sets := [][]libseccomp.ScmpCondition{nil}
	for _, alts := range per {
		if len(alts) == 0 {
			continue
		}
		var next [][]libseccomp.ScmpCondition
		for _, s := range sets {
			for _, c := range alts {
				next = append(next, append(slices.Clone(s), c))
			}
		}
		sets = next
	}
	return sets, nil
}

// exportBPF returns the filter's BPF. libseccomp 2.6 exports to memory;
// older versions only write to a file descriptor, so the program goes
// through a pipe read concurrently (the write is a single write(2) that
// must not be cut short).
func exportBPF(f *libseccomp.ScmpFilter, env libEnv) ([]byte, error) {
	if env.atLeast(2, 6) {
		return f.ExportBPFMem()
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(r)
		done <- result{b, err}
	}()
	werr := f.ExportBPF(w)
	cerr := w.Close()
	res := <-done
	_ = r.Close()
	return res.b, errors.Join(werr, cerr, res.err)
}
