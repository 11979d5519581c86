package seccomp

import (
	"errors"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

const dockerProfile = "testdata/docker-default-amd64.oci.json"

// verdict is a filter's answer, decoded.
type verdict struct {
	action uint32 // ret & SECCOMP_RET_ACTION_FULL
	data   uint16 // errno for ERRNO
}

var (
	allow       = verdict{retAllow, 0}
	killProcess = verdict{retKillProcess, 0}
)

func errno(e syscall.Errno) verdict { return verdict{retErrno, uint16(e)} }

func (v verdict) String() string {
	switch v.action {
	case retAllow:
		return "ALLOW"
	case retErrno:
		return "ERRNO(" + syscall.Errno(v.data).Error() + ")"
	case retKillProcess:
		return "KILL_PROCESS"
	case retKillThread:
		return "KILL_THREAD"
	case retUserNotif:
		return "USER_NOTIF"
	case retLog:
		return "LOG"
	case retTrap:
		return "TRAP"
	case retTrace:
		return "TRACE"
	}
	return "?"
}

func nr(t testing.TB, name string) int32 {
	t.Helper()
	n, err := libseccomp.GetSyscallFromName(name)
	if err != nil {
		t.Fatalf("resolving %s: %v", name, err)
	}
	return int32(n)
}

func nativeAuditArch(t testing.TB) uint32 {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skipf("decision tables are written for x86_64, not %s", runtime.GOARCH)
	}
	return auditArchX86_64
}

// decide runs prog for syscall name with args on the native architecture.
func decide(t testing.TB, prog *Program, name string, args ...uint64) verdict {
	t.Helper()
	return decideNr(t, prog, nativeAuditArch(t), nr(t, name), args...)
}

func decideNr(t testing.TB, prog *Program, arch uint32, n int32, args ...uint64) verdict {
	t.Helper()
	d := seccompData{nr: n, arch: arch}
	copy(d.args[:], args)
	ret, _, err := runBPF(prog.Insns, d)
	if err != nil {
		t.Fatalf("running filter: %v", err)
	}
	return verdict{ret & retActionFull, uint16(ret & retData)}
}

func mustCompile(t testing.TB, p *specs.LinuxSeccomp) *Program {
	t.Helper()
	prog, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if err := checkBPF(prog.Insns); err != nil {
		t.Fatalf("compiled program: %v", err)
	}
	return prog
}

