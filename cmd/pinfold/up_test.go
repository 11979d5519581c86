package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
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

	"github.com/pinfold/pinfold/internal/probe"
)

// The tests of pinfold up run the real binary (built by TestMain) on group
// files written to a temp dir that the apps' uid can read: several of them
// bind that dir into the apps as /app.

// groupDir returns a world-readable temp dir holding files (name ->
// content); the group file is "group.yaml" in it.
func groupDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const groupHead = "apiVersion: pinfold/v1\nkind: AppGroup\nmetadata:\n  name: %s\nspec:\n"

// group is a group file named name with the given spec body.
func group(name, spec string) string {
	return strings.Replace(groupHead, "%s", name, 1) + spec
}

// upIn runs "pinfold up --state-dir STATE ARGS..." to completion.
func upIn(t *testing.T, state string, args ...string) result {
	t.Helper()
	return pinfold(t, nil, append([]string{"up", "--state-dir", state}, args...)...)
}

// requirePython3 skips when the host has no python3 to bind into apps.
func requirePython3(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed (hack/install-deps.sh installs it)")
	}
}

// noWarnings fails on any warning of pinfold up: a cleanup step that
// failed, or a broker object left after every app was released.
func noWarnings(t *testing.T, stderr string) {
	t.Helper()
	if strings.Contains(stderr, "warning") {
		t.Errorf("pinfold up warned:\n%s", stderr)
	}
}

// lines returns the lines of s, without the last empty one.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// TestUpChannels: two Python apps pass data through a shm channel and a
// pipe channel that pinfold up created and pre-wired (PINFOLD_FDS, in file
// order). The reader's shm descriptor is read-only (a writable mapping is
// refused), and the reader sees end of file on the pipe once the writer
// has exited: up releases an app's handles as soon as it exits.
func TestUpChannels(t *testing.T) {
	requireRoot(t)
	requirePython3(t)
	state := newStateDir(t)
	dir := groupDir(t, map[string]string{
		"group.yaml": group("channels", `  channels:
    - {name: data, kind: shm, size: 1Mi, apps: {w: readwrite, reader: read}}
    - {name: note, kind: pipe, apps: {w: write, reader: read}}
  apps:
    - {name: w, command: [python3, /app/w.py], bind: ["./:/app"]}
    - {name: reader, command: [python3, /app/reader.py], bind: ["./:/app"]}
`),
		"w.py": `import mmap, os, pinfold
print("PINFOLD_FDS=" + os.environ["PINFOLD_FDS"])
ch = pinfold.channels()
m = mmap.mmap(ch["data"], 1 << 20)
msg = b"hello through shm"
m[:len(msg)] = msg
os.write(ch["note"], b"%d\n" % len(msg))
print("wrote", len(msg))
`,
		"reader.py": `import mmap, os, pinfold
print("PINFOLD_FDS=" + os.environ["PINFOLD_FDS"])
ch = pinfold.channels()
n = int(os.read(ch["note"], 100))
m = mmap.mmap(ch["data"], 1 << 20, access=mmap.ACCESS_READ)
print("shm:", m[:n].decode())
try:
    mmap.mmap(ch["data"], 1 << 20)
    print("writable mapping: allowed")
except PermissionError:
    print("writable mapping: refused")
print("pipe at eof:", os.read(ch["note"], 100) == b"")
`,
	})
	r := upIn(t, state, filepath.Join(dir, "group.yaml"))
	if r.code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	want := map[string][]string{
		"w      | ": {"PINFOLD_FDS=data:4,note:5", "wrote 17"},
		"reader | ": {"PINFOLD_FDS=data:4,note:5", "shm: hello through shm", "writable mapping: refused", "pipe at eof: True"},
	}
	got := map[string][]string{}
	for _, l := range lines(r.stdout) {
		for p := range want {
			if rest, ok := strings.CutPrefix(l, p); ok {
				got[p] = append(got[p], rest)
			}
		}
	}
	for p, w := range want {
		if !slices.Equal(got[p], w) {
			t.Errorf("lines prefixed %q: %q, want %q\nstdout:\n%s", p, got[p], w, r.stdout)
		}
	}
	for _, s := range []string{"pinfold up: w exited with code 0 after ", "pinfold up: reader exited with code 0 after "} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}
	noWarnings(t, r.stderr)
}

