package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/syscalls/python"
)

// TestRunExitStatus checks pinfold run's exit status, docker run's
// convention: the app's code, 128+N for signal N, 125 when pinfold fails,
// 126 when the command cannot be executed, 127 when it is not found.
func TestRunExitStatus(t *testing.T) {
	requireRoot(t)
	state := newStateDir(t)
	missing := filepath.Join(t.TempDir(), "missing")
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
			// A bind of a missing host path is pinfold failing to build
			// the sandbox: 125, like docker run with a missing bind
			// source, naming the path.
			name: "bind source missing", args: []string{"--bind", missing + ":/x", "--", "true"}, code: 125,
			stderr: []string{missing},
		},
		// Bad invocations of run are pinfold failing to run anything:
		// 125, as docker run does for bad flags.
		{
			name: "no command", args: []string{}, code: 125,
			stderr: []string{"pinfold: run: no command given"},
		},
		{
			name: "unknown flag", args: []string{"--bogus", "--", "true"}, code: 125,
			stderr: []string{"pinfold: run: ", "bogus"},
		},
		{
			name: "unknown output format", args: []string{"-o", "yaml", "--", "true"}, code: 125,
			stderr: []string{"pinfold: run: -o \"yaml\""},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runIn(t, state, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", r.code, tc.code, r.stderr)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, r.stderr)
				}
			}
		})
	}
}

// TestRunEnvironment: the app gets PATH, HOME, LANG, the caller's TERM (if
// set), the --env values and pinfold's PINFOLD_CTL_FD and PYTHONPATH, and
// nothing else of the caller's environment.
func TestRunEnvironment(t *testing.T) {
	requireRoot(t)
	state := newStateDir(t)
	// Sorted; PINFOLD_CTL_FD and PYTHONPATH are pinfold's own (the control
	// channel and its Python client).
	base := []string{"EMPTY=", "FOO=bar", "HOME=/tmp", "LANG=C.UTF-8", "PATH=" + sandbox.DefaultPath, sandbox.EnvCtlFD + "=3", "PYTHONPATH=" + python.Dir}
	tests := []struct {
		name string
		env  []string
		want []string
	}{
		{"TERM set", []string{"TERM=xterm-pinfold", "PINFOLD_TEST_CANARY=leak"}, append(slices.Clone(base), "TERM=xterm-pinfold")},
		{"TERM unset", []string{"TERM", "PINFOLD_TEST_CANARY=leak"}, base},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := pinfold(t, tc.env, "run", "--state-dir", state, "--env", "FOO=bar", "--env", "EMPTY=", "--", "env")
			if r.code != 0 {
				t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
			}
			got := strings.Split(strings.TrimSpace(r.stdout), "\n")
			sort.Strings(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("app environment = %q, want exactly %q", got, tc.want)
			}
		})
	}
}

// TestRunForwardsSignals: SIGTERM, SIGINT and SIGHUP sent to pinfold run
// reach an app that traps them.
func TestRunForwardsSignals(t *testing.T) {
	requireRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		name := strings.TrimPrefix(signalName(sig), "SIG")
		t.Run(name, func(t *testing.T) {
			state := newStateDir(t)
			script := fmt.Sprintf(`trap "echo got; exit 7" %s; echo ready; while :; do sleep 0.1; done`, name)
			s := startRun(t, nil, "run", "--state-dir", state, "--", "sh", "-c", script)
			if l := s.lines.next(t); l != "ready" {
				t.Fatalf("app said %q, want ready; stderr:\n%s", l, s.stderr.String())
			}
			if err := s.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if l := s.lines.next(t); l != "got" {
				t.Errorf("app said %q, want got", l)
			}
			if code := s.wait(t); code != 7 {
				t.Errorf("exit status %d, want 7; stderr:\n%s", code, s.stderr.String())
			}
		})
	}
}

