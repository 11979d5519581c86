package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The client tests start the built `pinfold daemon` as a subprocess on a
// temp socket, state dir and policy dir, and drive the built pinfold with
// --host, as a user would. After each test the daemon is stopped with
// SIGTERM (it must exit 0) and nothing of the test's apps may be left:
// state records, logs, cgroup directories (processes die with those), the
// socket.

// testDaemon is a `pinfold daemon` subprocess.
type testDaemon struct {
	host     string
	socket   string
	state    string
	policies string
	cmd      *exec.Cmd
	log      *syncBuffer
	done     chan struct{}
	err      error
}

// startDaemon starts a daemon for the test and stops it (checking for
// leftovers) when the test ends.
func startDaemon(t *testing.T) *testDaemon {
	t.Helper()
	requireRoot(t)
	base, err := os.MkdirTemp("", "pinfold-clitest-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	d := &testDaemon{
		socket:   filepath.Join(base, "pinfold.sock"),
		state:    filepath.Join(base, "state"),
		policies: filepath.Join(base, "policies.d"),
		log:      &syncBuffer{},
		done:     make(chan struct{}),
	}
	d.host = "unix://" + d.socket
	if err := os.MkdirAll(d.policies, 0o755); err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(pinfoldBin, "daemon", "--socket", d.socket, "--state-dir", d.state,
		"--policy-dir", d.policies, "--metrics-addr", "")
	d.cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "PINFOLD_HOST=") })
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		ready := false
		for sc.Scan() {
			d.log.Write(append(sc.Bytes(), '\n'))
			if !ready && strings.Contains(sc.Text(), "msg=serving") {
				ready = true
				close(serving)
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop(t)
		os.RemoveAll(base)
	})
	select {
	case <-serving:
	case <-d.done:
		t.Fatalf("pinfold daemon exited (%v) before serving:\n%s", d.err, d.log.String())
	case <-time.After(hangTimeout):
		t.Fatalf("pinfold daemon not serving after %s:\n%s", hangTimeout, d.log.String())
	}
	return d
}

// stop ends the daemon with SIGTERM and checks that it exits 0 and that
// nothing of its apps is left behind.
func (d *testDaemon) stop(t *testing.T) {
	t.Helper()
	select {
	case <-d.done:
		t.Errorf("the daemon had exited before the end of the test (%v):\n%s", d.err, d.log.String())
		return
	default:
	}
	// Every app the daemon ever had, from its events, for the cgroup check.
	ids := map[string]bool{}
	if r := d.pinfoldErr(t, nil, "events", "--since", "0", "-o", "json"); r.code == 0 {
		for _, ev := range parseEvents(t, r.stdout) {
			if ev.App != "" {
				ids[ev.App] = true
			}
		}
	} else {
		t.Errorf("events before stopping: exit %d: %s", r.code, r.stderr)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(hangTimeout):
		d.cmd.Process.Kill()
		<-d.done
		t.Errorf("the daemon did not stop within %s of SIGTERM:\n%s", hangTimeout, d.log.String())
	}
	if d.err != nil {
		t.Errorf("pinfold daemon: %v; its log:\n%s", d.err, d.log.String())
	}
	for _, dir := range []string{filepath.Join(d.state, "apps"), filepath.Join(d.state, "logs")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			t.Errorf("left behind: %s", filepath.Join(dir, e.Name()))
		}
	}
	if _, err := os.Stat(d.socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after the daemon stopped: %v", err)
	}
	for _, dir := range appCgroups(ids) {
		t.Errorf("cgroup left behind: %s", dir)
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", d.log.String())
	}
}

// appCgroups lists the cgroup directories named after any of ids.
func appCgroups(ids map[string]bool) []string {
	var out []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if e.IsDir() && ids[e.Name()] {
			out = append(out, p)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// pinfold runs the client with --host and stdin, to completion; any
// exit status is returned.
func (d *testDaemon) pinfoldErr(t testing.TB, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
	defer cancel()
	cmd := command(ctx, []string{"PINFOLD_HOST"}, append([]string{"--host", d.host}, args...)...)
	cmd.Stdin = stdin
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

// ok runs the client and fails the test unless it exits 0.
func (d *testDaemon) ok(t testing.TB, args ...string) string {
	t.Helper()
	r := d.pinfoldErr(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("pinfold %q: exit %d; stderr:\n%s", args, r.code, r.stderr)
	}
	return r.stdout
}

// start runs the client in the background (for attached runs).
func (d *testDaemon) start(t testing.TB, args ...string) *started {
	t.Helper()
	return startRun(t, []string{"PINFOLD_HOST"}, append([]string{"--host", d.host}, args...)...)
}

// eventJSON is an event as events -o json prints it.
type eventJSON struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	App    string `json:"app"`
	Parent string `json:"parent"`
	Value  string `json:"value"`
	Detail string `json:"detail"`
}

func parseEvents(t testing.TB, out string) []eventJSON {
	t.Helper()
	var evs []eventJSON
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var e eventJSON
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("event line %q: %v", l, err)
		}
		evs = append(evs, e)
	}
	return evs
}

var idRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

// runDetached starts an app with run -d and returns its id.
func (d *testDaemon) runDetached(t testing.TB, args ...string) string {
	t.Helper()
	out := d.ok(t, append([]string{"run", "-d"}, args...)...)
	id := strings.TrimSpace(out)
	if !idRE.MatchString(id) {
		t.Fatalf("run -d printed %q, want an app id", out)
	}
	return id
}

// waitLog follows a detached app's log until it holds want.
func (d *testDaemon) waitLog(t testing.TB, id, want string) {
	t.Helper()
	s := d.start(t, "logs", "-f", id)
	for {
		l := s.lines.next(t)
		if l == want {
			s.cmd.Process.Kill()
			return
		}
	}
}

// TestClientRunExitStatus: pinfold --host ... run exits like an embedded
// run: the app's code, 128+N, 125/126/127 with the same messages.
func TestClientRunExitStatus(t *testing.T) {
	d := startDaemon(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr []string // substrings of stderr
	}{
		{name: "exit 0", args: []string{"--", "sh", "-c", "exit 0"}, code: 0},
		{name: "exit 3", args: []string{"--", "sh", "-c", "exit 3"}, code: 3},
		{name: "exit 255", args: []string{"--", "sh", "-c", "exit 255"}, code: 255},
		{name: "SIGSEGV", args: probeArgs("segv"), code: 128 + int(syscall.SIGSEGV)},
		{
			name: "timeout", args: []string{"--timeout", "300ms", "--", "sleep", "1000"}, code: 137,
			stderr: []string{"pinfold: timeout: killed \"sleep 1000\" after 300ms (wall-time limit)\n"},
		},
		{
			name: "not found by path", args: []string{"--", "/nonexistent"}, code: 127,
			stderr: []string{"pinfold: sandbox init: exec: ", "/nonexistent"},
		},
		{
			name: "not found in PATH", args: []string{"--", "no-such-command"}, code: 127,
			stderr: []string{"pinfold: sandbox init: exec: ", "no-such-command: command not found"},
		},
		{
			name: "not executable", args: []string{"--", "/etc/passwd"}, code: 126,
			stderr: []string{"pinfold: sandbox init: exec: ", "/etc/passwd"},
		},
		{
			name: "a directory", args: []string{"--", "/tmp"}, code: 126,
			stderr: []string{"pinfold: sandbox init: exec: ", "/tmp: is a directory"},
		},
		{
			name: "workdir missing", args: []string{"--workdir", "/nonexistent", "--", "true"}, code: 125,
			stderr: []string{"pinfold: sandbox init: chdir: "},
		},
		{
			name: "unknown policy", args: []string{"--policy", "nope", "--", "true"}, code: 125,
			stderr: []string{"pinfold: no policy \"nope\""},
		},
		{
			name: "no command", args: []string{}, code: 125,
			stderr: []string{"pinfold: run: no command given"},
		},
		{
			name: "state dir", args: []string{"--state-dir", "/tmp", "--", "true"}, code: 125,
			stderr: []string{"pinfold: run: --state-dir is for embedded runs"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := d.pinfoldErr(t, nil, append([]string{"run"}, tc.args...)...)
			if r.code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", r.code, tc.code, r.stderr)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, r.stderr)
				}
			}
			if strings.Contains(r.stderr, "rpc error") || strings.Contains(r.stderr, "failed_precondition") {
				t.Errorf("stderr shows the API's codes, not the daemon's words:\n%s", r.stderr)
			}
		})
	}
	if out := d.ok(t, "ps", "-a", "-q"); out != "" {
		t.Errorf("attached apps still listed after their runs: %q", out)
	}
}

