package sandbox_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/internal/probe"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/initstage"
	"github.com/pinfold/pinfold/sandbox/policy"
	"github.com/pinfold/pinfold/vfs"
)

// The test binary plays four roles:
//
//   - the tests;
//   - the init stage (first argument initstage.Arg), as pinfold-init does;
//   - the probe (probe.Env=1), the app that runs inside the sandboxes and
//     reports what it sees, bound read-only at /probe;
//   - a supervisor helper (helperEnv set), a separate process that starts an
//     app and is then SIGKILLed by the crash-recovery test.
//
// The binary is copied to a world-readable directory first: it is exec'd as
// the init stage by a process that may already be in a new user namespace,
// as an unprivileged uid mapped there, which cannot traverse the 0700
// directory go test builds in.

const helperEnv = "PINFOLD_SANDBOX_TEST_HELPER"

func init() {
	// The init stage sets per-thread attributes (capabilities, seccomp,
	// credentials) that the exec'd app must inherit: main stays on the
	// main thread from the start.
	runtime.LockOSThread()
}

var (
	// probeBin is the copy of the test binary used as init stage and probe.
	probeBin string
	// realExe is the test binary as go test built it.
	realExe string
	// testCgroupParent is the cgroup every supervisor of this test process
	// puts its apps under, so leak checks can tell ours from others'.
	testCgroupParent = fmt.Sprintf("pinfold-test-%d", os.Getpid())
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == initstage.Arg {
		initstage.Main() // never returns
	}
	if os.Getenv(probe.Env) == "1" {
		probe.Main() // never returns
	}
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(helperMain(role))
	}
	// Tests run on other goroutines; main keeps the main thread.
	runtime.UnlockOSThread()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "locating the test binary:", err)
		return 1
	}
	realExe = exe
	dir, err := os.MkdirTemp("", "pinfold-sandbox-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	probeBin = filepath.Join(dir, "probe")
	if err := copyFile(exe, probeBin, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "copying the test binary:", err)
		return 1
	}
	return m.Run()
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// requireRoot skips when the test cannot build sandboxes at all. Everything
// else a sandbox needs (namespaces, cgroups, seccomp) is expected on a root
// Linux host, so its absence fails the test.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("building sandboxes needs root (namespaces, cgroups, mounts)")
	}
}

// newStateDir returns a state dir path (not yet created, so the supervisor
// creates it with its own modes) inside a world-traversable temp dir, which
// is removed after the test.
func newStateDir(t testing.TB) string {
	t.Helper()
	base, err := os.MkdirTemp("", "pinfold-state-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	return filepath.Join(base, "state")
}

func supervisorOptions(stateDir string) sandbox.Options {
	return sandbox.Options{
		StateDir:     stateDir,
		InitPath:     probeBin,
		InitArgs:     []string{initstage.Arg},
		CgroupParent: testCgroupParent,
	}
}

// newSupervisor builds a supervisor on a fresh state dir. After the test it
// checks that no state record is left.
func newSupervisor(t testing.TB) *sandbox.Supervisor {
	t.Helper()
	requireRoot(t)
	dir := newStateDir(t)
	sup, err := sandbox.NewSupervisor(supervisorOptions(dir))
	if err != nil {
		t.Fatalf("NewSupervisor: %v", err)
	}
	t.Cleanup(func() {
		ents, _ := os.ReadDir(filepath.Join(dir, "apps"))
		for _, e := range ents {
			t.Errorf("state record left behind: %s", e.Name())
		}
	})
	return sup
}

// probeSpec is the default policy's spec running the probe with args.
func probeSpec(t testing.TB, args ...string) sandbox.Spec {
	t.Helper()
	return probeSpecFor(t, policy.Default(), args...)
}

func probeSpecFor(t testing.TB, p *policy.Policy, args ...string) sandbox.Spec {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatalf("policy: %v", err)
	}
	spec, err := sandbox.FromPolicy(p, append([]string{"/probe"}, args...), map[string]string{probe.Env: "1"})
	if err != nil {
		t.Fatalf("FromPolicy: %v", err)
	}
	spec.Filesystem.ReadOnly = append(spec.Filesystem.ReadOnly, vfs.Bind{Source: probeBin, Target: "/probe"})
	return spec
}

