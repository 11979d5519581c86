package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"

	"github.com/pinfold/pinfold/syscalls"
)

// The enforcement tests run the test binary again as a child that installs a
// compiled program with syscalls.SetSeccompFilter, exactly as the init stage
// does, and then makes syscalls or execs a program. Environment variables
// select the child's role.
const (
	envRole  = "PINFOLD_SECCOMP_TEST_ROLE"
	envProg  = "PINFOLD_SECCOMP_TEST_PROG"  // file with the raw BPF; none: no filter
	envFlags = "PINFOLD_SECCOMP_TEST_FLAGS" // Program.Flags
	envExec  = "PINFOLD_SECCOMP_TEST_EXEC"  // JSON argv for the exec role
)

func TestMain(m *testing.M) {
	switch os.Getenv(envRole) {
	case "":
		os.Exit(m.Run())
	case "probe":
		childProbe()
	case "exec":
		childExec()
	case "listener":
		childListener()
	case "x32":
		childX32()
	case "hello":
		childHello()
	case "cache":
		childCache()
	case "bench":
		childBench()
	case "tsync":
		childTsync()
	default:
		fmt.Fprintf(os.Stderr, "unknown role %q\n", os.Getenv(envRole))
		os.Exit(2)
	}
	os.Exit(0)
}

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(3)
}

// installFromEnv installs the program named by the environment, on this
// (locked) thread, after setting no_new_privs. It returns false when the
// child runs without a filter (the control run).
func installFromEnv() bool {
	path := os.Getenv(envProg)
	if path == "" {
		return false
	}
	insns, err := os.ReadFile(path)
	if err != nil {
		die("reading program: %v", err)
	}
	flags, err := strconv.ParseUint(os.Getenv(envFlags), 0, 64)
	if err != nil {
		die("flags: %v", err)
	}
	if err := syscalls.SetNoNewPrivs(); err != nil {
		die("no_new_privs: %v", err)
	}
	if err := syscalls.SetSeccompFilter(insns, uint(flags)); err != nil {
		die("SetSeccompFilter: %v", err)
	}
	return true
}

// probe is one syscall a child makes.
type probe struct {
	name string    // reported name
	sys  string    // syscall
	args [6]uint64 // arguments
}

// probes are chosen so that, without a filter, the kernel answers with
// something other than the filter's answer and changes nothing (bad
// pointers, invalid flag combinations, unknown operations).
func probes(devNull uintptr) []probe {
	const hi = 1 << 32 // upper half of an int argument: ignored by the kernel
	var c [1]byte
	cp := uint64(uintptr(unsafe.Pointer(&c[0])))
	return []probe{
		{name: "getpid", sys: "getpid"},
		{name: "mount", sys: "mount"},
		{name: "umount2", sys: "umount2"},
		{name: "pivot_root", sys: "pivot_root"},
		{name: "unshare(CLONE_NEWUSER)", sys: "unshare", args: [6]uint64{syscall.CLONE_NEWUSER}},
		{name: "setns", sys: "setns", args: [6]uint64{^uint64(0)}},
		{name: "clone(CLONE_NEWNS|CLONE_FS)", sys: "clone", args: [6]uint64{syscall.CLONE_NEWNS | syscall.CLONE_FS}},
		{name: "clone3", sys: "clone3"},
		{name: "keyctl", sys: "keyctl", args: [6]uint64{0xffff}},
		{name: "bpf", sys: "bpf", args: [6]uint64{0xffff}},
		{name: "io_uring_setup", sys: "io_uring_setup"},
		{name: "perf_event_open", sys: "perf_event_open"},
		{name: "userfaultfd", sys: "userfaultfd", args: [6]uint64{0xffffffff}},
		{name: "ptrace", sys: "ptrace", args: [6]uint64{syscall.PTRACE_PEEKUSR, 0x7fffffff}},
		{name: "open_by_handle_at", sys: "open_by_handle_at", args: [6]uint64{^uint64(0)}},
		{name: "init_module", sys: "init_module"},
		{name: "sethostname", sys: "sethostname", args: [6]uint64{0, 1000}},
		{name: "personality(ADDR_NO_RANDOMIZE)", sys: "personality", args: [6]uint64{0x0040000}},
		{name: "personality(query)", sys: "personality", args: [6]uint64{0xffffffff}},
		{name: "syscall 1000", sys: "#1000"},
		{name: "socket(AF_INET)", sys: "socket", args: [6]uint64{syscall.AF_INET, syscall.SOCK_STREAM}},
		{name: "socket(AF_PACKET)", sys: "socket", args: [6]uint64{syscall.AF_PACKET, syscall.SOCK_RAW}},
		{name: "socket(hi|AF_PACKET)", sys: "socket", args: [6]uint64{hi | syscall.AF_PACKET, syscall.SOCK_RAW}},
		{name: "socket(AF_VSOCK)", sys: "socket", args: [6]uint64{40, syscall.SOCK_STREAM}},
		{name: "ioctl(TCGETS)", sys: "ioctl", args: [6]uint64{uint64(devNull), syscall.TCGETS, cp}},
		{name: "ioctl(TIOCSTI)", sys: "ioctl", args: [6]uint64{uint64(devNull), syscall.TIOCSTI, cp}},
		{name: "ioctl(hi|TIOCSTI)", sys: "ioctl", args: [6]uint64{uint64(devNull), hi | syscall.TIOCSTI, cp}},
	}
}