// TestUpOutput: every line an app writes, to stdout or stderr, comes out
// whole on the same stream, prefixed with its name padded to the longest
// name; a last line without a newline is ended with one.
func TestUpOutput(t *testing.T) {
	requireRoot(t)
	state := newStateDir(t)
	dir := groupDir(t, map[string]string{"group.yaml": group("output", `  apps:
    - name: a
      command: [sh, -c, 'printf "one "; sleep 0.05; printf "two\nthree\n"; echo err1 >&2; printf "no newline"']
    - name: bbbb
      command: [sh, -c, 'i=0; while [ $i -lt 200 ]; do echo "line $i of bbbb"; i=$((i+1)); done; echo oops >&2']
`)})
	r := upIn(t, state, filepath.Join(dir, "group.yaml"))
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	var a, b []string
	for _, l := range lines(r.stdout) {
		switch {
		case strings.HasPrefix(l, "a    | "):
			a = append(a, strings.TrimPrefix(l, "a    | "))
		case strings.HasPrefix(l, "bbbb | "):
			b = append(b, strings.TrimPrefix(l, "bbbb | "))
		default:
			t.Errorf("stdout line without an app prefix: %q", l)
		}
	}
	if want := []string{"one two", "three", "no newline"}; !slices.Equal(a, want) {
		t.Errorf("a's stdout lines %q, want %q", a, want)
	}
	if len(b) != 200 {
		t.Errorf("bbbb wrote %d lines to stdout, want 200", len(b))
	}
	for i, l := range b {
		if want := "line " + strconv.Itoa(i) + " of bbbb"; l != want {
			t.Errorf("bbbb line %d = %q, want %q", i, l, want)
			break
		}
	}
	appErr := slices.DeleteFunc(lines(r.stderr), func(l string) bool { return strings.HasPrefix(l, "pinfold up: ") })
	slices.Sort(appErr)
	if want := []string{"a    | err1", "bbbb | oops"}; !slices.Equal(appErr, want) {
		t.Errorf("apps' stderr lines %q, want %q\nstderr:\n%s", appErr, want, r.stderr)
	}
	noWarnings(t, r.stderr)
}

