package cgroup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Integration tests: they need root and a real kernel. On a hybrid host each
// runs twice, as hybrid and as legacy (the same host with its cgroup2
// hierarchy ignored), so the pure-v1 paths (freezer-based kill, v1 freeze,
// no CgroupFD) run too. On a unified host (hack/vmtest.sh) they run as
// unified.

// testPrefix is the first name component of every cgroup the tests create,
// unique per test process so parallel runs and a live pinfold do not meet.
var testPrefix = fmt.Sprintf("pinfoldtest-%d", os.Getpid())

var (
	hostOnce sync.Once
	hostMgrs []*Manager
	hostErr  error
)

// managers returns the Managers to run integration tests with, or skips.
func managers(t testing.TB) []*Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	hostOnce.Do(func() {
		// SelfLeaf matters when the tests run in a delegated leaf
		// (hack/vmtest.sh -e VMTEST_CGROUP=/system.slice/x.service).
		m, err := NewManager(ManagerConfig{SelfLeaf: testPrefix + "-supervisor"})
		if err != nil {
			hostErr = err
			return
		}
		hostMgrs = append(hostMgrs, m)
		if m.Mode() == ModeHybrid {
			legacy, err := newManager(ManagerConfig{}, ModeLegacy)
			if err != nil {
				hostErr = err
				return
			}
			hostMgrs = append(hostMgrs, legacy)
		}
	})
	if errors.Is(hostErr, ErrNotSupported) {
		t.Skipf("this host's cgroups cannot run pinfold apps: %v", hostErr)
	}
	if hostErr != nil {
		t.Fatal(hostErr)
	}
	return hostMgrs
}

// forEachMode runs f as a subtest per Manager, with leak checks.
func forEachMode(t *testing.T, f func(t *testing.T, m *Manager)) {
	for _, m := range managers(t) {
		t.Run(string(m.Mode()), func(t *testing.T) {
			checkLeaks(t, m)
			f(t, m)
		})
	}
}

// testName is a cgroup name for t under the test prefix.
func testName(t *testing.T, suffix ...string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, t.Name())
	return strings.Join(append([]string{testPrefix, name}, suffix...), "/")
}

// checkLeaks fails t if, after it, any cgroup directory under the test prefix,
// any new file descriptor or any child process is left.
func checkLeaks(t *testing.T, m *Manager) {
	t.Helper()
	fds := openFDs(t)
	t.Cleanup(func() {
		for _, dir := range testDirs(m) {
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("leak: cgroup directory %s still exists (%v)", dir, err)
			}
		}
		if now := openFDs(t); !slices.Equal(now, fds) {
			t.Errorf("leak: open descriptors were %v, now %v", fds, now)
		}
		if kids := childProcesses(t); len(kids) > 0 {
			t.Errorf("leak: child processes %v still exist", kids)
		}
	})
}

// testDirs are the test prefix's directories in every hierarchy of m.
func testDirs(m *Manager) []string {
	var dirs []string
	for _, base := range m.v1Base {
		dirs = append(dirs, filepath.Join(base, testPrefix))
	}
	if m.unified != "" {
		dirs = append(dirs, filepath.Join(m.unified, testPrefix))
	}
	slices.Sort(dirs)
	return dirs
}

func openFDs(t *testing.T) []string {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"→"+target)
	}
	// ReadDir's own descriptor shows up and changes: drop the directory.
	return slices.DeleteFunc(out, func(s string) bool { return strings.Contains(s, "/proc/") && strings.HasSuffix(s, "/fd") })
}

func childProcesses(t *testing.T) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := os.Getpid()
	var kids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(self) {
			kids = append(kids, pid)
		}
	}
	return kids
}

func newCgroupT(t *testing.T, m *Manager, cfg Config) Cgroup {
	t.Helper()
	cg, err := m.New(cfg)
	if err != nil {
		t.Fatalf("New(%q): %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := errors.Join(cg.Kill(ctx), cg.Delete(), cg.Close()); err != nil {
			t.Errorf("cleaning up %s: %v", cfg.Name, err)
		}
	})
	return cg
}

// helper is the test binary running a role inside a cgroup.
type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   bytes.Buffer
}