// childProbe makes every probe and prints {"name": errno} (0: success).
func childProbe() {
	runtime.LockOSThread()
	devNull, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		die("open /dev/null: %v", err)
	}
	ps := probes(uintptr(devNull))
	nrs := make([]uintptr, len(ps))
	for i, p := range ps {
		if n, ok := strings.CutPrefix(p.sys, "#"); ok {
			v, _ := strconv.Atoi(n)
			nrs[i] = uintptr(v)
			continue
		}
		n, err := libseccomp.GetSyscallFromName(p.sys)
		if err != nil {
			die("resolving %s: %v", p.sys, err)
		}
		nrs[i] = uintptr(n)
	}
	filtered := installFromEnv()
	res := map[string]int{}
	for i, p := range ps {
		a := p.args
		r, _, e := syscall.Syscall6(nrs[i], uintptr(a[0]), uintptr(a[1]), uintptr(a[2]), uintptr(a[3]), uintptr(a[4]), uintptr(a[5]))
		res[p.name] = int(e)
		if e == 0 && p.sys == "socket" {
			syscall.Close(int(r))
		}
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		die("reading status: %v", err)
	}
	mode := -1
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			mode, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	res["(seccomp mode)"] = mode
	res["(filtered)"] = 0
	if filtered {
		res["(filtered)"] = 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		die("%v", err)
	}
}

// childExec installs the program and execs argv.
func childExec() {
	runtime.LockOSThread()
	var argv []string
	if err := json.Unmarshal([]byte(os.Getenv(envExec)), &argv); err != nil || len(argv) == 0 {
		die("bad %s: %v", envExec, err)
	}
	env := slices.DeleteFunc(os.Environ(), func(s string) bool { return strings.HasPrefix(s, "PINFOLD_SECCOMP_TEST_") })
	if argv[0] == "self-hello" {
		argv[0] = os.Args[0]
		env = append(env, envRole+"=hello")
	}
	installFromEnv()
	err := syscall.Exec(argv[0], argv, env)
	die("exec %s: %v", argv[0], err)
}

// childHello is a Go program started under the filter: the runtime starts
// its threads, runs goroutines and the collector, and starts a process.
func childHello() {
	done := make(chan int)
	for i := range 8 {
		go func() { done <- i * i }()
	}
	sum := 0
	for range 8 {
		sum += <-done
	}
	runtime.GC()
	out, err := exec.Command("/bin/sh", "-c", "echo child").Output()
	if err != nil {
		die("running a child from Go: %v", err)
	}
	fmt.Printf("go ok %d %s", sum, out)
}

