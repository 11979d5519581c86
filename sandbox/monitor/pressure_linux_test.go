package monitor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/syscalls"
)

// note is one notify call.
type note struct {
	level int
	usage uint64
}

// recorder collects notify calls on a channel.
type recorder chan note

func (r recorder) notify(level int, usage uint64) { r <- note{level, usage} }

// expect waits for the next notification (bounded, so a missing one fails
// rather than hangs) and checks it.
func (r recorder) expect(t *testing.T, level int, usage uint64) {
	t.Helper()
	select {
	case n := <-r:
		if n.level != level || (usage != 0 && n.usage != usage) {
			t.Fatalf("notified %+v, want level %d usage %d", n, level, usage)
		}
	case <-time.After(time.Minute):
		t.Fatalf("no notification, want level %d usage %d", level, usage)
	}
}

// none checks that nothing was notified.
func (r recorder) none(t *testing.T) {
	t.Helper()
	select {
	case n := <-r:
		t.Fatalf("unexpected notification %+v", n)
	default:
	}
}

// fakeUsage imitates memory.current with a temporary file, read the way
// cgroup.MemoryUsage reads it: pread at offset 0 on a descriptor kept open.
type fakeUsage struct {
	mu    sync.Mutex // keeps a reading from seeing half a write
	f     *os.File
	reads atomic.Int64
	read  chan struct{} // a token per read, for tests that wait for polls
}

func newFakeUsage(t *testing.T, v uint64) *fakeUsage {
	f, err := os.Create(filepath.Join(t.TempDir(), "memory.current"))
	if err != nil {
		t.Fatal(err)
	}
	u := &fakeUsage{f: f, read: make(chan struct{}, 1000)}
	u.set(t, v)
	t.Cleanup(func() { u.Close() })
	return u
}

func (u *fakeUsage) set(t *testing.T, v uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err := u.f.Truncate(0); err != nil {
		t.Error(err)
	}
	if _, err := u.f.WriteAt([]byte(strconv.FormatUint(v, 10)+"\n"), 0); err != nil {
		t.Error(err)
	}
}

func (u *fakeUsage) Read() (uint64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var buf [32]byte
	n, err := u.f.ReadAt(buf[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("%w: %w", cgroup.ErrClosed, err)
	}
	u.reads.Add(1)
	select {
	case u.read <- struct{}{}:
	default:
	}
	return strconv.ParseUint(strings.TrimSpace(string(buf[:n])), 10, 64)
}

func (u *fakeUsage) Close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.f.Close()
}

// polls waits until u has been read n more times: n polls happened.
func (u *fakeUsage) polls(t *testing.T, n int) {
	t.Helper()
	for len(u.read) > 0 {
		<-u.read
	}
	for range n {
		select {
		case <-u.read:
		case <-time.After(time.Minute):
			t.Fatal("the poller stopped reading")
		}
	}
}

// checkGoroutines fails t if goroutines started during it are left.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var now int
		for range 500 {
			if now = runtime.NumGoroutine(); now <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after:\n%s", before, now, buf[:runtime.Stack(buf, true)])
	})
}