// TestClientRunStdio: stdout, stderr and stdin pass through the daemon
// byte for byte.
func TestClientRunStdio(t *testing.T) {
	d := startDaemon(t)
	t.Run("stdout and stderr", func(t *testing.T) {
		r := d.pinfoldErr(t, nil, "run", "--", "sh", "-c", "echo out; echo err >&2; printf 'no newline'")
		if r.code != 0 || r.stdout != "out\nno newline" || r.stderr != "err\n" {
			t.Errorf("exit %d stdout %q stderr %q; want 0, \"out\\nno newline\", \"err\\n\"", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		r := d.pinfoldErr(t, strings.NewReader("hi\n"), "run", "--", "cat")
		if r.code != 0 || r.stdout != "hi\n" {
			t.Errorf("echo hi | pinfold run -- cat: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("stdin 4 MiB", func(t *testing.T) {
		in := make([]byte, 4<<20)
		rand.Read(in)
		r := d.pinfoldErr(t, bytes.NewReader(in), "run", "--", "cat")
		if r.code != 0 || r.stdout != string(in) {
			t.Errorf("cat of 4 MiB: exit %d, %d bytes back (equal: %v); stderr %q", r.code, len(r.stdout), r.stdout == string(in), r.stderr)
		}
	})
	t.Run("stdin /dev/null", func(t *testing.T) {
		r := d.pinfoldErr(t, nil, "run", "--", "sh", "-c", "cat; echo done")
		if r.code != 0 || r.stdout != "done\n" {
			t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("environment", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), hangTimeout)
		defer cancel()
		cmd := command(ctx, []string{"PINFOLD_HOST", "TERM=xterm-pinfold", "PINFOLD_TEST_CANARY=leak"}, "--host", d.host, "run", "--env", "FOO=bar", "--", "env")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("env: %v", err)
		}
		got := strings.Split(strings.TrimSpace(string(out)), "\n")
		for _, want := range []string{"FOO=bar", "TERM=xterm-pinfold"} {
			if !slices.Contains(got, want) {
				t.Errorf("app environment %q lacks %s", got, want)
			}
		}
		if strings.Contains(string(out), "CANARY") {
			t.Errorf("the client's environment leaked into the app: %q", got)
		}
	})
}

// TestClientRunForwardsSignals: SIGTERM, SIGINT and SIGHUP sent to the
// client reach the app, also while stdin is stuck behind an app that does
// not read it.
func TestClientRunForwardsSignals(t *testing.T) {
	d := startDaemon(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		name := strings.TrimPrefix(signalName(sig), "SIG")
		t.Run(name, func(t *testing.T) {
			s := d.start(t, append([]string{"run"}, probeArgs("trap", name, "7")...)...)
			if l := s.lines.next(t); l != "ready" {
				t.Fatalf("app said %q, want ready; stderr:\n%s", l, s.stderr.String())
			}
			if err := s.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if l := s.lines.next(t); l != "got SIG"+name {
				t.Errorf("app said %q, want got SIG%s", l, name)
			}
			if code := s.wait(t); code != 7 {
				t.Errorf("exit status %d, want 7; stderr:\n%s", code, s.stderr.String())
			}
		})
	}
	t.Run("stdin unread", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cmd := command(ctx, []string{"PINFOLD_HOST"}, append([]string{"--host", d.host, "run"}, probeArgs("trap", "TERM", "7")...)...)
		cmd.Stdin = zeros{}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr syncBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("pinfold run's stderr:\n%s", stderr.String())
			}
		})
		lines := newLineReader(out)
		if l := lines.next(t); l != "ready" {
			t.Fatalf("app said %q, want ready; stderr:\n%s", l, stderr.String())
		}
		// The app reads none of the endless stdin: the stream's flow
		// control windows fill up. The signal must get through anyway.
		cmd.Process.Signal(syscall.SIGTERM)
		if l := lines.next(t); l != "got SIGTERM" {
			t.Errorf("app said %q, want got SIGTERM", l)
		}
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		select {
		case err := <-waited:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Errorf("pinfold run: %v, want exit status 7; stderr:\n%s", err, stderr.String())
			}
		case <-time.After(hangTimeout):
			cmd.Process.Kill()
			t.Fatalf("pinfold run did not end after the app did; stderr:\n%s", stderr.String())
		}
	})
}