// shSpec runs script with /bin/sh -c under policy p (nil: the default), with the
// probe bound at /probe.
func shSpec(t testing.TB, p *policy.Policy, script string, args ...string) sandbox.Spec {
	t.Helper()
	if p == nil {
		p = policy.Default()
	}
	spec := probeSpecFor(t, p)
	spec.Process.Args = append([]string{"/bin/sh", "-c", script, "sh"}, args...)
	return spec
}

// run is the outcome of one app.
type run struct {
	exit    *sandbox.Exit
	usage   *cgroup.Stats // read before Close
	stdout  string
	stderr  string
	cleanup sandbox.Report
}

// syncBuffer is a bytes.Buffer safe for the output copier and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runApp starts spec, waits for it and closes it; any failure to start
// fails the test.
func runApp(t testing.TB, sup *sandbox.Supervisor, spec sandbox.Spec) run {
	t.Helper()
	var out, errb syncBuffer
	spec.Stdout, spec.Stderr = &out, &errb
	app, err := sup.Start(spec)
	if err != nil {
		t.Fatalf("Start %q: %v", spec.Process.Args, err)
	}
	select {
	case <-app.Done():
	case <-time.After(hangTimeout):
		app.Close()
		t.Fatalf("app %q still running after %s", spec.Process.Args, hangTimeout)
	}
	exit, err := app.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if exit.Err != "" {
		t.Errorf("exit of %q: %s", spec.Process.Args, exit.Err)
	}
	use, err := app.Usage()
	if err != nil {
		t.Errorf("usage of %q: %v", spec.Process.Args, err)
	}
	rep := app.Close()
	if err := rep.Err(); err != nil {
		t.Errorf("cleanup of %q: %v", spec.Process.Args, err)
	}
	return run{exit: exit, usage: use, stdout: out.String(), stderr: errb.String(), cleanup: rep}
}

// runProbe runs the probe's report mode and decodes the report.
func runProbe(t testing.TB, sup *sandbox.Supervisor, spec sandbox.Spec) *probe.Report {
	t.Helper()
	r := runApp(t, sup, spec)
	if r.exit.ExitCode() != 0 {
		t.Fatalf("probe %q: exit status %d, stderr:\n%s", spec.Process.Args, r.exit.ExitCode(), r.stderr)
	}
	var rep probe.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("decoding probe report: %v\nstdout:\n%s\nstderr:\n%s", err, r.stdout, r.stderr)
	}
	return &rep
}

// lineReader hands out an app's stdout line by line, so a test can wait
// for "ready" on a pipe instead of sleeping.
type lineReader struct {
	lines chan string
}

func newLineReader(r io.Reader) *lineReader {
	lr := &lineReader{lines: make(chan string, 64)}
	go func() {
		defer close(lr.lines)
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 4096)
		for {
			n, err := r.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for {
				i := bytes.IndexByte(buf, '\n')
				if i < 0 {
					break
				}
				lr.lines <- string(buf[:i])
				buf = buf[i+1:]
			}
			if err != nil {
				if len(buf) > 0 {
					lr.lines <- string(buf)
				}
				return
			}
		}
	}()
	return lr
}

// next returns the next line, failing the test after a generous timeout
// (the machine may be loaded; this is a hang guard, not a time assertion).
func (lr *lineReader) next(t testing.TB) string {
	t.Helper()
	select {
	case l, ok := <-lr.lines:
		if !ok {
			t.Fatal("app output ended")
		}
		return l
	case <-time.After(hangTimeout):
		t.Fatalf("no output from the app after %s", hangTimeout)
	}
	return ""
}

// hangTimeout bounds every wait that would otherwise hang a broken test.
const hangTimeout = 60 * time.Second

// startWithPipe starts spec with stdout on a pipe and returns the app and
// a line reader on its output.
func startWithPipe(t testing.TB, sup *sandbox.Supervisor, spec sandbox.Spec) (*sandbox.App, *lineReader) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	spec.Stdout = pw
	app, err := sup.Start(spec)
	pw.Close()
	if err != nil {
		pr.Close()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { app.Close(); pr.Close() })
	return app, newLineReader(pr)
}

// waitExit waits for the app with a hang guard.
func waitExit(t testing.TB, app *sandbox.App) *sandbox.Exit {
	t.Helper()
	select {
	case <-app.Done():
	case <-time.After(hangTimeout):
		t.Fatalf("app %s still running after %s", app.ID, hangTimeout)
	}
	exit, err := app.Wait()
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return exit
}