func newTestWatcher(t *testing.T, opts WatcherOptions) *Watcher {
	t.Helper()
	w, err := NewWatcherWithOptions(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func TestWatcherOptions(t *testing.T) {
	for _, tc := range []struct {
		opts WatcherOptions
		ok   bool
	}{
		{WatcherOptions{}, true},
		{WatcherOptions{Levels: []int{50}}, true},
		{WatcherOptions{Levels: []int{1, 100}}, true},
		{WatcherOptions{Levels: []int{0, 50}}, false},
		{WatcherOptions{Levels: []int{50, 101}}, false},
		{WatcherOptions{Levels: []int{95, 80}}, false},
		{WatcherOptions{Levels: []int{80, 80}}, false},
		{WatcherOptions{PollInterval: -time.Second}, false},
	} {
		w, err := NewWatcherWithOptions(tc.opts)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("NewWatcherWithOptions(%+v): %v", tc.opts, err)
		}
		if w != nil {
			w.Close()
		}
	}
}

func TestPercentOf(t *testing.T) {
	for _, tc := range []struct {
		limit uint64
		pct   int
		want  uint64
	}{
		{1000, 80, 800},
		{64 << 20, 95, 63753420}, // 67108864 * 0.95 = 63753420.8
		{99, 50, 49},
		{1<<63 + 1<<62, 95, (1<<63 + 1<<62) / 100 * 95}, // no overflow
	} {
		if got := percentOf(tc.limit, tc.pct); got != tc.want && !(tc.limit > 1<<62 && got-tc.want < 100) {
			t.Errorf("percentOf(%d, %d) = %d, want %d", tc.limit, tc.pct, got, tc.want)
		}
	}
}

// TestPolledLevels drives the cgroup v2 path with a file that imitates
// memory.current.
func TestPolledLevels(t *testing.T) {
	checkGoroutines(t)
	w := newTestWatcher(t, WatcherOptions{PollInterval: time.Millisecond})
	u := newFakeUsage(t, 0)
	rec := make(recorder, 16)
	stop, err := w.watchPolled("app", u, 1000, rec.notify)
	if err != nil {
		t.Fatal(err)
	}
	step := func(v uint64, want ...note) {
		t.Helper()
		u.set(t, v)
		u.polls(t, 2) // the poller has seen v
		for _, n := range want {
			rec.expect(t, n.level, n.usage)
		}
		rec.none(t)
	}
	step(500)
	step(799)
	step(800, note{80, 800}) // at the level counts
	step(900)                // still above 80: not again
	step(960, note{95, 960})
	step(940)                // below 95, but not below its re-arm point (93%)
	step(951)                // so not again
	step(925)                // below 93%: re-armed
	step(951, note{95, 951}) // crossed again
	step(100)                // below both re-arm points
	step(1000, note{80, 1000}, note{95, 1000})
	if st := w.Stats(); st.Polled != 1 || st.Notified != 0 {
		t.Errorf("Stats() = %+v", st)
	}

	// A second app, above both levels already: reported at once, in order.
	u2 := newFakeUsage(t, 990)
	stop2, err := w.watchPolled("app2", u2, 1000, rec.notify)
	if err != nil {
		t.Fatal(err)
	}
	rec.expect(t, 80, 990)
	rec.expect(t, 95, 990)

	stop()
	stop() // again: nothing
	u2.polls(t, 2)
	reads := u.reads.Load()
	u2.polls(t, 2) // the poller ran, and must not have read the stopped app
	if now := u.reads.Load(); now != reads {
		t.Errorf("a stopped app was read %d more times", now-reads)
	}
	if _, err := u.Read(); err == nil {
		t.Error("stop did not close the usage file")
	}
	stop2()
	if st := w.Stats(); st.Polled != 0 {
		t.Errorf("Stats() after stop = %+v", st)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.watchPolled("late", newFakeUsage(t, 0), 1000, rec.notify); !errors.Is(err, ErrClosed) {
		t.Errorf("Watch after Close: %v, want ErrClosed", err)
	}
}

// TestStopFromNotify: a callback may stop its own watch, and nothing is
// delivered after that.
func TestStopFromNotify(t *testing.T) {
	checkGoroutines(t)
	w := newTestWatcher(t, WatcherOptions{PollInterval: time.Millisecond})
	u := newFakeUsage(t, 990)
	var stop func()
	var calls atomic.Int32
	ready := make(chan struct{})
	done := make(chan struct{})
	stop, err := w.watchPolled("app", u, 1000, func(level int, usage uint64) {
		<-ready
		if calls.Add(1) == 1 {
			stop()
			close(done)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	<-done
	u2 := newFakeUsage(t, 0)
	if _, err := w.watchPolled("other", u2, 1000, func(int, uint64) {}); err != nil {
		t.Fatal(err)
	}
	u2.polls(t, 2)
	// The 95% crossing was found in the same evaluation as the 80% one;
	// after stop it must not be delivered.
	if n := calls.Load(); n != 1 {
		t.Errorf("notify called %d times, want 1 (stopped in the first call)", n)
	}
}

// TestEvaluate checks one evaluation of one level (80% of 1000; re-armed
// below 780) against what the kernel signalled and the usage read.
func TestEvaluate(t *testing.T) {
	for _, tc := range []struct {
		name     string
		above    bool
		signals  uint64
		usage    uint64
		reported bool
		after    bool
		near     bool
	}{
		{"armed, rose past", false, 1, 900, true, true, false},
		{"armed, rose past, polled", false, 0, 900, true, true, false},
		{"armed, far below", false, 0, 100, false, false, false},
		{"armed, just below: a rise may have been raced", false, 1, 799, false, false, true},
		{"armed, rose and fell before the read", false, 2, 700, true, false, false},
		{"armed, rose and fell, still near", false, 2, 790, true, true, true},
		{"reported, fell below the re-arm point", true, 1, 700, false, false, false},
		{"reported, fell between level and re-arm point", true, 1, 790, false, true, true},
		{"reported, fell and rose again without reaching the re-arm point", true, 2, 900, false, true, false},
		{"reported, still above", true, 0, 900, false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newFakeUsage(t, tc.usage)
			w := newTestWatcher(t, WatcherOptions{Levels: []int{80}})
			w.slack = 10 // the kernel's check granularity, at the scale of this test
			wt := w.newWatch("app", u, 1000, func(int, uint64) {})
			wt.levels[0].above, wt.levels[0].signals = tc.above, tc.signals
			out, near := w.evaluate(wt, nil)
			if reported := len(out) == 1; reported != tc.reported || wt.levels[0].above != tc.after || near != tc.near {
				t.Errorf("reported %v, above %v, near %v; want %v, %v, %v", reported, wt.levels[0].above, near, tc.reported, tc.after, tc.near)
			}
			if len(out) == 1 && (out[0].percent != 80 || out[0].usage != tc.usage) {
				t.Errorf("reported %+v", out[0])
			}
			if wt.levels[0].signals != 0 {
				t.Error("signals were not consumed")
			}
		})
	}
}

// fakeKernel is a fakeUsage that also takes threshold registrations, as
// cgroup v1's MemoryUsage does; the test signals the eventfds itself, as
// the kernel would.
type fakeKernel struct {
	*fakeUsage
	mu      sync.Mutex
	armed   map[uint64]int // threshold → eventfd
	refuse  error          // NotifyAt fails with this
	blockAt chan struct{}  // if set, NotifyAt waits for it to be closed
}

func newFakeKernel(t *testing.T, v uint64) *fakeKernel {
	return &fakeKernel{fakeUsage: newFakeUsage(t, v), armed: map[uint64]int{}}
}

func (k *fakeKernel) NotifyAt(efd int, threshold uint64) error {
	if k.blockAt != nil {
		<-k.blockAt
	}
	if k.refuse != nil {
		return k.refuse
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.armed[threshold] = efd
	return nil
}

// cross sets the usage and signals the eventfd armed at threshold n times.
func (k *fakeKernel) cross(t *testing.T, usage, threshold uint64, n int) {
	t.Helper()
	k.set(t, usage)
	k.mu.Lock()
	efd, ok := k.armed[threshold]
	k.mu.Unlock()
	if !ok {
		t.Fatalf("no eventfd armed at %d", threshold)
	}
	if err := syscalls.WriteEventFD(efd, uint64(n)); err != nil { // at once, as if the watcher was slow to look
		t.Fatal(err)
	}
}

// TestNotifiedPath drives the cgroup v1 path (eventfds, epoll, arming,
// polling near a level) with a fake kernel.
func TestNotifiedPath(t *testing.T) {
	checkGoroutines(t)
	fds := fdCount(t)
	w := newTestWatcher(t, WatcherOptions{PollInterval: time.Millisecond})
	w.slack = 10 // the kernel's check granularity, at the scale of this test
	k := newFakeKernel(t, 0)
	rec := make(recorder, 16)
	stop, err := w.watchNotified("app", k, 1000, rec.notify)
	if err != nil {
		t.Fatal(err)
	}
	waitArmed(t, w)
	if len(k.armed) != 2 {
		t.Fatalf("armed %v, want thresholds 800 and 950", k.armed)
	}
	if st := w.Stats(); st.Notified != 1 || st.Near != 0 || st.Polled != 0 {
		t.Errorf("Stats() = %+v, want one notified app, far from its levels", st)
	}
	// reads runs f and waits until the usage was read n more times.
	reads := func(n int64, f func()) {
		t.Helper()
		before := k.reads.Load()
		f()
		for k.reads.Load() < before+n {
			select {
			case <-k.read:
			case <-time.After(time.Minute):
				t.Fatalf("usage read %d times, want %d", k.reads.Load()-before, n)
			}
		}
	}
	near := func(want int) {
		t.Helper()
		if st := w.Stats(); st.Near != want {
			t.Errorf("Stats() = %+v, want %d apps near a level", st, want)
		}
	}

	k.cross(t, 850, 800, 1)
	rec.expect(t, 80, 850)
	// A spike past 95% and back, both signalled before the watcher looked.
	k.cross(t, 900, 950, 2)
	rec.expect(t, 95, 900)
	near(0)

	// Down to 790: the kernel signals crossing 800, and the app is between
	// 80% and its re-arm point, so it is polled (read again and again with
	// no signal)...
	reads(3, func() { k.cross(t, 790, 800, 1) })
	near(1)
	// ... which notices, without any signal, that it fell below 78%...
	reads(1, func() { k.set(t, 700) })
	for w.Stats().Near != 0 {
		reads(1, func() {})
	}
	// ... so crossing 80% again is reported.
	k.cross(t, 810, 800, 1)
	rec.expect(t, 80, 810)

	// A rise the kernel signalled but that the watcher read as just below
	// the level (it fell back a little before the read): the app is polled,
	// and the level reported when a poll sees it, with no new signal.
	reads(1, func() { k.cross(t, 100, 800, 1) })
	near(0)
	reads(3, func() { k.cross(t, 799, 800, 1) })
	near(1)
	rec.none(t)
	k.set(t, 805)
	rec.expect(t, 80, 805)
	rec.none(t)

	stop()
	if st := w.Stats(); st.Notified != 0 || st.Near != 0 {
		t.Errorf("Stats() after stop = %+v", st)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := fdCount(t); n != fds {
		t.Errorf("%d descriptors after Close, %d before", n, fds)
	}
}

// TestArmingRefused: where the kernel refuses thresholds, the app is
// polled, and the refusal reported.
func TestArmingRefused(t *testing.T) {
	checkGoroutines(t)
	errc := make(chan error, 4)
	w := newTestWatcher(t, WatcherOptions{PollInterval: time.Millisecond, OnError: func(app string, err error) { errc <- err }})
	k := newFakeKernel(t, 0)
	k.refuse = syscall.EOPNOTSUPP
	rec := make(recorder, 16)
	if _, err := w.watchNotified("app", k, 1000, rec.notify); err != nil {
		t.Fatal(err)
	}
	waitArmed(t, w)
	if err := <-errc; !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("OnError got %v, want EOPNOTSUPP", err)
	}
	if st := w.Stats(); st.Polled != 1 || st.Notified != 0 {
		t.Errorf("Stats() = %+v, want the app polled", st)
	}
	k.set(t, 960)
	rec.expect(t, 80, 960)
	rec.expect(t, 95, 960)
}

// TestStopWhileArming: stop does not wait for the kernel; the armer
// closes the descriptors when its call returns.
func TestStopWhileArming(t *testing.T) {
	checkGoroutines(t)
	fds := fdCount(t)
	w := newTestWatcher(t, WatcherOptions{})
	k := newFakeKernel(t, 0)
	k.blockAt = make(chan struct{})
	stop, err := w.watchNotified("app", k, 1000, func(int, uint64) { t.Error("notified") })
	if err != nil {
		t.Fatal(err)
	}
	stop() // returns although NotifyAt is blocked
	if st := w.Stats(); st.Arming != 1 {
		t.Errorf("Stats() = %+v, want one app arming", st)
	}
	close(k.blockAt)
	waitArmed(t, w)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := fdCount(t); n != fds {
		t.Errorf("%d descriptors after Close, %d before", n, fds)
	}
	if _, err := k.Read(); err == nil {
		t.Error("the usage file is still open")
	}
}

// --- real cgroups (root) ---

// testPrefix is the first component of every cgroup these tests create.
var testPrefix = fmt.Sprintf("pinfold-monitor-test-%d", os.Getpid())

func manager(t *testing.T) *cgroup.Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating cgroups needs root")
	}
	checkCgroupLeaks(t)
	m, err := cgroup.NewManager(cgroup.ManagerConfig{SelfLeaf: testPrefix + "-supervisor"})
	if errors.Is(err, cgroup.ErrNotSupported) {
		t.Skipf("this host's cgroups cannot run pinfold apps: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newCgroup(t *testing.T, m *cgroup.Manager, name string, limit int64) cgroup.Cgroup {
	t.Helper()
	cg, err := m.New(cgroup.Config{
		Name:      testPrefix + "/" + name,
		Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}},
	})
	if err != nil {
		t.Fatal(err)
	}
	paths := cg.Paths()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := errors.Join(cg.Kill(ctx), cg.Delete(), cg.Close()); err != nil {
			t.Errorf("removing cgroup: %v", err)
		}
		dirs := []string{paths.Unified}
		for _, d := range paths.V1 {
			dirs = append(dirs, d)
		}
		for _, d := range dirs {
			if d == "" {
				continue
			}
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("leak: %s still exists", d)
			}
		}
	})
	return cg
}