// zeros is an endless stdin.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestClientRunSummary: --stats and -o json through the daemon, in the
// embedded run's format.
func TestClientRunSummary(t *testing.T) {
	d := startDaemon(t)
	t.Run("stats", func(t *testing.T) {
		r := d.pinfoldErr(t, nil, "run", "--stats", "--", "sh", "-c", "exit 3")
		if r.code != 3 {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
		for _, re := range []string{
			`(?m)^pinfold: app [0-9a-f]{16} exit code 3$`,
			`(?m)^  oom killed:   no$`,
			`(?m)^  timed out:    no$`,
			`(?m)^  start:        \S+ \(.+\)$`,
			`(?m)^  wall time:    \S+$`,
		} {
			if !regexp.MustCompile(re).MatchString(r.stderr) {
				t.Errorf("stats do not match %s:\n%s", re, r.stderr)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		r := d.pinfoldErr(t, nil, "run", "-o", "json", "--name", "sum", "--", "sh", "-c", "exit 3")
		if r.code != 3 {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
		s := lastJSON(t, r.stderr)
		if len(s.ID) != 16 || s.Name != "sum" || s.ExitCode != 3 || s.SignalName != "" || s.Error != "" {
			t.Errorf("summary id %q name %q exitCode %d signal %q error %q; want a 16-hex id, sum, 3, none, none", s.ID, s.Name, s.ExitCode, s.SignalName, s.Error)
		}
		if s.Exit == nil || s.Exit.Code != 3 || s.Exit.WallNs <= 0 {
			t.Errorf("exit %+v, want code 3 and a wall time", s.Exit)
		}
		if len(s.Start) == 0 {
			t.Errorf("no start phases")
		}
	})
	t.Run("json killed", func(t *testing.T) {
		r := d.pinfoldErr(t, nil, "run", "-o", "json", "--timeout", "200ms", "--", "sleep", "1000")
		if r.code != 137 {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
		s := lastJSON(t, r.stderr)
		if s.ExitCode != 137 || s.SignalName != "SIGKILL" || s.Exit == nil || !s.Exit.TimedOut || s.Exit.Signal != int(syscall.SIGKILL) {
			t.Errorf("summary %+v exit %+v; want 137, SIGKILL, timed out", s, s.Exit)
		}
	})
	t.Run("json start failure", func(t *testing.T) {
		r := d.pinfoldErr(t, nil, "run", "-o", "json", "--workdir", "/nonexistent", "--", "true")
		if r.code != 125 {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
		var s summaryJSON
		if err := json.Unmarshal([]byte(strings.SplitN(r.stderr, "\n", 2)[0]), &s); err != nil {
			t.Fatalf("first line of stderr is not the JSON summary: %v\n%s", err, r.stderr)
		}
		if s.ExitCode != -1 || !strings.Contains(s.Error, "chdir") {
			t.Errorf("summary %+v; want exitCode -1 and an error naming chdir", s)
		}
	})
}

// appJSON is the part of inspect -o json this test reads.
type appJSON struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	State      string   `json:"state"`
	Policy     string   `json:"policy"`
	PolicyHash string   `json:"policyHash"`
	Args       []string `json:"args"`
	Pid        int      `json:"pid"`
	Detached   bool     `json:"detached"`
	Exit       *struct {
		Code     int  `json:"code"`
		Signal   int  `json:"signal"`
		TimedOut bool `json:"timedOut"`
	} `json:"exit"`
	Cleanup []struct {
		Resource string `json:"resource"`
		Error    string `json:"error"`
	} `json:"cleanup"`
}

func (d *testDaemon) inspect(t testing.TB, id string) appJSON {
	t.Helper()
	var a appJSON
	if err := json.Unmarshal([]byte(d.ok(t, "inspect", "-o", "json", id)), &a); err != nil {
		t.Fatalf("inspect -o json: %v", err)
	}
	return a
}

// TestClientDetached: run -d, logs -f, wait, inspect, ps, rm.
func TestClientDetached(t *testing.T) {
	d := startDaemon(t)
	// stdout and stderr alternate: the log keeps them in the order they
	// were written (LogsResponse: "interleaved as written").
	script := "for i in 1 2 3 4; do echo out$i; echo err$i >&2; done; read line; echo bye; exit 5"
	id := d.runDetached(t, "--name", "det", "--", "sh", "-c", script)
	want := []string{"out1", "err1", "out2", "err2", "out3", "err3", "out4", "err4", "bye"}
	// The app waits on stdin, which is /dev/null for a detached app: it
	// reads EOF at once and finishes.
	logs := d.start(t, "logs", "-f", id)
	var got []string
	for range want {
		got = append(got, logs.lines.next(t))
	}
	if !slices.Equal(got, want) {
		t.Errorf("logs -f: %q, want %q", got, want)
	}
	if code := logs.wait(t); code != 0 {
		t.Errorf("logs -f: exit %d once the app exited; stderr:\n%s", code, logs.stderr.String())
	}
	if out := d.ok(t, "wait", id); out != "5\n" {
		t.Errorf("wait printed %q, want 5", out)
	}
	if out := d.ok(t, "logs", id); out != strings.Join(want, "\n")+"\n" {
		t.Errorf("logs after the exit: %q", out)
	}
	a := d.inspect(t, id)
	if a.ID != id || a.Name != "det" || a.State != "cleaned" && a.State != "exited" || a.Policy != "default" ||
		len(a.PolicyHash) != 64 || !a.Detached || a.Exit == nil || a.Exit.Code != 5 || len(a.Args) != 3 {
		t.Errorf("inspect: %+v", a)
	}
	if len(a.Cleanup) == 0 {
		t.Errorf("inspect shows no cleanup steps")
	}
	for _, s := range a.Cleanup {
		if s.Error != "" {
			t.Errorf("cleanup of %s failed: %s", s.Resource, s.Error)
		}
	}
	human := d.ok(t, "inspect", id[:6])
	for _, re := range []string{`(?m)^ID:\s+` + id + `$`, `(?m)^Name:\s+det$`, `(?m)^Exit:\s+5$`, `(?m)^Policy:\s+default \(sha256 [0-9a-f]{64}\)$`, `(?m)^Command:\s+sh -c "for i in 1 2 3 4;`} {
		if !regexp.MustCompile(re).MatchString(human) {
			t.Errorf("inspect (by a prefix of the id) does not match %s:\n%s", re, human)
		}
	}
	if out := d.ok(t, "ps"); strings.Contains(out, id) {
		t.Errorf("ps lists an exited app:\n%s", out)
	}
	ps := d.ok(t, "ps", "-a")
	if !regexp.MustCompile(`(?m)^ID\s+NAME\s+POLICY\s+STATE\s+PID\s+CREATED\s+EXIT\s+COMMAND\n` + id + `\s+det\s+default\s+(exited|cleaned)\s+-\s+(just now|\d+ \w+ ago)\s+5\s+sh -c for i`).MatchString(ps) {
		t.Errorf("ps -a:\n%s", ps)
	}
	if out := d.ok(t, "rm", "det"); out != id+"\n" {
		t.Errorf("rm (by name) printed %q, want the id", out)
	}
	if out := d.ok(t, "ps", "-aq"); strings.Contains(out, id) {
		t.Errorf("ps -aq lists a removed app: %q", out)
	}
	r := d.pinfoldErr(t, nil, "inspect", id)
	if r.code != 1 || r.stderr != "pinfold: no app "+id+"\n" {
		t.Errorf("inspect of a removed app: exit %d stderr %q; want 1 and the daemon's words", r.code, r.stderr)
	}
	if r := d.pinfoldErr(t, nil, "logs", id); r.code != 1 {
		t.Errorf("logs of a removed app: exit %d, want 1", r.code)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.state, "logs")); len(ents) != 0 {
		t.Errorf("logs left after rm: %v", ents)
	}
}

// TestClientAppControl: ps, stats, kill, stop, wait and rm on running
// apps.
func TestClientAppControl(t *testing.T) {
	d := startDaemon(t)
	trap := d.runDetached(t, append([]string{"--name", "trap"}, probeArgs("trap", "USR1", "9")...)...)
	sleeper := d.runDetached(t, "--name", "sleeper", "--", "sleep", "100000")
	d.waitLog(t, trap, "ready")

	ps := d.ok(t, "ps")
	for _, id := range []string{trap, sleeper} {
		if !regexp.MustCompile(`(?m)^` + id + `\s+\S+\s+default\s+running\s+[1-9][0-9]*\s`).MatchString(ps) {
			t.Errorf("ps does not show %s running with a pid:\n%s", id, ps)
		}
	}
	var list struct {
		Apps []appJSON `json:"apps"`
	}
	if err := json.Unmarshal([]byte(d.ok(t, "ps", "-o", "json")), &list); err != nil || len(list.Apps) != 2 {
		t.Errorf("ps -o json: %v, %d apps", err, len(list.Apps))
	}

	stats := d.ok(t, "stats", sleeper)
	if !regexp.MustCompile(`(?m)^ID\s+CPU USER\s+CPU SYSTEM\s+THROTTLED\s+MEMORY\s+PEAK\s+LIMIT\s+PIDS\s+PEAK\s+LIMIT\s+OOM KILLS\n` + sleeper + `\s.*\s512\.0 MiB\s+1\s+\d+\s+256\s+0\n$`).MatchString(stats) {
		t.Errorf("stats:\n%s", stats)
	}
	var u struct {
		MemoryLimit string `json:"memoryLimit"`
		PidsCurrent string `json:"pidsCurrent"`
	}
	if err := json.Unmarshal([]byte(d.ok(t, "stats", "-o", "json", sleeper)), &u); err != nil || u.MemoryLimit != strconv.Itoa(512<<20) || u.PidsCurrent != "1" {
		t.Errorf("stats -o json: %+v (%v)", u, err)
	}

	// rm refuses a running app without -f, in the daemon's words.
	r := d.pinfoldErr(t, nil, "rm", sleeper)
	if r.code != 1 || !strings.Contains(r.stderr, "stop it first") || strings.HasPrefix(r.stderr, "pinfold: failed_precondition") {
		t.Errorf("rm of a running app: exit %d stderr %q", r.code, r.stderr)
	}

	if out := d.ok(t, "kill", "-s", "usr1", "trap"); out != trap+"\n" {
		t.Errorf("kill -s usr1 printed %q", out)
	}
	if out := d.ok(t, "wait", trap); out != "9\n" {
		t.Errorf("wait after the trapped signal: %q, want 9", out)
	}

	// sleep, as pid 1 of its namespace, ignores SIGTERM: stop kills it
	// after the grace period.
	if out := d.ok(t, "stop", sleeper, "-t", "100ms"); out != sleeper+"\n" {
		t.Errorf("stop printed %q", out)
	}
	if a := d.inspect(t, sleeper); a.Exit == nil || a.Exit.Code != 137 || a.Exit.Signal != int(syscall.SIGKILL) {
		t.Errorf("after stop: %+v, want killed (137)", a)
	}

	// kill without -s kills everything; rm -f a running app.
	k := d.runDetached(t, "--", "sleep", "100000")
	if out := d.ok(t, "kill", k); out != k+"\n" {
		t.Errorf("kill printed %q", out)
	}
	if out := d.ok(t, "wait", k); out != "137\n" {
		t.Errorf("wait after kill: %q, want 137", out)
	}
	f := d.runDetached(t, "--", "sleep", "100000")
	if out := d.ok(t, "rm", "-f", f, trap, sleeper, k); out != strings.Join([]string{f, trap, sleeper, k}, "\n")+"\n" {
		t.Errorf("rm -f printed %q", out)
	}
	if out := d.ok(t, "ps", "-a", "-q"); out != "" {
		t.Errorf("apps left after rm -f: %q", out)
	}

	// Errors name what is wrong, in the daemon's words; status 1 or 2.
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"wait", "0123456789abcdef"}, 1, "pinfold: no app 0123456789abcdef\n"},
		{[]string{"kill", "-s", "NOPE", "x"}, 2, "pinfold: kill: invalid value \"NOPE\" for flag -s: \"NOPE\" is not a signal (names such as TERM or SIGHUP, or numbers) (see pinfold kill -h)\n"},
		{[]string{"inspect"}, 2, "pinfold: inspect: give exactly one app id (see pinfold inspect -h)\n"},
		{[]string{"stop", "nothing"}, 1, "pinfold: no app nothing\n"},
	} {
		r := d.pinfoldErr(t, nil, tc.args...)
		if r.code != tc.code || r.stderr != tc.stderr {
			t.Errorf("pinfold %q: exit %d stderr %q; want %d %q", tc.args, r.code, r.stderr, tc.code, tc.stderr)
		}
	}
}

// TestClientGoneKillsApp: an attached app dies with its client.
func TestClientGoneKillsApp(t *testing.T) {
	d := startDaemon(t)
	s := d.start(t, "run", "--", "sh", "-c", "echo ready; exec sleep 100000")
	if l := s.lines.next(t); l != "ready" {
		t.Fatalf("app said %q, want ready; stderr:\n%s", l, s.stderr.String())
	}
	id := strings.TrimSpace(d.ok(t, "ps", "-q"))
	if !idRE.MatchString(id) {
		t.Fatalf("ps -q: %q, want the running app's id", id)
	}
	s.cmd.Process.Kill()
	s.wait(t)
	// wait returns once the app has exited; if the daemon removed the
	// attached app already, there is nothing to wait for.
	r := d.pinfoldErr(t, nil, "wait", id)
	if !(r.code == 0 && r.stdout == "137\n" || r.code == 1 && strings.Contains(r.stderr, "no app "+id)) {
		t.Errorf("wait after the client was killed: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	// The stop check (after the test) finds no cgroup of it left.
}

// TestClientConcurrentRuns: 200 `pinfold run` processes at once through
// one daemon all get their own exit status and output.
func TestClientConcurrentRuns(t *testing.T) {
	d := startDaemon(t)
	const n = 200
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.pinfoldErr(t, nil, "run", "--", "sh", "-c", fmt.Sprintf("echo %d; exit %d", i, i%256))
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != i%256 || r.stdout != fmt.Sprintf("%d\n", i) {
			t.Errorf("run %d: exit %d stdout %q stderr %q", i, r.code, r.stdout, r.stderr)
		}
	}
}

// TestClientEvents: events replays from an id, filters by app, and
// follows; every event of an app's run is caused by the previous one,
// back to the API call.
func TestClientEvents(t *testing.T) {
	d := startDaemon(t)
	follow := d.start(t, "events", "-f", "-o", "json")
	id := d.runDetached(t, "--", "true")
	d.ok(t, "wait", id)

	all := parseEvents(t, d.ok(t, "events", "--since", "0", "-o", "json"))
	byID := map[string]eventJSON{}
	var mine []eventJSON
	for _, e := range all {
		byID[e.ID] = e
		if e.App == id {
			mine = append(mine, e)
		}
	}
	var kinds []string
	for _, e := range mine {
		kinds = append(kinds, e.Kind)
	}
	for _, k := range []string{"app.created", "app.running", "app.exited", "app.cleaned"} {
		if !slices.Contains(kinds, k) {
			t.Errorf("events of %s lack %s: %q", id, k, kinds)
		}
	}
	if len(mine) > 0 {
		created := mine[0]
		parent, ok := byID[created.Parent]
		if created.Kind != "app.created" || !ok || parent.Kind != "api.call" || !strings.Contains(parent.Detail, "Create") {
			t.Errorf("first event of the app %+v, caused by %+v; want app.created caused by the Create call", created, parent)
		}
		for _, e := range mine[1:] {
			if _, ok := byID[e.Parent]; !ok {
				t.Errorf("event %+v: its parent is not in the replay", e)
			}
		}
	}

	// --since: only later events; --app: only that app's.
	if len(all) > 2 {
		after := all[len(all)-2].ID
		later := parseEvents(t, d.ok(t, "events", "--since", after, "-o", "json"))
		if len(later) == 0 || later[0].ID == after {
			t.Errorf("events --since %s: %+v", after, later)
		}
		for _, e := range later {
			a, _ := strconv.ParseUint(e.ID, 10, 64)
			b, _ := strconv.ParseUint(after, 10, 64)
			if a <= b {
				t.Errorf("events --since %s printed event %s", after, e.ID)
			}
		}
	}
	for _, e := range parseEvents(t, d.ok(t, "events", "--app", id, "-o", "json")) {
		if e.App != id {
			t.Errorf("events --app %s printed %+v", id, e)
		}
	}
	human := d.ok(t, "events", "--app", id)
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}  #\d+\s+app\.created\s+app=` + id + ` parent=#\d+ detail="default"`).MatchString(human) {
		t.Errorf("events (human) does not show app.created of %s:\n%s", id, human)
	}

	// The follower saw the app's events live.
	for {
		var e eventJSON
		l := follow.lines.next(t)
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("events -f printed %q: %v", l, err)
		}
		if e.App == id && e.Kind == "app.cleaned" {
			break
		}
	}
	follow.cmd.Process.Kill()
}

