package sandbox_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/internal/probe"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/initstage"
	"github.com/pinfold/pinfold/sandbox/policy"
	"github.com/pinfold/pinfold/syscalls/python"
	"github.com/pinfold/pinfold/vfs"
)

// These tests run the probe (internal/probe) inside real sandboxes and
// assert what it observes. Each assertion would fail without the mechanism
// it names: the pid namespace, the UTS and network namespaces, the composed
// read-only root, the capability drop, no_new_privs, the seccomp filter, the
// environment and descriptor hygiene, the cgroup limits.

// TestIsolationDefaultPolicy runs the probe as the app's pid 1 under the
// default policy and checks everything it can see about itself.
func TestIsolationDefaultPolicy(t *testing.T) {
	sup := newSupervisor(t)
	const canary = "PINFOLD_TEST_CANARY"
	t.Setenv(canary, "must-not-leak")
	// A descriptor the supervisor process leaves inheritable (no
	// close-on-exec, as some C libraries open them) must not reach the
	// app either.
	leaky, err := syscall.Dup(int(os.Stderr.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(leaky)
	hostBefore, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	if hostBefore == policy.Default().Spec.Hostname {
		t.Fatalf("this host is named %q like the sandbox: the UTS check would prove nothing", hostBefore)
	}
	stateDir := sup.StateDir()
	// /sys holds only fs/cgroup, the app's own cgroups (TestCgroupfsView):
	// nothing of the host's sysfs.
	noSysfs := []string{"/sys/class", "/sys/devices", "/sys/kernel", "/sys/fs/fuse"}
	r := runProbe(t, sup, probeSpec(t, append([]string{"report",
		filepath.Dir(realExe), filepath.Dir(probeBin), stateDir, "/proc/1/root/root"}, noSysfs...)...))
	def := policy.Default()

	t.Run("pid namespace", func(t *testing.T) {
		if r.Pid != 1 {
			t.Errorf("pid = %d, want 1 (own pid namespace)", r.Pid)
		}
		if r.PPid != 0 {
			t.Errorf("ppid = %d, want 0 (parent outside the namespace)", r.PPid)
		}
		if !slices.Equal(r.Pids, []int{1}) {
			t.Errorf("pids visible in /proc = %v, want only [1]", r.Pids)
		}
	})
	t.Run("hostname", func(t *testing.T) {
		if r.Hostname != def.Spec.Hostname {
			t.Errorf("hostname = %q, want the policy's %q", r.Hostname, def.Spec.Hostname)
		}
		// Set in the sandbox's own UTS namespace, not the host's.
		if host, err := os.Hostname(); err != nil || host != hostBefore {
			t.Errorf("the host's hostname changed from %q to %q (%v)", hostBefore, host, err)
		}
	})
	t.Run("network", func(t *testing.T) {
		if r.InterfacesErr != "" {
			t.Fatalf("listing interfaces: %s", r.InterfacesErr)
		}
		if len(r.Interfaces) != 1 || r.Interfaces[0].Name != "lo" || !r.Interfaces[0].Loopback {
			t.Fatalf("interfaces = %+v, want only lo", r.Interfaces)
		}
		if !r.Interfaces[0].Up {
			t.Errorf("lo is down, want up")
		}
	})
	t.Run("host paths", func(t *testing.T) {
		for _, p := range append([]string{"/root", "/home", "/work", "/work/main", "/var", "/run/systemd", "/run/lock", "/boot", "/srv", "/mnt", "/opt",
			filepath.Dir(realExe), filepath.Dir(probeBin), stateDir, "/proc/1/root/root"}, noSysfs...) {
			if got := r.Paths[p]; got != "ENOENT" {
				t.Errorf("lstat %s = %q, want ENOENT (not in the sandbox)", p, got)
			}
		}
		// /run holds only pinfold's Python client.
		if got := r.Paths[python.Path]; got != probe.OK {
			t.Errorf("lstat %s = %q, want ok (pinfold's Python client)", python.Path, got)
		}
	})
	t.Run("writable", func(t *testing.T) {
		want := map[string]string{
			"/": "EROFS", "/usr": "EROFS", "/etc": "EROFS", "/bin": "EROFS", "/dev": "EROFS",
			"/tmp": probe.OK, "/dev/shm": probe.OK,
			// Creating a file in /proc is refused by procfs itself.
			"/proc": "ENOENT",
		}
		for dir, w := range want {
			if got := r.Writable[dir]; got != w {
				t.Errorf("create a file in %s: %s, want %s", dir, got, w)
			}
		}
	})
	t.Run("credentials", func(t *testing.T) {
		if r.UID != 65534 || r.EUID != 65534 || r.GID != 65534 || r.EGID != 65534 {
			t.Errorf("uid/euid/gid/egid = %d/%d/%d/%d, want 65534", r.UID, r.EUID, r.GID, r.EGID)
		}
		if len(r.Groups) != 0 {
			t.Errorf("supplementary groups = %v, want none", r.Groups)
		}
	})
	t.Run("capabilities", func(t *testing.T) {
		for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			if got := r.Status[k]; got != "0000000000000000" {
				t.Errorf("%s = %q, want 0000000000000000", k, got)
			}
		}
		if got := r.Status["NoNewPrivs"]; got != "1" {
			t.Errorf("NoNewPrivs = %q, want 1", got)
		}
		if got := r.Status["Seccomp"]; got != "2" {
			t.Errorf("Seccomp = %q, want 2 (filter mode)", got)
		}
		// The supervisor raised its own for the broker; the app has the
		// kernel's default.
		if want := [2]uint64{sandbox.DefaultMsgQueueBytes, sandbox.DefaultMsgQueueBytes}; r.MsgQueueLimit != want {
			t.Errorf("RLIMIT_MSGQUEUE = %v, want %v", r.MsgQueueLimit, want)
		}
	})
	t.Run("environment", func(t *testing.T) {
		want := []string{"HOME=/tmp", "LANG=C.UTF-8", "PATH=" + sandbox.DefaultPath, sandbox.EnvCtlFD + "=3", probe.Env + "=1", "PYTHONPATH=" + python.Dir}
		got := slices.Clone(r.Env)
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("environment = %q, want exactly %q", got, want)
		}
		for _, kv := range r.Env {
			if strings.HasPrefix(kv, canary+"=") {
				t.Errorf("the supervisor's environment leaked: %s", kv)
			}
		}
	})
	t.Run("cwd", func(t *testing.T) {
		if r.Cwd != def.Spec.Filesystem.Workdir {
			t.Errorf("cwd = %q, want %q", r.Cwd, def.Spec.Filesystem.Workdir)
		}
	})
	t.Run("descriptors", func(t *testing.T) {
		// 0, 1, 2 and the control channel to the IPC broker.
		checkInheritedFDs(t, r, 4)
		if r.FDs[0].Target != "/dev/null" {
			t.Errorf("fd 0 = %s, want /dev/null (no stdin given)", r.FDs[0].Target)
		}
		if !strings.HasPrefix(r.FDs[3].Target, "socket:") {
			t.Errorf("fd 3 = %s, want the control channel (a socket)", r.FDs[3].Target)
		}
	})
	t.Run("proc", func(t *testing.T) {
		checkProc(t, r)
	})
}