// childListener installs a program with a notification rule through
// SetSeccompFilterListener, checks the listener, closes it, and reports the
// errno of the notified syscall, which must then be ENOSYS.
func childListener() {
	runtime.LockOSThread()
	insns, err := os.ReadFile(os.Getenv(envProg))
	if err != nil {
		die("%v", err)
	}
	flags, _ := strconv.ParseUint(os.Getenv(envFlags), 0, 64)
	if err := syscalls.SetNoNewPrivs(); err != nil {
		die("%v", err)
	}
	if err := syscalls.SetSeccompFilter(insns, uint(flags)); err == nil {
		die("SetSeccompFilter accepted a program that needs a listener")
	}
	fd, err := syscalls.SetSeccompFilterListener(insns, uint(flags))
	if err != nil {
		die("SetSeccompFilterListener: %v", err)
	}
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		die("%v", err)
	}
	syscall.Close(fd)
	_, _, e := syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
	fmt.Printf("%s %d\n", target, int(e))
}

// childX32 makes a syscall through the x32 entry path; the filter must kill
// the process.
func childX32() {
	runtime.LockOSThread()
	installFromEnv()
	const x32Bit = 0x40000000
	syscall.RawSyscall(x32Bit|syscall.SYS_GETPID, 0, 0, 0)
	fmt.Println("survived")
}

// child runs the test binary in a role and returns its stdout.
type childResult struct {
	stdout, stderr string
	state          *os.ProcessState
	err            error
}

func runChild(t *testing.T, role string, prog *Program, extraEnv ...string) childResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+role)
	if prog != nil {
		path := filepath.Join(t.TempDir(), "prog.bpf")
		if err := os.WriteFile(path, prog.Insns, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd.Env = append(cmd.Env, envProg+"="+path, envFlags+"="+strconv.FormatUint(uint64(prog.Flags), 10))
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A new session: no controlling terminal for TIOCSTI to reach.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err := cmd.Run()
	return childResult{stdout.String(), stderr.String(), cmd.ProcessState, err}
}

func probeChild(t *testing.T, prog *Program) map[string]int {
	t.Helper()
	r := runChild(t, "probe", prog)
	if r.err != nil {
		t.Fatalf("probe child: %v\n%s", r.err, r.stderr)
	}
	res := map[string]int{}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("probe child output %q: %v", r.stdout, err)
	}
	return res
}

func requireSeccompFilter(t *testing.T) {
	t.Helper()
	// PR_GET_SECCOMP fails with EINVAL on kernels without CONFIG_SECCOMP.
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_GET_SECCOMP, 0, 0); e != 0 {
		t.Skipf("seccomp is not available in this kernel: prctl(PR_GET_SECCOMP): %v", e)
	}
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skipf("no /proc: %v", err)
	}
}