// startHelper starts a helper role in cg the way pinfold starts apps:
// straight into the cgroup2 directory when there is one, then AddProc for
// the v1 hierarchies. The helper waits for go() before doing anything.
func startHelper(t testing.TB, cg Cgroup, role string, args ...string) *helper {
	t.Helper()
	return startHelperFD(t, cg, true, role, args...)
}

// startHelperFD is startHelper, optionally without CgroupFD: the process then
// starts in the test's cgroups and AddProc alone must move it everywhere.
func startHelperFD(t testing.TB, cg Cgroup, useFD bool, role string, args ...string) *helper {
	t.Helper()
	h := &helper{cmd: exec.Command("/proc/self/exe", args...)}
	h.cmd.Env = append(os.Environ(), roleEnv+"="+role, "GOMAXPROCS=2")
	h.cmd.Stdout = &h.out
	h.cmd.Stderr = &h.out
	if fd, ok := cg.CgroupFD(); ok && useFD {
		h.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}
	var err error
	if h.stdin, err = h.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatalf("starting helper %s: %v", role, err)
	}
	t.Cleanup(func() {
		if h.cmd.ProcessState == nil {
			_ = h.cmd.Process.Kill()
			_ = h.cmd.Wait()
		}
	})
	if err := cg.AddProc(h.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *helper) start(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(h.stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
}

func readTrim(t *testing.T, dir, file string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func ptr[T any](v T) *T { return &v }

func memTotal(t *testing.T) uint64 {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	var kb uint64
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ = strconv.ParseUint(f[1], 10, 64)
		}
	}
	return kb << 10
}

func TestNewAppliesLimits(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		res := &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr[int64](64 << 20), Swap: ptr[int64](96 << 20), Reservation: ptr[int64](16 << 20)},
			CPU:    &specs.LinuxCPU{Shares: ptr[uint64](512), Quota: ptr[int64](50000), Period: ptr[uint64](100000)},
			Pids:   &specs.LinuxPids{Limit: ptr[int64](64)},
		}
		wantWeight := m.mode != ModeUnified && m.v1Blkio || m.mode == ModeUnified && m.v2HaveIO
		if wantWeight {
			res.BlockIO = &specs.LinuxBlockIO{Weight: ptr[uint16](500)}
		}
		cg := newCgroupT(t, m, Config{Name: testName(t, "app"), Resources: res})
		p := cg.Paths()
		if p.Mode != m.Mode() || p.Depth != 3 {
			t.Errorf("Paths() = %+v, want mode %s and depth 3", p, m.Mode())
		}

		check := func(dir, file, want string) {
			t.Helper()
			if got := readTrim(t, dir, file); got != want {
				t.Errorf("%s/%s = %q, want %q", dir, file, got, want)
			}
		}
		if m.Mode() == ModeUnified {
			d := p.Unified
			check(d, "memory.max", strconv.Itoa(64<<20))
			check(d, "memory.swap.max", strconv.Itoa(32<<20))
			check(d, "memory.low", strconv.Itoa(16<<20))
			check(d, "cpu.max", "50000 100000")
			check(d, "cpu.weight", strconv.FormatUint(sharesToWeight(512), 10))
			check(d, "pids.max", "64")
			if wantWeight {
				check(d, "io.weight", "default "+strconv.FormatUint(blkioToIOWeight(500), 10))
			}
		} else {
			if len(p.V1) < 5 {
				t.Fatalf("v1 paths %v: want memory, cpu, cpuacct, pids, freezer", p.V1)
			}
			for c, dir := range p.V1 {
				if !strings.HasPrefix(dir, m.v1Base[c]+"/") {
					t.Errorf("%s cgroup %s is not below the supervisor's own %s", c, dir, m.v1Base[c])
				}
			}
			check(p.V1["memory"], "memory.limit_in_bytes", strconv.Itoa(64<<20))
			check(p.V1["memory"], "memory.memsw.limit_in_bytes", strconv.Itoa(96<<20))
			check(p.V1["memory"], "memory.soft_limit_in_bytes", strconv.Itoa(16<<20))
			check(p.V1["cpu"], "cpu.cfs_quota_us", "50000")
			check(p.V1["cpu"], "cpu.cfs_period_us", "100000")
			check(p.V1["cpu"], "cpu.shares", "512")
			check(p.V1["pids"], "pids.max", "64")
			if wantWeight {
				f := "blkio.weight"
				if _, err := os.Stat(filepath.Join(p.V1["blkio"], f)); err != nil {
					f = "blkio.bfq.weight"
				}
				check(p.V1["blkio"], f, "500")
			}
		}
		if m.Mode() == ModeHybrid && p.Unified == "" {
			t.Error("hybrid cgroup has no cgroup2 directory")
		}
		if m.Mode() == ModeLegacy && p.Unified != "" {
			t.Error("legacy cgroup has a cgroup2 directory")
		}

		// Raise memory (memory+swap must go first on v1), lift pids.
		if err := cg.Update(&specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr[int64](200 << 20), Swap: ptr[int64](200 << 20)},
			Pids:   &specs.LinuxPids{Limit: ptr[int64](-1)},
		}); err != nil {
			t.Fatal(err)
		}
		st, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.MemoryLimit != 200<<20 || st.PidsLimit != 0 {
			t.Errorf("after Update: memory limit %d, pids limit %d; want %d and 0 (none)", st.MemoryLimit, st.PidsLimit, 200<<20)
		}
	})
}