// helperCommand runs the test binary as the supervise helper on stateDir.
func helperCommand(t testing.TB, stateDir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(probeBin)
	cmd.Env = append(os.Environ(), helperEnv+"=supervise", helperStateEnv+"="+stateDir, helperProbeEnv+"="+probeBin)
	return cmd
}

// snapshot is what a test process and the host look like, for leak checks.
type snapshot struct {
	cgroups    map[string]bool   // every directory under /sys/fs/cgroup
	mounts     map[string]bool   // "mountpoint fstype source" of this mount namespace
	fds        map[string]string // this process's descriptors → targets
	children   map[int]string    // this process's child processes → state
	goroutines int
}

const cgroupRoot = "/sys/fs/cgroup"

func takeSnapshot(t testing.TB) *snapshot {
	t.Helper()
	return &snapshot{
		cgroups:    cgroupDirs(t),
		mounts:     mounts(t),
		fds:        openFDs(t),
		children:   children(t),
		goroutines: runtime.NumGoroutine(),
	}
}

func cgroupDirs(t testing.TB) map[string]bool {
	t.Helper()
	dirs := map[string]bool{}
	err := filepath.WalkDir(cgroupRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if d.IsDir() {
			dirs[path] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", cgroupRoot, err)
	}
	return dirs
}

func mounts(t testing.TB) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		m[f[4]+" "+f[sep+1]+" "+f[sep+2]] = true
	}
	return m
}

func openFDs(t testing.TB) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[string]string{}
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		fds[e.Name()] = target
	}
	return fds
}

// children lists this process's children (zombies included) by scanning
// /proc.
func children(t testing.TB) map[int]string {
	t.Helper()
	self := os.Getpid()
	out := map[int]string{}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			out[pid] = f[0] + " " + s[:i+1]
		}
	}
	return out
}

// ourCgroup reports whether a cgroup path belongs to apps of this test
// binary (any of its processes: the supervise helper has its own pid).
func ourCgroup(path string) bool {
	return strings.Contains(path, "/pinfold-test-")
}

// check fails the test for anything present now that was not at the
// snapshot: cgroup directories of our apps, mounts, descriptors, child
// processes (zombies too), goroutines. Changes that cannot be ours (other
// processes on the host create cgroups and mounts too) are logged.
func (s *snapshot) check(t testing.TB) {
	t.Helper()
	for d := range cgroupDirs(t) {
		switch {
		case s.cgroups[d]:
		case ourCgroup(d):
			t.Errorf("cgroup directory left behind: %s", d)
		default:
			t.Logf("new cgroup directory, not of this test: %s", d)
		}
	}
	for m := range mounts(t) {
		if !s.mounts[m] {
			if strings.Contains(m, "pinfold") || strings.Contains(m, " nsfs ") {
				t.Errorf("mount left behind: %s", m)
			} else {
				t.Logf("new mount, not of this test: %s", m)
			}
		}
	}
	// Goroutines of finished apps (output copiers, waiters) end shortly
	// after the apps; give them time on a loaded machine.
	deadline := time.Now().Add(hangTimeout)
	for runtime.NumGoroutine() > s.goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > s.goroutines {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d goroutines, %d before:\n%s", n, s.goroutines, buf)
	}
	for fd, target := range openFDs(t) {
		if s.fds[fd] != target {
			t.Errorf("descriptor left open: %s -> %s", fd, target)
		}
	}
	for pid, st := range children(t) {
		if _, ok := s.children[pid]; !ok {
			t.Errorf("child process left behind: %d %s", pid, st)
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err == nil && ourCgroup(string(b)) {
			st, _ := os.ReadFile("/proc/" + e.Name() + "/status")
			// The app of a supervisor that a test SIGKILLed is orphaned
			// to the host's init, which reaps it in its own time: a
			// zombie holds nothing but its pid, and reaping it is not
			// ours to do.
			if zombieOfOther(string(st)) {
				continue
			}
			t.Errorf("process %s still runs in an app cgroup: %s\n%s", e.Name(), strings.TrimSpace(string(b)), st)
		}
	}
}

// zombieOfOther reports whether a /proc/PID/status describes a zombie whose
// parent is not this process.
func zombieOfOther(status string) bool {
	zombie, ours := false, false
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "State:"); ok {
			zombie = strings.HasPrefix(strings.TrimSpace(v), "Z")
		}
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			ours = strings.TrimSpace(v) == strconv.Itoa(os.Getpid())
		}
	}
	return zombie && !ours
}