// TestEnforceDefault installs the compiled default profile in a real process
// and checks the kernel's answers against a control process without filter.
func TestEnforceDefault(t *testing.T) {
	requireSeccompFilter(t)
	if runtime.GOARCH != "amd64" {
		t.Skipf("probes are written for x86_64, not %s", runtime.GOARCH)
	}
	control := probeChild(t, nil)
	got := probeChild(t, mustCompile(t, Default()))
	if got["(filtered)"] != 1 || got["(seccomp mode)"] != 2 {
		t.Fatalf("the child is not in seccomp filter mode: %v", got)
	}
	want := map[string]syscall.Errno{
		"getpid":                         0,
		"mount":                          syscall.EPERM,
		"umount2":                        syscall.EPERM,
		"pivot_root":                     syscall.EPERM,
		"unshare(CLONE_NEWUSER)":         syscall.EPERM,
		"setns":                          syscall.EPERM,
		"clone(CLONE_NEWNS|CLONE_FS)":    syscall.EPERM,
		"clone3":                         syscall.ENOSYS,
		"keyctl":                         syscall.EPERM,
		"bpf":                            syscall.EPERM,
		"io_uring_setup":                 syscall.EPERM,
		"perf_event_open":                syscall.EPERM,
		"userfaultfd":                    syscall.EPERM,
		"ptrace":                         syscall.EPERM,
		"open_by_handle_at":              syscall.EPERM,
		"init_module":                    syscall.EPERM,
		"sethostname":                    syscall.EPERM,
		"personality(ADDR_NO_RANDOMIZE)": syscall.EPERM,
		"personality(query)":             0,
		"syscall 1000":                   syscall.ENOSYS,
		"socket(AF_INET)":                0,
		"socket(AF_PACKET)":              syscall.EAFNOSUPPORT,
		"socket(hi|AF_PACKET)":           syscall.EAFNOSUPPORT,
		"socket(AF_VSOCK)":               syscall.EAFNOSUPPORT,
		"ioctl(TCGETS)":                  syscall.ENOTTY, // allowed: the kernel's answer
		"ioctl(TIOCSTI)":                 syscall.EPERM,
		"ioctl(hi|TIOCSTI)":              syscall.EPERM,
	}
	checkProbes(t, want, got, control)
}

func checkProbes(t *testing.T, want map[string]syscall.Errno, got, control map[string]int) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: not probed", name)
			continue
		}
		if syscall.Errno(g) != w {
			t.Errorf("%s: errno %d (%v), want %d (%v)", name, g, syscall.Errno(g), int(w), w)
		}
		// Where the filter's answer differs from the kernel's own, the
		// control run shows that the filter, not the kernel, answered.
		if w != 0 && control != nil && syscall.Errno(control[name]) == w {
			t.Logf("%s: the kernel alone also answers %v here", name, w)
		}
	}
	if control != nil {
		// The test must be able to fail: some denied probes succeed or
		// fail differently without the filter.
		differs := 0
		for name, w := range want {
			if syscall.Errno(control[name]) != w {
				differs++
			}
		}
		if differs < len(want)/2 {
			t.Errorf("only %d of %d probes differ without the filter: the probes do not test the filter", differs, len(want))
		}
	}
}

func TestEnforceDocker(t *testing.T) {
	requireSeccompFilter(t)
	if runtime.GOARCH != "amd64" {
		t.Skipf("the Docker test profile is for x86_64, not %s", runtime.GOARCH)
	}
	p, err := LoadFile(dockerProfile)
	if err != nil {
		t.Fatal(err)
	}
	control := probeChild(t, nil)
	got := probeChild(t, mustCompile(t, p))
	checkProbes(t, map[string]syscall.Errno{
		"getpid":                         0,
		"mount":                          syscall.EPERM,
		"unshare(CLONE_NEWUSER)":         syscall.EPERM,
		"clone(CLONE_NEWNS|CLONE_FS)":    syscall.EPERM,
		"clone3":                         syscall.ENOSYS,
		"keyctl":                         syscall.EPERM,
		"bpf":                            syscall.EPERM,
		"personality(ADDR_NO_RANDOMIZE)": syscall.EPERM,
		"personality(query)":             0,
		"syscall 1000":                   syscall.EPERM, // Docker's default is EPERM
		"socket(AF_INET)":                0,
	}, got, control)
}

// TestEnforceCapabilities checks that DefaultFor opens what a capability
// gates, in the kernel.
func TestEnforceCapabilities(t *testing.T) {
	requireSeccompFilter(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("probes are written for x86_64")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the probes that become allowed must succeed or fail in the kernel as root")
	}
	got := probeChild(t, mustCompile(t, DefaultFor([]string{"CAP_SYS_PTRACE", "CAP_NET_RAW"})))
	checkProbes(t, map[string]syscall.Errno{
		"ptrace":            syscall.ESRCH, // allowed: no such process
		"socket(AF_PACKET)": 0,
		"mount":             syscall.EPERM,
	}, got, nil)
}