// TestRunStopTimeout: an app that does not exit after a forwarded SIGTERM
// is killed when the policy's stopTimeout runs out. (sleep has no SIGTERM
// handler, and as pid 1 of its namespace it does not die of one.)
func TestRunStopTimeout(t *testing.T) {
	requireRoot(t)
	state := newStateDir(t)
	pol := filepath.Join(t.TempDir(), "stop.yaml")
	doc := "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: stop\nspec:\n  limits:\n    stopTimeout: 200ms\n"
	if err := os.WriteFile(pol, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startRun(t, nil, "run", "--state-dir", state, "--policy", pol, "--", "sh", "-c", "echo ready; exec sleep 1000")
	if l := s.lines.next(t); l != "ready" {
		t.Fatalf("app said %q, want ready; stderr:\n%s", l, s.stderr.String())
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := s.wait(t); code != 137 {
		t.Errorf("exit status %d, want 137; stderr:\n%s", code, s.stderr.String())
	}
	if want := "pinfold: app did not exit within 200ms of the signal; killing everything in its sandbox\n"; !strings.Contains(s.stderr.String(), want) {
		t.Errorf("stderr does not contain %q:\n%s", want, s.stderr.String())
	}
}

// summaryJSON is the -o json summary, as a user's script would read it.
type summaryJSON struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	ExitCode   int    `json:"exitCode"`
	SignalName string `json:"signalName"`
	Error      string `json:"error"`
	Exit       *struct {
		Code      int   `json:"code"`
		Signal    int   `json:"signal"`
		OOMKilled bool  `json:"oomKilled"`
		TimedOut  bool  `json:"timedOut"`
		WallNs    int64 `json:"wallNs"`
	} `json:"exit"`
	Usage *struct {
		CPUUserNs int64  `json:"cpuUserNs"`
		MemPeak   int64  `json:"memoryPeakBytes"`
		MemLimit  int64  `json:"memoryLimitBytes"`
		PidsPeak  int64  `json:"pidsPeak"`
		Error     string `json:"error"`
	} `json:"usage"`
	Start []struct {
		Name       string `json:"name"`
		DurationNs int64  `json:"durationNs"`
	} `json:"start"`
	Cleanup *struct {
		Steps []struct {
			Resource string `json:"resource"`
			Error    string `json:"error"`
		} `json:"steps"`
		TotalNs int64 `json:"totalNs"`
	} `json:"cleanup"`
}

// lastJSON decodes the last line of stderr as the summary.
func lastJSON(t *testing.T, stderr string) summaryJSON {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	var s summaryJSON
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &s); err != nil {
		t.Fatalf("last line of stderr is not the JSON summary: %v\n%s", err, stderr)
	}
	return s
}

