package vfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Limits the test cgroups set, to be read back through the sandbox's view.
const (
	testMemoryLimit = 100 << 20 // a multiple of the page size: read back as is
	testPidsLimit   = 77
)

// testCgroups is an app cgroup made for a test, below this process's own
// cgroups in the hierarchies pinfold gives every app (memory, cpu, cpuacct,
// pids and, on hybrid and unified hosts, cgroup2), beside a sibling that the
// sandbox must not see.
type testCgroups struct {
	view CgroupView
	// app are the app's directories, one per hierarchy, for
	// nsConfig.cgroups.
	app []string
	// names the sandbox must never show: the sibling, the app's own
	// name and the shared parent's.
	hidden []string
	// limits says whether the memory and pids limits could be set (always
	// on v1; on unified hosts only where the controllers are delegated).
	limits bool
}

// cgroupMount is one cgroup filesystem of this process's mount table.
type cgroupMount struct {
	point, root string
	v2          bool
	controllers []string // v1: the controllers bound to the hierarchy
}

// hostCgroupMounts lists the cgroup mounts of this process's mount
// namespace; for v1 mounts, the super options that are controllers (those
// /proc/cgroups lists).
func hostCgroupMounts(t testing.TB) []cgroupMount {
	t.Helper()
	known := map[string]bool{}
	if b, err := os.ReadFile("/proc/cgroups"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
				known[f[0]] = true
			}
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []cgroupMount
	for _, line := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || (g[0] != "cgroup" && g[0] != "cgroup2") {
			continue
		}
		m := cgroupMount{root: f[3], point: f[4], v2: g[0] == "cgroup2"}
		for _, o := range strings.Split(g[2], ",") {
			if known[o] {
				m.controllers = append(m.controllers, o)
			}
		}
		out = append(out, m)
	}
	return out
}

// ownCgroups maps each controller (and "" for cgroup2) to this process's
// cgroup path, from /proc/self/cgroup.
func ownCgroups(t testing.TB) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "" {
			own[""] = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			own[c] = f[2]
		}
	}
	return own
}

// newTestCgroups creates pinfold-vfs-test-PID/{app,sibling} in every
// hierarchy an app of pinfold has, sets the test limits on app, and removes
// both (and the parent) after the test. It skips when this host has no
// cgroup filesystem at /sys/fs/cgroup.
func newTestCgroups(t testing.TB) *testCgroups {
	t.Helper()
	mounts := hostCgroupMounts(t)
	own := ownCgroups(t)
	parent := fmt.Sprintf("pinfold-vfs-test-%d", os.Getpid())
	tc := &testCgroups{hidden: []string{"sibling", "app", parent}}
	var v2 *cgroupMount
	for i := range mounts {
		m := &mounts[i]
		if m.v2 && (m.point == cgroupRoot || m.point == cgroupRoot+"/unified") {
			v2 = m
		}
	}
	switch {
	case v2 != nil && v2.point == cgroupRoot:
		tc.view.Mode = CgroupUnified
	case v2 != nil:
		tc.view.Mode = CgroupHybrid
	default:
		tc.view.Mode = CgroupLegacy
	}
	// dirOf is this process's cgroup directory in mount m.
	dirOf := func(m *cgroupMount, ownPath string) string {
		rel, err := filepath.Rel(m.root, ownPath)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Skipf("this process's cgroup %s is outside the mount at %s (root %s)", ownPath, m.point, m.root)
		}
		return filepath.Join(m.point, rel)
	}
	var made []string // directories to remove, in order
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			if err := os.Remove(made[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("removing test cgroup: %v", err)
			}
		}
	})
	mkdirs := func(base string) string {
		for _, d := range []string{filepath.Join(base, parent), filepath.Join(base, parent, "sibling"), filepath.Join(base, parent, "app")} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatalf("creating test cgroup: %v", err)
			}
			made = append(made, d)
		}
		return filepath.Join(base, parent, "app")
	}
	if tc.view.Mode != CgroupUnified {
		tc.limits = true
		done := map[string]bool{}
		for _, c := range []string{"memory", "cpu", "cpuacct", "pids"} {
			var m *cgroupMount
			for i := range mounts {
				if !mounts[i].v2 && slices.Contains(mounts[i].controllers, c) {
					m = &mounts[i]
					break
				}
			}
			if m == nil {
				t.Fatalf("cgroup v1 controller %s is not mounted on this %s host", c, tc.view.Mode)
			}
			if done[m.point] {
				continue // co-mounted with one already made
			}
			done[m.point] = true
			tc.view.V1 = append(tc.view.V1, m.controllers)
			app := mkdirs(dirOf(m, own[c]))
			tc.app = append(tc.app, app)
			switch {
			case slices.Contains(m.controllers, "memory"):
				writeCgroupFile(t, app, "memory.limit_in_bytes", strconv.Itoa(testMemoryLimit))
			case slices.Contains(m.controllers, "pids"):
				writeCgroupFile(t, app, "pids.max", strconv.Itoa(testPidsLimit))
			}
		}
	}
	if v2 != nil {
		base := dirOf(v2, own[""])
		app := mkdirs(base)
		tc.app = append(tc.app, app)
		if tc.view.Mode == CgroupUnified {
			// Limits need the memory and pids controllers enabled down
			// to app: possible where they are delegated to this process's
			// cgroup and it holds no processes itself (or is the root).
			err := os.WriteFile(filepath.Join(base, "cgroup.subtree_control"), []byte("+memory +pids"), 0)
			if err == nil {
				err = os.WriteFile(filepath.Join(base, parent, "cgroup.subtree_control"), []byte("+memory +pids"), 0)
			}
			if err == nil {
				writeCgroupFile(t, app, "memory.max", strconv.Itoa(testMemoryLimit))
				writeCgroupFile(t, app, "pids.max", strconv.Itoa(testPidsLimit))
				tc.limits = true
			} else {
				t.Logf("cgroup v2 limits not checked: enabling memory and pids below %s: %v", base, err)
			}
		}
	}
	return tc
}