// TestUpExitStatus: 0 when every app exited 0, else the status of the first
// app to exit non-zero (docker run's numbers: the code, 128+N for signal
// N); 126/127 when a command cannot run; 125 when pinfold fails, naming the
// app and the step.
func TestUpExitStatus(t *testing.T) {
	requireRoot(t)
	state := newStateDir(t)
	probeBind := `bind: ["` + probeBin + `:/probe"], env: {` + probe.Env + `: "1"}`
	workdir := "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: nowhere\nspec:\n  filesystem:\n    workdir: /nonexistent\n"
	tests := []struct {
		name   string
		spec   string
		files  map[string]string // beside the group file
		args   []string
		code   int
		stderr []string
	}{
		{
			name: "all exit 0",
			spec: "  apps:\n    - {name: a, command: [true]}\n    - {name: b, command: [sh, -c, 'exit 0']}\n",
			code: 0,
		},
		{
			name:   "one fails",
			spec:   "  apps:\n    - {name: a, command: [true]}\n    - {name: b, command: [sh, -c, 'exit 3']}\n",
			code:   3,
			stderr: []string{"pinfold up: b exited with code 3 after "},
		},
		{
			// b exits (5) only after a exited (4): a's end of the pipe
			// closes when a is released.
			name: "first failure counts",
			spec: `  channels:
    - {name: p, kind: pipe, apps: {a: write, b: read}}
  apps:
    - {name: a, command: [sh, -c, 'exit 4']}
    - {name: b, command: [sh, -c, 'cat <&4; exit 5']}
`,
			code:   4,
			stderr: []string{"pinfold up: a exited with code 4", "pinfold up: b exited with code 5"},
		},
		{
			name:   "killed by a signal",
			spec:   "  apps:\n    - {name: a, command: [/probe, segv], " + probeBind + "}\n    - {name: b, command: [true]}\n",
			code:   128 + int(syscall.SIGSEGV),
			stderr: []string{"pinfold up: a was killed by SIGSEGV (status 139) after "},
		},
		{
			name:   "command not found",
			spec:   "  apps:\n    - {name: a, command: [sleep, 1000]}\n    - {name: b, command: [no-such-command]}\n",
			code:   127,
			stderr: []string{"pinfold: up: app b: creating its sandbox: sandbox init: exec: ", "no-such-command: command not found"},
		},
		{
			name:   "command not executable",
			spec:   "  apps:\n    - {name: a, command: [/etc/passwd]}\n",
			code:   126,
			stderr: []string{"pinfold: up: app a: creating its sandbox: sandbox init: exec: ", "/etc/passwd"},
		},
		{
			name:   "sandbox cannot be built",
			spec:   "  apps:\n    - {name: a, command: [true]}\n    - {name: b, policy: ./nowhere.yaml, command: [true]}\n",
			files:  map[string]string{"nowhere.yaml": workdir},
			code:   125,
			stderr: []string{"pinfold: up: app b: creating its sandbox: sandbox init: chdir: "},
		},
		{
			name:   "policy name without a daemon",
			spec:   "  apps:\n    - {name: a, policy: python-tool, command: [true]}\n",
			code:   125,
			stderr: []string{`pinfold: up: app a: policy "python-tool": pinfold up runs without a daemon`},
		},
		{
			name:   "no file",
			args:   []string{},
			code:   125,
			stderr: []string{"pinfold: up: give exactly one group file"},
		},
		{
			name:   "missing file",
			args:   []string{"/nonexistent/group.yaml"},
			code:   125,
			stderr: []string{"pinfold: up: reading group file: ", "/nonexistent/group.yaml"},
		},
		{
			name:   "unknown flag",
			args:   []string{"--bogus", "x.yaml"},
			code:   125,
			stderr: []string{"pinfold: up: ", "bogus"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				files := map[string]string{"group.yaml": group("status", tc.spec)}
				for k, v := range tc.files {
					files[k] = v
				}
				dir := groupDir(t, files)
				args = []string{filepath.Join(dir, "group.yaml")}
			}
			r := upIn(t, state, args...)
			if r.code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", r.code, tc.code, r.stderr)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr does not contain %q:\n%s", s, r.stderr)
				}
			}
			noWarnings(t, r.stderr)
		})
	}
}

// TestUpBadFiles: every problem of a bad group file is printed as
// FILE:LINE:COL: PATH: MESSAGE, alone on its line as pinfold policy
// validate prints it, and the status is 125; nothing is started. A bad
// policy file named by an app is reported the same way, then the app.
func TestUpBadFiles(t *testing.T) {
	requireRoot(t)
	state := newStateDir(t)
	dir := groupDir(t, map[string]string{
		"bad.yaml": group("bad", `  channels:
    - name: ring
      kind: shm
      apps: {producer: readwrite, consumr: read}
  apps:
    - name: producer
      command: [true]
      colour: blue
    - {name: consumer, command: [true]}
`),
		"badpolicy.yaml": group("badpolicy", `  apps:
    - name: a
      policy: ./policy.yaml
      command: [true]
`),
		"policy.yaml": "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: Bad_Name\n",
	})
	bad := filepath.Join(dir, "bad.yaml")
	r := upIn(t, state, bad)
	if r.code != 125 {
		t.Errorf("exit status %d, want 125", r.code)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	wantPrefixes := []string{
		bad + ":7:7: spec.channels[0].size: ",
		bad + ":9:35: spec.channels[0].apps.consumr: ",
		bad + ":13:7: spec.apps[0].colour: ",
	}
	got := lines(r.stderr)
	if len(got) != len(wantPrefixes) {
		t.Fatalf("stderr has %d lines, want %d:\n%s", len(got), len(wantPrefixes), r.stderr)
	}
	for i, p := range wantPrefixes {
		if !strings.HasPrefix(got[i], p) || len(got[i]) == len(p) {
			t.Errorf("line %d = %q, want %q followed by a message", i+1, got[i], p)
		}
	}
	if !strings.Contains(r.stderr, "did you mean consumer?") {
		t.Errorf("the misspelt app gets no suggestion:\n%s", r.stderr)
	}

	r = upIn(t, state, filepath.Join(dir, "badpolicy.yaml"))
	pol := filepath.Join(dir, "policy.yaml")
	if r.code != 125 {
		t.Errorf("bad policy: exit status %d, want 125", r.code)
	}
	got = lines(r.stderr)
	if len(got) != 2 || !strings.HasPrefix(got[0], pol+":4:9: metadata.name: ") ||
		got[1] != "pinfold: up: app a: policy file "+pol+" is invalid (see above)" {
		t.Errorf("bad policy: stderr\n%s\nwant %s:4:9: metadata.name: ..., then the app", r.stderr, pol)
	}
}

// upRecords reads the n state records of a running group (the apps have
// said they run, so their records exist).
func upRecords(t *testing.T, state string, n int) []recordOnDisk {
	t.Helper()
	recs, err := filepath.Glob(filepath.Join(state, "apps", "*.json"))
	if err != nil || len(recs) != n {
		t.Fatalf("state records of the running group: %v %v, want %d", recs, err, n)
	}
	var out []recordOnDisk
	for _, f := range recs {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r recordOnDisk
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatalf("decoding %s: %v", f, err)
		}
		if len(r.dirs()) == 0 {
			t.Fatalf("record %s names no cgroup: %s", f, data)
		}
		out = append(out, r)
	}
	return out
}