func TestNewRejects(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		for _, tc := range []struct {
			name string
			cfg  Config
			want error
		}{
			{"empty name", Config{}, ErrInvalid},
			{"dot-dot", Config{Name: testPrefix + "/../x"}, ErrInvalid},
			{"absolute", Config{Name: "/" + testPrefix + "/x"}, ErrInvalid},
			{"kernel memory", Config{Name: testName(t, "k"), Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{Kernel: ptr[int64](1 << 20)}}}, ErrNotSupported},
			{"cpuset", Config{Name: testName(t, "c"), Resources: &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0"}}}, ErrNotSupported},
			{"swap below limit", Config{Name: testName(t, "s"), Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](2 << 20), Swap: ptr[int64](1 << 20)}}}, ErrInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cg, err := m.New(tc.cfg)
				if !errors.Is(err, tc.want) {
					if err == nil {
						_ = errors.Join(cg.Delete(), cg.Close())
					}
					t.Fatalf("New(%+v) = %v, want %v", tc.cfg, err, tc.want)
				}
			})
		}
		t.Run("exists", func(t *testing.T) {
			name := testName(t, "app")
			newCgroupT(t, m, Config{Name: name})
			cg, err := m.New(Config{Name: name})
			if !errors.Is(err, fs.ErrExist) {
				if err == nil {
					_ = errors.Join(cg.Delete(), cg.Close())
				}
				t.Fatalf("second New(%q) = %v, want fs.ErrExist", name, err)
			}
		})
		t.Run("bad limit leaves nothing", func(t *testing.T) {
			// A quota the kernel refuses fails after the directories exist.
			name := testName(t, "app")
			cg, err := m.New(Config{Name: name, Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr[int64](1 << 20)}, Pids: &specs.LinuxPids{Limit: ptr[int64](1 << 40)}}})
			if err == nil {
				_ = errors.Join(cg.Delete(), cg.Close())
				t.Skip("the kernel accepted pids.max 2^40")
			}
			t.Logf("New failed as expected: %v", err)
		})
	})
}

func TestStartInsideCgroup(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		for _, useFD := range []bool{true, false} {
			t.Run(fmt.Sprintf("CgroupFD=%v", useFD), func(t *testing.T) {
				testStartInside(t, m, useFD)
			})
		}
	})
}