// checkInheritedFDs checks that the descriptors the app inherited through
// execve are exactly 0..n-1 (descriptors the probe's own runtime opened
// are close-on-exec and cannot have been inherited).
func checkInheritedFDs(t *testing.T, r *probe.Report, n int) {
	t.Helper()
	var inherited []int
	for _, f := range r.FDs {
		if !f.Cloexec {
			inherited = append(inherited, f.FD)
		}
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(inherited, want) {
		t.Errorf("inherited descriptors = %v, want %v; all: %+v", inherited, want, r.FDs)
	}
}

// checkProc checks the masked and read-only parts of /proc. A path this
// kernel does not have is absent in the sandbox as well.
func checkProc(t *testing.T, r *probe.Report) {
	t.Helper()
	for _, p := range probe.ProcMasked {
		want := probe.Masked
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			want = "ENOENT"
		}
		if got := r.Proc[p]; got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
	for _, p := range probe.ProcReadOnly {
		want := probe.ReadOnly
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			want = "ENOENT"
		}
		if got := r.Proc[p]; got != want {
			t.Errorf("%s: %s, want %s", p, got, want)
		}
	}
}

// deniedByDefault lists, for the default policy, the outcome of each
// operation the probe attempts, and which layer refuses it. Most are the
// seccomp filter's EPERM; some syscalls the filter allows are refused by
// the kernel because the app has no capabilities (the answer is the same
// EPERM, so these also fail without the capability drop); socket families
// outside the allowlist get EAFNOSUPPORT; unknown syscalls ENOSYS.
var deniedByDefault = map[string]string{
	probe.CheckMountTmpfs:      "EPERM",
	probe.CheckUmount:          "EPERM",
	probe.CheckFsopen:          "EPERM",
	probe.CheckUnshareNS:       "EPERM",
	probe.CheckUnshareUser:     "EPERM",
	probe.CheckSetns:           "EPERM",
	probe.CheckSethostname:     "EPERM",
	probe.CheckSetdomainname:   "EPERM",
	probe.CheckChroot:          "EPERM",
	probe.CheckPivotRoot:       "EPERM",
	probe.CheckSocketRaw:       "EPERM", // allowed family; no CAP_NET_RAW
	probe.CheckSocketPacket:    "EAFNOSUPPORT",
	probe.CheckSocketVsock:     "EAFNOSUPPORT",
	probe.CheckKeyctl:          "EPERM",
	probe.CheckAddKey:          "EPERM",
	probe.CheckBPF:             "EPERM",
	probe.CheckPerfEventOpen:   "EPERM",
	probe.CheckUserfaultfd:     "EPERM",
	probe.CheckIOUringSetup:    "EPERM",
	probe.CheckPtraceAttach1:   "EPERM",
	probe.CheckPtraceTraceme:   "EPERM",
	probe.CheckProcessVMReadv1: "EPERM",
	probe.CheckOpenByHandleAt:  "EPERM",
	probe.CheckReboot:          "EPERM",
	probe.CheckInitModule:      "EPERM",
	probe.CheckKexecLoad:       "EPERM",
	probe.CheckSwapon:          "EPERM",
	probe.CheckSettimeofday:    "EPERM",
	probe.CheckClockSettime:    "EPERM",
	probe.CheckPersonality:     "EPERM",
	probe.CheckCloneNewNS:      "EPERM",
	probe.CheckUnknownSyscall:  "ENOSYS",
	probe.CheckMknodChar:       "EPERM", // allowed syscall; no CAP_MKNOD
	// /proc/sys is mounted read-only and the file is root's 0644: the
	// permission check answers first.
	probe.CheckWriteProcHost: "EACCES",
	// Only lo, which has no route to anywhere else.
	probe.CheckUDPConnect: "ENETUNREACH",
	probe.CheckUDPSend:    "ENETUNREACH",
}

// TestDeniedOperations runs the probe under /bin/sh, so that it is not pid
// 1 (ptrace and process_vm_readv then target another process, sh), and
// checks that every dangerous operation fails the documented way.
func TestDeniedOperations(t *testing.T) {
	sup := newSupervisor(t)
	r := runProbe(t, sup, shSpec(t, nil, `/probe report; exit $?`))
	if r.Pid == 1 {
		t.Fatal("the probe is pid 1; it must run under sh for this test")
	}
	if !slices.Equal(r.Pids, []int{1, r.Pid}) {
		t.Errorf("pids visible = %v, want [1 %d] (sh and the probe)", r.Pids, r.Pid)
	}
	want := maps.Clone(deniedByDefault)
	// Files this kernel lacks are absent in the sandbox too.
	want[probe.CheckReadKcore] = probe.Empty // masked with /dev/null
	if _, err := os.Stat("/proc/kcore"); errors.Is(err, os.ErrNotExist) {
		want[probe.CheckReadKcore] = "ENOENT"
	}
	want[probe.CheckWriteSysrq] = "EACCES" // root's 0200, on a read-only mount
	if _, err := os.Stat("/proc/sysrq-trigger"); errors.Is(err, os.ErrNotExist) {
		want[probe.CheckWriteSysrq] = "ENOENT"
	}
	checkOutcomes(t, r, want)
}

func checkOutcomes(t *testing.T, r *probe.Report, want map[string]string) {
	t.Helper()
	names := make([]string, 0, len(want))
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		got, ok := r.Checks[name]
		if !ok {
			t.Errorf("%s: not reported by the probe", name)
			continue
		}
		if got != want[name] {
			t.Errorf("%s: %s, want %s", name, got, want[name])
		}
	}
}