// checkGone fails for every cgroup dir of recs that still exists.
func checkGone(t *testing.T, recs []recordOnDisk) {
	t.Helper()
	for _, r := range recs {
		for _, d := range r.dirs() {
			if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("cgroup of app %s after pinfold up returned: %v, want it gone", r.ID, err)
			}
		}
	}
}

// waitLines reads stdout lines until every one of want was seen.
func waitLines(t *testing.T, s *started, want ...string) {
	t.Helper()
	left := slices.Clone(want)
	for len(left) > 0 {
		l := s.lines.next(t)
		left = slices.DeleteFunc(left, func(w string) bool { return w == l })
	}
}

// waitStderr polls until stderr contains sub (a hang guard bounds it).
func waitStderr(t *testing.T, s *started, sub string) {
	t.Helper()
	deadline := time.Now().Add(hangTimeout)
	for !strings.Contains(s.stderr.String(), sub) {
		if time.Now().After(deadline) {
			t.Fatalf("stderr has no %q after %s:\n%s", sub, hangTimeout, s.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUpSignals: a signal to pinfold up is forwarded to every app; an app
// that does not exit within its policy's stopTimeout is killed; a second
// signal kills every app at once. Afterwards no cgroup and no state record
// of the group is left.
func TestUpSignals(t *testing.T) {
	requireRoot(t)
	files := map[string]string{
		"stop.yaml": "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: stop\nspec:\n  limits:\n    stopTimeout: 300ms\n",
		// Without the second signal the apps would outlive the test's
		// hang guard.
		"slow.yaml": "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: slow\nspec:\n  limits:\n    stopTimeout: 1h\n",
		"term.yaml": group("term", `  channels:
    - {name: p, kind: pipe, apps: {trapper: write, stubborn: read}}
  apps:
    - name: trapper
      command: [sh, -c, 'trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done']
    - {name: stubborn, policy: ./stop.yaml, command: [/probe, ignore, SIGTERM], PROBE}
`),
		"int.yaml": group("int", `  apps:
    - {name: one, policy: ./slow.yaml, command: [/probe, ignore, SIGINT], PROBE}
    - {name: two, policy: ./slow.yaml, command: [/probe, ignore, SIGINT], PROBE}
`),
	}
	probeBind := `bind: ["` + probeBin + `:/probe"], env: {` + probe.Env + `: "1"}`
	for k, v := range files {
		files[k] = strings.ReplaceAll(v, "PROBE", probeBind)
	}
	dir := groupDir(t, files)

	t.Run("SIGTERM", func(t *testing.T) {
		state := newStateDir(t)
		s := startRun(t, nil, "up", "--state-dir", state, filepath.Join(dir, "term.yaml"))
		waitLines(t, s, "trapper  | ready", "stubborn | ready")
		recs := upRecords(t, state, 2)
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitLines(t, s, "trapper  | got TERM")
		if code := s.wait(t); code != 137 {
			t.Errorf("exit status %d, want 137 (stubborn, killed); stderr:\n%s", code, s.stderr.String())
		}
		stderr := s.stderr.String()
		for _, want := range []string{
			"pinfold up: SIGTERM: stopping every app (send it again to kill them)\n",
			"pinfold up: trapper exited with code 0 after ",
			"pinfold up: stubborn did not exit within 300ms of SIGTERM; killing everything in its sandbox\n",
			"pinfold up: stubborn was killed by SIGKILL (status 137) after ",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
		noWarnings(t, stderr)
		checkGone(t, recs)
	})

	t.Run("second SIGINT", func(t *testing.T) {
		state := newStateDir(t)
		s := startRun(t, nil, "up", "--state-dir", state, filepath.Join(dir, "int.yaml"))
		waitLines(t, s, "one | ready", "two | ready")
		recs := upRecords(t, state, 2)
		if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		waitStderr(t, s, "pinfold up: SIGINT: stopping every app")
		if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		if code := s.wait(t); code != 137 {
			t.Errorf("exit status %d, want 137; stderr:\n%s", code, s.stderr.String())
		}
		stderr := s.stderr.String()
		if !strings.Contains(stderr, "pinfold up: SIGINT again: killing every app\n") {
			t.Errorf("stderr lacks the second signal:\n%s", stderr)
		}
		if strings.Contains(stderr, "did not exit within") {
			t.Errorf("the apps were killed by their stopTimeout, not by the second signal:\n%s", stderr)
		}
		noWarnings(t, stderr)
		checkGone(t, recs)
	})
}

// TestUpAbortOnExit: with --abort-on-exit the first app to exit stops the
// others (SIGTERM, then kill after stopTimeout) and its status is up's;
// the stopped apps' statuses do not count. The long app tells the quick
// one through a pipe when its trap is in place.
func TestUpAbortOnExit(t *testing.T) {
	requireRoot(t)
	stop := "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: stop\nspec:\n  limits:\n    stopTimeout: 200ms\n"
	tests := []struct {
		name   string
		quick  string // quick's exit code
		long   string // long's command, after it has signalled ready on fd 4
		code   int
		stderr []string
	}{
		{
			name: "first exits 0", quick: "0", long: `trap "exit 9" TERM; echo ready >&4; while :; do sleep 0.1; done`, code: 0,
			stderr: []string{"pinfold up: long exited with code 9 after "},
		},
		{
			name: "first exits 3", quick: "3", long: `trap "exit 0" TERM; echo ready >&4; while :; do sleep 0.1; done`, code: 3,
			stderr: []string{"pinfold up: quick exited with code 3 after ", "pinfold up: long exited with code 0 after "},
		},
		{
			name: "the others are killed after stopTimeout", quick: "0", long: `echo ready >&4; exec sleep 100000`, code: 0,
			stderr: []string{
				"pinfold up: long did not exit within 200ms of SIGTERM; killing everything in its sandbox\n",
				"pinfold up: long was killed by SIGKILL (status 137) after ",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			state := newStateDir(t)
			spec := `  channels:
    - {name: ready, kind: pipe, apps: {long: write, quick: read}}
  apps:
    - {name: quick, command: [sh, -c, 'read x <&4; echo done; exit ` + tc.quick + `']}
    - {name: long, policy: ./stop.yaml, command: [sh, -c, '` + tc.long + `']}
`
			dir := groupDir(t, map[string]string{"group.yaml": group("abort", spec), "stop.yaml": stop})
			r := upIn(t, state, "--abort-on-exit", filepath.Join(dir, "group.yaml"))
			if r.code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stdout, "quick | done\n") {
				t.Errorf("stdout lacks quick's line:\n%s", r.stdout)
			}
			for _, s := range append([]string{"pinfold up: quick exited: stopping the other apps (--abort-on-exit)\n"}, tc.stderr...) {
				if !strings.Contains(r.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
				}
			}
			noWarnings(t, r.stderr)
		})
	}
}

// TestUpVerbose: -v prints the broker's events naming the apps by name:
// the group creating its channels, each app's pre-wired grant, a denial
// (the reader asks for more than it was given) and the removals at the end.
func TestUpVerbose(t *testing.T) {
	requireRoot(t)
	requirePython3(t)
	state := newStateDir(t)
	dir := groupDir(t, map[string]string{
		"group.yaml": group("verbose", `  channels:
    - {name: data, kind: shm, size: 64Ki, apps: {owner: readwrite, reader: read}}
  apps:
    - {name: owner, command: [true]}
    - {name: reader, command: [python3, /app/reader.py], bind: ["./:/app"]}
`),
		"reader.py": `import pinfold
try:
    pinfold.connect().shm_attach("data", "readwrite")
    print("attached read-write")
except PermissionError as e:
    print("refused:", e.name)
`,
	})
	r := upIn(t, state, "-v", filepath.Join(dir, "group.yaml"))
	if r.code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "reader | refused: EPERM\n") {
		t.Errorf("stdout lacks the refusal:\n%s", r.stdout)
	}
	for _, re := range []string{
		`(?m)^pinfold up: ipc created: group:verbose create shm data\b`,
		`(?m)^pinfold up: ipc granted: owner channel_open shm data readwrite \(owner group:verbose\)`,
		`(?m)^pinfold up: ipc granted: reader channel_open shm data read \(owner group:verbose\)`,
		`(?m)^pinfold up: ipc denied: reader shm_attach shm data readwrite \(owner group:verbose\): EPERM: `,
		`(?m)^pinfold up: ipc released: reader close: `,
		`(?m)^pinfold up: ipc removed: group:verbose close shm data\b`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stderr) {
			t.Errorf("stderr does not match %s:\n%s", re, r.stderr)
		}
	}
	for _, l := range lines(r.stderr) {
		if strings.HasPrefix(l, "pinfold up: ipc ") && regexp.MustCompile(`\b[0-9a-f]{16}\b`).MatchString(l) {
			t.Errorf("an event names an app by its id, not its name: %q", l)
		}
	}
	noWarnings(t, r.stderr)
}

// TestUpExample runs examples/ipc-pipeline with 64 MiB instead of 1 GiB:
// the consumer's CRC-32 of the stream it read from the ring must match the
// producer's.
func TestUpExample(t *testing.T) {
	requireRoot(t)
	requirePython3(t)
	state := newStateDir(t)
	src := filepath.Join("..", "..", "examples", "ipc-pipeline")
	files := map[string]string{}
	for _, name := range []string{"group.yaml", "producer.py", "consumer.py"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(data)
	}
	const total = 64<<20 + 12345 // not a whole number of slots
	g := regexp.MustCompile(`(?m)^(\s+TOTAL: )\S+`)
	if !g.MatchString(files["group.yaml"]) {
		t.Fatalf("the example's group.yaml sets no TOTAL:\n%s", files["group.yaml"])
	}
	files["group.yaml"] = g.ReplaceAllString(files["group.yaml"], "${1}"+strconv.Itoa(total))
	dir := groupDir(t, files)
	r := upIn(t, state, filepath.Join(dir, "group.yaml"))
	if r.code != 0 {
		t.Fatalf("exit %d; stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	re := regexp.MustCompile(`(?m)^consumer \| received ` + strconv.Itoa(total) + ` bytes \([0-9.]+ GiB\) in [0-9.]+ s: [0-9.]+ GB/s; crc32 ([0-9a-f]{8}) matches the producer's$`)
	m := re.FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("stdout does not match %s:\n%s", re, r.stdout)
	}
	if !strings.Contains(r.stdout, "producer | wrote "+strconv.Itoa(total)+" bytes in ") || !strings.Contains(r.stdout, "crc32 "+m[1]+"\n") {
		t.Errorf("the producer's line is missing or names another crc:\n%s", r.stdout)
	}
	noWarnings(t, r.stderr)
}

// TestPrefixWriter: whole lines only, each prefixed, whatever the writes'
// boundaries; an overlong line is cut; flush ends a partial line.
func TestPrefixWriter(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"one line", []string{"a\n"}, "p| a\n"},
		{"split line", []string{"a", "b", "c\n"}, "p| abc\n"},
		{"two in one write", []string{"a\nb\n"}, "p| a\np| b\n"},
		{"partial at the end", []string{"a\nb"}, "p| a\np| b\n"},
		{"empty lines", []string{"\n\n"}, "p| \np| \n"},
		{"nothing", nil, ""},
		{"overlong line", []string{long, "\n"}, "p| " + long[:maxLine] + "\np| " + long[maxLine:] + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := &prefixWriter{w: &out, mu: &sync.Mutex{}, prefix: "p| "}
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", s, n, err)
				}
			}
			w.flush()
			if out.String() != tc.want {
				t.Errorf("output %q, want %q", out.String(), tc.want)
			}
		})
	}
}