// TestClientPolicy: policy apply reports every error as the validator
// does and exits 2; a good file is applied and usable by name.
func TestClientPolicy(t *testing.T) {
	d := startDaemon(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	doc := `apiVersion: pinfold/v1
kind: SandboxPolicy
metadata:
  name: Bad_Name
spec:
  hostname: "-bad"
  resources:
    memory: 1Ki
    pids: 0
  colour: blue
  limits:
    wallTime: soon
`
	if err := os.WriteFile(bad, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: good\nspec:\n  hostname: goodhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	local := pinfold(t, []string{"PINFOLD_HOST"}, "policy", "validate", bad)
	wantLines := strings.Split(strings.TrimSuffix(local.stderr, "\n"), "\n")
	if local.code != 2 || len(wantLines) != 6 {
		t.Fatalf("local validate: exit %d, %d lines:\n%s", local.code, len(wantLines), local.stderr)
	}
	for _, sub := range []string{"apply", "validate"} {
		t.Run(sub, func(t *testing.T) {
			r := d.pinfoldErr(t, nil, "policy", sub, bad)
			if r.code != 2 {
				t.Errorf("exit %d, want 2", r.code)
			}
			// Exactly the lines the local validator prints.
			if r.stderr != local.stderr {
				t.Errorf("stderr:\n%s\nwant (as pinfold policy validate prints):\n%s", r.stderr, local.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(d.policies, "Bad_Name.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a rejected policy was stored: %v", err)
	}

	if out := d.ok(t, "policy", "validate", good); out != good+": ok\n" {
		t.Errorf("validate good: %q", out)
	}
	out := d.ok(t, "policy", "apply", good)
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(good) + `: applied policy good \(sha256 [0-9a-f]{12}\)\n$`).MatchString(out) {
		t.Errorf("apply good: %q", out)
	}
	r := d.pinfoldErr(t, nil, "policy", "apply", good, bad)
	if r.code != 2 || !strings.Contains(r.stdout, "applied policy good") || r.stderr != local.stderr {
		t.Errorf("apply good bad: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	list := d.ok(t, "policy", "list")
	if !regexp.MustCompile(`(?m)^NAME\s+HASH\s+FILE\s+LOADED$`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^default\s+[0-9a-f]{12}\s+\(built in\)`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^good\s+[0-9a-f]{12}\s+`+regexp.QuoteMeta(filepath.Join(d.policies, "good.yaml"))).MatchString(list) {
		t.Errorf("policy list:\n%s", list)
	}
	if out := d.ok(t, "policy", "list", "-q"); out != "default\ngood\n" {
		t.Errorf("policy list -q: %q", out)
	}
	if y := d.ok(t, "policy", "get", "good"); !strings.Contains(y, "name: good") || !strings.Contains(y, "hostname: goodhost") {
		t.Errorf("policy get good:\n%s", y)
	}
	var pj struct {
		Name string `json:"name"`
		Hash string `json:"hash"`
		YAML string `json:"yaml"`
	}
	if err := json.Unmarshal([]byte(d.ok(t, "policy", "get", "-o", "json", "good")), &pj); err != nil || pj.Name != "good" || len(pj.Hash) != 64 || pj.YAML == "" {
		t.Errorf("policy get -o json: %+v %v", pj, err)
	}

	if out := d.ok(t, "run", "--policy", "good", "--", "hostname"); out != "goodhost\n" {
		t.Errorf("run --policy good -- hostname: %q", out)
	}
	id := d.runDetached(t, "--policy", "good", "--", "true")
	d.ok(t, "wait", id)
	if a := d.inspect(t, id); a.Policy != "good" || !strings.HasPrefix(a.PolicyHash, pj.Hash[:12]) {
		t.Errorf("inspect of an app of policy good: policy %q hash %q, want good %s", a.Policy, a.PolicyHash, pj.Hash)
	}
	d.ok(t, "rm", id)

	d.ok(t, "policy", "reload")
	if out := d.ok(t, "policy", "rm", "good"); out != "good\n" {
		t.Errorf("policy rm: %q", out)
	}
	r = d.pinfoldErr(t, nil, "run", "--policy", "good", "--", "true")
	if r.code != 125 || r.stderr != "pinfold: no policy \"good\" (pinfold policy list shows the loaded ones)\n" {
		t.Errorf("run with a deleted policy: exit %d stderr %q", r.code, r.stderr)
	}
	if r := d.pinfoldErr(t, nil, "policy", "get", "good"); r.code != 1 || !strings.Contains(r.stderr, `no policy "good"`) {
		t.Errorf("policy get of a deleted policy: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestClientInfoVersion: info and version with a daemon.
func TestClientInfoVersion(t *testing.T) {
	d := startDaemon(t)
	info := d.ok(t, "info")
	for _, re := range []string{
		`(?m)^Daemon:\s+` + regexp.QuoteMeta(d.host) + `$`,
		`(?m)^Daemon version:\s+\S+$`,
		`(?m)^Kernel:\s+\S+$`,
		`(?m)^Cgroups:\s+(legacy|hybrid|unified) \(.*memory.*\)$`,
		`(?m)^pidfd:\s+yes$`,
		`(?m)^State dir:\s+` + regexp.QuoteMeta(d.state) + `$`,
		`(?m)^Apps running:\s+0$`,
	} {
		if !regexp.MustCompile(re).MatchString(info) {
			t.Errorf("info does not match %s:\n%s", re, info)
		}
	}
	var ij struct {
		CgroupMode string `json:"cgroupMode"`
		StateDir   string `json:"stateDir"`
		PolicyDir  string `json:"policyDir"`
		Pidfd      bool   `json:"pidfd"`
	}
	if err := json.Unmarshal([]byte(d.ok(t, "info", "-o", "json")), &ij); err != nil || ij.CgroupMode == "" || ij.StateDir != d.state || ij.PolicyDir != d.policies || !ij.Pidfd {
		t.Errorf("info -o json: %+v %v", ij, err)
	}
	v := d.ok(t, "version")
	if !regexp.MustCompile(`^pinfold \S+\ndaemon \S+\n$`).MatchString(v) {
		t.Errorf("version: %q", v)
	}
}

// TestClientWithoutDaemon: the daemon-only commands say what is missing;
// info works embedded; an unreachable daemon is named.
func TestClientWithoutDaemon(t *testing.T) {
	for _, cmd := range []string{"ps", "inspect", "logs", "stats", "stop", "kill", "wait", "rm", "events"} {
		args := []string{cmd}
		if cmd != "ps" && cmd != "events" {
			args = append(args, "0123456789abcdef")
		}
		r := pinfold(t, []string{"PINFOLD_HOST"}, args...)
		want := "pinfold " + cmd + ": no daemon: set --host or PINFOLD_HOST (e.g. unix:///run/pinfold/pinfold.sock)\n"
		if r.code != 1 || r.stderr != want {
			t.Errorf("pinfold %s: exit %d stderr %q; want 1 %q", cmd, r.code, r.stderr, want)
		}
	}
	r := pinfold(t, []string{"PINFOLD_HOST"}, "policy", "apply", "x.yaml")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "pinfold policy apply: no daemon: ") {
		t.Errorf("policy apply: exit %d stderr %q", r.code, r.stderr)
	}
	r = pinfold(t, []string{"PINFOLD_HOST"}, "info")
	if r.code != 0 || !strings.Contains(r.stdout, "Daemon:              none (embedded") || !regexp.MustCompile(`(?m)^Kernel:\s+\S+`).MatchString(r.stdout) {
		t.Errorf("info without a daemon: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}

	sock := filepath.Join(t.TempDir(), "none.sock")
	want := "pinfold: cannot reach the pinfold daemon at unix://" + sock + ": no such file or directory (is pinfold daemon running and serving that socket?)\n"
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"ps"}, 1},
		{[]string{"run", "--", "true"}, 125},
		{[]string{"run", "-d", "--", "true"}, 125},
		{[]string{"info"}, 1},
	} {
		r := pinfold(t, []string{"PINFOLD_HOST=unix://" + sock}, tc.args...)
		if r.code != tc.code || r.stderr != want {
			t.Errorf("pinfold %q with nothing at the socket: exit %d stderr %q; want %d %q", tc.args, r.code, r.stderr, tc.code, want)
		}
	}
	r = pinfold(t, nil, "--host", "tcp://127.0.0.1:1", "ps")
	if r.code != 2 || !strings.Contains(r.stderr, "use unix:///path/to/pinfold.sock") {
		t.Errorf("a tcp host: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestClientRunStopTimeout: as with an embedded run, an app that does not
// exit after a forwarded SIGTERM is killed when its policy's stopTimeout
// runs out. (sleep has no SIGTERM handler, and as pid 1 of its namespace
// it does not die of one.)
func TestClientRunStopTimeout(t *testing.T) {
	d := startDaemon(t)
	pol := filepath.Join(t.TempDir(), "stop.yaml")
	doc := "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: stop\nspec:\n  limits:\n    stopTimeout: 200ms\n"
	if err := os.WriteFile(pol, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	d.ok(t, "policy", "apply", pol)
	s := d.start(t, "run", "--policy", "stop", "--", "sh", "-c", "echo ready; exec sleep 100000")
	if l := s.lines.next(t); l != "ready" {
		t.Fatalf("app said %q, want ready; stderr:\n%s", l, s.stderr.String())
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// A hang guard much longer than the 200ms stopTimeout, shorter than
	// hangTimeout so a daemon that never escalates fails quickly.
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the app still runs 30s after SIGTERM with a 200ms stopTimeout: the daemon does not kill it when the grace period ends")
	}
	if code := s.wait(t); code != 137 {
		t.Errorf("exit status %d, want 137; stderr:\n%s", code, s.stderr.String())
	}
}