// checkCgroupLeaks fails t if the test prefix's directory is left in any
// hierarchy after t (every cgroup t made is deleted by then: cleanups run
// last-registered first).
func checkCgroupLeaks(t *testing.T) {
	t.Cleanup(func() {
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + testPrefix)
		more, _ := filepath.Glob("/sys/fs/cgroup/memory/*/*/" + testPrefix)
		if top, err := os.Stat("/sys/fs/cgroup/" + testPrefix); err == nil && top.IsDir() {
			dirs = append(dirs, "/sys/fs/cgroup/"+testPrefix)
		}
		if dirs = append(dirs, more...); len(dirs) > 0 {
			t.Errorf("leak: %v still exist", dirs)
		}
	})
}

// hog is the helper process that allocates memory on command.
type hog struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startHog(t *testing.T, cg cgroup.Cgroup) *hog {
	t.Helper()
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), roleEnv+"=hog", "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	if fd, ok := cg.CgroupFD(); ok {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &hog{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if err := cg.AddProc(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *hog) stop(t *testing.T) {
	t.Helper()
	h.in.Close() // the hog exits at the end of its input
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("hog: %v", err)
	}
}

func (h *hog) do(t *testing.T, cmd string) {
	t.Helper()
	if _, err := io.WriteString(h.in, cmd+"\n"); err != nil {
		t.Fatal(err)
	}
	if !h.out.Scan() || h.out.Text() != "ok" {
		t.Fatalf("hog %s: %q %v", cmd, h.out.Text(), h.out.Err())
	}
}