// TestRunSummary checks --stats and -o json.
func TestRunSummary(t *testing.T) {
	requireRoot(t)
	state := newStateDir(t)

	t.Run("stats", func(t *testing.T) {
		r := runIn(t, state, "--stats", "--", "sh", "-c", "exit 3")
		if r.code != 3 {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
		for _, re := range []string{
			`(?m)^pinfold: app [0-9a-f]{16} exit code 3$`,
			`(?m)^  oom killed:   no$`,
			`(?m)^  timed out:    no$`,
			`(?m)^  wall time:    \S+$`,
			`(?m)^  cpu time:     \S+ user, \S+ system \(throttled \S+\)$`,
			`(?m)^  memory peak:  [0-9.]+ [KMG]?i?B of 512\.0 MiB$`,
			`(?m)^  pids peak:    [1-9][0-9]* of 256$`,
			`(?m)^  cleanup:      \S+ total$`,
			`(?m)^    cgroup +\S+ +ok `,
			`(?m)^    state-record +\S+ +ok `,
		} {
			if !regexp.MustCompile(re).MatchString(r.stderr) {
				t.Errorf("stats do not match %s:\n%s", re, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "FAILED") {
			t.Errorf("a cleanup step failed:\n%s", r.stderr)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := runIn(t, state, "-o", "json", "--name", "sum", "--", "sh", "-c", "exit 3")
		if r.code != 3 {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
		s := lastJSON(t, r.stderr)
		if len(s.ID) != 16 || s.Name != "sum" || s.ExitCode != 3 || s.SignalName != "" || s.Error != "" {
			t.Errorf("summary id %q name %q exitCode %d signal %q error %q; want a 16-hex id, sum, 3, none, none", s.ID, s.Name, s.ExitCode, s.SignalName, s.Error)
		}
		if s.Exit == nil {
			t.Fatalf("summary has no exit: %s", r.stderr)
		}
		if s.Exit.Code != 3 || s.Exit.Signal != 0 || s.Exit.OOMKilled || s.Exit.TimedOut {
			t.Errorf("exit %+v, want code 3 and nothing else", *s.Exit)
		}
		if s.Exit.WallNs <= 0 {
			t.Errorf("exit wall time missing: %+v", *s.Exit)
		}
		if s.Usage == nil || s.Usage.Error != "" || s.Usage.PidsPeak <= 0 || s.Usage.MemPeak <= 0 || s.Usage.MemLimit != 512<<20 {
			t.Errorf("usage missing or wrong: %+v", s.Usage)
		}
		if len(s.Start) == 0 {
			t.Errorf("no start phases")
		}
		if s.Cleanup == nil || len(s.Cleanup.Steps) == 0 {
			t.Fatalf("no cleanup report")
		}
		seen := map[string]bool{}
		for _, st := range s.Cleanup.Steps {
			seen[st.Resource] = true
			if st.Error != "" {
				t.Errorf("cleanup of %s failed: %s", st.Resource, st.Error)
			}
		}
		for _, res := range []string{"state-record", "cgroup", "process", "pidfd", "sync-socket", "seccomp"} {
			if !seen[res] {
				t.Errorf("cleanup report lacks %s: %+v", res, s.Cleanup.Steps)
			}
		}
	})
	t.Run("json killed", func(t *testing.T) {
		r := runIn(t, state, "-o", "json", "--timeout", "200ms", "--", "sleep", "1000")
		if r.code != 137 {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
		s := lastJSON(t, r.stderr)
		if s.ExitCode != 137 || s.SignalName != "SIGKILL" || s.Exit == nil || !s.Exit.TimedOut || s.Exit.Signal != int(syscall.SIGKILL) {
			t.Errorf("summary %+v exit %+v; want 137, SIGKILL, timed out", s, s.Exit)
		}
	})
	t.Run("json start failure", func(t *testing.T) {
		r := runIn(t, state, "-o", "json", "--workdir", "/nonexistent", "--", "true")
		if r.code != 125 {
			t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
		}
		// The JSON summary comes before pinfold's own error line.
		var s summaryJSON
		found := false
		for _, l := range strings.Split(r.stderr, "\n") {
			if strings.HasPrefix(l, "{") {
				if err := json.Unmarshal([]byte(l), &s); err != nil {
					t.Fatalf("bad JSON %q: %v", l, err)
				}
				found = true
			}
		}
		if !found {
			t.Fatalf("no JSON summary on stderr:\n%s", r.stderr)
		}
		if s.ExitCode != -1 || !strings.Contains(s.Error, "chdir") || s.Cleanup == nil {
			t.Errorf("summary %+v; want exitCode -1, an error naming chdir, a cleanup report", s)
		}
	})
}

// TestPolicyValidate: every error of a bad file is printed as
// FILE:LINE:COL: path: message, on stderr, and the exit status is 2; good
// files print "FILE: ok".
func TestPolicyValidate(t *testing.T) {
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
	if err := os.WriteFile(good, []byte("apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: good\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := pinfold(t, nil, "policy", "validate", good, bad)
	if r.code != 2 {
		t.Errorf("exit status %d, want 2", r.code)
	}
	if r.stdout != good+": ok\n" {
		t.Errorf("stdout %q, want %q", r.stdout, good+": ok\n")
	}
	wantPrefixes := []string{
		bad + ":4:9: metadata.name: ",
		bad + ":6:13: spec.hostname: ",
		bad + ":8:13: spec.resources.memory: ",
		bad + ":9:11: spec.resources.pids: ",
		bad + ":10:3: spec.colour: ",
		bad + ":12:15: spec.limits.wallTime: ",
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != len(wantPrefixes) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(wantPrefixes), r.stderr)
	}
	for i, p := range wantPrefixes {
		if !strings.HasPrefix(lines[i], p) || len(lines[i]) == len(p) {
			t.Errorf("line %d = %q, want %q followed by a message", i+1, lines[i], p)
		}
	}
	if !strings.Contains(r.stderr, "unknown field") {
		t.Errorf("the unknown field is not called one:\n%s", r.stderr)
	}

	t.Run("missing file", func(t *testing.T) {
		r := pinfold(t, nil, "policy", "validate", filepath.Join(dir, "none.yaml"))
		if r.code != 2 || !strings.Contains(r.stderr, "none.yaml") {
			t.Errorf("exit %d stderr %q; want 2 naming the file", r.code, r.stderr)
		}
	})
}

// TestPolicyDefaultRoundTrip: the printed default policy validates, and
// reading it back prints the same policy.
func TestPolicyDefaultRoundTrip(t *testing.T) {
	r := pinfold(t, nil, "policy", "default")
	if r.code != 0 || r.stdout == "" {
		t.Fatalf("policy default: exit %d, stderr %q", r.code, r.stderr)
	}
	file := filepath.Join(t.TempDir(), "default.yaml")
	if err := os.WriteFile(file, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	v := pinfold(t, nil, "policy", "validate", file)
	if v.code != 0 || v.stdout != file+": ok\n" || v.stderr != "" {
		t.Errorf("validate default: exit %d stdout %q stderr %q", v.code, v.stdout, v.stderr)
	}
	s := pinfold(t, nil, "policy", "show", file)
	if s.code != 0 || s.stdout != r.stdout {
		t.Errorf("policy show of the default differs from policy default (exit %d):\n%s\nvs\n%s", s.code, s.stdout, r.stdout)
	}
}

// recordOnDisk is the part of a state record this test reads.
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

// TestRunKilledLeaksNothing: pinfold run is SIGKILLed while its app runs.
// The app dies with it; its state record and cgroups are left, and the
// next pinfold run on the same state dir releases them.
func TestRunKilledLeaksNothing(t *testing.T) {
	requireRoot(t)
	state := newStateDir(t)
	s := startRun(t, nil, "run", "--state-dir", state, "--", "sh", "-c", "echo ready; exec sleep 100000")
	if l := s.lines.next(t); l != "ready" {
		t.Fatalf("app said %q, want ready; stderr:\n%s", l, s.stderr.String())
	}
	recs, err := filepath.Glob(filepath.Join(state, "apps", "*.json"))
	if err != nil || len(recs) != 1 {
		t.Fatalf("state records of the running app: %v %v", recs, err)
	}
	data, err := os.ReadFile(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	var rec recordOnDisk
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("decoding %s: %v", recs[0], err)
	}
	dirs := rec.dirs()
	if len(dirs) == 0 {
		t.Fatalf("the record names no cgroup: %s", data)
	}
	// The app's processes, from its cgroup, to watch them die.
	procs, err := os.ReadFile(filepath.Join(dirs[0], "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	var pidfds []int
	for _, f := range strings.Fields(string(procs)) {
		var pid int
		fmt.Sscan(f, &pid)
		fd, err := pidfdOpen(pid)
		if err != nil {
			t.Fatalf("pidfd_open(%d): %v", pid, err)
		}
		defer syscall.Close(fd)
		pidfds = append(pidfds, fd)
	}
	if len(pidfds) == 0 {
		t.Fatalf("no process in %s", dirs[0])
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, fd := range pidfds {
				pidfdKill(fd)
			}
			runIn(t, state, "--", "true") // recovers
		}
	})

	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	for _, fd := range pidfds {
		if !waitPidfd(t, fd) {
			t.Fatalf("the app still runs %s after pinfold was SIGKILLed", hangTimeout)
		}
	}
	if _, err := os.Stat(recs[0]); err != nil {
		t.Errorf("state record after the kill: %v (want it left for recovery)", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("cgroup after the kill: %v (want it left for recovery)", err)
		}
	}

	r := runIn(t, state, "--", "true")
	if r.code != 0 {
		t.Fatalf("next run: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("recovery warned:\n%s", r.stderr)
	}
	if _, err := os.Stat(recs[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state record after the next run: %v, want it gone", err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s after the next run: %v, want it gone", d, err)
		}
	}
}

func pidfdOpen(pid int) (int, error) {
	const sysPidfdOpen = 434
	fd, _, e := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

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