func testStartInside(t *testing.T, m *Manager, useFD bool) {
	cg := newCgroupT(t, m, Config{Name: testName(t, "app")})
	_, ok := cg.CgroupFD()
	if ok != (m.Mode() != ModeLegacy) {
		t.Errorf("CgroupFD ok = %v in mode %s", ok, m.Mode())
	}
	h := startHelperFD(t, cg, useFD, "sleep")
	in, unified, err := cgroups.ParseCgroupFileUnified(fmt.Sprintf("/proc/%d/cgroup", h.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	p := cg.Paths()
	for c, dir := range p.V1 {
		want := strings.TrimPrefix(dir, filepath.Join(m.v1Root, c))
		if in[c] != want {
			t.Errorf("process is in %s cgroup %q, want %q", c, in[c], want)
		}
	}
	if p.Unified != "" {
		mount := cgroupRoot
		if m.Mode() == ModeHybrid {
			mount = hybridUnifiedPath
		}
		if want := strings.TrimPrefix(p.Unified, mount); unified != want {
			t.Errorf("process is in cgroup2 %q, want %q", unified, want)
		}
	}
	if ok, err := cg.Populated(); !ok || err != nil {
		t.Errorf("Populated() = %v, %v; want true", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cg.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Wait(); !isSignal(err, syscall.SIGKILL) {
		t.Errorf("helper ended with %v, want SIGKILL", err)
	}
	if ok, err := cg.Populated(); ok || err != nil {
		t.Errorf("after Kill: Populated() = %v, %v; want false", ok, err)
	}
}

func isSignal(err error, sig syscall.Signal) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

func TestMemoryLimitKillsOnOOM(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		const limit = 32 << 20
		cg := newCgroupT(t, m, Config{Name: testName(t, "app"), Resources: &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr[int64](limit), Swap: ptr[int64](limit)},
		}})
		h := startHelper(t, cg, "alloc", "256")
		h.start(t)
		if err := h.cmd.Wait(); !isSignal(err, syscall.SIGKILL) {
			t.Fatalf("allocating 256 MiB under a 32 MiB limit ended with %v (output %q), want SIGKILL", err, h.out.String())
		}
		st, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("stats: %+v", *st)
		if st.OOMKills < 1 {
			t.Errorf("OOMKills = %d, want ≥ 1", st.OOMKills)
		}
		if st.MemoryLimit != limit {
			t.Errorf("MemoryLimit = %d, want %d", st.MemoryLimit, limit)
		}
		// The peak reaches the limit and stays near it: a task being
		// OOM-killed may overshoot by a few pages.
		if st.MemoryPeak < limit/2 || st.MemoryPeak > limit+limit/8 {
			t.Errorf("MemoryPeak = %d, want about %d", st.MemoryPeak, limit)
		}
	})
}

func TestPidsLimitStopsForks(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		const limit = 32
		cg := newCgroupT(t, m, Config{Name: testName(t, "app"), Resources: &specs.LinuxResources{
			Pids: &specs.LinuxPids{Limit: ptr[int64](limit)},
		}})
		h := startHelper(t, cg, "spawn", "200")
		h.start(t)
		err := h.cmd.Wait()
		out := h.out.String()
		t.Logf("helper: %v: %s", err, out)
		// The helper reports EAGAIN from fork, unless the Go runtime hit the
		// limit first creating a thread, which is fatal for the helper.
		if !strings.Contains(out, "EAGAIN") && !strings.Contains(out, "failed to create new OS thread") {
			t.Errorf("no fork failed under pids.max %d: %v, %q", limit, err, out)
		}
		st, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.PidsLimitHits < 1 || st.PidsLimit != limit || st.PidsCurrent > limit || st.PidsPeak > limit {
			t.Errorf("stats %+v: want PidsLimitHits ≥ 1, PidsLimit %d, current and peak ≤ limit", *st, limit)
		}
		pidsDir := cg.Paths().Unified
		if m.Mode() != ModeUnified {
			pidsDir = cg.Paths().V1["pids"]
		}
		if _, err := os.Stat(filepath.Join(pidsDir, "pids.peak")); err == nil && st.PidsPeak == 0 {
			t.Errorf("PidsPeak = 0 although pids.peak exists")
		}
	})
}

func TestCPUQuotaHolds(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		const quota, period = 50000, 100000 // half a CPU
		cg := newCgroupT(t, m, Config{Name: testName(t, "app"), Resources: &specs.LinuxResources{
			CPU: &specs.LinuxCPU{Quota: ptr[int64](quota), Period: ptr[uint64](period)},
		}})
		h := startHelper(t, cg, "burn", "2")
		h.start(t)
		time.Sleep(200 * time.Millisecond) // let both threads start
		s0, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		time.Sleep(2 * time.Second)
		s1, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(t0)
		used := s1.CPUUsage - s0.CPUUsage
		allowed := elapsed*quota/period + 2*period*time.Microsecond // one period of slack at each end
		t.Logf("used %v of CPU in %v (quota allows %v); throttled %d periods", used, elapsed, elapsed*quota/period, s1.CPUThrottledPeriods)
		if used > allowed {
			t.Errorf("used %v of CPU in %v under a %d/%d quota, more than %v", used, elapsed, quota, period, allowed)
		}
		if used < elapsed/20 {
			t.Errorf("used only %v of CPU in %v: the burner did not run", used, elapsed)
		}
		if s1.CPUThrottledPeriods == 0 {
			t.Error("no throttled periods under the quota")
		}
	})
}