func TestComplement32(t *testing.T) {
	cases := [][]uint32{
		nil,
		{0},
		{0xffffffff},
		personalityValues,
		socketFamilies,
		deniedIoctls,
		{1, 2, 3, 4, 5, 6, 7, 8},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, excl := range cases {
		blocks := complement32(excl)
		check := func(v uint32) {
			matched := slices.ContainsFunc(blocks, func(b block) bool { return b.matches(v) })
			if in := slices.Contains(excl, v); matched == in {
				t.Fatalf("excl %#x: value %#x: in excl %v, matched by a block %v", excl, v, in, matched)
			}
		}
		for _, x := range excl {
			check(x)
			check(x - 1)
			check(x + 1)
			check(x ^ 0x80000000)
		}
		check(0)
		check(0xffffffff)
		for range 200000 {
			check(r.Uint32())
			check(r.Uint32() & 0x1ffff) // small values, where the excluded ones live
		}
	}
}

// TestDefaultDecisions runs the compiled default profile on the syscalls and
// arguments that matter and checks each answer.
func TestDefaultDecisions(t *testing.T) {
	prog := mustCompile(t, Default())
	const garbage = 0xdead_0000_0000_0000 // upper half the kernel ignores for int arguments
	tests := []struct {
		name string
		args []uint64
		want verdict
	}{
		{"getpid", nil, allow},
		{"read", nil, allow},
		{"execve", nil, allow},
		{"futex", nil, allow},
		{"mount", nil, errno(syscall.EPERM)},
		{"unshare", []uint64{syscall.CLONE_NEWUSER}, errno(syscall.EPERM)},
		{"setns", nil, errno(syscall.EPERM)},
		{"keyctl", nil, errno(syscall.EPERM)},
		{"bpf", nil, errno(syscall.EPERM)},
		{"io_uring_setup", nil, errno(syscall.EPERM)},
		{"ptrace", nil, errno(syscall.EPERM)},
		{"open_by_handle_at", nil, errno(syscall.EPERM)},
		{"adjtimex", nil, errno(syscall.EPERM)},
		{"modify_ldt", nil, errno(syscall.ENOSYS)}, // allowed by Docker, absent here
		{"clone3", nil, errno(syscall.ENOSYS)},
		// clone: threads and fork are fine, namespaces are not.
		{"clone", []uint64{syscall.CLONE_VM | syscall.CLONE_FS | syscall.CLONE_FILES | syscall.CLONE_SIGHAND | syscall.CLONE_THREAD | syscall.CLONE_SYSVSEM | syscall.CLONE_SETTLS | syscall.CLONE_PARENT_SETTID | syscall.CLONE_CHILD_CLEARTID}, allow},
		{"clone", []uint64{uint64(syscall.SIGCHLD)}, allow},
		{"clone", []uint64{syscall.CLONE_VM | syscall.CLONE_VFORK | uint64(syscall.SIGCHLD)}, allow},
		{"clone", []uint64{syscall.CLONE_NEWNS | uint64(syscall.SIGCHLD)}, errno(syscall.EPERM)},
		{"clone", []uint64{syscall.CLONE_NEWUSER}, errno(syscall.EPERM)},
		{"clone", []uint64{syscall.CLONE_NEWNET | syscall.CLONE_NEWPID | syscall.CLONE_VM}, errno(syscall.EPERM)},
		{"clone", []uint64{syscall.CLONE_NEWCGROUP}, errno(syscall.EPERM)},
		// personality: Docker's five values, nothing else.
		{"personality", []uint64{0}, allow},
		{"personality", []uint64{8}, allow},
		{"personality", []uint64{0x20000}, allow},
		{"personality", []uint64{0x20008}, allow},
		{"personality", []uint64{0xffffffff}, allow},
		{"personality", []uint64{0x0040000}, errno(syscall.EPERM)}, // ADDR_NO_RANDOMIZE
		{"personality", []uint64{0x0400000}, errno(syscall.EPERM)}, // READ_IMPLIES_EXEC
		{"personality", []uint64{0xfffffffe}, errno(syscall.EPERM)},
		{"personality", []uint64{garbage | 0x0040000}, errno(syscall.EPERM)},
		// socket: local, IP and netlink families only.
		{"socket", []uint64{syscall.AF_UNIX}, allow},
		{"socket", []uint64{syscall.AF_INET, syscall.SOCK_STREAM}, allow},
		{"socket", []uint64{syscall.AF_INET6}, allow},
		{"socket", []uint64{syscall.AF_NETLINK}, allow},
		{"socket", []uint64{syscall.AF_PACKET}, errno(syscall.EAFNOSUPPORT)},
		{"socket", []uint64{40}, errno(syscall.EAFNOSUPPORT)}, // AF_VSOCK
		{"socket", []uint64{38}, errno(syscall.EAFNOSUPPORT)}, // AF_ALG
		{"socket", []uint64{garbage | 40}, errno(syscall.EAFNOSUPPORT)},
		{"socket", []uint64{garbage | syscall.AF_INET}, allow},
		{"socketpair", []uint64{syscall.AF_UNIX}, allow},
		{"socketpair", []uint64{30}, errno(syscall.EAFNOSUPPORT)}, // AF_TIPC
		// ioctl: everything but terminal input injection.
		{"ioctl", []uint64{0, syscall.TCGETS}, allow},
		{"ioctl", []uint64{0, syscall.TIOCGWINSZ}, allow},
		{"ioctl", []uint64{0, 0x541B}, allow}, // FIONREAD
		{"ioctl", []uint64{0, syscall.TIOCSTI}, errno(syscall.EPERM)},
		{"ioctl", []uint64{0, syscall.TIOCLINUX}, errno(syscall.EPERM)},
		{"ioctl", []uint64{0, garbage | syscall.TIOCSTI}, errno(syscall.EPERM)},
	}
	for _, tt := range tests {
		if got := decide(t, prog, tt.name, tt.args...); got != tt.want {
			t.Errorf("%s(%#x) = %v, want %v", tt.name, tt.args, got, tt.want)
		}
	}

	// Every group member gets its group's answer.
	for _, g := range allowedGroups {
		for _, name := range g.names {
			if n, err := libseccomp.GetSyscallFromName(name); err != nil || n < 0 {
				continue // not a syscall on this architecture
			}
			if got := decide(t, prog, name); got != allow {
				t.Errorf("%s (%s) = %v, want ALLOW", name, g.purpose, got)
			}
		}
	}
	for _, g := range deniedGroups {
		for _, name := range g.names {
			if n, err := libseccomp.GetSyscallFromName(name); err != nil || n < 0 {
				continue
			}
			if got := decide(t, prog, name); got != errno(syscall.EPERM) {
				t.Errorf("%s (%s) = %v, want EPERM", name, g.purpose, got)
			}
		}
	}

	// Syscalls unknown to the profile, including numbers no kernel has yet,
	// look absent.
	arch := nativeAuditArch(t)
	for _, n := range []int32{1000, 463, 0x3fffffff} {
		if got := decideNr(t, prog, arch, n); got != errno(syscall.ENOSYS) {
			t.Errorf("syscall %d = %v, want ENOSYS", n, got)
		}
	}
	// The 32-bit and x32 entry paths kill the process.
	if got := decideNr(t, prog, auditArchI386, 20 /* getpid on i386 */); got != killProcess {
		t.Errorf("i386 getpid = %v, want KILL_PROCESS", got)
	}
	const x32Bit = 0x40000000
	if got := decideNr(t, prog, arch, x32Bit|nr(t, "getpid")); got != killProcess {
		t.Errorf("x32 getpid = %v, want KILL_PROCESS", got)
	}
}

// TestDefaultFresh checks that Default returns a value the caller may
// modify without changing any other rule or any later profile.
func TestDefaultFresh(t *testing.T) {
	p := Default()
	ptrs := map[*uint]bool{}
	for i, s := range p.Syscalls {
		if s.ErrnoRet != nil {
			if ptrs[s.ErrnoRet] {
				t.Fatalf("syscalls[%d] shares its ErrnoRet with another rule", i)
			}
			ptrs[s.ErrnoRet] = true
		}
	}
	p.Syscalls[0].Names[0] = "changed"
	*p.DefaultErrnoRet = 1
	if q := Default(); q.Syscalls[0].Names[0] == "changed" || *q.DefaultErrnoRet != uint(syscall.ENOSYS) {
		t.Fatal("modifying one Default() changed the next")
	}
}

func TestDefaultForCapabilities(t *testing.T) {
	base := mustCompile(t, Default())
	tests := []struct {
		caps []string
		name string
		args []uint64
	}{
		{[]string{"CAP_SYS_PTRACE"}, "ptrace", nil},
		{[]string{"cap_sys_ptrace"}, "process_vm_readv", nil},
		{[]string{"SYS_PTRACE"}, "kcmp", nil},
		{[]string{"CAP_SYS_TIME"}, "clock_settime", nil},
		{[]string{"CAP_SYS_TIME"}, "adjtimex", nil},
		{[]string{"CAP_SYS_NICE"}, "mbind", nil},
		{[]string{"CAP_SYSLOG"}, "syslog", nil},
		{[]string{"CAP_SYS_CHROOT"}, "chroot", nil},
		{[]string{"CAP_NET_RAW"}, "socket", []uint64{syscall.AF_PACKET}},
	}
	for _, tt := range tests {
		prog := mustCompile(t, DefaultFor(tt.caps))
		if got := decide(t, prog, tt.name, tt.args...); got != allow {
			t.Errorf("DefaultFor(%v): %s = %v, want ALLOW", tt.caps, tt.name, got)
		}
		if got := decide(t, base, tt.name, tt.args...); got == allow {
			t.Errorf("Default(): %s = ALLOW, want it denied without %v", tt.name, tt.caps)
		}
		// The capability opens nothing else.
		if got := decide(t, prog, "mount"); got != errno(syscall.EPERM) {
			t.Errorf("DefaultFor(%v): mount = %v", tt.caps, got)
		}
	}
	// Capabilities that must not open anything.
	for _, c := range []string{"CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH", "CAP_SYS_MODULE", "CAP_BPF", "CAP_NOT_A_CAP"} {
		prog := mustCompile(t, DefaultFor([]string{c}))
		if prog.Hash != base.Hash || !slices.Equal(prog.Insns, base.Insns) {
			t.Errorf("DefaultFor(%s) differs from Default()", c)
		}
	}
}

// TestDefaultNoBroaderThanDocker checks that every syscall the default
// profile allows in any form is allowed by Docker's default profile for a
// container without capabilities.
func TestDefaultNoBroaderThanDocker(t *testing.T) {
	docker, err := LoadFile(dockerProfile)
	if err != nil {
		t.Fatal(err)
	}
	dockerAllowed := map[string]bool{}
	for _, s := range docker.Syscalls {
		if s.Action == specs.ActAllow {
			for _, n := range s.Names {
				dockerAllowed[n] = true
			}
		}
	}
	for _, s := range Default().Syscalls {
		if s.Action != specs.ActAllow {
			continue
		}
		for _, n := range s.Names {
			if !dockerAllowed[n] {
				t.Errorf("the default profile allows %s, Docker's does not", n)
			}
		}
	}
	// And the argument conditions are at least as strict: clone and
	// personality as Docker, socket and ioctl narrower than Docker's
	// unconditional allow (checked in TestDefaultDecisions).
	dp := mustCompile(t, docker)
	pp := mustCompile(t, Default())
	for _, v := range []uint64{0, 8, 0x20000, 0x20008, 0xffffffff, 0x40000, 0x20001} {
		if d, p := decide(t, dp, "personality", v), decide(t, pp, "personality", v); p == allow && d != allow {
			t.Errorf("personality(%#x): default allows, Docker %v", v, d)
		}
	}
	for _, f := range cloneNamespaceFlags {
		if d, p := decide(t, dp, "clone", f), decide(t, pp, "clone", f); p == allow || d == allow {
			t.Errorf("clone(%#x): default %v, Docker %v", f, p, d)
		}
	}
}

func TestDockerProfile(t *testing.T) {
	p, err := LoadFile(dockerProfile)
	if err != nil {
		t.Fatal(err)
	}
	prog := mustCompile(t, p)
	t.Logf("Docker profile: %d rules, %d BPF instructions, skipped %v", len(p.Syscalls), prog.Len(), prog.Skipped)
	tests := []struct {
		name string
		args []uint64
		want verdict
	}{
		{"getpid", nil, allow},
		{"mount", nil, errno(syscall.EPERM)},
		{"unshare", nil, errno(syscall.EPERM)},
		{"clone3", nil, errno(syscall.ENOSYS)},
		{"clone", []uint64{syscall.CLONE_NEWNS}, errno(syscall.EPERM)},
		{"clone", []uint64{uint64(syscall.SIGCHLD)}, allow},
		{"personality", []uint64{0xffffffff}, allow},
		{"personality", []uint64{0x40000}, errno(syscall.EPERM)},
		{"io_uring_setup", nil, allow},     // allowed by this Docker profile (moby 0ec744f4)
		{"bpf", nil, errno(syscall.EPERM)}, // not listed: the default action
	}
	for _, tt := range tests {
		if got := decide(t, prog, tt.name, tt.args...); got != tt.want {
			t.Errorf("%s(%#x) = %v, want %v", tt.name, tt.args, got, tt.want)
		}
	}
	// Docker's profile adds the i386 and x32 architectures.
	if got := decideNr(t, prog, auditArchI386, 20); got != allow {
		t.Errorf("i386 getpid = %v, want ALLOW", got)
	}
}

func u(v uint) *uint { return &v }

func TestCompileSemantics(t *testing.T) {
	eperm := errno(syscall.EPERM)
	tests := []struct {
		name  string
		p     specs.LinuxSeccomp
		call  string
		args  []uint64
		want  verdict
		flags uint
	}{
		{
			name: "errnoRet defaults to EPERM",
			p:    specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActErrno}}},
			call: "getppid", want: eperm,
		},
		{
			name: "defaultErrnoRet",
			p:    specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: u(uint(syscall.EXDEV))},
			call: "getppid", want: errno(syscall.EXDEV),
		},
		{
			name: "conditions on different arguments: AND (both hold)",
			p: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"kill"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: 1}, {Index: 1, Op: specs.OpEqualTo, Value: 9}}}}},
			call: "kill", args: []uint64{1, 9}, want: eperm,
		},
		{
			name: "conditions on different arguments: AND (one holds)",
			p: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"kill"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: 1}, {Index: 1, Op: specs.OpEqualTo, Value: 9}}}}},
			call: "kill", args: []uint64{1, 15}, want: allow,
		},
		{
			name: "conditions on one argument: OR",
			p: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"kill"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: 9}, {Index: 1, Op: specs.OpEqualTo, Value: 19}}}}},
			call: "kill", args: []uint64{1, 19}, want: eperm,
		},
		{
			name: "masked equality: value is the mask",
			p: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"kill"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpMaskedEqual, Value: 0xf0, ValueTwo: 0x10}}}}},
			call: "kill", args: []uint64{1, 0x13}, want: eperm,
		},
		{
			name: "rules for one syscall: OR",
			p: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"kill"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: 0}}},
				{Names: []string{"kill"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: 15}}},
			}},
			call: "kill", args: []uint64{1, 15}, want: allow,
		},
		{
			name: "rule with the default action is dropped",
			p: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getppid"}, Action: specs.ActErrno}, {Names: []string{"getpid"}, Action: specs.ActAllow}}},
			call: "getpid", want: allow,
		},
		{
			name: "flags",
			p:    specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow}},
			call: "getpid", want: allow, flags: FilterFlagLog | FilterFlagSpecAllow,
		},
		{
			name: "notify asks for a listener",
			p: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"openat"}, Action: specs.ActNotify}}},
			call: "openat", want: verdict{retUserNotif, 0}, flags: FilterFlagNewListener | FilterFlagWaitKillableRecv,
		},
		{
			name: "log, trap and kill actions",
			p: specs.LinuxSeccomp{DefaultAction: specs.ActLog, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpid"}, Action: specs.ActAllow}, {Names: []string{"getppid"}, Action: specs.ActKill}}},
			call: "getppid", want: verdict{retKillThread, 0},
		},
		{
			name: "unknown syscall names are skipped when harmless",
			p: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpid", "no_such_syscall"}, Action: specs.ActAllow}}},
			call: "getpid", want: allow,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := mustCompile(t, &tt.p)
			if got := decide(t, prog, tt.call, tt.args...); got != tt.want {
				t.Errorf("%s(%#x) = %v, want %v", tt.call, tt.args, got, tt.want)
			}
			if prog.Flags != tt.flags {
				t.Errorf("Flags = %#x, want %#x", prog.Flags, tt.flags)
			}
		})
	}

	prog := mustCompile(t, &tests[len(tests)-1].p)
	if !slices.Equal(prog.Skipped, []string{"no_such_syscall"}) {
		t.Errorf("Skipped = %q", prog.Skipped)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name  string
		p     *specs.LinuxSeccomp
		class error
	}{
		{"nil", nil, ErrInvalidProfile},
		{"unknown action", &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_MAYBE"}, ErrInvalidProfile},
		{"bad op", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"kill"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_ALMOST"}}}}}, ErrInvalidProfile},
		{"arg index", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"kill"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}}, ErrInvalidProfile},
		{"unconditional absorbs conditional", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"ioctl"}, Action: specs.ActAllow},
			{Names: []string{"ioctl"}, Action: specs.ActErrno, ErrnoRet: u(uint(syscall.EPERM)), Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: syscall.TIOCSTI}}},
		}}, ErrInvalidProfile},
		{"two unconditional actions", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mount"}, Action: specs.ActAllow}, {Names: []string{"mount"}, Action: specs.ActKillProcess},
		}}, ErrInvalidProfile},
		{"same conditions, different actions", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"kill"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: 15}}},
			{Names: []string{"kill"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: 15}}},
		}}, ErrInvalidProfile},
		{"unknown name in a deny rule under a permissive default", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"no_such_syscall"}, Action: specs.ActErrno},
		}}, ErrNotSupported},
		{"listenerPath", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock"}, ErrNotSupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.p)
			if !errors.Is(err, tt.class) {
				t.Fatalf("Compile: %v, want an error wrapping %v", err, tt.class)
			}
			var pe *ProfileError
			if !errors.As(err, &pe) {
				t.Fatalf("Compile: %v is not a *ProfileError", err)
			}
			t.Log(err)
		})
	}
}