// waitArmed waits until w has armed the thresholds of every app.
func waitArmed(t testing.TB, w *Watcher) {
	t.Helper()
	for range 6000 {
		if w.Stats().Arming == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("thresholds still being armed: %+v", w.Stats())
}

func fdCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries) - 1 // ReadDir's own
}

// TestWatchRealCgroup: an app in a real cgroup with a 64 MiB limit
// allocates memory step by step; the watcher reports 80% and then 95%, each
// once, and 80% again after the app freed its memory and grew again. On
// this host (cgroup v1) that is the kernel's threshold notification; in the
// cgroup v2 VM (make test-vm) it is polling memory.current.
func TestWatchRealCgroup(t *testing.T) {
	for _, peak := range []bool{false, true} {
		t.Run(map[bool]string{false: "usage", true: "peak"}[peak], func(t *testing.T) {
			testWatchRealCgroup(t, peak)
		})
	}
}

// testWatchRealCgroup runs TestWatchRealCgroup with or without PollPeak.
func testWatchRealCgroup(t *testing.T, peak bool) {
	checkGoroutines(t)
	m := manager(t)
	const limit = 64 << 20
	cg := newCgroup(t, m, "app", limit)
	h := startHog(t, cg)
	usage, err := cg.OpenMemoryUsage()
	if err != nil {
		t.Fatal(err)
	}
	defer usage.Close()

	fds := fdCount(t)
	var errs []error
	var errMu sync.Mutex
	w, err := NewWatcherWithOptions(WatcherOptions{
		PollInterval: 10 * time.Millisecond,
		PollPeak:     peak,
		OnError: func(app string, err error) {
			errMu.Lock()
			errs = append(errs, fmt.Errorf("app %s: %w", app, err))
			errMu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() }) // on failure; the test closes it itself
	rec := make(recorder, 16)
	stop, err := w.Watch("app", cg, limit, rec.notify)
	if err != nil {
		t.Fatal(err)
	}
	waitArmed(t, w)
	notified := m.Mode() != cgroup.ModeUnified && !peak
	wantFDs := 1 // the usage (or peak) file
	if notified {
		wantFDs = 2 + 1 + 2 // an eventfd per level, the usage file, the epoll set and its wake eventfd
	}
	if got := fdCount(t) - fds; got != wantFDs {
		t.Errorf("watching opened %d descriptors, want %d", got, wantFDs)
	}
	// grow allocates half a MiB at a time until level is reported; the
	// usage reported must be at or above the level. The kernel checks
	// thresholds every 128 pages charged on a CPU (and charges ahead up to
	// 64 pages per CPU), so once usage is past the level by more than that
	// on every CPU, the notification must come (v2: at the next poll).
	slack := uint64(runtime.NumCPU())*(512<<10) + 512<<10
	grow := func(level int) {
		t.Helper()
		threshold := uint64(limit) / 100 * uint64(level)
		for {
			select {
			case n := <-rec:
				if n.level != level {
					t.Fatalf("notified level %d (usage %d), want %d", n.level, n.usage, level)
				}
				if n.usage < threshold {
					t.Fatalf("level %d notified with usage %d, below it (%d)", level, n.usage, threshold)
				}
				t.Logf("level %d%%: notified at usage %d (%.1f%%)", level, n.usage, float64(n.usage)*100/limit)
				return
			default:
			}
			u, err := usage.Read()
			if err != nil {
				t.Fatal(err)
			}
			if u >= threshold+slack {
				select {
				case n := <-rec:
					rec <- n // checked above
					continue
				case <-time.After(time.Minute):
					t.Fatalf("usage %d is past level %d%% (%d) and nothing was notified", u, level, threshold)
				}
			}
			h.do(t, "+512")
		}
	}
	grow(80)
	grow(95)
	rec.none(t)

	// The app ends and another starts: use falls below both re-arm points,
	// then rises past 80% again. (A process that exits frees everything,
	// which a Go program that frees its heap does not under the race
	// detector: its shadow memory stays.)
	h.stop(t)
	h = startHog(t, cg)
	if u, _ := usage.Read(); u >= uint64(limit)/100*(80-RearmPoints) {
		t.Fatalf("usage %d with a new process is above 78%%", u)
	}
	if peak {
		// The high watermark does not fall: nothing re-arms.
		for {
			u, err := usage.Read()
			if err != nil {
				t.Fatal(err)
			}
			if u >= uint64(limit)/100*80+slack {
				break
			}
			h.do(t, "+512")
		}
		// A probe app polled in the same passes: two of its reads mean the
		// poller has looked at the real app again since the allocation.
		probe := newFakeUsage(t, 0)
		stopProbe, err := w.watchPolled("probe", probe, 1000, rec.notify)
		if err != nil {
			t.Fatal(err)
		}
		probe.polls(t, 2)
		stopProbe()
		rec.none(t)
	} else {
		grow(80)
	}

	stop()
	wantFDs = 0
	if notified {
		wantFDs = 2 // the epoll set and its wake eventfd stay until Close
	}
	if got := fdCount(t) - fds; got != wantFDs {
		t.Errorf("after stop %d descriptors are left, want %d", got, wantFDs)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fdCount(t) - fds; got != 0 {
		t.Errorf("after Close %d descriptors are left", got)
	}
	errMu.Lock()
	defer errMu.Unlock()
	if err := errors.Join(errs...); err != nil {
		t.Errorf("the watcher reported: %v", err)
	}
}

// TestManyIdleWatches: watching many idle apps costs descriptors and a
// little memory, but no goroutine or thread per app.
func TestManyIdleWatches(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 1000 cgroups")
	}
	checkGoroutines(t)
	m := manager(t)
	const apps = 1000
	cgs := make([]cgroup.Cgroup, apps)
	for i := range apps {
		cgs[i] = newCgroup(t, m, fmt.Sprintf("idle-%d", i), 1<<30)
	}
	w := newTestWatcher(t, WatcherOptions{})
	// Warm up: the watcher's own goroutines and descriptors.
	stop, err := w.Watch("warm", cgs[0], 1<<30, func(int, uint64) {})
	if err != nil {
		t.Fatal(err)
	}
	waitArmed(t, w)
	stop()
	goroutines, threads, fds := runtime.NumGoroutine(), threadCount(t), fdCount(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ids := make([]string, apps)
	for i := range apps {
		ids[i] = fmt.Sprintf("app-%04d", i) // an app's id exists anyway
	}
	stops := make([]func(), 0, apps)
	start := time.Now()
	for i := range apps {
		stop, err := w.Watch(ids[i], cgs[i], 1<<30, func(int, uint64) { t.Error("an idle app was notified") })
		if err != nil {
			t.Fatalf("app %d: %v", i, err)
		}
		stops = append(stops, stop)
	}
	watched := time.Since(start)
	waitArmed(t, w)
	armed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := w.Stats()
	t.Logf("%d apps: Watch took %v in all, arming %v; %d descriptors; %d heap bytes per app; %d goroutines and %d threads in all (%d and %d before)",
		apps, watched, armed, fdCount(t)-fds, int64(after.HeapAlloc-before.HeapAlloc)/apps,
		runtime.NumGoroutine(), threadCount(t), goroutines, threads)
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines with %d idle apps watched, %d before", n, apps, goroutines)
	}
	if st.Notified+st.Polled != apps || st.Arming != 0 {
		t.Errorf("Stats() = %+v, want %d apps", st, apps)
	}
	for _, stop := range stops {
		stop()
	}
	if n := fdCount(t); n != fds {
		t.Errorf("%d descriptors after stopping every app, %d before", n, fds)
	}
}

func threadCount(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// BenchmarkWatchArmStop is the whole cost of watching one app: Watch,
// arming its thresholds (cgroup v1: an RCU grace period per level) and
// stop.
func BenchmarkWatchArmStop(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("creating cgroups needs root")
	}
	m, err := cgroup.NewManager(cgroup.ManagerConfig{SelfLeaf: testPrefix + "-supervisor"})
	if err != nil {
		b.Skip(err)
	}
	var limit int64 = 1 << 30
	cg, err := m.New(cgroup.Config{Name: testPrefix + "/bench", Resources: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := errors.Join(cg.Delete(), cg.Close()); err != nil {
			b.Error(err)
		}
	}()
	w := NewWatcher()
	defer w.Close()
	for b.Loop() {
		stop, err := w.Watch("app", cg, 1<<30, func(int, uint64) {})
		if err != nil {
			b.Fatal(err)
		}
		waitArmed(b, w)
		stop()
	}
}