func writeCgroupFile(t testing.TB, dir, name, value string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0); err != nil {
		t.Fatalf("setting %s in test cgroup %s: %v", name, dir, err)
	}
}

// cgroupfsSpec is DefaultSpec showing tc's cgroups, without binds: the
// probes need no binary, and hosts without /usr (the cgroup v2 VM of
// hack/vmtest.sh) run them too.
func cgroupfsSpec(tc *testCgroups) Spec {
	spec := DefaultSpec()
	spec.ReadOnly = nil
	spec.Cgroupfs, spec.Cgroups = true, tc.view
	return spec
}

// TestApplyCgroupfs runs a sandbox inside test cgroups and a cgroup
// namespace, as root and inside a user namespace, and checks its view of
// /sys/fs/cgroup: the limits set on its own cgroup, nothing of its parent
// or siblings, /proc/self/cgroup at "/", and every write refused.
func TestApplyCgroupfs(t *testing.T) {
	requireSandbox(t)
	tc := newTestCgroups(t)
	for _, userNS := range []bool{false, true} {
		t.Run(fmt.Sprintf("userns=%v", userNS), func(t *testing.T) {
			spec := cgroupfsSpec(tc)
			spec.UserNS = userNS
			plan, err := NewPlan(spec)
			if err != nil {
				t.Fatal(err)
			}
			// Where the test reads its limits, and the names /sys/fs/cgroup
			// must hold.
			memFile, pidsFile := "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/pids.max"
			var names, roots []string
			if tc.view.Mode != CgroupUnified {
				memFile, pidsFile = "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/pids/pids.max"
				for _, g := range tc.view.V1 {
					names = append(names, strings.Join(g, ","))
					roots = append(roots, "/sys/fs/cgroup/"+strings.Join(g, ","))
					if len(g) > 1 {
						names = append(names, g...)
					}
				}
				if tc.view.Mode == CgroupHybrid {
					names = append(names, "unified")
					roots = append(roots, "/sys/fs/cgroup/unified")
				}
				slices.Sort(names)
			} else {
				roots = []string{"/sys/fs/cgroup"}
			}
			// A limit, or where there is none (cgroup v2 without delegated
			// controllers) the list of member processes.
			writable := memFile
			if !tc.limits {
				writable = roots[0] + "/cgroup.procs"
			}
			// In a user namespace the cgroup files belong to the host's
			// root, an unmapped uid: EACCES comes before the read-only
			// mount is checked for a write (mkdir checks the mount first).
			writeErr := map[bool]syscall.Errno{false: syscall.EROFS, true: syscall.EACCES}[userNS]
			checks := []check{
				{probe: probe{Op: "read", Path: "/proc/self/cgroup"}},
				{probe: probe{Op: "readdir", Path: "/sys"}, data: str("fs")},
				{probe: probe{Op: "write", Path: writable, Args: []string{"1"}}, errno: writeErr},
				{probe: probe{Op: "mkdir", Path: filepath.Join(roots[0], "escape")}, errno: syscall.EROFS},
				{probe: probe{Op: "mkdir", Path: "/sys/fs/cgroup/x"}, errno: syscall.EROFS},
				{probe: probe{Op: "create", Path: "/sys/x"}, errno: syscall.EROFS},
			}
			if names != nil {
				checks = append(checks, check{probe: probe{Op: "readdir", Path: "/sys/fs/cgroup"}, data: str(strings.Join(names, " "))})
			}
			if tc.limits {
				checks = append(checks,
					check{probe: probe{Op: "read", Path: memFile}, data: str(strconv.Itoa(testMemoryLimit) + "\n")},
					check{probe: probe{Op: "read", Path: pidsFile}, data: str(strconv.Itoa(testPidsLimit) + "\n")})
			}
			for _, r := range roots {
				checks = append(checks,
					check{probe: probe{Op: "readdir", Path: r}, has: []string{"cgroup.procs"}, lacks: tc.hidden},
					// Only the sandbox's pid 1 is in its cgroup.
					check{probe: probe{Op: "read", Path: r + "/cgroup.procs"}, data: str("1\n")})
			}
			rep := runHelper(t, nsConfig{userNS: userNS, cgroups: tc.app},
				helperRequest{Plan: plan, RootDir: newRootDir(t), Probes: probes(checks), CgroupNS: true})
			if rep.ApplyErr != "" {
				t.Fatalf("Apply: %s", rep.ApplyErr)
			}
			runChecks(t, rep, checks)
			// The cgroup namespace is rooted at the app's cgroups.
			for _, line := range strings.Split(strings.TrimSpace(rep.Results[0].Data), "\n") {
				if !strings.HasSuffix(line, ":/") {
					t.Errorf("/proc/self/cgroup line %q: want the path /", line)
				}
			}
			want := map[string]string{}
			for _, r := range roots {
				fstype := "cgroup"
				if r == "/sys/fs/cgroup/unified" || tc.view.Mode == CgroupUnified {
					fstype = "cgroup2"
				}
				want[r] = "ro nosuid nodev noexec | " + fstype
			}
			checkMounts(t, rep.Mountinfo, want)
			// Every cgroup mount shows the namespace's root, the app's
			// own cgroup.
			for _, line := range strings.Split(rep.Mountinfo, "\n") {
				pre, post, _ := strings.Cut(line, " - ")
				if f := strings.Fields(pre); strings.HasPrefix(post, "cgroup") && len(f) > 4 && f[3] != "/" {
					t.Errorf("cgroup mount %s shows %s, want /: %s", f[4], f[3], line)
				}
			}
		})
	}
}