// TestParseUpFlags covers the flags and their errors.
func TestParseUpFlags(t *testing.T) {
	tests := []struct {
		args  []string
		want  upFlags
		file  string
		code  int // of the exitError, -1 for none
		inMsg string
	}{
		{args: []string{"g.yaml"}, want: upFlags{stateDir: "/run/pinfold"}, file: "g.yaml", code: -1},
		{args: []string{"--abort-on-exit", "-v", "--state-dir", "/s", "g.yaml"}, want: upFlags{abortOnExit: true, verbose: true, stateDir: "/s"}, file: "g.yaml", code: -1},
		{args: []string{}, code: 125, inMsg: "exactly one group file"},
		{args: []string{"a.yaml", "b.yaml"}, code: 125, inMsg: "exactly one group file"},
		{args: []string{"--nope", "a.yaml"}, code: 125, inMsg: "nope"},
	}
	for _, tc := range tests {
		f, file, err := parseUpFlags(tc.args)
		var ee *exitError
		switch {
		case tc.code < 0 && err != nil:
			t.Errorf("parseUpFlags(%q): %v", tc.args, err)
		case tc.code < 0:
			if *f != tc.want || file != tc.file {
				t.Errorf("parseUpFlags(%q) = %+v, %q; want %+v, %q", tc.args, *f, file, tc.want, tc.file)
			}
		case !errors.As(err, &ee) || ee.code != tc.code || !strings.Contains(ee.msg, tc.inMsg):
			t.Errorf("parseUpFlags(%q) error %v; want exit %d mentioning %q", tc.args, err, tc.code, tc.inMsg)
		}
	}
}