// TestExtraFiles passes two descriptors and checks that the app has exactly
// 0, 1, 2 and those two, at 3 and 4, and nothing else of the supervisor.
func TestExtraFiles(t *testing.T) {
	sup := newSupervisor(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	f, err := os.CreateTemp("", "pinfold-extra-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	spec := probeSpec(t, "report")
	spec.ExtraFiles = []*os.File{pw, f}
	r := runProbe(t, sup, spec)
	// 0, 1, 2, the two, and the control channel after them.
	checkInheritedFDs(t, r, 6)
	for i, want := range []*os.File{pw, f} {
		var st syscall.Stat_t
		if err := syscall.Fstat(int(want.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		fd := 3 + i
		var got *probe.FD
		for j := range r.FDs {
			if r.FDs[j].FD == fd {
				got = &r.FDs[j]
			}
		}
		if got == nil {
			t.Errorf("fd %d missing in the app", fd)
			continue
		}
		if got.Ino != uint64(st.Ino) {
			t.Errorf("fd %d is %s (inode %d), want inode %d (%s)", fd, got.Target, got.Ino, st.Ino, want.Name())
		}
	}
}

// TestMemoryLimit: an app that allocates far more than its memory limit is
// killed by the kernel's OOM killer, and the exit says so.
func TestMemoryLimit(t *testing.T) {
	sup := newSupervisor(t)
	p := policy.Default()
	p.Spec.Resources.Memory = 32 * policy.MiB
	r := runApp(t, sup, probeSpecFor(t, p, "alloc", "256"))
	if strings.Contains(r.stdout, "allocated") {
		t.Fatalf("the app allocated 256 MiB under a 32 MiB limit: %q", r.stdout)
	}
	e := r.exit
	if e.Signal != syscall.SIGKILL || !e.OOMKilled || e.ExitCode() != 137 {
		t.Errorf("exit = signal %v, oomKilled %v, code %d; want SIGKILL, true, 137 (stderr %q)", e.Signal, e.OOMKilled, e.ExitCode(), r.stderr)
	}
	if r.usage == nil {
		t.Fatal("no usage")
	}
	// The kernel charges in batches of pages, so the recorded peak may
	// pass the limit by a little, never by the hundreds of MiB the app
	// asked for.
	if limit := uint64(p.Spec.Resources.Memory); r.usage.MemoryPeak == 0 || r.usage.MemoryPeak > limit+1<<20 {
		t.Errorf("memory peak = %d bytes, want between 1 and about the limit %d", r.usage.MemoryPeak, limit)
	}
}

// TestMemoryLimitNotHit is the control: the same app with room to spare
// exits normally and is not reported as OOM-killed.
func TestMemoryLimitNotHit(t *testing.T) {
	sup := newSupervisor(t)
	r := runApp(t, sup, probeSpec(t, "alloc", "16"))
	if r.exit.ExitCode() != 0 || r.exit.OOMKilled {
		t.Errorf("exit code %d, oomKilled %v; want 0, false (stderr %q)", r.exit.ExitCode(), r.exit.OOMKilled, r.stderr)
	}
}

// TestPidsLimit: forking stops with EAGAIN at the cgroup's pids limit
// (threads of the probe count too).
func TestPidsLimit(t *testing.T) {
	sup := newSupervisor(t)
	p := policy.Default()
	p.Spec.Resources.Pids = 16
	r := runApp(t, sup, probeSpecFor(t, p, "fork", "64"))
	if r.exit.ExitCode() != 0 {
		t.Fatalf("probe exit %d, stderr %q", r.exit.ExitCode(), r.stderr)
	}
	var res probe.ForkResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("decoding %q: %v", r.stdout, err)
	}
	if res.Errno != "EAGAIN" {
		t.Errorf("fork stopped with %s after %d children, want EAGAIN", res.Errno, res.Forked)
	}
	if res.Forked+1 > 16 {
		t.Errorf("%d children forked under a pids limit of 16", res.Forked)
	}
	if r.usage.PidsPeak > 16 {
		t.Errorf("pids peak = %d, above the limit of 16", r.usage.PidsPeak)
	}
	t.Logf("forked %d children (probe threads after: %d), pids peak %d", res.Forked, res.Threads, r.usage.PidsPeak)
}

// TestCPUQuota: two busy threads under half a core get at most about half
// a core of CPU time over the app's wall time. Both numbers are pinfold's
// (the cgroup's CPU accounting and Exit.Wall); the test itself times
// nothing. On a heavily loaded machine the burn may get less than half a
// core even without a quota, so the test also requires that the kernel
// throttled the cgroup (cpu.stat nr_throttled), which only a quota does.
func TestCPUQuota(t *testing.T) {
	sup := newSupervisor(t)
	p := policy.Default()
	p.Spec.Resources.CPU = 0.5
	app, lines := startWithPipe(t, sup, probeSpecFor(t, p, "burn", "2", "4s"))
	if l := lines.next(t); l != "ready" {
		t.Fatalf("app said %q, want ready", l)
	}
	stat := cpuStatFile(t, app.Pid())
	// Watch the cgroup's throttling counter while the burn runs.
	var throttled uint64
poll:
	for throttled == 0 {
		select {
		case <-app.Done():
			break poll
		case <-time.After(50 * time.Millisecond):
			throttled = cpuStatField(t, stat, "nr_throttled")
		}
	}
	e := waitExit(t, app)
	use, err := app.Usage()
	if e.ExitCode() != 0 || err != nil {
		t.Fatalf("exit code %d, usage error %v", e.ExitCode(), err)
	}
	if throttled == 0 {
		t.Errorf("the kernel never throttled the app's cgroup (%s): no CPU quota", stat)
	}
	cpu := use.CPUUser + use.CPUSystem
	// Half a core over the wall time, plus slack for CFS accounting (a
	// tenth of the wall time) and the start of the runtime (3 periods of
	// two cores).
	limit := time.Duration(p.Spec.Resources.CPU*float64(e.Wall)) + e.Wall/10 + 3*2*p.Spec.Resources.CPUPeriod
	t.Logf("cpu %s (user %s, system %s) over wall %s; limit %s; throttled periods seen %d", cpu, use.CPUUser, use.CPUSystem, e.Wall, limit, throttled)
	if cpu > limit {
		t.Errorf("cpu time %s over wall %s exceeds a quota of %.1f cores (limit with slack %s)", cpu, e.Wall, p.Spec.Resources.CPU, limit)
	}
	// Two threads burning for 4s get far more than 200ms even on a loaded
	// machine: a zero here means the accounting is broken, which would
	// make the check above pass vacuously.
	if cpu < 200*time.Millisecond {
		t.Errorf("cpu time %s: the burn did not run or CPU accounting is broken", cpu)
	}
}

// cpuStatFile finds cpu.stat of the cgroup pid is in, from the host's view
// of /proc/PID/cgroup: the v1 cpu hierarchy, or the v2 one when cpu is a
// v2 controller here.
func cpuStatFile(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	var unified string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "" {
			unified = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "cpu" {
				return filepath.Join(cgroupRoot, f[1], f[2], "cpu.stat")
			}
		}
	}
	if controllers, err := os.ReadFile(filepath.Join(cgroupRoot, "cgroup.controllers")); err == nil && slices.Contains(strings.Fields(string(controllers)), "cpu") {
		return filepath.Join(cgroupRoot, unified, "cpu.stat")
	}
	t.Fatalf("no cpu controller for pid %d: %s", pid, b)
	return ""
}

func cpuStatField(t *testing.T, file, key string) uint64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return 0 // the app ended and its cgroup is gone
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	t.Fatalf("no %s in %s", key, file)
	return 0
}

// TestWallTime: an app still running at its wall-time limit is killed, and
// the exit says it timed out.
func TestWallTime(t *testing.T) {
	sup := newSupervisor(t)
	spec := probeSpec(t, "sleep")
	spec.WallTime = time.Second
	r := runApp(t, sup, spec)
	e := r.exit
	if !e.TimedOut || e.Signal != syscall.SIGKILL || e.ExitCode() != 137 {
		t.Errorf("exit = timedOut %v, signal %v, code %d; want true, SIGKILL, 137", e.TimedOut, e.Signal, e.ExitCode())
	}
	if e.Wall < spec.WallTime {
		t.Errorf("Exit.Wall %s is shorter than the wall-time limit %s", e.Wall, spec.WallTime)
	}
}

// TestExitStatus checks how each way of ending is reported.
func TestExitStatus(t *testing.T) {
	sup := newSupervisor(t)
	tests := []struct {
		name     string
		args     []string // probe args; nil: sh script
		script   string
		code     int
		signal   syscall.Signal
		exitCode int
		stdout   string
	}{
		{name: "exit 0", args: []string{"exit", "0"}, code: 0, exitCode: 0},
		{name: "exit 1", args: []string{"exit", "1"}, code: 1, exitCode: 1},
		{name: "exit 42", args: []string{"exit", "42"}, code: 42, exitCode: 42},
		{name: "sh exit 3", script: "exit 3", code: 3, exitCode: 3},
		// A fault is forced on the process: it kills even a pid 1.
		{name: "SIGSEGV", args: []string{"segv"}, code: -1, signal: syscall.SIGSEGV, exitCode: 139},
		// The app is pid 1 of its pid namespace: the kernel drops
		// signals sent to it from inside the namespace unless it has
		// a handler, SIGKILL included. So an app cannot kill itself
		// with kill(2); it runs on.
		{name: "kill(self, SIGKILL) as pid 1", args: []string{"selfkill", "KILL"}, code: probe.ExitSurvived, exitCode: probe.ExitSurvived, stdout: "survived\n"},
		{name: "sh kill -KILL $$ as pid 1", script: `kill -KILL $$; echo survived; exit 4`, code: 4, exitCode: 4, stdout: "survived\n"},
		// Not pid 1, a process dies of the signal as usual; sh reports
		// it as 128+N.
		{name: "SIGKILL not as pid 1", script: `/probe selfkill KILL; exit $?`, code: 137, exitCode: 137},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var spec sandbox.Spec
			if tc.args != nil {
				spec = probeSpec(t, tc.args...)
			} else {
				spec = shSpec(t, nil, tc.script)
			}
			r := runApp(t, sup, spec)
			e := r.exit
			if e.Code != tc.code || e.Signal != tc.signal || e.ExitCode() != tc.exitCode {
				t.Errorf("exit = code %d, signal %v, ExitCode %d; want %d, %v, %d (stderr %q)", e.Code, e.Signal, e.ExitCode(), tc.code, tc.signal, tc.exitCode, r.stderr)
			}
			if e.TimedOut || e.OOMKilled {
				t.Errorf("timedOut %v, oomKilled %v; want false", e.TimedOut, e.OOMKilled)
			}
			if tc.stdout != "" && r.stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", r.stdout, tc.stdout)
			}
		})
	}
	t.Run("Kill", func(t *testing.T) {
		app, lines := startWithPipe(t, sup, probeSpec(t, "sleep"))
		if l := lines.next(t); l != "ready" {
			t.Fatalf("app said %q, want ready", l)
		}
		if err := app.Kill(); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		e := waitExit(t, app)
		if e.Signal != syscall.SIGKILL || e.ExitCode() != 137 || e.TimedOut {
			t.Errorf("exit = signal %v, ExitCode %d, timedOut %v; want SIGKILL, 137, false", e.Signal, e.ExitCode(), e.TimedOut)
		}
	})
}

