package policy

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/syscalls/seccomp"
)

func TestDefault(t *testing.T) {
	p := Default()
	if err := p.Validate(); err != nil {
		t.Fatalf("the default policy does not validate:\n%v", err)
	}
	if p.Metadata.Name != "default" {
		t.Errorf("name = %q, want default", p.Metadata.Name)
	}
	// The read-only binds are exactly the system directories this host has.
	var want []Bind
	for _, d := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		if _, err := os.Stat(d); err == nil {
			want = append(want, Bind{d, d})
		}
	}
	if !slices.Equal(p.Spec.Filesystem.ReadOnly, want) {
		t.Errorf("read-only binds = %v, want %v", p.Spec.Filesystem.ReadOnly, want)
	}
	if !slices.Contains(p.Spec.Filesystem.ReadOnly, Bind{"/usr", "/usr"}) {
		t.Errorf("read-only binds %v lack /usr", p.Spec.Filesystem.ReadOnly)
	}
	// Each call returns a fresh policy: changing one leaves the next alone.
	p.Spec.Env["X"] = "y"
	p.Spec.Filesystem.Tmpfs["/x"] = 1
	if q := Default(); len(q.Spec.Env) != 1 || len(q.Spec.Filesystem.Tmpfs) != 2 {
		t.Errorf("Default shares maps between calls: %v %v", q.Spec.Env, q.Spec.Filesystem.Tmpfs)
	}
}

