package daemon_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pinfold/pinfold/internal/client"
	"github.com/pinfold/pinfold/internal/daemon"
	"github.com/pinfold/pinfold/sandbox/initstage"
)

// The test binary plays three roles: the tests; the init stage of the
// daemon's sandboxes (initstage.Arg); and a daemon in a separate process
// (roleEnv=daemon), which the crash test SIGKILLs.

const roleEnv = "PINFOLD_DAEMON_TEST_ROLE"

func init() { runtime.LockOSThread() }

var (
	initBin      string // world-readable copy of the test binary (init stage)
	cgroupParent = fmt.Sprintf("pinfold-daemontest-%d", os.Getpid())
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == initstage.Arg {
		initstage.Main()
	}
	if os.Getenv(roleEnv) == "daemon" {
		os.Exit(daemonRole())
	}
	runtime.UnlockOSThread()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dir, err := os.MkdirTemp("", "pinfold-daemon-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	initBin = filepath.Join(dir, "init")
	if err := copyExe(exe, initBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func copyExe(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// daemonRole runs a daemon configured from the environment until killed.
func daemonRole() int {
	cfg := daemon.Config{
		Socket:       os.Getenv("PINFOLD_TEST_SOCKET"),
		StateDir:     os.Getenv("PINFOLD_TEST_STATE"),
		PolicyDir:    os.Getenv("PINFOLD_TEST_POLICIES"),
		InitPath:     os.Getenv("PINFOLD_TEST_INIT"),
		InitArgs:     []string{initstage.Arg},
		CgroupParent: os.Getenv("PINFOLD_TEST_CGROUP"),
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	d, err := daemon.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		return 1
	}
	if err := d.Serve(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "daemon:", err)
		return 1
	}
	return 0
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the daemon needs root (namespaces, cgroups, mounts)")
	}
}

// env is a daemon's directories for one test.
type env struct {
	dir, socket, state, policies string
}

func newEnv(t testing.TB) env {
	t.Helper()
	base, err := os.MkdirTemp("", "pinfold-daemon-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	t.Cleanup(func() { os.RemoveAll(base) })
	e := env{dir: base, socket: filepath.Join(base, "pinfold.sock"), state: filepath.Join(base, "state"), policies: filepath.Join(base, "policies")}
	if err := os.MkdirAll(e.policies, 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e env) config() daemon.Config {
	return daemon.Config{
		Socket: e.socket, StateDir: e.state, PolicyDir: e.policies,
		InitPath: initBin, InitArgs: []string{initstage.Arg}, CgroupParent: cgroupParent,
	}
}

// startDaemon runs a daemon in this process for the test's duration.
func startDaemon(t testing.TB, e env) (*daemon.Daemon, *client.Client) {
	t.Helper()
	requireRoot(t)
	d, err := daemon.New(e.config())
	if err != nil {
		t.Fatalf("daemon.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	waitSocket(t, e.socket)
	c, err := client.Dial("unix://" + e.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		sctx, scancel := context.WithTimeout(context.Background(), time.Minute)
		defer scancel()
		if err := d.Shutdown(sctx, true); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		cancel()
		<-served
		assertClean(t, e)
	})
	return d, c
}

// waitSocket waits until a daemon accepts connections on path (a socket
// file left by a killed daemon does not count).
func waitSocket(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no daemon accepts connections on %s", path)
}

// assertClean checks that nothing of the test's apps is left: state
// records, logs, cgroup directories, processes in them.
func assertClean(t testing.TB, e env) {
	t.Helper()
	for _, dir := range []string{filepath.Join(e.state, "apps"), filepath.Join(e.state, "logs")} {
		ents, _ := os.ReadDir(dir)
		for _, ent := range ents {
			t.Errorf("left behind: %s", filepath.Join(dir, ent.Name()))
		}
	}
	for _, d := range cgroupDirs(t) {
		t.Errorf("cgroup left behind: %s", d)
	}
}

// cgroupDirs lists the cgroup directories of this test process's apps.
func cgroupDirs(t testing.TB) []string {
	var out []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && strings.Contains(p, "/"+cgroupParent+"/") {
			out = append(out, p)
		}
		return nil
	})
	return out
}