// TestExitWallIsRunTime: Exit.Wall is how long the app ran, not how long
// until somebody called Wait. The test measures, around the app, an upper
// bound of its run time (from before Start to after Done) and calls Wait
// well after that; no wall-clock value of the app's own is asserted.
func TestExitWallIsRunTime(t *testing.T) {
	sup := newSupervisor(t)
	before := time.Now()
	app, err := sup.Start(shSpec(t, nil, "exit 0"))
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	select {
	case <-app.Done():
	case <-time.After(hangTimeout):
		t.Fatalf("app still running after %s", hangTimeout)
	}
	bound := time.Since(before)
	time.Sleep(2 * time.Second) // the caller is busy elsewhere before it calls Wait
	e, err := app.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if e.Wall > bound {
		t.Errorf("Exit.Wall = %s, but the app ran at most %s: it counts the time until Wait was called", e.Wall, bound)
	}
}

// TestStdio: stdin from a reader, stdout and stderr to writers, copied
// through pipes; an app that does not read its input does not hang the
// supervisor or leave a copier behind.
func TestStdio(t *testing.T) {
	sup := newSupervisor(t)
	runApp(t, sup, shSpec(t, nil, "exit 0")) // warm-up
	snap := takeSnapshot(t)
	t.Run("copy", func(t *testing.T) {
		spec := shSpec(t, nil, "cat; echo err >&2")
		spec.Stdin = strings.NewReader("hello\n")
		r := runApp(t, sup, spec)
		if r.exit.ExitCode() != 0 || r.stdout != "hello\n" || r.stderr != "err\n" {
			t.Errorf("exit %d stdout %q stderr %q; want 0, hello, err", r.exit.ExitCode(), r.stdout, r.stderr)
		}
	})
	t.Run("unread input", func(t *testing.T) {
		spec := shSpec(t, nil, "exit 0")
		spec.Stdin = bytes.NewReader(make([]byte, 4<<20)) // more than a pipe holds
		r := runApp(t, sup, spec)
		if r.exit.ExitCode() != 0 {
			t.Errorf("exit %d, want 0", r.exit.ExitCode())
		}
	})
	snap.check(t)
}

// TestSignalReachesApp: a signal the app traps reaches it.
func TestSignalReachesApp(t *testing.T) {
	sup := newSupervisor(t)
	app, lines := startWithPipe(t, sup, probeSpec(t, "trap", "TERM", "7"))
	if l := lines.next(t); l != "ready" {
		t.Fatalf("app said %q, want ready", l)
	}
	if err := app.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("Signal: %v", err)
	}
	if l := lines.next(t); l != "got SIGTERM" {
		t.Errorf("app said %q, want %q", l, "got SIGTERM")
	}
	e := waitExit(t, app)
	if e.ExitCode() != 7 || e.Signal != 0 {
		t.Errorf("exit = code %d signal %v, want 7 and no signal", e.ExitCode(), e.Signal)
	}
	if err := app.Signal(syscall.SIGTERM); !errors.Is(err, sandbox.ErrWrongState) {
		t.Errorf("Signal after exit: %v, want ErrWrongState", err)
	}
}

// TestStop: Stop asks with SIGTERM and kills after the grace period.
func TestStop(t *testing.T) {
	sup := newSupervisor(t)
	t.Run("app ignores SIGTERM", func(t *testing.T) {
		// sleep has no SIGTERM handler, and as pid 1 of its namespace
		// the kernel ignores a signal it has no handler for: only the
		// kill at the end of the grace period ends it.
		app, lines := startWithPipe(t, sup, shSpec(t, nil, `echo ready; exec sleep 1000`))
		if l := lines.next(t); l != "ready" {
			t.Fatalf("app said %q, want ready", l)
		}
		done := make(chan error, 1)
		go func() { done <- app.Stop(200 * time.Millisecond) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Stop: %v", err)
			}
		case <-time.After(hangTimeout):
			t.Fatalf("Stop did not return after %s", hangTimeout)
		}
		e := waitExit(t, app)
		if e.Signal != syscall.SIGKILL || e.ExitCode() != 137 {
			t.Errorf("exit = signal %v, code %d; want SIGKILL, 137", e.Signal, e.ExitCode())
		}
	})
	t.Run("app exits on SIGTERM", func(t *testing.T) {
		app, lines := startWithPipe(t, sup, probeSpec(t, "trap", "TERM", "0"))
		if l := lines.next(t); l != "ready" {
			t.Fatalf("app said %q, want ready", l)
		}
		if err := app.Stop(hangTimeout); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		e := waitExit(t, app)
		if e.Signal != 0 || e.ExitCode() != 0 {
			t.Errorf("exit = signal %v, code %d; want its own exit 0 (no kill)", e.Signal, e.ExitCode())
		}
	})
}

