package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/internal/probe"
)

// The CLI tests run the real binaries, built once by TestMain: pinfold (cgo,
// as shipped) and pinfold-init (static) beside it, where pinfold looks for
// its init stage. The test binary itself is the probe app (probe.Env=1),
// bound into sandboxes with --bind.

var (
	binDir     string // world-traversable dir with pinfold, pinfold-init, probe
	pinfoldBin string
	probeBin   string
)

func TestMain(m *testing.M) {
	if os.Getenv(probe.Env) == "1" {
		probe.Main() // never returns
	}
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pinfold-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The init stage is exec'd by a process that may be in a new user
	// namespace as an unprivileged host uid: the dir must be traversable.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	binDir = dir
	pinfoldBin = filepath.Join(dir, "pinfold")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	for _, b := range []struct {
		env  []string
		args []string
	}{
		{nil, []string{"build", "-o", pinfoldBin, "."}},
		{[]string{"CGO_ENABLED=0"}, []string{"build", "-o", filepath.Join(dir, "pinfold-init"), "../pinfold-init"}},
	} {
		cmd := exec.Command(goTool, b.args...)
		cmd.Env = append(os.Environ(), b.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go %s: %v\n%s", strings.Join(b.args, " "), err, out)
			return 1
		}
	}
	exe, err := os.Executable()
	if err != nil {
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

// requireRoot skips when sandboxes cannot be built at all; anything else
// missing on a root Linux host fails the test.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("pinfold run needs root (namespaces, cgroups, mounts)")
	}
}

// newStateDir returns a fresh --state-dir (not yet created) in a
// world-traversable temp dir. After the test it checks that no state
// record was left behind.
func newStateDir(t testing.TB) string {
	t.Helper()
	base, err := os.MkdirTemp("", "pinfold-cli-state-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "state")
	t.Cleanup(func() {
		ents, _ := os.ReadDir(filepath.Join(dir, "apps"))
		for _, e := range ents {
			t.Errorf("state record left behind: %s", e.Name())
		}
		os.RemoveAll(base)
	})
	return dir
}

// hangTimeout bounds each pinfold invocation (a hang guard, not a time
// assertion: the machine may be loaded).
const hangTimeout = 2 * time.Minute

type result struct {
	code   int
	stdout string
	stderr string
}

// command builds an exec.Cmd for pinfold with args; env entries K=V are
// added to the test's environment, entries K (no '=') remove K from it.
func command(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, pinfoldBin, args...)
	cmd.Env = os.Environ()
	for _, kv := range env {
		if strings.Contains(kv, "=") {
			cmd.Env = append(cmd.Env, kv)
			continue
		}
		cmd.Env = slices.DeleteFunc(cmd.Env, func(e string) bool { return strings.HasPrefix(e, kv+"=") })
	}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// pinfold runs the binary to completion.
func pinfold(t testing.TB, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	cmd := command(ctx, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			t.Fatalf("pinfold %q died of %v; stderr:\n%s", args, ws.Signal(), errb.String())
		}
	default:
		t.Fatalf("running pinfold %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("pinfold %q still running after %s; stderr:\n%s", args, hangTimeout, errb.String())
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// runIn is "pinfold run --state-dir DIR ARGS...".
func runIn(t testing.TB, stateDir string, args ...string) result {
	t.Helper()
	return pinfold(t, nil, append([]string{"run", "--state-dir", stateDir}, args...)...)
}

// probeArgs binds the probe into the sandbox and runs it with args.
func probeArgs(args ...string) []string {
	return append([]string{"--bind", probeBin + ":/probe", "--env", probe.Env + "=1", "--", "/probe"}, args...)
}

// lineReader hands out a process's output line by line, so a test waits for
// "ready" on a pipe instead of sleeping.
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

func (lr *lineReader) next(t testing.TB) string {
	t.Helper()
	select {
	case l, ok := <-lr.lines:
		if !ok {
			t.Fatal("output ended")
		}
		return l
	case <-time.After(hangTimeout):
		t.Fatalf("no output after %s", hangTimeout)
	}
	return ""
}

// syncBuffer is a bytes.Buffer safe for a copier goroutine and the test.
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

// started is a pinfold run in the background with its stdout on a line
// reader.
type started struct {
	cmd    *exec.Cmd
	lines  *lineReader
	stderr *syncBuffer
	done   chan struct{}
	err    error
}

func startRun(t testing.TB, env []string, args ...string) *started {
	t.Helper()
	cmd := command(context.Background(), env, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &started{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.lines = newLineReader(out)
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// wait waits for the run to end and returns its exit code.
func (s *started) wait(t testing.TB) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(hangTimeout):
		t.Fatalf("pinfold still running after %s; stderr:\n%s", hangTimeout, s.stderr.String())
	}
	var ee *exec.ExitError
	switch {
	case s.err == nil:
		return 0
	case errors.As(s.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("pinfold: %v", s.err)
	return -1
}