// TestEnforceFlags checks that the kernel accepts the flags Compile emits.
func TestEnforceFlags(t *testing.T) {
	requireSeccompFilter(t)
	p := Default()
	p.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow}
	prog := mustCompile(t, p)
	if prog.Flags != FilterFlagLog|FilterFlagSpecAllow {
		t.Fatalf("Flags = %#x", prog.Flags)
	}
	got := probeChild(t, prog)
	if got["(seccomp mode)"] != 2 || got["getpid"] != 0 || syscall.Errno(got["mount"]) != syscall.EPERM {
		t.Fatalf("with flags: %v", got)
	}
}

func TestEnforceListener(t *testing.T) {
	requireSeccompFilter(t)
	prog := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActNotify}}})
	if prog.Flags&FilterFlagNewListener == 0 {
		t.Fatalf("Flags = %#x, want FilterFlagNewListener", prog.Flags)
	}
	r := runChild(t, "listener", prog)
	if r.err != nil {
		t.Fatalf("listener child: %v\n%s", r.err, r.stderr)
	}
	if want := fmt.Sprintf("anon_inode:seccomp notify %d\n", syscall.ENOSYS); r.stdout != want {
		t.Fatalf("listener child printed %q, want %q", r.stdout, want)
	}
}

// TestEnforceForeignArchitecture checks that a syscall through the x32 entry
// path kills the process under the default profile.
func TestEnforceForeignArchitecture(t *testing.T) {
	requireSeccompFilter(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("x32 exists only on x86_64")
	}
	// Control: without a filter the call returns (ENOSYS without x32 support).
	if r := runChild(t, "x32", nil); r.err != nil || r.stdout != "survived\n" {
		t.Fatalf("control: %v %q %s", r.err, r.stdout, r.stderr)
	}
	r := runChild(t, "x32", mustCompile(t, Default()))
	ws, ok := r.state.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Fatalf("x32 syscall under the default profile: %v, stdout %q, stderr %s; want death by SIGSYS", r.err, r.stdout, r.stderr)
	}
}

func runExec(t *testing.T, prog *Program, argv ...string) string {
	t.Helper()
	b, _ := json.Marshal(argv)
	r := runChild(t, "exec", prog, envExec+"="+string(b))
	if r.err != nil {
		t.Fatalf("%s under the filter: %v\nstdout: %s\nstderr: %s", argv, r.err, r.stdout, r.stderr)
	}
	return r.stdout
}

// TestDefaultRunsPrograms runs ordinary programs under the default profile:
// a shell with coreutils, a Go program, Python.
func TestDefaultRunsPrograms(t *testing.T) {
	requireSeccompFilter(t)
	prog := mustCompile(t, Default())

	t.Run("shell", func(t *testing.T) {
		out := runExec(t, prog, "/bin/sh", "-c",
			`set -e; ls / >/dev/null; date >/dev/null; cat /proc/self/status | grep -q '^Seccomp:[[:space:]]*2$'; `+
				`echo a b c | tr a-z A-Z | sort | wc -w; d=$(mktemp -d); echo hi > "$d/f"; cp "$d/f" "$d/g"; cat "$d/g"; rm -r "$d"; `+
				`(sleep 0.01 & wait); echo done`)
		if out != "3\nhi\ndone\n" {
			t.Fatalf("shell printed %q", out)
		}
	})
	t.Run("go", func(t *testing.T) {
		if out := runExec(t, prog, "self-hello"); out != "go ok 140 child\n" {
			t.Fatalf("Go child printed %q", out)
		}
	})
	t.Run("python", func(t *testing.T) {
		python := "/usr/bin/python3"
		if _, err := os.Stat(python); errors.Is(err, os.ErrNotExist) {
			t.Skipf("%s is not installed", python)
		}
		if out := runExec(t, prog, python, "-c", pythonCheck); out != "python ok\n" {
			t.Fatalf("python printed %q", out)
		}
	})
}