// TestCreateThenStart checks the create/start split and the states.
func TestCreateThenStart(t *testing.T) {
	sup := newSupervisor(t)
	spec := shSpec(t, nil, `echo started; exit 5`)
	var out syncBuffer
	spec.Stdout = &out
	app, err := sup.Create(spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	defer app.Close()
	if st := app.State(); st != sandbox.Ready {
		t.Errorf("state after Create = %s, want ready", st)
	}
	// The init stage waits for start: pid 1 is still the init stage.
	if cmd := cmdline(t, app.Pid()); len(cmd) < 2 || cmd[1] != initstage.Arg {
		t.Errorf("before Start the sandbox runs %q, want the init stage", cmd)
	}
	if err := app.Signal(syscall.SIGTERM); !errors.Is(err, sandbox.ErrWrongState) {
		t.Errorf("Signal before Start: %v, want ErrWrongState", err)
	}
	if _, err := app.Wait(); !errors.Is(err, sandbox.ErrWrongState) {
		t.Errorf("Wait before Start: %v, want ErrWrongState", err)
	}
	if err := app.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	e := waitExit(t, app)
	if e.ExitCode() != 5 {
		t.Errorf("exit code %d, want 5", e.ExitCode())
	}
	if st := app.State(); st != sandbox.Exited {
		t.Errorf("state after Wait = %s, want exited", st)
	}
	if err := app.Start(); !errors.Is(err, sandbox.ErrWrongState) {
		t.Errorf("Start of an exited app: %v, want ErrWrongState", err)
	}
	rep := app.Close()
	if err := rep.Err(); err != nil {
		t.Errorf("cleanup: %v", err)
	}
	if st := app.State(); st != sandbox.Cleaned {
		t.Errorf("state after Close = %s, want cleaned", st)
	}
	if got := out.String(); got != "started\n" {
		t.Errorf("stdout %q, want %q", got, "started\n")
	}
	if err := app.Signal(syscall.SIGTERM); !errors.Is(err, sandbox.ErrWrongState) {
		t.Errorf("Signal after Close: %v, want ErrWrongState", err)
	}
	if err := app.Kill(); !errors.Is(err, sandbox.ErrWrongState) {
		t.Errorf("Kill after Close: %v, want ErrWrongState", err)
	}
	if again := app.Close(); len(again.Steps) != len(rep.Steps) {
		t.Errorf("second Close reported %d steps, want the first report's %d", len(again.Steps), len(rep.Steps))
	}

	t.Run("Create then Close", func(t *testing.T) {
		app, err := sup.Create(shSpec(t, nil, `exit 0`))
		if err != nil {
			t.Fatalf("Create: %v", err)
		}
		pid := app.Pid()
		rep := app.Close()
		if err := rep.Err(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if st := app.State(); st != sandbox.Cleaned {
			t.Errorf("state = %s, want cleaned", st)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("init stage pid %d after Close: kill(0) = %v, want ESRCH", pid, err)
		}
	})
}

func cmdline(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatalf("reading cmdline of %d: %v", pid, err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// TestDockerProfile: Docker's default seccomp profile (OCI JSON, as Docker
// ships it) loads through a policy and is the filter the app runs under:
// what it denies fails, and what it allows but pinfold's default denies
// (ptrace, io_uring) works.
func TestDockerProfile(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the profile in testdata is resolved for amd64")
	}
	sup := newSupervisor(t)
	profile, err := filepath.Abs("testdata/docker-default-amd64.oci.json")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "docker.yaml")
	doc := fmt.Sprintf("apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: docker\nspec:\n  seccomp:\n    profile: %s\n", profile)
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := policy.LoadFile(file)
	if err != nil {
		t.Fatalf("loading a policy with Docker's profile: %v", err)
	}
	r := runProbe(t, sup, shSpec(t, p, `/probe report; exit $?`))
	if got := r.Status["Seccomp"]; got != "2" {
		t.Errorf("Seccomp = %q, want 2", got)
	}
	checkOutcomes(t, r, map[string]string{
		// Denied by Docker's profile (its default action is EPERM, also
		// for syscalls it does not know).
		probe.CheckMountTmpfs:     "EPERM",
		probe.CheckUnshareNS:      "EPERM",
		probe.CheckSetns:          "EPERM",
		probe.CheckKeyctl:         "EPERM",
		probe.CheckBPF:            "EPERM",
		probe.CheckCloneNewNS:     "EPERM",
		probe.CheckPersonality:    "EPERM",
		probe.CheckUnknownSyscall: "EPERM",
		// Allowed by Docker's profile, denied by pinfold's default.
		probe.CheckPtraceTraceme: probe.OK,
		probe.CheckIOUringSetup:  probe.OK,
	})
}

// TestUserNamespace: with a user namespace the app is root inside, mapped
// to an unprivileged host uid, and still has no capabilities.
func TestUserNamespace(t *testing.T) {
	sup := newSupervisor(t)
	p := policy.Default()
	m := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	p.Spec.Namespaces.User = &policy.UserNamespace{UIDMappings: m, GIDMappings: m}
	p.Spec.User = policy.User{UID: 0, GID: 0}
	r := runProbe(t, sup, probeSpecFor(t, p, "report"))
	if r.UID != 0 || r.EUID != 0 || r.GID != 0 || r.EGID != 0 {
		t.Errorf("uid/euid/gid/egid = %d/%d/%d/%d, want 0 inside the user namespace", r.UID, r.EUID, r.GID, r.EGID)
	}
	if r.UIDMap != "0 100000 65536" || r.GIDMap != "0 100000 65536" {
		t.Errorf("uid_map %q, gid_map %q; want %q", r.UIDMap, r.GIDMap, "0 100000 65536")
	}
	// Root in its own user namespace, but every capability is dropped:
	// the bounding set too, so execve of anything gains nothing.
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if got := r.Status[k]; got != "0000000000000000" {
			t.Errorf("%s = %q, want 0000000000000000", k, got)
		}
	}
	if r.Status["NoNewPrivs"] != "1" || r.Status["Seccomp"] != "2" {
		t.Errorf("NoNewPrivs %q, Seccomp %q; want 1, 2", r.Status["NoNewPrivs"], r.Status["Seccomp"])
	}
	if r.Pid != 1 || r.Hostname != p.Spec.Hostname {
		t.Errorf("pid %d hostname %q; want 1, %q", r.Pid, r.Hostname, p.Spec.Hostname)
	}

	t.Run("host view", func(t *testing.T) {
		app, lines := startWithPipe(t, sup, probeSpecFor(t, p, "sleep"))
		if l := lines.next(t); l != "ready" {
			t.Fatalf("app said %q, want ready", l)
		}
		uid := statusField(t, app.Pid(), "Uid")
		if f := strings.Fields(uid); len(f) != 4 || f[0] != "100000" || f[1] != "100000" {
			t.Errorf("the app's uid seen from the host: %q, want 100000", uid)
		}
		if err := app.Kill(); err != nil {
			t.Fatal(err)
		}
		waitExit(t, app)
	})
}

func statusField(t *testing.T, pid int, key string) string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return ""
}