// TestUpKilledRecovered: pinfold up is SIGKILLed while its apps run. The
// apps die with it (parent-death signal); their records and cgroups are
// left, and the next pinfold up on the same state dir releases them before
// it starts its own apps.
func TestUpKilledRecovered(t *testing.T) {
	requireRoot(t)
	state := newStateDir(t)
	dir := groupDir(t, map[string]string{
		"group.yaml": group("killed", `  channels:
    - {name: p, kind: pipe, apps: {a: write, b: read}}
  apps:
    - {name: a, command: [sh, -c, 'echo ready; exec sleep 100000']}
    - {name: b, command: [sh, -c, 'echo ready; exec sleep 100000']}
`),
		"next.yaml": group("next", "  apps:\n    - {name: c, command: [true]}\n"),
	})
	s := startRun(t, nil, "up", "--state-dir", state, filepath.Join(dir, "group.yaml"))
	waitLines(t, s, "a | ready", "b | ready")
	recs := upRecords(t, state, 2)
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.wait(t)
	if left, _ := filepath.Glob(filepath.Join(state, "apps", "*.json")); len(left) != 2 {
		t.Fatalf("records after the kill: %q, want both left for recovery", left)
	}
	r := upIn(t, state, filepath.Join(dir, "next.yaml"))
	if r.code != 0 {
		t.Fatalf("next up: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	noWarnings(t, r.stderr)
	checkGone(t, recs)
}