// TestValidate checks the messages for policies built in code, which carry
// no file positions.
func TestValidate(t *testing.T) {
	profile := writeProfile(t, `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}`)
	errno := func(n uint) *uint { return &n }
	tests := []struct {
		name   string
		modify func(p *Policy)
		is     error
		want   string // "" for a valid policy
	}{
		{"default", func(p *Policy) {}, nil, ""},
		{"no header", func(p *Policy) { p.APIVersion, p.Kind, p.Metadata.Name = "", "", "" }, ErrMissingField,
			"apiVersion: required (write apiVersion: pinfold/v1)\n" +
				"kind: required (write kind: SandboxPolicy)\n" +
				"metadata.name: required (a name such as python-tool)"},
		{"long name", func(p *Policy) { p.Metadata.Name = strings.Repeat("a", 64) }, ErrInvalidValue,
			`metadata.name: "` + strings.Repeat("a", 60) + `"... is not a valid name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)`},
		{"name ends with dash", func(p *Policy) { p.Metadata.Name = "tool-" }, ErrInvalidValue,
			`metadata.name: "tool-" is not a valid name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)`},
		{"63 character name", func(p *Policy) { p.Metadata.Name = strings.Repeat("a", 63) }, nil, ""},
		{"64 character hostname", func(p *Policy) { p.Spec.Hostname = strings.Repeat("a", 30) + "." + strings.Repeat("b", 33) }, nil, ""},
		{"65 character hostname", func(p *Policy) { p.Spec.Hostname = strings.Repeat("a", 31) + "." + strings.Repeat("b", 33) }, ErrInvalidValue,
			`spec.hostname: "` + strings.Repeat("a", 31) + "." + strings.Repeat("b", 28) + `"... is not a valid hostname (letters, digits and '-' in labels separated by '.', each label at most 63 characters, at most 64 in all)`},
		{"empty hostname", func(p *Policy) { p.Spec.Hostname = "" }, ErrMissingField,
			"spec.hostname: required with a UTS namespace (e.g. sandbox)"},
		{"hostname without uts", func(p *Policy) { p.Spec.Namespaces.UTS = false }, ErrInvalidValue,
			"spec.hostname: needs namespaces.uts: true (without a UTS namespace the app sees the host's hostname)"},
		{"no uts, no hostname", func(p *Policy) { p.Spec.Namespaces.UTS, p.Spec.Hostname = false, "" }, nil, ""},
		{"cgroupfs without a cgroup namespace", func(p *Policy) { p.Spec.Namespaces.Cgroup = false }, ErrInvalidValue,
			"spec.filesystem.cgroupfs: needs namespaces.cgroup: true (without a cgroup namespace the view would show the host's cgroup tree; write cgroupfs: false)"},
		{"no cgroup namespace, no cgroupfs", func(p *Policy) { p.Spec.Namespaces.Cgroup, p.Spec.Filesystem.Cgroupfs = false, false }, nil, ""},
		{"cgroup namespace without cgroupfs", func(p *Policy) { p.Spec.Filesystem.Cgroupfs = false }, nil, ""},
		{"user namespace", func(p *Policy) {
			p.Spec.Namespaces.User = &UserNamespace{
				UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
				GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
			}
		}, nil, ""},
		{"bad mappings", func(p *Policy) {
			p.Spec.Namespaces.User = &UserNamespace{
				UIDMappings: []specs.LinuxIDMapping{
					{ContainerID: 0, HostID: 100000, Size: 65536},
					{ContainerID: 70000, HostID: 100010, Size: 5},
					{ContainerID: math.MaxUint32 - 5, HostID: 0, Size: 10},
				},
				GIDMappings: []specs.LinuxIDMapping{{ContainerID: 1, HostID: 1, Size: 1}},
			}
			p.Spec.User.AdditionalGids = []uint32{1, 2}
		}, ErrInvalidValue,
			"spec.namespaces.user.uidMappings[1]: host ids overlap those of spec.namespaces.user.uidMappings[0]\n" +
				"spec.namespaces.user.uidMappings[2]: containerID 4294967290 + size 10 goes past the largest id, 4294967294\n" +
				"spec.namespaces.user.gidMappings: must map id 0 (pinfold's init stage runs as root inside the user namespace before switching to spec.user)\n" +
				"spec.user.gid: gid 65534 is not mapped by spec.namespaces.user.gidMappings\n" +
				"spec.user.additionalGids[1]: gid 2 is not mapped by spec.namespaces.user.gidMappings"},
		{"invalid uid", func(p *Policy) { p.Spec.User.UID = math.MaxUint32 }, ErrInvalidValue,
			"spec.user.uid: 4294967295 is not a valid uid"},
		{"env", func(p *Policy) { p.Spec.Env = map[string]string{"": "x", "OK": "a\x00b", "BAD": "\xff"} }, ErrInvalidValue,
			`spec.env[""]: "" is not a valid variable name (letters, digits and '_', not starting with a digit)` + "\n" +
				"spec.env.BAD: value is not valid UTF-8\n" +
				"spec.env.OK: value contains a NUL byte"},
		{"bind with colon", func(p *Policy) { p.Spec.Filesystem.ReadOnly = []Bind{{"/usr", "/a:b"}} }, ErrInvalidValue,
			`spec.filesystem.readOnly[0]: "/a:b": a bind path cannot contain ':'`},
		{"empty bind", func(p *Policy) { p.Spec.Filesystem.ReadWrite = []Bind{{}} }, ErrInvalidValue,
			"spec.filesystem.readWrite[0]: empty path"},
		{"missing bind source", func(p *Policy) { p.Spec.Filesystem.ReadWrite = []Bind{{"/nonexistent/dir", "/data"}} }, fs.ErrNotExist,
			"spec.filesystem.readWrite[0]: /nonexistent/dir does not exist on this host"},
		{"tmpfs", func(p *Policy) { p.Spec.Filesystem.Tmpfs = map[string]Size{"/": MiB, "/x": 0, "/dev": MiB} }, ErrInvalidValue,
			"spec.filesystem.tmpfs[\"/\"]: cannot mount over /: pinfold builds the root filesystem\n" +
				"spec.filesystem.tmpfs[\"/dev\"]: cannot mount at /dev: pinfold builds /dev itself\n" +
				"spec.filesystem.tmpfs[\"/x\"]: size 0 is too small (use e.g. 64Mi)"},
		{"mask root", func(p *Policy) { p.Spec.Filesystem.Masked = []string{"/"} }, ErrInvalidValue,
			"spec.filesystem.masked[0]: cannot mask /"},
		{"no workdir", func(p *Policy) { p.Spec.Filesystem.Workdir = "" }, ErrMissingField,
			"spec.filesystem.workdir: required (e.g. /tmp)"},
		{"minimum memory", func(p *Policy) { p.Spec.Resources.Memory = 4 * MiB }, nil, ""},
		{"memory", func(p *Policy) { p.Spec.Resources.Memory = 4*MiB - 1 }, ErrInvalidValue,
			"spec.resources.memory: 4194303 is below the minimum of 4Mi"},
		{"swap", func(p *Policy) { p.Spec.Resources.MemorySwap = -1 }, ErrInvalidValue,
			"spec.resources.memorySwap: must not be negative"},
		{"swap overflow", func(p *Policy) { p.Spec.Resources.MemorySwap = math.MaxInt64 }, ErrInvalidValue,
			"spec.resources.memorySwap: memory + memorySwap is too large"},
		{"cpu", func(p *Policy) { p.Spec.Resources.CPU = math.NaN() }, ErrInvalidValue,
			"spec.resources.cpu: must be a number of cores such as 1 or 0.5"},
		{"negative cpu", func(p *Policy) { p.Spec.Resources.CPU = -1 }, ErrInvalidValue,
			"spec.resources.cpu: must not be negative (0 is no limit)"},
		{"too much cpu", func(p *Policy) { p.Spec.Resources.CPU = 100000 }, ErrInvalidValue,
			"spec.resources.cpu: 100000 cores is more than the maximum of 65536"},
		{"smallest quota", func(p *Policy) { p.Spec.Resources.CPU, p.Spec.Resources.CPUPeriod = 1, time.Millisecond }, nil, ""},
		{"quota too small", func(p *Policy) { p.Spec.Resources.CPU, p.Spec.Resources.CPUPeriod = 0.5, time.Millisecond }, ErrInvalidValue,
			"spec.resources.cpu: 0.5 cores over a 1ms period is a quota of 500µs, below the kernel's minimum of 1ms (raise cpu or cpuPeriod)"},
		{"period", func(p *Policy) { p.Spec.Resources.CPUPeriod = 1500 * time.Microsecond / 1000 * 1000 }, nil, ""},
		{"sub-microsecond period", func(p *Policy) { p.Spec.Resources.CPUPeriod = 1500*time.Microsecond + 1 }, ErrInvalidValue,
			"spec.resources.cpuPeriod: 1.500001ms is not a whole number of microseconds"},
		{"period out of range", func(p *Policy) { p.Spec.Resources.CPUPeriod = 0 }, ErrInvalidValue,
			"spec.resources.cpuPeriod: must be between 1ms and 1s, got 0s"},
		{"shares, weight, pids", func(p *Policy) {
			p.Spec.Resources.CPUShares, p.Spec.Resources.IOWeight, p.Spec.Resources.Pids = 1, 1001, maxPids+1
		}, ErrInvalidValue,
			"spec.resources.cpuShares: must be between 2 and 262144, got 1\n" +
				"spec.resources.pids: must be between 1 and 4194304, got 4194305\n" +
				"spec.resources.ioWeight: must be between 10 and 1000, got 1001"},
		{"limits", func(p *Policy) {
			p.Spec.Limits = Limits{WallTime: -1, StopTimeout: -1, OpenFiles: 0, CoreSize: -1}
		}, ErrInvalidValue,
			"spec.limits.wallTime: must not be negative (0 is no limit)\n" +
				"spec.limits.stopTimeout: must not be negative\n" +
				"spec.limits.openFiles: must be between 1 and 2147483584, got 0\n" +
				"spec.limits.coreSize: must not be negative"},
		{"rlimits", func(p *Policy) {
			p.Spec.Limits.Rlimits = []specs.POSIXRlimit{
				{Type: "RLIMIT_STACK", Soft: 1, Hard: 1},
				{Type: "stack", Soft: 1, Hard: 1},
				{Type: "RLIMIT_STACK", Soft: 1, Hard: 1},
				{Type: "RLIMIT_CORE", Soft: 1, Hard: 1},
				{Type: "RLIMIT_BOGUS", Soft: 1, Hard: 1},
				{Type: "RLIMIT_AS", Soft: rlimitInfinity, Hard: 1 << 30},
			}
		}, ErrInvalidValue,
			"spec.limits.rlimits.stack: write RLIMIT_STACK\n" +
				"spec.limits.rlimits.RLIMIT_STACK: given twice\n" +
				"spec.limits.rlimits.RLIMIT_CORE: set RLIMIT_CORE with limits.coreSize\n" +
				`spec.limits.rlimits.RLIMIT_BOGUS: "RLIMIT_BOGUS" is not a resource limit (use e.g. RLIMIT_STACK)` + "\n" +
				"spec.limits.rlimits.RLIMIT_AS.soft: soft limit unlimited is above the hard limit 1Gi"},
		{"capabilities", func(p *Policy) { p.Spec.Capabilities.Add = []string{"CAP_CHOWN", "chown", "CAP_CHOWN", "CAP_FOO"} }, ErrInvalidValue,
			"spec.capabilities.add[1]: write CAP_CHOWN\n" +
				"spec.capabilities.add[2]: CAP_CHOWN is listed twice\n" +
				`spec.capabilities.add[3]: "CAP_FOO" is not a capability (did you mean CAP_BPF?)`},
		{"every capability", func(p *Policy) { p.Spec.Capabilities.Add = slices.Clone(capabilityNames) }, nil, ""},
		{"profile file", func(p *Policy) { p.Spec.Seccomp.Profile = profile }, nil, ""},
		{"profile directory", func(p *Policy) { p.Spec.Seccomp.Profile = filepath.Dir(profile) }, nil,
			"spec.seccomp.profile: seccomp profile " + filepath.Dir(profile) + ": not a regular file"},
		{"profile device", func(p *Policy) { p.Spec.Seccomp.Profile = "/dev/zero" }, nil,
			"spec.seccomp.profile: seccomp profile /dev/zero: not a regular file"},
		{"no profile", func(p *Policy) { p.Spec.Seccomp.Profile = "" }, ErrMissingField,
			"spec.seccomp.profile: required (default, none, or the absolute path of an OCI seccomp profile)"},
		{"profile none", func(p *Policy) {
			p.Spec.Seccomp = Seccomp{Profile: ProfileNone, DefaultAction: specs.ActKillProcess, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read"}, Action: specs.ActAllow},
				{Names: []string{"open"}, Action: specs.ActKillProcess},
				{Names: []string{"openat"}, Action: specs.ActErrno, ErrnoRet: errno(2)},
			}}
		}, ErrInvalidValue,
			"spec.seccomp.syscalls[1].action: kill_process is the default action: the rule has no effect"},
		{"errno rule under errno default", func(p *Policy) {
			p.Spec.Seccomp = Seccomp{Profile: ProfileNone, DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"a"}, Action: specs.ActErrno, ErrnoRet: errno(2)},
				{Names: []string{"b"}, Action: specs.ActErrno, ErrnoRet: errno(1)},
			}}
		}, ErrInvalidValue,
			"spec.seccomp.syscalls[1].action: errno is the default action: the rule has no effect"},
		{"rules", func(p *Policy) {
			p.Spec.Seccomp.Syscalls = []specs.LinuxSyscall{
				{Names: []string{"read"}, Action: "SCMP_ACT_BOGUS"},
				{Names: []string{"read"}, Action: specs.ActErrno, ErrnoRet: errno(4096)},
				{Names: []string{"read"}, Action: specs.ActAllow, Args: make([]specs.LinuxSeccompArg, 7)},
			}
		}, ErrInvalidValue,
			`spec.seccomp.syscalls[0].action: "SCMP_ACT_BOGUS" is not a seccomp action (use allow, errno, kill, kill_process, kill_thread, log, trap, trace, notify)` + "\n" +
				"spec.seccomp.syscalls[1].errnoRet: must be between 0 and 4095, got 4096\n" +
				"spec.seccomp.syscalls[2].args: 7 conditions is more than the 6 a syscall has arguments\n" +
				rulesOpMissing(7)},
		{"network", func(p *Policy) { p.Spec.Network = "" }, ErrMissingField, "spec.network: required (none)"},
		{"host network", func(p *Policy) { p.Spec.Namespaces.Net, p.Spec.Network = false, NetworkHost }, nil, ""},
		{"host network with a namespace", func(p *Policy) { p.Spec.Network = NetworkHost }, ErrInvalidValue,
			"spec.network: host means no network namespace: set namespaces.net: false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Default()
			tt.modify(p)
			err := p.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted the policy")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) is false", tt.is)
			}
		})
	}
}