// TestInitFailure: a sandbox that cannot be built fails with a
// *sandbox.StartError that says which step failed, and leaves nothing.
func TestInitFailure(t *testing.T) {
	sup := newSupervisor(t)
	snap := takeSnapshot(t)
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name   string
		modify func(*sandbox.Spec)
		step   string // initstage step; "" for failures before the init stage
		errno  syscall.Errno
		msg    string // in the error text
	}{
		{
			name:   "workdir missing",
			modify: func(s *sandbox.Spec) { s.Process.Cwd = "/nonexistent" },
			step:   initstage.StepChdir, errno: syscall.ENOENT, msg: "chdir",
		},
		{
			name: "bind source missing",
			modify: func(s *sandbox.Spec) {
				s.Filesystem.ReadOnly = append(s.Filesystem.ReadOnly, vfs.Bind{Source: missing, Target: "/data"})
			},
			msg: missing,
		},
		{
			name:   "command not found",
			modify: func(s *sandbox.Spec) { s.Process.Args = []string{"/nonexistent"} },
			step:   initstage.StepExec, errno: syscall.ENOENT, msg: "/nonexistent",
		},
		{
			name:   "command not executable",
			modify: func(s *sandbox.Spec) { s.Process.Args = []string{"/etc/passwd"} },
			step:   initstage.StepExec, errno: syscall.EACCES, msg: "/etc/passwd",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := probeSpec(t, "exit", "0")
			tc.modify(&spec)
			app, err := sup.Start(spec)
			if err == nil {
				app.Close()
				t.Fatal("Start succeeded")
			}
			var se *sandbox.StartError
			if !errors.As(err, &se) {
				t.Fatalf("error %v (%T) is not a *sandbox.StartError", err, err)
			}
			if cerr := se.Cleanup.Err(); cerr != nil {
				t.Errorf("cleanup after the failure: %v", cerr)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			var ie *initstage.Error
			if tc.step == "" {
				if errors.As(err, &ie) {
					t.Errorf("error %v comes from the init stage; want it caught before", err)
				}
				return
			}
			if !errors.As(err, &ie) {
				t.Fatalf("error %v does not wrap an *initstage.Error", err)
			}
			if ie.Step != tc.step || !errors.Is(err, tc.errno) {
				t.Errorf("step %q errno %v, want %q %v", ie.Step, ie.Errno, tc.step, tc.errno)
			}
			if !strings.Contains(err.Error(), tc.step) {
				t.Errorf("error %q does not name the step %q", err, tc.step)
			}
		})
	}
	snap.check(t)
}

// TestEveryResourceIsReleased: a normal run registers a release for every
// kind of resource in sandbox.AllResources, and each succeeds, in an order
// that keeps a crash recoverable (the process is gone before its cgroup,
// the cgroup before the state record that lets Recover find it).
func TestEveryResourceIsReleased(t *testing.T) {
	sup := newSupervisor(t)
	spec := probeSpec(t, "exit", "0")
	spec.WallTime = time.Hour // arms the timer
	spec.IPC.POSIXMQ = true   // a seccomp listener
	r := runApp(t, sup, spec)
	pos := map[sandbox.Resource]int{}
	for i, s := range r.cleanup.Steps {
		if _, dup := pos[s.Resource]; !dup {
			pos[s.Resource] = i
		}
		if s.Err != "" {
			t.Errorf("releasing %s %s: %s", s.Resource, s.Name, s.Err)
		}
	}
	for _, res := range sandbox.AllResources {
		if _, ok := pos[res]; !ok {
			t.Errorf("resource %s has no release in the cleanup report %+v", res, r.cleanup.Steps)
		}
	}
	for _, order := range [][2]sandbox.Resource{
		{sandbox.ResTimer, sandbox.ResProcess},
		{sandbox.ResProcess, sandbox.ResPidFD},
		{sandbox.ResProcess, sandbox.ResCgroup},
		{sandbox.ResCgroup, sandbox.ResStateRecord},
	} {
		a, aok := pos[order[0]]
		b, bok := pos[order[1]]
		if aok && bok && a > b {
			t.Errorf("%s released after %s; want before", order[0], order[1])
		}
	}
	if len(sup.SeccompRefs()) != 0 {
		t.Errorf("seccomp program references left: %v", sup.SeccompRefs())
	}
}

// helperMain runs the roles of the test binary other than tests.
func helperMain(role string) int {
	switch role {
	case "supervise":
		return superviseHelper()
	}
	fmt.Fprintf(os.Stderr, "unknown helper role %q\n", role)
	return 2
}

// Environment of the supervise helper.
const (
	helperStateEnv = "PINFOLD_SANDBOX_TEST_STATE"
	helperProbeEnv = "PINFOLD_SANDBOX_TEST_PROBE"
)

// helperStarted is what the supervise helper reports once its app runs.
type helperStarted struct {
	ID  string `json:"id"`
	Pid int    `json:"pid"`
}

