package vfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pinfold/pinfold/syscalls"
)

// requireSandbox skips unless the test can create the namespaces and use
// the mount API Apply needs; it fails if they should be there but are not.
func requireSandbox(t *testing.T) {
	t.Helper()
	if reason := sandboxUnavailable(); reason != "" {
		t.Skip(reason)
	}
}

// sandboxUnavailable says why sandboxes cannot be made here, or "".
func sandboxUnavailable() string {
	if os.Geteuid() != 0 {
		return "needs root: creates mount, pid, uts, ipc and net namespaces"
	}
	for _, ns := range []string{"mnt", "pid", "uts", "ipc", "net", "user"} {
		if _, err := os.Stat("/proc/self/ns/" + ns); err != nil {
			return fmt.Sprintf("kernel without %s namespaces: %v", ns, err)
		}
	}
	return ""
}

// newRootDir makes the empty host directory every sandbox mounts its root
// on (inside its own mount namespace), reachable by a mapped uid.
func newRootDir(t *testing.T) string {
	t.Helper()
	d := mkdirPublic(t)
	t.Cleanup(func() {
		ents, err := os.ReadDir(d)
		if err != nil || len(ents) != 0 {
			t.Errorf("root dir %s: not empty after the sandbox: %v %v", d, ents, err)
		}
	})
	return d
}