func TestFreezeThaw(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		cg := newCgroupT(t, m, Config{Name: testName(t, "app")})
		h := startHelper(t, cg, "burn", "1")
		h.start(t)
		waitCPU(t, cg, 20*time.Millisecond)

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cg.Freeze(ctx); err != nil {
			t.Fatal(err)
		}
		p := cg.Paths()
		if p.Unified != "" {
			if got := readTrim(t, p.Unified, "cgroup.events"); !strings.Contains(got, "frozen 1") {
				t.Errorf("after Freeze cgroup.events = %q", got)
			}
		} else if got := readTrim(t, p.V1["freezer"], "freezer.state"); got != "FROZEN" {
			t.Errorf("after Freeze freezer.state = %q", got)
		}
		s0, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		s1, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if d := s1.CPUUsage - s0.CPUUsage; d > 5*time.Millisecond {
			t.Errorf("a frozen cgroup used %v of CPU", d)
		}
		if err := cg.Thaw(ctx); err != nil {
			t.Fatal(err)
		}
		waitCPU(t, cg, 20*time.Millisecond)
	})
}

// waitCPU waits until cg has used at least d more CPU time.
func waitCPU(t *testing.T, cg Cgroup, d time.Duration) {
	t.Helper()
	s0, err := cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		s, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if s.CPUUsage-s0.CPUUsage >= d {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cgroup used only %v of CPU in 30 s", s.CPUUsage-s0.CPUUsage)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestKillForkStorm(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		variants := []string{"default"}
		if m.Mode() != ModeLegacy {
			variants = append(variants, "without-cgroup.kill")
		}
		for _, v := range variants {
			t.Run(v, func(t *testing.T) {
				// Size the storm to the machine: a Go process costs a few
				// threads and a few MiB.
				pidsMax, memMax, wantProcs := int64(1500), int64(2<<30), 200
				if memTotal(t) < 4<<30 {
					pidsMax, memMax, wantProcs = 400, 512<<20, 50
				}
				cg := newCgroupT(t, m, Config{Name: testName(t, "app"), Resources: &specs.LinuxResources{
					Pids:   &specs.LinuxPids{Limit: &pidsMax},
					Memory: &specs.LinuxMemory{Limit: &memMax},
				}})
				if v == "without-cgroup.kill" {
					switch c := cg.(type) {
					case *v1Cgroup:
						c.unified.noKillFile = true
					case *v2Cgroup:
						c.dir.noKillFile = true
					}
				}
				h := startHelper(t, cg, "storm")
				h.start(t)
				procs := 0
				deadline := time.Now().Add(2 * time.Minute)
				for procs < wantProcs {
					if time.Now().After(deadline) {
						t.Fatalf("the storm reached only %d processes", procs)
					}
					time.Sleep(20 * time.Millisecond)
					pids, err := listProcs(cgroupDir(cg))
					if err != nil {
						t.Fatal(err)
					}
					procs = len(pids)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				defer cancel()
				start := time.Now()
				if err := cg.Kill(ctx); err != nil {
					t.Fatal(err)
				}
				t.Logf("killed a storm of ≥%d processes in %v", procs, time.Since(start))
				_ = h.cmd.Wait()
				if ok, err := cg.Populated(); ok || err != nil {
					t.Errorf("after Kill: Populated() = %v, %v", ok, err)
				}
				for _, dir := range allDirs(cg.Paths()) {
					if pids, err := listProcs(dir); len(pids) > 0 || err != nil {
						t.Errorf("after Kill %s has %v (%v)", dir, pids, err)
					}
				}
			})
		}
	})
}