// superviseHelper starts a long-running app, prints a helperStarted line
// on stdout and waits to be killed.
func superviseHelper() int {
	probeBin = os.Getenv(helperProbeEnv)
	sup, err := sandbox.NewSupervisor(supervisorOptions(os.Getenv(helperStateEnv)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	spec, err := sandbox.FromPolicy(policy.Default(), []string{"/bin/sh", "-c", "exec sleep 100000"}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	app, err := sup.Start(spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(helperStarted{ID: app.ID, Pid: app.Pid()}); err != nil {
		return 1
	}
	for {
		time.Sleep(time.Hour)
	}
}

// recordOnDisk is the part of a state record the recovery test reads: the
// cgroup directories it names.
type recordOnDisk struct {
	ID     string `json:"id"`
	Cgroup struct {
		V1      map[string]string `json:"v1"`
		Unified string            `json:"unified"`
	} `json:"cgroup"`
}

func (r recordOnDisk) dirs() []string {
	var d []string
	for _, p := range r.Cgroup.V1 {
		d = append(d, p)
	}
	if r.Cgroup.Unified != "" {
		d = append(d, r.Cgroup.Unified)
	}
	sort.Strings(d)
	return slices.Compact(d)
}

// TestRecoverAfterSupervisorKilled: a supervisor (a separate process) is
// SIGKILLed while its app runs. The app dies with it (parent-death signal);
// its cgroups and state record stay behind until a new supervisor's
// Recover releases them.
func TestRecoverAfterSupervisorKilled(t *testing.T) {
	requireRoot(t)
	stateDir := newStateDir(t)
	cmd := helperCommand(t, stateDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	lines := newLineReader(out)
	var started helperStarted
	if err := json.Unmarshal([]byte(lines.next(t)), &started); err != nil {
		t.Fatalf("helper output: %v (stderr %q)", err, stderr.String())
	}

	recPath := filepath.Join(stateDir, "apps", started.ID+".json")
	data, err := os.ReadFile(recPath)
	if err != nil {
		t.Fatalf("state record of the running app: %v", err)
	}
	var rec recordOnDisk
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("decoding %s: %v", recPath, err)
	}
	dirs := rec.dirs()
	if len(dirs) == 0 {
		t.Fatalf("state record names no cgroup: %s", data)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("cgroup dir of the running app: %v", err)
		}
	}
	// A supervisor that is alive holds its records locked: Recover from
	// another one leaves them alone.
	other, err := sandbox.NewSupervisor(supervisorOptions(stateDir))
	if err != nil {
		t.Fatal(err)
	}
	if left, err := other.Recover(); err != nil || len(left) != 0 {
		t.Fatalf("Recover while the owner lives: %+v, %v; want nothing", left, err)
	}
	if _, err := os.Stat(recPath); err != nil {
		t.Fatalf("state record after Recover while the owner lives: %v", err)
	}

	appFD, err := pidfdOpen(started.Pid)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", started.Pid, err)
	}
	defer syscall.Close(appFD)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// Leave nothing behind when the test fails half-way.
		pidfdKill(appFD)
		if sup, err := sandbox.NewSupervisor(supervisorOptions(stateDir)); err == nil {
			sup.Recover()
		}
	})

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	if !waitPidfd(t, appFD) {
		t.Fatalf("app pid %d still alive %s after its supervisor was SIGKILLed", started.Pid, hangTimeout)
	}

	// The dead supervisor's leftovers are all still there...
	if _, err := os.Stat(recPath); err != nil {
		t.Errorf("state record before Recover: %v", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("cgroup dir before Recover: %v", err)
		}
	}
	// ...until a new supervisor recovers them.
	sup, err := sandbox.NewSupervisor(supervisorOptions(stateDir))
	if err != nil {
		t.Fatal(err)
	}
	left, err := sup.Recover()
	if err != nil {
		t.Errorf("Recover: %v", err)
	}
	if len(left) != 1 || left[0].ID != started.ID {
		t.Fatalf("Recover found %+v, want app %s", left, started.ID)
	}
	if err := left[0].Report.Err(); err != nil {
		t.Errorf("recovery cleanup: %v", err)
	}
	if _, err := os.Stat(recPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state record after Recover: %v, want it gone", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup dir %s after Recover: %v, want it gone", d, err)
		}
		// The shared parent the dead supervisor created is empty now.
		if parent := filepath.Dir(d); strings.HasPrefix(filepath.Base(parent), "pinfold-test-") {
			if _, err := os.Stat(parent); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("parent cgroup %s after Recover: %v, want it gone", parent, err)
			}
		}
	}
	if again, err := sup.Recover(); err != nil || len(again) != 0 {
		t.Errorf("second Recover: %+v, %v; want nothing", again, err)
	}
}

// pidfdOpen is pidfd_open(2): the test must not depend on x/sys.
func pidfdOpen(pid int) (int, error) {
	const sysPidfdOpen = 434
	fd, _, e := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// pidfdKill is pidfd_send_signal(fd, SIGKILL).
func pidfdKill(fd int) {
	const sysPidfdSendSignal = 424
	syscall.Syscall6(sysPidfdSendSignal, uintptr(fd), uintptr(syscall.SIGKILL), 0, 0, 0, 0)
}

// waitPidfd waits until the process behind fd has exited.
func waitPidfd(t *testing.T, fd int) bool {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for time.Now().Before(deadline) {
		var set syscall.FdSet
		set.Bits[fd/64] |= 1 << (uint(fd) % 64)
		tv := syscall.NsecToTimeval(int64(time.Second))
		n, err := syscall.Select(fd+1, &set, nil, nil, &tv)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("select on pidfd: %v", err)
		}
		if n > 0 {
			return true
		}
	}
	return false
}

// TestNoLeaks runs 200 apps, four at a time, ending in every way an app
// can end — normally, OOM-killed, timed out, killed, stopped, failing in
// the init stage, created and closed without running — and then checks
// that nothing is left: no cgroup directory, mount, state record, rootfs
// mount, descriptor, goroutine, child or zombie process.
func TestNoLeaks(t *testing.T) {
	sup := newSupervisor(t)
	// Warm up: lazily created process-wide state (the seccomp cache, the
	// runtime's poller) is not a leak.
	runApp(t, sup, shSpec(t, nil, "exit 0"))
	snap := takeSnapshot(t)

	oom := policy.Default()
	oom.Spec.Resources.Memory = 32 * policy.MiB
	kinds := []struct {
		name string
		run  func() error
	}{
		{"normal", func() error {
			return expectExit(sup, shSpec(t, nil, "exit 3"), 3, nil)
		}},
		{"oom", func() error {
			return expectExit(sup, probeSpecFor(t, oom, "alloc", "256"), 137, func(e *sandbox.Exit) error {
				if !e.OOMKilled {
					return errors.New("not reported as OOM-killed")
				}
				return nil
			})
		}},
		{"timeout", func() error {
			spec := shSpec(t, nil, "exec sleep 1000")
			spec.WallTime = 50 * time.Millisecond
			return expectExit(sup, spec, 137, func(e *sandbox.Exit) error {
				if !e.TimedOut {
					return errors.New("not reported as timed out")
				}
				return nil
			})
		}},
		{"killed", func() error {
			app, err := sup.Start(shSpec(t, nil, "exec sleep 1000"))
			if err != nil {
				return err
			}
			if err := app.Kill(); err != nil {
				app.Close()
				return err
			}
			return finish(app, 137)
		}},
		{"stopped", func() error {
			app, err := sup.Start(shSpec(t, nil, "exec sleep 1000"))
			if err != nil {
				return err
			}
			if err := app.Stop(10 * time.Millisecond); err != nil {
				app.Close()
				return err
			}
			return finish(app, 137)
		}},
		{"init fails", func() error {
			spec := shSpec(t, nil, "exit 0")
			spec.Process.Cwd = "/nonexistent"
			return expectStartError(sup, spec)
		}},
		{"not found", func() error {
			spec := shSpec(t, nil, "exit 0")
			spec.Process.Args = []string{"/nonexistent"}
			return expectStartError(sup, spec)
		}},
		{"created, never started", func() error {
			app, err := sup.Create(shSpec(t, nil, "exit 0"))
			if err != nil {
				return err
			}
			return app.Close().Err()
		}},
		{"normal probe", func() error {
			return expectExit(sup, probeSpec(t, "exit", "0"), 0, nil)
		}},
		{"closed while running", func() error {
			app, err := sup.Start(shSpec(t, nil, "exec sleep 1000"))
			if err != nil {
				return err
			}
			return app.Close().Err()
		}},
	}
	const runs, workers = 200, 4
	jobs := make(chan int)
	errs := make(chan error, runs)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				k := kinds[i%len(kinds)]
				if err := k.run(); err != nil {
					errs <- fmt.Errorf("run %d (%s): %w", i, k.name, err)
				}
			}
		}()
	}
	for i := 0; i < runs; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	snap.check(t)
	dir := sup.StateDir()
	for _, sub := range []string{"apps", "rootfs"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Errorf("state dir: %v", err)
		}
		for _, e := range ents {
			t.Errorf("left in %s/%s: %s", dir, sub, e.Name())
		}
	}
	if refs := sup.SeccompRefs(); len(refs) != 0 {
		t.Errorf("seccomp program references left: %v", refs)
	}
}