// pythonCheck exercises what ordinary Python apps use: threads, subprocess,
// loopback sockets, multiprocessing with fork, mmap, asyncio.
const pythonCheck = `
import asyncio, mmap, multiprocessing, os, socket, subprocess, sys, threading
out = []
ts = [threading.Thread(target=lambda i=i: out.append(i * i)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
assert sorted(out) == [0, 1, 4, 9], out
assert subprocess.run(["/bin/sh", "-c", "echo sub"], capture_output=True, text=True, check=True).stdout == "sub\n"
assert subprocess.run([sys.executable, "-c", "print(6*7)"], capture_output=True, text=True, check=True).stdout == "42\n"
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0)); srv.listen(1)
def serve():
    c, _ = srv.accept(); c.sendall(c.recv(100).upper()); c.close()
th = threading.Thread(target=serve); th.start()
cl = socket.create_connection(srv.getsockname()); cl.sendall(b"ping")
assert cl.recv(100) == b"PING"; cl.close(); th.join(); srv.close()
with multiprocessing.get_context("fork").Pool(2) as pool:
    assert pool.map(abs, [-1, -2, 3]) == [1, 2, 3]
m = mmap.mmap(-1, 4096); m[:5] = b"hello"; assert m[:5] == b"hello"; m.close()
async def main():
    async def handle(r, w):
        w.write((await r.read(4)).upper()); await w.drain(); w.close()
    s = await asyncio.start_server(handle, "127.0.0.1", 0)
    r, w = await asyncio.open_connection("127.0.0.1", s.sockets[0].getsockname()[1])
    w.write(b"pong"); await w.drain(); data = await r.read(4)
    w.close(); s.close(); await s.wait_closed()
    return data
assert asyncio.run(main()) == b"PONG"
try:
    socket.socket(40, socket.SOCK_STREAM)  # AF_VSOCK
    raise SystemExit("AF_VSOCK socket was allowed")
except OSError as e:
    assert e.errno == 97, e  # EAFNOSUPPORT
print("python ok")
`

// childBench installs the program (if any) and times N calls of one
// syscall, printing nanoseconds per call.
func childBench() {
	runtime.LockOSThread()
	n, err := strconv.Atoi(os.Getenv("PINFOLD_SECCOMP_TEST_N"))
	if err != nil {
		die("%v", err)
	}
	fds := make([]int, 2)
	if err := syscall.Pipe(fds); err != nil {
		die("%v", err)
	}
	var avail int32
	call := map[string]func(){
		"getppid": func() { syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0) },
		"ioctl(FIONREAD)": func() {
			syscall.RawSyscall(syscall.SYS_IOCTL, uintptr(fds[0]), syscall.TIOCINQ, uintptr(unsafe.Pointer(&avail)))
		},
		"personality(get)": func() { syscall.RawSyscall(syscall.SYS_PERSONALITY, 0xffffffff, 0, 0) },
	}[os.Getenv("PINFOLD_SECCOMP_TEST_BENCH")]
	if call == nil {
		die("unknown syscall to time")
	}
	installFromEnv()
	start := time.Now()
	for range n {
		call()
	}
	fmt.Println(time.Since(start).Nanoseconds())
}

// BenchmarkFilteredSyscall measures what a filter costs per syscall, in a
// child process that installs it: getppid (answer independent of the
// arguments, so the kernel's per-filter cache skips the BPF), and ioctl and
// personality, whose rules inspect arguments, so the BPF runs every time.
func BenchmarkFilteredSyscall(b *testing.B) {
	docker, err := LoadFile(dockerProfile)
	if err != nil {
		b.Fatal(err)
	}
	progs := []struct {
		name string
		prog *Program
	}{{"none", nil}, {"default", mustCompile(b, Default())}, {"docker", mustCompile(b, docker)}}
	for _, sc := range []string{"getppid", "ioctl(FIONREAD)", "personality(get)"} {
		for _, p := range progs {
			b.Run(sc+"/"+p.name, func(b *testing.B) {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), envRole+"=bench", "PINFOLD_SECCOMP_TEST_BENCH="+sc, "PINFOLD_SECCOMP_TEST_N="+strconv.Itoa(b.N))
				if p.prog != nil {
					path := filepath.Join(b.TempDir(), "prog.bpf")
					if err := os.WriteFile(path, p.prog.Insns, 0o600); err != nil {
						b.Fatal(err)
					}
					cmd.Env = append(cmd.Env, envProg+"="+path, envFlags+"="+strconv.FormatUint(uint64(p.prog.Flags), 10))
				}
				out, err := cmd.Output()
				if err != nil {
					b.Fatalf("bench child: %v", err)
				}
				ns, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
				if err != nil {
					b.Fatalf("bench child printed %q", out)
				}
				b.ReportMetric(ns/float64(b.N), "ns/op")
			})
		}
	}
}