// TestValidateProfileErrors checks that the seccomp package's errors about a
// profile file reach the caller at spec.seccomp.profile, unwrappable. Their
// wording belongs to that package.
func TestValidateProfileErrors(t *testing.T) {
	tests := []struct {
		name, json string
		is         error
	}{
		{"not JSON", `{"defaultAction": `, nil},
		{"Docker's format", `{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}`, seccomp.ErrDockerFormat},
		{"invalid rule", `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]}`, seccomp.ErrInvalidProfile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Default()
			p.Spec.Seccomp.Profile = writeProfile(t, tt.json)
			err := p.Validate()
			if err == nil {
				t.Fatal("Validate accepted the profile")
			}
			if prefix := "spec.seccomp.profile: " + p.Spec.Seccomp.Profile + ": "; !strings.HasPrefix(err.Error(), prefix) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line starting %q", err, prefix)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) is false for %v", tt.is, err)
			}
		})
	}
}

func rulesOpMissing(n int) string {
	var lines []string
	for i := range n {
		lines = append(lines, "spec.seccomp.syscalls[2].args["+string(rune('0'+i))+"].op: required (eq, ne, lt, le, gt, ge or masked_eq)")
	}
	return strings.Join(lines, "\n")
}

func writeProfile(t *testing.T, json string) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "profile-*.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(json); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func TestEditDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"memory", "memory", 0}, {"memroy", "memory", 1}, {"memor", "memory", 1},
		{"mem", "memory", 3}, {"abc", "xyz", 3}, {"ab", "ba", 1}, {"héllo", "hello", 1},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestClosestCapability(t *testing.T) {
	for in, want := range map[string]string{
		"CAP_NET_BIND": "CAP_NET_BIND_SERVICE", "net_bind": "CAP_NET_BIND_SERVICE",
		"sys_admn": "CAP_SYS_ADMIN", "CAP_SYSADMIN": "CAP_SYS_ADMIN", "setuid": "CAP_SETUID",
		"cap_bpff": "CAP_BPF", "ptrace": "CAP_SYS_PTRACE",
	} {
		if got := closestCapability(in); got != want {
			t.Errorf("closestCapability(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want uint64
		err  error
	}{
		{"0", 0, nil}, {"1", 1, nil}, {"1Ki", 1024, nil}, {"512Mi", 512 << 20, nil}, {"2Gi", 2 << 30, nil},
		{"1Ti", 1 << 40, nil}, {"1K", 1000, nil}, {"1k", 1000, nil}, {"3M", 3e6, nil}, {"4G", 4e9, nil},
		{"5T", 5e12, nil}, {"18446744073709551615", math.MaxUint64, nil},
		{"", 0, errSizeSyntax}, {"Mi", 0, errSizeSyntax}, {"1.5Gi", 0, errSizeSyntax}, {"-1", 0, errSizeSyntax},
		{"1 Mi", 0, errSizeSyntax}, {"1MB", 0, errSizeSyntax}, {"1mi", 0, errSizeSyntax}, {"+1", 0, errSizeSyntax},
		{"16777216Ti", 0, errSizeRange}, {"18446744073709551616", 0, errSizeRange},
	} {
		got, err := parseSize(tt.in)
		if got != tt.want || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("parseSize(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	for _, tt := range []struct {
		in   Size
		want string
	}{
		{0, "0"}, {1, "1"}, {1023, "1023"}, {1024, "1Ki"}, {1536, "1536"}, {1000, "1K"}, {1500, "1500"},
		{512 * MiB, "512Mi"}, {GiB, "1Gi"}, {3 * TiB, "3Ti"}, {2000000, "2M"}, {-5, "-5"},
	} {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %s, want %s", int64(tt.in), got, tt.want)
		}
	}
}