// TestApplyCgroupfsSysfs: over a sysfs, /sys/fs/cgroup is a small tmpfs
// (sysfs cannot hold the mountpoints), sealed once populated.
func TestApplyCgroupfsSysfs(t *testing.T) {
	requireSandbox(t)
	tc := newTestCgroups(t)
	spec := cgroupfsSpec(tc)
	spec.Sysfs = true
	plan, err := NewPlan(spec)
	if err != nil {
		t.Fatal(err)
	}
	checks := []check{
		{probe: probe{Op: "readdir", Path: "/sys/class/net"}, data: str("lo")},
		{probe: probe{Op: "mkdir", Path: "/sys/fs/cgroup/x"}, errno: syscall.EROFS},
	}
	if tc.limits {
		mem := "/sys/fs/cgroup/memory.max"
		if tc.view.Mode != CgroupUnified {
			mem = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
		}
		checks = append(checks, check{probe: probe{Op: "read", Path: mem}, data: str(strconv.Itoa(testMemoryLimit) + "\n")})
	}
	rep := runHelper(t, nsConfig{cgroups: tc.app},
		helperRequest{Plan: plan, RootDir: newRootDir(t), Probes: probes(checks), CgroupNS: true})
	if rep.ApplyErr != "" {
		t.Fatalf("Apply: %s", rep.ApplyErr)
	}
	runChecks(t, rep, checks)
	want := map[string]string{"/sys": "ro nosuid nodev noexec | sysfs"}
	if tc.view.Mode == CgroupUnified {
		want["/sys/fs/cgroup"] = "ro nosuid nodev noexec | cgroup2"
	} else {
		want["/sys/fs/cgroup"] = "ro nosuid nodev noexec | tmpfs"
		want["/sys/fs/cgroup/memory"] = "ro nosuid nodev noexec | cgroup | memory"
	}
	checkMounts(t, rep.Mountinfo, want)
}

// TestApplyCgroupfsRefusesHostNamespace: without a cgroup namespace of its
// own, Apply refuses the first cgroup mount, which would show the host's
// cgroup tree (and, for cgroup2 in the initial namespace, reset the host's
// cgroup2 mount options).
func TestApplyCgroupfsRefusesHostNamespace(t *testing.T) {
	if err := checkOwnCgroupNS(); !errors.Is(err, ErrHostCgroupNS) {
		t.Errorf("checkOwnCgroupNS in the test's own cgroup namespace: %v, want ErrHostCgroupNS", err)
	}
	requireSandbox(t)
	tc := newTestCgroups(t)
	plan, err := NewPlan(cgroupfsSpec(tc))
	if err != nil {
		t.Fatal(err)
	}
	var first string
	for _, op := range plan.Ops {
		if cgroupFS(op.FSType) {
			first = op.step()
			break
		}
	}
	hostBefore, _ := os.ReadFile("/proc/self/mountinfo")
	rep := runHelper(t, nsConfig{cgroups: tc.app}, helperRequest{Plan: plan, RootDir: newRootDir(t)})
	if rep.ApplyStep != first {
		t.Errorf("failed step %q, want %q (error %s)", rep.ApplyStep, first, rep.ApplyErr)
	}
	if !strings.Contains(rep.ApplyErr, ErrHostCgroupNS.Error()) {
		t.Errorf("error %q, want ErrHostCgroupNS", rep.ApplyErr)
	}
	if hostAfter, _ := os.ReadFile("/proc/self/mountinfo"); string(hostAfter) != string(hostBefore) {
		t.Errorf("host mounts changed:\n%s\n---\n%s", hostBefore, hostAfter)
	}
}