// expectExit runs spec to its end and checks its exit status.
func expectExit(sup *sandbox.Supervisor, spec sandbox.Spec, code int, more func(*sandbox.Exit) error) error {
	app, err := sup.Start(spec)
	if err != nil {
		return err
	}
	return finishWith(app, code, more)
}

func finish(app *sandbox.App, code int) error { return finishWith(app, code, nil) }

func finishWith(app *sandbox.App, code int, more func(*sandbox.Exit) error) error {
	select {
	case <-app.Done():
	case <-time.After(hangTimeout):
		app.Close()
		return fmt.Errorf("app still running after %s", hangTimeout)
	}
	e, err := app.Wait()
	rep := app.Close()
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	if e.ExitCode() != code {
		return fmt.Errorf("exit status %d, want %d", e.ExitCode(), code)
	}
	if more != nil {
		return more(e)
	}
	return nil
}

func expectStartError(sup *sandbox.Supervisor, spec sandbox.Spec) error {
	app, err := sup.Start(spec)
	if err == nil {
		app.Close()
		return errors.New("Start succeeded")
	}
	var se *sandbox.StartError
	if !errors.As(err, &se) {
		return fmt.Errorf("error %v is not a *StartError", err)
	}
	return se.Cleanup.Err()
}

// TestCgroupfsView: under the default policy the app sees its own cgroups,
// read-only, at /sys/fs/cgroup, and in them exactly the policy's limits
// (what the JVM, Go and libuv size themselves from); nothing of the
// supervisor's cgroups, of the host's or of a sibling app's, and
// /proc/self/cgroup says "/". Writes fail: the mounts are read-only, and
// the files are root's.
func TestCgroupfsView(t *testing.T) {
	sup := newSupervisor(t)
	def := policy.Default()
	if !def.Spec.Filesystem.Cgroupfs {
		t.Fatal("the default policy has no cgroupfs")
	}
	// A sibling app runs while the others look.
	sibling, lines := startWithPipe(t, sup, probeSpec(t, "sleep"))
	if l := lines.next(t); l != "ready" {
		t.Fatalf("sibling said %q, want ready", l)
	}
	defer func() {
		if err := sibling.Kill(); err != nil {
			t.Error(err)
		}
		waitExit(t, sibling)
	}()

	// Prints name=value lines (a value is a file's content or the error
	// the shell reports, in the C locale), then the mount table.
	const script = `
cg=/sys/fs/cgroup
show() { printf '%s=%s\n' "$1" "$(cat "$2" 2>&1 | tr '\n' ' ')"; }
if [ -e $cg/cgroup.controllers ]; then
	echo layout=unified
	show memory $cg/memory.max; show pids $cg/pids.max; show cpu $cg/cpu.max
	pids=$cg/pids.max dirs=$cg/x
else
	echo layout=v1
	show memory $cg/memory/memory.limit_in_bytes; show pids $cg/pids/pids.max
	show cpu $cg/cpu/cpu.cfs_quota_us; show period $cg/cpu/cpu.cfs_period_us
	pids=$cg/pids/pids.max dirs="$cg/pids/x $cg/x"
fi
echo entries=$(ls $cg)
echo subdirs=$(find $cg -mindepth 2 -type d)
show self /proc/self/cgroup
echo write=$( { echo 1 > $pids; } 2>&1 )
echo mkdir=$(mkdir $dirs 2>&1)
echo sysfs=$(ls /sys)
echo --- mountinfo
cat /proc/self/mountinfo
`
	userns := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	tests := []struct {
		name   string
		uid    uint32
		userNS bool
	}{
		{"nobody", 65534, false},
		{"root", 0, false},
		{"root in a user namespace", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.Default()
			p.Spec.User = policy.User{UID: tc.uid, GID: tc.uid}
			if tc.userNS {
				p.Spec.Namespaces.User = &policy.UserNamespace{UIDMappings: userns, GIDMappings: userns}
			}
			r := runApp(t, sup, shSpec(t, p, script))
			if r.exit.ExitCode() != 0 {
				t.Fatalf("exit %d, stderr:\n%s", r.exit.ExitCode(), r.stderr)
			}
			t.Logf("the app's view:\n%s", r.stdout)
			vars, mountinfo, _ := strings.Cut(r.stdout, "--- mountinfo\n")
			got := map[string]string{}
			for _, line := range strings.Split(vars, "\n") {
				if k, v, ok := strings.Cut(line, "="); ok {
					got[k] = strings.TrimSpace(v)
				}
			}
			want := map[string]string{"memory": "536870912", "pids": "256", "cpu": "100000", "period": "100000"}
			if got["layout"] == "unified" {
				want = map[string]string{"memory": "536870912", "pids": "256", "cpu": "100000 100000"}
			}
			for k, w := range want {
				if got[k] != w {
					t.Errorf("%s limit seen by the app: %q, want %q (the policy's)", k, got[k], w)
				}
			}
			// The namespace is rooted at the app's own cgroups.
			for _, line := range strings.Fields(got["self"]) {
				if !strings.HasSuffix(line, ":/") {
					t.Errorf("/proc/self/cgroup line %q, want the path /", line)
				}
			}
			// The app's cgroups have no children: any directory below a
			// hierarchy's root would be someone else's.
			if got["subdirs"] != "" {
				t.Errorf("directories below the app's cgroups: %s", got["subdirs"])
			}
			for _, name := range []string{sibling.ID, testCgroupParent, "systemd", "devices", "net_cls", "perf_event"} {
				if strings.Contains(got["entries"], name) {
					t.Errorf("/sys/fs/cgroup shows %s: %s", name, got["entries"])
				}
			}
			// Every cgroup mount is rooted at the namespace's root, the
			// app's own cgroup, and read-only.
			n := 0
			for _, line := range strings.Split(mountinfo, "\n") {
				pre, post, ok := strings.Cut(line, " - ")
				f := strings.Fields(pre)
				if !ok || len(f) < 6 || !strings.HasPrefix(post, "cgroup") {
					continue
				}
				n++
				if f[3] != "/" {
					t.Errorf("cgroup mount %s shows %s, want /", f[4], f[3])
				}
				for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
					if !slices.Contains(strings.Split(f[5], ","), o) {
						t.Errorf("cgroup mount %s: options %s lack %s", f[4], f[5], o)
					}
				}
			}
			if n == 0 {
				t.Errorf("no cgroup mount in the app's mount table")
			}
			// The shell opens with O_TRUNC, which checks the mount before
			// the file's permissions: EROFS for every user.
			if !strings.Contains(got["write"], "Read-only file system") {
				t.Errorf("writing pids.max: %q, want a read-only file system error", got["write"])
			}
			wantMkdir := map[string]int{"unified": 1, "v1": 2}[got["layout"]]
			if c := strings.Count(got["mkdir"], "Read-only file system"); c != wantMkdir {
				t.Errorf("mkdir in the cgroup view: %q, want %d read-only file system errors", got["mkdir"], wantMkdir)
			}
			if got["sysfs"] != "fs" {
				t.Errorf("/sys holds %q, want only fs", got["sysfs"])
			}
		})
	}
}