func TestCompileTooLarge(t *testing.T) {
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	for v := range uint64(5000) {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"kill"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 1, Op: specs.OpEqualTo, Value: v}}})
	}
	_, err := Compile(p)
	if !errors.Is(err, ErrInvalidProfile) || !strings.Contains(err.Error(), "BPF instructions") {
		t.Fatalf("Compile of a profile too large for the kernel: %v", err)
	}
}

func TestCompileDeterministic(t *testing.T) {
	a, b := mustCompile(t, Default()), mustCompile(t, Default())
	if a.Hash != b.Hash || !slices.Equal(a.Insns, b.Insns) {
		t.Fatal("two compilations of the default profile differ")
	}
	c := Default()
	c.Syscalls[0].Names = c.Syscalls[0].Names[1:]
	if mustCompile(t, c).Hash == a.Hash {
		t.Fatal("different profiles have the same hash")
	}
}

// TestInstructionsExecuted reports how many BPF instructions a syscall
// costs in each profile (the kernel skips the filter altogether for
// syscalls whose answer does not depend on arguments).
func TestInstructionsExecuted(t *testing.T) {
	docker, err := LoadFile(dockerProfile)
	if err != nil {
		t.Fatal(err)
	}
	arch := nativeAuditArch(t)
	for _, pr := range []struct {
		name string
		prog *Program
	}{{"default", mustCompile(t, Default())}, {"docker", mustCompile(t, docker)}} {
		for _, c := range []struct {
			name string
			args []uint64
		}{{"getppid", nil}, {"ioctl", []uint64{0, syscall.TCGETS}}, {"ioctl", []uint64{0, 0x541B}}, {"socket", []uint64{syscall.AF_INET}}, {"personality", []uint64{0xffffffff}}, {"clone", []uint64{uint64(syscall.SIGCHLD)}}} {
			d := seccompData{nr: nr(t, c.name), arch: arch}
			copy(d.args[:], c.args)
			_, steps, err := runBPF(pr.prog.Insns, d)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%-8s %-12s %#x: %d instructions", pr.name, c.name, c.args, steps)
		}
	}
}