// cgroupDir is a directory that lists every process of cg.
func cgroupDir(cg Cgroup) string {
	if p := cg.Paths(); p.Unified != "" {
		return p.Unified
	} else {
		return p.V1["freezer"]
	}
}

func allDirs(p Paths) []string {
	var dirs []string
	for _, d := range p.V1 {
		dirs = append(dirs, d)
	}
	if p.Unified != "" {
		dirs = append(dirs, p.Unified)
	}
	return dirs
}

func TestDeleteRemovesEverything(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		before := listTree(t, m)
		name := testName(t, "shared", "app")
		cg, err := m.New(Config{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		defer cg.Close()
		if got := listTree(t, m); len(got) <= len(before) {
			t.Fatalf("New created nothing under %v", testDirs(m))
		}
		h := startHelper(t, cg, "sleep")
		if err := cg.Delete(); !errors.Is(err, ErrBusy) {
			t.Fatalf("Delete of a populated cgroup = %v, want ErrBusy", err)
		}
		for _, dir := range allDirs(cg.Paths()) {
			if !dirExists(dir) {
				t.Errorf("Delete of a populated cgroup removed %s", dir)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cg.Kill(ctx); err != nil {
			t.Fatal(err)
		}
		_ = h.cmd.Wait()
		if err := cg.Delete(); err != nil {
			t.Fatal(err)
		}
		if after := listTree(t, m); !slices.Equal(after, before) {
			t.Errorf("after Delete the hierarchies hold %v, before New %v", after, before)
		}
		if err := cg.Delete(); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		// A deleted cgroup is empty, so Kill has nothing to do.
		if err := cg.Kill(ctx); err != nil {
			t.Errorf("Kill after Delete: %v", err)
		}
	})
}

// listTree lists every directory under the test prefix in every hierarchy.
func listTree(t *testing.T, m *Manager) []string {
	var out []string
	for _, root := range testDirs(m) {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			if d.IsDir() {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestLoadInAnotherProcess(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		cg, err := m.New(Config{Name: testName(t, "app"), Resources: &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](100)}}})
		if err != nil {
			t.Fatal(err)
		}
		record, err := json.Marshal(cg.Paths())
		if err != nil {
			t.Fatal(err)
		}
		// Orphans: the helper starts sleepers and exits, as an app whose
		// supervisor died might leave them.
		h := startHelper(t, cg, "spawn", "5")
		h.start(t)
		if err := h.cmd.Wait(); err != nil {
			t.Fatalf("spawn: %v: %s", err, h.out.String())
		}
		orphans, err := listProcs(cgroupDir(cg))
		if err != nil || len(orphans) != 5 {
			t.Fatalf("cgroup holds %v (%v), want 5 orphans", orphans, err)
		}
		if err := cg.Close(); err != nil {
			t.Fatal(err)
		}

		cmd := exec.Command("/proc/self/exe", string(record))
		cmd.Env = append(os.Environ(), roleEnv+"=recover", noWaitEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "recovered") {
			t.Fatalf("recovering from %s in another process: %v: %s", record, err, out)
		}
		var p Paths
		if err := json.Unmarshal(record, &p); err != nil {
			t.Fatal(err)
		}
		for _, dir := range allDirs(p) {
			if dirExists(dir) {
				t.Errorf("%s still exists after recovery", dir)
			}
		}
		for _, pid := range orphans {
			if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(data), ") Z ") {
				t.Errorf("orphan %d survived recovery: %s", pid, data)
			}
		}
	})
}