// mkdirPublic is t.TempDir, but mode 0755 all the way so that uids mapped
// into a user namespace can reach it.
func mkdirPublic(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// mountTable parses mountinfo into mount point -> "per-mount options | fs
// type | super options".
type mountEntry struct {
	opts  map[string]bool
	fs    string
	super string
}

func mountTable(t *testing.T, mountinfo string) map[string]mountEntry {
	t.Helper()
	m := map[string]mountEntry{}
	for _, line := range strings.Split(strings.TrimSpace(mountinfo), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 6 || len(g) < 3 {
			t.Fatalf("bad mountinfo line %q", line)
		}
		e := mountEntry{opts: map[string]bool{}, fs: g[0], super: g[2]}
		for _, o := range strings.Split(f[5], ",") {
			e.opts[o] = true
		}
		m[f[4]] = e // a later (upper) mount wins
	}
	return m
}

// hostMergedUsr lists the merged-/usr links of this host, as the sandbox
// must show them.
func hostMergedUsr() map[string]string {
	links := map[string]string{}
	for _, p := range mergedUsr {
		if l, err := os.Readlink(p); err == nil && within(filepath.Clean(filepath.Join("/", l)), "/usr") {
			links[p] = l
		}
	}
	return links
}

// check is one expectation on a probe result.
type check struct {
	probe probe
	errno syscall.Errno // expected errno, 0 for success
	data  *string       // expected data, if set
	has   []string      // words the data must contain
	lacks []string      // words the data must not contain
}

func str(s string) *string { return &s }

func runChecks(t *testing.T, rep helperReport, checks []check) {
	t.Helper()
	if len(rep.Results) != len(checks) {
		t.Fatalf("%d results for %d probes (apply error: %s)", len(rep.Results), len(checks), rep.ApplyErr)
	}
	for i, c := range checks {
		r := rep.Results[i]
		name := c.probe.Op + " " + c.probe.Path + " " + strings.Join(c.probe.Args, " ")
		if syscall.Errno(r.Errno) != c.errno && !(c.errno == 0 && r.Errno == 0) {
			t.Errorf("%s: errno %d (%s), want %d (%v)", name, r.Errno, r.Err, int(c.errno), c.errno)
			continue
		}
		if c.errno == 0 && r.Err != "" {
			t.Errorf("%s: %s", name, r.Err)
			continue
		}
		if c.data != nil && r.Data != *c.data {
			t.Errorf("%s: got %q, want %q", name, r.Data, *c.data)
		}
		words := strings.Fields(r.Data)
		for _, w := range c.has {
			if !contains(words, w) && !strings.Contains(r.Data, w) {
				t.Errorf("%s: %q lacks %q", name, r.Data, w)
			}
		}
		for _, w := range c.lacks {
			if contains(words, w) {
				t.Errorf("%s: %q has %q", name, r.Data, w)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func probes(checks []check) []probe {
	var ps []probe
	for _, c := range checks {
		ps = append(ps, c.probe)
	}
	return ps
}

// TestApplyDefault applies the default policy's plan as root and inside a
// user namespace, and checks what the app would see.
func TestApplyDefault(t *testing.T) {
	requireSandbox(t)
	for _, userNS := range []bool{false, true} {
		t.Run(fmt.Sprintf("userns=%v", userNS), func(t *testing.T) {
			spec := DefaultSpec()
			spec.UserNS = userNS
			plan, err := NewPlan(spec)
			if err != nil {
				t.Fatal(err)
			}
			root := newRootDir(t)
			var rootEntries []string
			for p := range hostMergedUsr() {
				rootEntries = append(rootEntries, p[1:])
			}
			rootEntries = append(rootEntries, "dev", "etc", "proc", "tmp", "usr")
			sort.Strings(rootEntries)
			checks := []check{
				{probe: probe{Op: "readdir", Path: "/proc"}, has: []string{"1", "self", "meminfo", "cpuinfo"}},
				{probe: probe{Op: "readdir", Path: "/"}, data: str(strings.Join(rootEntries, " "))},
				{probe: probe{Op: "create", Path: "/x"}, errno: syscall.EROFS},
				{probe: probe{Op: "create", Path: "/usr/x"}, errno: syscall.EROFS},
				{probe: probe{Op: "create", Path: "/etc/x"}, errno: syscall.EROFS},
				{probe: probe{Op: "create", Path: "/etc/passwd"}, errno: syscall.EEXIST},
				{probe: probe{Op: "write", Path: "/etc/hostname", Args: []string{"x"}}, errno: syscall.EROFS},
				{probe: probe{Op: "create", Path: "/dev/x"}, errno: syscall.EROFS},
				{probe: probe{Op: "create", Path: "/tmp/x"}},
				{probe: probe{Op: "create", Path: "/dev/shm/x"}},
				{probe: probe{Op: "readdir", Path: "/dev"}, data: str("fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero")},
				{probe: probe{Op: "write", Path: "/dev/null", Args: []string{"x"}}},
				{probe: probe{Op: "read", Path: "/dev/null"}, data: str("")},
				{probe: probe{Op: "lstat", Path: "/dev/null"}, data: str("Dcrw-rw-rw-")},
				{probe: probe{Op: "lstat", Path: "/dev/zero"}, data: str("Dcrw-rw-rw-")},
				{probe: probe{Op: "readlink", Path: "/dev/ptmx"}, data: str("pts/ptmx")},
				{probe: probe{Op: "readlink", Path: "/dev/fd"}, data: str("/proc/self/fd")},
				{probe: probe{Op: "readdir", Path: "/dev/pts"}, data: str("ptmx")},
				{probe: probe{Op: "openrw", Path: "/dev/ptmx"}}, // allocates a pty: pts/0
				{probe: probe{Op: "readdir", Path: "/dev/pts"}, data: str("ptmx")},
				// Masked: /proc/keys is /dev/null (reads nothing), /proc/acpi empty.
				{probe: probe{Op: "lstat", Path: "/proc/keys"}, data: str("Dcrw-rw-rw-")},
				{probe: probe{Op: "read", Path: "/proc/keys"}, data: str("")},
				{probe: probe{Op: "read", Path: "/proc/timer_list"}, data: str("")},
				{probe: probe{Op: "readdir", Path: "/proc/acpi"}, data: str("")},
				// In a user namespace the file belongs to the host's root
				// (EACCES comes first); the mount table check below
				// covers the read-only flag there.
				{probe: probe{Op: "write", Path: "/proc/sys/kernel/domainname", Args: []string{"escaped"}}, errno: map[bool]syscall.Errno{false: syscall.EROFS, true: syscall.EACCES}[userNS]},
				{probe: probe{Op: "read", Path: "/etc/hostname"}, data: str("sandbox\n")},
				{probe: probe{Op: "read", Path: "/etc/passwd"}, has: []string{"app:x:1000:1000:app:/tmp:/bin/sh"}},
				{probe: probe{Op: "read", Path: "/etc/hosts"}, has: []string{"sandbox"}},
				{probe: probe{Op: "readdir", Path: "/etc"},
					has:   []string{"passwd", "group", "hosts", "hostname", "resolv.conf", "nsswitch.conf"},
					lacks: []string{"shadow", "gshadow", "machine-id", "sudoers", "ssh", "subuid", "fstab"}},
				{probe: probe{Op: "read", Path: "/etc/shadow"}, errno: syscall.ENOENT},
				{probe: probe{Op: "lstat", Path: "/sys"}, errno: syscall.ENOENT},
				{probe: probe{Op: "exec", Path: "/bin/sh", Args: []string{"-c", "true"}}},
			}
			for p, l := range hostMergedUsr() {
				checks = append(checks, check{probe: probe{Op: "readlink", Path: p}, data: str(l)})
			}
			if _, err := os.Stat("/usr/bin/python3"); err == nil {
				checks = append(checks,
					check{probe: probe{Op: "exec", Path: "/usr/bin/python3", Args: []string{"-c", "print(1)"}}, data: str("1\n")},
					// TLS trust store and the name service are usable.
					check{probe: probe{Op: "exec", Path: "/usr/bin/python3", Args: []string{"-c",
						"import ssl,pwd,socket; print(len(ssl.create_default_context().get_ca_certs()) >= 0, pwd.getpwuid(1000).pw_name, socket.gethostbyname('sandbox'))"}},
						data: str("True app 127.0.0.1\n")})
			}
			rep := runHelper(t, nsConfig{userNS: userNS}, helperRequest{Plan: plan, RootDir: root, Probes: probes(checks)})
			if rep.ApplyErr != "" {
				t.Fatalf("Apply: %s", rep.ApplyErr)
			}
			if rep.Pid != 1 {
				t.Errorf("helper is pid %d, want 1", rep.Pid)
			}
			if rep.FDsBefore != rep.FDsAfter {
				t.Errorf("Apply leaked descriptors: before %q, after %q", rep.FDsBefore, rep.FDsAfter)
			}
			runChecks(t, rep, checks)
			// /proc shows the sandbox's pid namespace: only pid 1 (the
			// probe ran before any child was started).
			var pids []string
			for _, w := range strings.Fields(rep.Results[0].Data) {
				if _, err := strconv.Atoi(w); err == nil {
					pids = append(pids, w)
				}
			}
			if strings.Join(pids, " ") != "1" {
				t.Errorf("/proc shows pids %v, want only 1", pids)
			}
			checkMounts(t, rep.Mountinfo, map[string]string{
				"/":           "ro nosuid nodev noexec | tmpfs",
				"/usr":        "ro nosuid nodev",
				"/etc/ssl":    "ro nosuid nodev noexec",
				"/tmp":        "rw nosuid nodev | tmpfs | size=65536k",
				"/dev":        "ro nosuid noexec !nodev | tmpfs | size=64k mode=755",
				"/dev/shm":    "rw nosuid nodev noexec | tmpfs | size=65536k",
				"/dev/pts":    "rw nosuid noexec | devpts | mode=620 ptmxmode=666",
				"/dev/mqueue": "rw nosuid nodev noexec | mqueue",
				"/proc":       "rw nosuid nodev noexec | proc",
				"/proc/sys":   "ro nosuid nodev noexec | proc",
				"/proc/bus":   "ro nosuid nodev noexec | proc",
				"/proc/acpi":  "ro nosuid nodev noexec | tmpfs",
			})
			if userNS {
				checkMounts(t, rep.Mountinfo, map[string]string{"/dev/null": "nosuid noexec !nodev | devtmpfs"})
			}
			for mp := range mountTable(t, rep.Mountinfo) {
				if strings.HasPrefix(mp, root) || mp == "/old_root" {
					t.Errorf("host path %s is still mounted in the sandbox", mp)
				}
			}
		})
	}
}

// checkMounts checks mount point -> "per-mount options [| fs type [| super
// options]]"; "!opt" means the option must be absent.
func checkMounts(t *testing.T, mountinfo string, want map[string]string) {
	t.Helper()
	table := mountTable(t, mountinfo)
	for mp, spec := range want {
		e, ok := table[mp]
		if !ok {
			t.Errorf("%s: not mounted", mp)
			continue
		}
		parts := strings.Split(spec, "|")
		for _, o := range strings.Fields(parts[0]) {
			if neg, ok := strings.CutPrefix(o, "!"); ok {
				if e.opts[neg] {
					t.Errorf("%s: has %s", mp, neg)
				}
			} else if !e.opts[o] {
				t.Errorf("%s: lacks %s (has %v)", mp, o, e.opts)
			}
		}
		if len(parts) > 1 && strings.TrimSpace(parts[1]) != e.fs {
			t.Errorf("%s: filesystem %s, want %s", mp, e.fs, strings.TrimSpace(parts[1]))
		}
		if len(parts) > 2 {
			super := strings.Split(e.super, ",")
			for _, o := range strings.Fields(parts[2]) {
				if !contains(super, o) {
					t.Errorf("%s: super options %s lack %s", mp, e.super, o)
				}
			}
		}
	}
}

// TestApplySysfs checks the read-only sysfs of the sandbox's own network
// namespace and its masks.
func TestApplySysfs(t *testing.T) {
	requireSandbox(t)
	for _, userNS := range []bool{false, true} {
		t.Run(fmt.Sprintf("userns=%v", userNS), func(t *testing.T) {
			spec := DefaultSpec()
			spec.Sysfs, spec.UserNS = true, userNS
			plan, err := NewPlan(spec)
			if err != nil {
				t.Fatal(err)
			}
			checks := []check{
				{probe: probe{Op: "readdir", Path: "/sys/class/net"}, data: str("lo")},
				{probe: probe{Op: "readdir", Path: "/sys/firmware"}, data: str("")},
				{probe: probe{Op: "mkdir", Path: "/sys/x"}, errno: syscall.EROFS},
			}
			rep := runHelper(t, nsConfig{userNS: userNS}, helperRequest{Plan: plan, RootDir: newRootDir(t), Probes: probes(checks)})
			if rep.ApplyErr != "" {
				t.Fatalf("Apply: %s", rep.ApplyErr)
			}
			runChecks(t, rep, checks)
			checkMounts(t, rep.Mountinfo, map[string]string{
				"/sys":          "ro nosuid nodev noexec | sysfs",
				"/sys/firmware": "ro nosuid nodev noexec | tmpfs",
			})
		})
	}
}

// TestApplyBinds checks policy binds: a read-only bind whose source has a
// submount is read-only all the way down (a non-recursive read-only remount
// would leave the submount writable), read-write binds write through to
// the host, single files bind, and extra masks hide what they name.
func TestApplyBinds(t *testing.T) {
	requireSandbox(t)
	ro, rw := mkdirPublic(t), mkdirPublic(t)
	for _, d := range []string{"sub", "empty"} {
		if err := os.Mkdir(filepath.Join(ro, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(ro, "file")
	if err := os.WriteFile(file, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A submount inside the read-only source, in the host namespace.
	sub := filepath.Join(ro, "sub")
	mfd, err := syscalls.FSMount("tmpfs", []string{"size=65536"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = syscalls.MoveMountToPath(mfd, sub)
	syscalls.Close(mfd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscalls.UnmountDetach(sub); err != nil {
			t.Error(err)
		}
	})
	if err := os.Chmod(sub, 0o777); err != nil {
		t.Fatal(err)
	}
	// Owned by the user namespace's root, so that only the mount flags
	// can refuse its writes there too.
	for _, p := range []string{ro, rw, file} {
		if err := os.Chown(p, 100000, 100000); err != nil {
			t.Fatal(err)
		}
	}

	for _, userNS := range []bool{false, true} {
		t.Run(fmt.Sprintf("userns=%v", userNS), func(t *testing.T) {
			spec := DefaultSpec()
			spec.UserNS = userNS
			spec.ReadOnly = append(spec.ReadOnly, Bind{ro, "/data"}, Bind{file, "/opt/app/config"})
			spec.ReadWrite = []Bind{{rw, "/data/empty"}}
			spec.Tmpfs = append(spec.Tmpfs, Tmpfs{Path: "/scratch", Size: 1 << 20})
			spec.Files = []File{{Path: "/run/pinfold/python/mod.py", Mode: 0o444, Content: []byte("X = 1\n")}}
			spec.Masked = []string{"/usr/share", "/etc/os-release", "/nonexistent"}
			plan, err := NewPlan(spec)
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("written-userns-%v", userNS)
			checks := []check{
				{probe: probe{Op: "create", Path: "/data/x"}, errno: syscall.EROFS},
				{probe: probe{Op: "create", Path: "/data/sub/x"}, errno: syscall.EROFS},
				{probe: probe{Op: "create", Path: "/data/empty/" + name}},
				{probe: probe{Op: "read", Path: "/opt/app/config"}, data: str("hello")},
				{probe: probe{Op: "write", Path: "/opt/app/config", Args: []string{"x"}}, errno: syscall.EROFS},
				{probe: probe{Op: "create", Path: "/scratch/x"}},
				{probe: probe{Op: "read", Path: "/run/pinfold/python/mod.py"}, data: str("X = 1\n")},
				{probe: probe{Op: "write", Path: "/run/pinfold/python/mod.py", Args: []string{"x"}}, errno: syscall.EROFS},
				{probe: probe{Op: "readdir", Path: "/usr/share"}, data: str("")},
				{probe: probe{Op: "read", Path: "/etc/os-release"}, data: str("")},
			}
			rep := runHelper(t, nsConfig{userNS: userNS}, helperRequest{Plan: plan, RootDir: newRootDir(t), Probes: probes(checks)})
			if rep.ApplyErr != "" {
				t.Fatalf("Apply: %s", rep.ApplyErr)
			}
			runChecks(t, rep, checks)
			checkMounts(t, rep.Mountinfo, map[string]string{
				"/data":           "ro nosuid nodev",
				"/data/sub":       "ro nosuid nodev | tmpfs",
				"/data/empty":     "rw nosuid nodev",
				"/opt/app/config": "ro nosuid nodev",
				"/scratch":        "rw nosuid nodev | tmpfs | size=1024k",
				"/usr/share":      "ro nosuid nodev noexec | tmpfs",
			})
			if _, err := os.Stat(filepath.Join(rw, name)); err != nil {
				t.Errorf("write through the read-write bind did not reach the host: %v", err)
			}
		})
	}
}

// TestApplyMissingSource: NewPlan rejects a missing source; if it vanishes
// after NewPlan, Apply fails with a StepError naming the bind.
func TestApplyMissingSource(t *testing.T) {
	requireSandbox(t)
	src := filepath.Join(mkdirPublic(t), "models")
	spec := DefaultSpec()
	spec.ReadOnly = append(spec.ReadOnly, Bind{src, "/models"})
	if _, err := NewPlan(spec); !errors.Is(err, ErrInvalidSpec) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("NewPlan with a missing source: %v, want ErrInvalidSpec and fs.ErrNotExist", err)
	} else if !strings.Contains(err.Error(), src) {
		t.Errorf("error %q does not name the source", err)
	}
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	rep := runHelper(t, nsConfig{}, helperRequest{Plan: plan, RootDir: newRootDir(t)})
	if want := "bind " + src + " on /models"; rep.ApplyStep != want {
		t.Errorf("failed step %q, want %q (error %s)", rep.ApplyStep, want, rep.ApplyErr)
	}
	if syscall.Errno(rep.ApplyErrno) != syscall.ENOENT {
		t.Errorf("errno %d, want ENOENT (%s)", rep.ApplyErrno, rep.ApplyErr)
	}
}

// TestApplySymlinkEscape plants, after NewPlan, a symbolic link in a
// read-write bind source so that a later bind target goes through it to
// the host's root. Apply must refuse, and nothing may appear on the host.
func TestApplySymlinkEscape(t *testing.T) {
	requireSandbox(t)
	for _, link := range []string{"/", "../../../../..", "/tmp"} {
		t.Run(link, func(t *testing.T) {
			rw, models := mkdirPublic(t), mkdirPublic(t)
			escape := fmt.Sprintf("pinfold-escape-%d", os.Getpid())
			if err := os.MkdirAll(filepath.Join(rw, "sub", escape), 0o755); err != nil {
				t.Fatal(err)
			}
			spec := DefaultSpec()
			spec.ReadWrite = []Bind{{rw, "/data"}}
			spec.ReadOnly = append(spec.ReadOnly, Bind{models, "/data/sub/" + escape})
			plan, err := NewPlan(spec)
			if err != nil {
				t.Fatal(err)
			}
			// The attack: sub becomes a link out of the sandbox.
			if err := os.RemoveAll(filepath.Join(rw, "sub")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(link, filepath.Join(rw, "sub")); err != nil {
				t.Fatal(err)
			}
			hostBefore, _ := os.ReadFile("/proc/self/mountinfo")
			rep := runHelper(t, nsConfig{}, helperRequest{Plan: plan, RootDir: newRootDir(t)})
			if want := "bind " + models + " on /data/sub/" + escape; rep.ApplyStep != want {
				t.Errorf("failed step %q, want %q (error %q)", rep.ApplyStep, want, rep.ApplyErr)
			}
			if syscall.Errno(rep.ApplyErrno) != syscall.ELOOP || !strings.Contains(rep.ApplyErr, "symbolic link") {
				t.Errorf("error %q (errno %d), want ELOOP naming the symbolic link", rep.ApplyErr, rep.ApplyErrno)
			}
			for _, p := range []string{filepath.Join("/", escape), filepath.Join("/tmp", escape)} {
				if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s exists on the host after the escape attempt: %v", p, err)
				}
			}
			if hostAfter, _ := os.ReadFile("/proc/self/mountinfo"); string(hostAfter) != string(hostBefore) {
				t.Errorf("host mounts changed:\n%s\n---\n%s", hostBefore, hostAfter)
			}
		})
	}
}

// TestApplyRefusesHostNamespace: the test process shares the host's mount
// namespace, where Apply would rebuild the host's root. The check runs
// before Apply changes anything (here it is called alone: running Apply
// itself on the host is what must never happen).
func TestApplyRefusesHostNamespace(t *testing.T) {
	if err := checkOwnMountNS(); !errors.Is(err, ErrHostMountNS) {
		t.Fatalf("checkOwnMountNS in the host namespace: %v, want ErrHostMountNS", err)
	}
}

// TestMountOptionError: a filesystem option the kernel rejects fails with
// the kernel's own message, which Apply passes on in its StepError.
func TestMountOptionError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: fsopen needs CAP_SYS_ADMIN")
	}
	_, err := syscalls.FSMount("tmpfs", []string{"size=abc"}, 0)
	if !errors.Is(err, syscall.EINVAL) || !strings.Contains(err.Error(), "size") {
		t.Fatalf("FSMount with a bad size: %v, want EINVAL naming the option", err)
	}
}