// childTsync gives one thread a filter of its own (installed without TSYNC),
// then calls SetSeccompFilter from another thread: the kernel refuses to
// synchronise and names the first thread, which SetSeccompFilter reports.
func childTsync() {
	prog, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow})
	if err != nil {
		die("%v", err)
	}
	sysSeccomp, err := libseccomp.GetSyscallFromName("seccomp")
	if err != nil {
		die("%v", err)
	}
	tids := make(chan int)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread keeps its filter
		if err := syscalls.SetNoNewPrivs(); err != nil {
			die("%v", err)
		}
		filter := make([]syscall.SockFilter, prog.Len())
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&filter[0])), len(prog.Insns)), prog.Insns)
		fprog := syscall.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		const seccompSetModeFilter = 1
		if _, _, e := syscall.RawSyscall(uintptr(sysSeccomp), seccompSetModeFilter, 0, uintptr(unsafe.Pointer(&fprog))); e != 0 {
			die("seccomp on one thread: %v", e)
		}
		tids <- syscall.Gettid()
		select {}
	}()
	tid := <-tids
	runtime.LockOSThread()
	if err := syscalls.SetNoNewPrivs(); err != nil {
		die("%v", err)
	}
	err = syscalls.SetSeccompFilter(prog.Insns, 0)
	var te *syscalls.SeccompTsyncError
	if !errors.As(err, &te) {
		die("SetSeccompFilter: %v, want *SeccompTsyncError", err)
	}
	fmt.Println(te.TID == tid, err)
}

func TestSetSeccompFilterTsyncError(t *testing.T) {
	requireSeccompFilter(t)
	r := runChild(t, "tsync", nil)
	if r.err != nil || !strings.HasPrefix(r.stdout, "true ") {
		t.Fatalf("tsync child: %v, stdout %q, stderr %s", r.err, r.stdout, r.stderr)
	}
	t.Log(strings.TrimSpace(strings.TrimPrefix(r.stdout, "true ")))
}

// TestSetSeccompFilterRejects checks the installer's own checks; none of
// these calls reaches the kernel.
func TestSetSeccompFilterRejects(t *testing.T) {
	ret := make([]byte, 8) // BPF_RET|BPF_K, SECCOMP_RET_ALLOW
	ret[0] = 0x06
	ret[6], ret[7] = 0xff, 0x7f
	tests := []struct {
		name  string
		insns []byte
		flags uint
	}{
		{"empty", nil, 0},
		{"partial instruction", ret[:7], 0},
		{"longer than BPF_MAXINSNS", bytes.Repeat(ret, bpfMaxInsns+1), 0},
		{"listener flag", ret, FilterFlagNewListener},
	}
	for _, tt := range tests {
		if err := syscalls.SetSeccompFilter(tt.insns, tt.flags); err == nil {
			t.Fatalf("%s: SetSeccompFilter succeeded", tt.name)
		} else {
			t.Logf("%s: %v", tt.name, err)
		}
	}
	if _, err := syscalls.SetSeccompFilterListener(nil, 0); err == nil {
		t.Fatal("SetSeccompFilterListener accepted an empty program")
	}
}