func TestLoadRejectsBadPaths(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		cg := newCgroupT(t, m, Config{Name: testName(t, "app")})
		good := cg.Paths()
		mutate := func(f func(p *Paths)) Paths {
			p := good
			p.V1 = make(map[string]string)
			for k, v := range good.V1 {
				p.V1[k] = v
			}
			f(&p)
			return p
		}
		for _, tc := range []struct {
			name string
			p    Paths
		}{
			{"zero depth", mutate(func(p *Paths) { p.Depth = 0 })},
			{"too deep", mutate(func(p *Paths) { p.Depth = 99 })},
			{"unknown mode", mutate(func(p *Paths) { p.Mode = "v3" })},
			{"root cgroup", mutate(func(p *Paths) {
				p.Depth = 1
				if p.Unified != "" {
					p.Unified = filepath.Dir(filepath.Dir(filepath.Dir(p.Unified)))
				} else {
					p.V1["freezer"] = filepath.Join(m.v1Root, "freezer")
				}
			})},
			{"own cgroup", mutate(func(p *Paths) {
				p.Depth = 1
				if p.Unified != "" {
					p.Unified = m.unified
				}
				if p.V1 != nil {
					p.V1["memory"] = m.v1Base["memory"]
				}
			})},
			{"outside", mutate(func(p *Paths) {
				if p.Unified != "" {
					p.Unified = "/tmp/x/y/z"
				} else {
					p.V1["memory"] = "/tmp/x/y/z"
				}
			})},
			{"unclean", mutate(func(p *Paths) {
				if p.Unified != "" {
					p.Unified += "/../../x/y"
				} else {
					p.V1["memory"] += "/../../x/y"
				}
			})},
			{"unknown controller", mutate(func(p *Paths) {
				if p.V1 == nil {
					p.V1 = map[string]string{}
				}
				p.V1["devices"] = "/sys/fs/cgroup/devices/a/b/c"
			})},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if cg, err := Load(tc.p); !errors.Is(err, ErrInvalid) {
					if err == nil {
						cg.Close()
					}
					t.Errorf("Load(%+v) = %v, want ErrInvalid", tc.p, err)
				}
			})
		}
		loaded, err := Load(good)
		if err != nil {
			t.Fatalf("Load(%+v): %v", good, err)
		}
		if err := loaded.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConcurrentNewDelete(t *testing.T) {
	forEachMode(t, func(t *testing.T, m *Manager) {
		const workers, rounds = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds)
		for w := range workers {
			wg.Go(func() {
				for i := range rounds {
					// Every worker shares the parents, which each Delete
					// tries to remove when it leaves them empty.
					cg, err := m.New(Config{
						Name:      testName(t, "shared", fmt.Sprintf("w%d-%d", w, i)),
						Resources: &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr[int64](10)}},
					})
					if err != nil {
						errs <- err
						continue
					}
					errs <- errors.Join(cg.Delete(), cg.Close())
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	})
}

func TestDelegatedLeaf(t *testing.T) {
	for _, m := range managers(t) {
		if m.Mode() != ModeUnified {
			t.Skipf("the no-internal-processes rule applies to cgroup v2 controllers; this host is %s", m.Mode())
		}
		checkLeaks(t, m)
		// Build what systemd builds for a Delegate=yes service: a cgroup
		// that has the controllers available and holds the service.
		top := filepath.Join(m.unified, testPrefix)
		deleg := filepath.Join(top, "deleg")
		svc := filepath.Join(deleg, "x.service")
		for _, dir := range []string{top, deleg} {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := enableControllers(dir, m.v2Enable); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(svc, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			for _, dir := range []string{filepath.Join(svc, "supervisor"), svc, deleg, top} {
				if err := rmdir(dir); err != nil {
					t.Error(err)
				}
			}
		})
		fd, err := os.Open(svc)
		if err != nil {
			t.Fatal(err)
		}
		defer fd.Close()
		cmd := exec.Command("/proc/self/exe")
		cmd.Env = append(os.Environ(), roleEnv+"=delegated", noWaitEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(fd.Fd())}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "delegated ok") {
			t.Fatalf("supervisor in a delegated leaf: %v: %s", err, out)
		}
	}
}

// TestOwnV1MatchesNestedPath checks that the Manager's own resolution of the
// supervisor's v1 cgroups (one mountinfo parse) agrees with
// cgroup1.NestedPath, which re-reads mountinfo for every controller.
func TestOwnV1MatchesNestedPath(t *testing.T) {
	if cgroups.Mode() == cgroups.Unified {
		t.Skip("no cgroup v1 hierarchies on this host")
	}
	m, err := NewManager(ManagerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	nested := cgroup1.NestedPath("")
	for c, base := range m.v1Base {
		want, err := nested(cgroup1.Name(c))
		if err != nil {
			t.Fatalf("NestedPath(%s): %v", c, err)
		}
		if got := filepath.Join(m.v1Root, c, want); got != base {
			t.Errorf("%s: Manager resolved %s, cgroup1.NestedPath gives %s", c, base, got)
		}
	}
}
