package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
)

func env(kv ...string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == k {
				return kv[i+1], true
			}
		}
		return "", false
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return -1
}

func TestParseGlobalFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		host string
		rest []string
		code int // exit status of the error, 0 for none
	}{
		{name: "none", args: []string{"run", "--", "true"}, rest: []string{"run", "--", "true"}},
		{name: "flag", args: []string{"--host", "unix:///x.sock", "ps", "-a"}, host: "unix:///x.sock", rest: []string{"ps", "-a"}},
		{name: "flag=", args: []string{"--host=unix:///x.sock", "ps"}, host: "unix:///x.sock", rest: []string{"ps"}},
		{name: "-H", args: []string{"-H", "/run/x.sock", "ps"}, host: "/run/x.sock", rest: []string{"ps"}},
		{name: "env", args: []string{"ps"}, env: []string{"PINFOLD_HOST", "unix:///e.sock"}, host: "unix:///e.sock", rest: []string{"ps"}},
		{name: "flag beats env", args: []string{"--host", "unix:///f.sock", "ps"}, env: []string{"PINFOLD_HOST", "unix:///e.sock"}, host: "unix:///f.sock", rest: []string{"ps"}},
		{name: "empty flag: embedded", args: []string{"--host=", "run"}, env: []string{"PINFOLD_HOST", "unix:///e.sock"}, rest: []string{"run"}},
		{name: "last wins", args: []string{"--host", "unix:///a", "--host", "unix:///b", "ps"}, host: "unix:///b", rest: []string{"ps"}},
		{name: "after the command it is the command's", args: []string{"ps", "--host", "unix:///x"}, rest: []string{"ps", "--host", "unix:///x"}},
		{name: "missing value", args: []string{"--host"}, code: exitUsage},
		{name: "tcp", args: []string{"--host", "tcp://1.2.3.4:5", "ps"}, code: exitUsage},
		{name: "relative", args: []string{"--host", "x.sock", "ps"}, code: exitUsage},
		{name: "bad env", args: []string{"ps"}, env: []string{"PINFOLD_HOST", "http://x"}, code: exitUsage},
		{name: "unix host part", args: []string{"--host", "unix://x.sock", "ps"}, code: exitUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			host, rest, err := parseGlobalFlags(tc.args, env(tc.env...))
			if got := exitCode(err); got != tc.code {
				t.Fatalf("error %v (status %d), want status %d", err, got, tc.code)
			}
			if err != nil {
				if err.Error() == "" {
					t.Errorf("usage error without a message")
				}
				return
			}
			if host != tc.host || !slices.Equal(rest, tc.rest) {
				t.Errorf("got host %q rest %q, want %q %q", host, rest, tc.host, tc.rest)
			}
		})
	}
}

func TestParseSignal(t *testing.T) {
	tests := []struct {
		in   string
		want syscall.Signal
		bad  bool
	}{
		{in: "TERM", want: syscall.SIGTERM},
		{in: "SIGTERM", want: syscall.SIGTERM},
		{in: "sigterm", want: syscall.SIGTERM},
		{in: "hup", want: syscall.SIGHUP},
		{in: "KILL", want: syscall.SIGKILL},
		{in: "USR1", want: syscall.SIGUSR1},
		{in: "SIGWINCH", want: syscall.SIGWINCH},
		{in: "SYS", want: syscall.SIGSYS},
		{in: "IOT", want: syscall.SIGABRT},
		{in: "15", want: syscall.SIGTERM},
		{in: "1", want: syscall.SIGHUP},
		{in: "64", want: 64},
		{in: "RTMIN", want: 34},
		{in: "SIGRTMIN+2", want: 36},
		{in: "rtmax", want: 64},
		{in: "RTMAX-1", want: 63},
		{in: "0", bad: true},
		{in: "65", bad: true},
		{in: "-1", bad: true},
		{in: "RTMIN+31", bad: true},
		{in: "RTMAX+1", bad: true},
		{in: "RTMIN-1", bad: true},
		{in: "RTMIN+", bad: true},
		{in: "SIG", bad: true},
		{in: "", bad: true},
		{in: "TERMINATE", bad: true},
	}
	for _, tc := range tests {
		got, err := parseSignal(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseSignal(%q) = %d, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseSignal(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseGrace(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{in: "10", want: 10 * time.Second},
		{in: "0", want: 0},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "-1s", bad: true},
		{in: "soon", bad: true},
		{in: "", bad: true},
	}
	for _, tc := range tests {
		got, err := parseGrace(tc.in)
		if (err != nil) != tc.bad || !tc.bad && got != tc.want {
			t.Errorf("parseGrace(%q) = %v, %v; want %v (error: %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestParseFlagsInterspersed(t *testing.T) {
	tests := []struct {
		args  []string
		pos   []string
		force bool
		quiet bool
		grace string
		code  int
	}{
		{args: []string{"a", "b"}, pos: []string{"a", "b"}},
		{args: []string{"-f", "a"}, pos: []string{"a"}, force: true},
		{args: []string{"a", "-f", "b"}, pos: []string{"a", "b"}, force: true},
		{args: []string{"a", "-t", "5", "b"}, pos: []string{"a", "b"}, grace: "5"},
		{args: []string{"a", "--", "-f"}, pos: []string{"a", "-f"}},
		{args: []string{"--", "-f", "--"}, pos: []string{"-f", "--"}},
		{args: []string{"a", "-x"}, code: exitUsage},
		{args: []string{"-t"}, code: exitUsage},
		{args: nil, pos: nil},
		{args: []string{"-fq", "a"}, pos: []string{"a"}, force: true, quiet: true},
		{args: []string{"a", "-qf"}, pos: []string{"a"}, force: true, quiet: true},
		{args: []string{"--", "-fq"}, pos: []string{"-fq"}},
		{args: []string{"-ft", "5"}, code: exitUsage}, // -t takes a value: not a group
	}
	for _, tc := range tests {
		fs := newFlags("test")
		force := fs.Bool("f", false, "")
		grace := fs.String("t", "", "")
		quiet := fs.Bool("q", false, "")
		pos, err := parseFlags(fs, "", tc.args)
		if got := exitCode(err); got != tc.code {
			t.Errorf("%q: error %v, want status %d", tc.args, err, tc.code)
			continue
		}
		if err != nil {
			continue
		}
		if !slices.Equal(pos, tc.pos) || *force != tc.force || *quiet != tc.quiet || *grace != tc.grace {
			t.Errorf("%q: positional %q -f %v -q %v -t %q; want %q %v %v %q", tc.args, pos, *force, *quiet, *grace, tc.pos, tc.force, tc.quiet, tc.grace)
		}
	}
}

func TestMatchApp(t *testing.T) {
	apps := []*v1.App{
		{Id: "0123456789abcdef", Name: "web"},
		{Id: "0123ffffffffffff", Name: "job"},
		{Id: "abcdef0123456789", Name: "job"},
		{Id: "fedcba9876543210", Name: "0123"}, // a name that looks like a prefix
	}
	tests := []struct {
		arg  string
		want string
		err  string // substring of the error
	}{
		{arg: "0123456789abcdef", want: "0123456789abcdef"},
		{arg: "web", want: "0123456789abcdef"},
		{arg: "01234", want: "0123456789abcdef"},
		{arg: "ab", want: "abcdef0123456789"},
		{arg: "0123", want: "fedcba9876543210"}, // names win over prefixes
		{arg: "012", err: "start of 2 app ids"},
		{arg: "job", err: "2 apps are named"},
		{arg: "nope", err: "no app nope"},
		{arg: "", err: "empty"},
	}
	for _, tc := range tests {
		got, err := matchApp(tc.arg, apps)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("matchApp(%q) = %q, %v; want an error containing %q", tc.arg, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("matchApp(%q) = %q, %v; want %q", tc.arg, got, err, tc.want)
		}
	}
}

func TestIsFullID(t *testing.T) {
	for in, want := range map[string]bool{
		"0123456789abcdef":  true,
		"0123456789ABCDEF":  false,
		"0123456789abcde":   false,
		"0123456789abcdef0": false,
		"0123456789abcdeg":  false,
		"":                  false,
	} {
		if got := isFullID(in); got != want {
			t.Errorf("isFullID(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestAppsTable(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(now.Add(-d)) }
	apps := []*v1.App{
		{Id: "0123456789abcdef", Name: "web", Policy: "default", State: "running", Pid: 4242, Created: ts(5 * time.Second), Args: []string{"python3", "-m", "http.server"}},
		{Id: "fedcba9876543210", State: "exited", Policy: "strict", Pid: 77, Created: ts(3 * time.Hour),
			Exit: &v1.ExitStatus{Code: 137, Signal: 9, TimedOut: true}, Args: []string{"sleep", "1000"}},
		{Id: "00000000000000ff", Name: "evil\x1b[2Jname\n", State: "exited", Created: ts(72 * time.Hour),
			Exit: &v1.ExitStatus{Code: 0}, Args: []string{strings.Repeat("x", 50)}},
	}
	var b bytes.Buffer
	if err := appsTable(apps, now).write(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID                 NAME            POLICY    STATE     PID    CREATED         EXIT                     COMMAND\n" +
		"0123456789abcdef   web             default   running   4242   5 seconds ago   -                        python3 -m http.server\n" +
		"fedcba9876543210   -               strict    exited    -      3 hours ago     137 (SIGKILL, timeout)   sleep 1000\n" +
		"00000000000000ff   evil?[2Jname?   -         exited    -      3 days ago      0                        " + strings.Repeat("x", 39) + "…\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestAgo(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0:                           "just now",
		-time.Second:                "just now", // the daemon's clock a little ahead
		time.Second:                 "1 second ago",
		59 * time.Second:            "59 seconds ago",
		time.Minute:                 "1 minute ago",
		47 * time.Hour:              "47 hours ago",
		48 * time.Hour:              "2 days ago",
		400 * 24 * time.Hour:        "400 days ago",
		90*time.Minute + 59e9:       "1 hour ago",
		2*time.Minute + 1e9:         "2 minutes ago",
		time.Hour - time.Nanosecond: "59 minutes ago",
	} {
		if got := ago(timestamppb.New(now.Add(-d)), now); got != want {
			t.Errorf("ago(%v) = %q, want %q", d, got, want)
		}
	}
	if got := ago(nil, now); got != "" {
		t.Errorf("ago(nil) = %q, want empty", got)
	}
}

func TestUsageTable(t *testing.T) {
	u := &v1.Usage{
		CpuUser: durationpb.New(1500 * time.Millisecond), CpuSystem: durationpb.New(20 * time.Millisecond),
		MemoryCurrent: 3 << 20, MemoryPeak: 5 << 20, MemoryLimit: 512 << 20,
		PidsCurrent: 2, PidsPeak: 7, PidsLimit: 0,
	}
	var b bytes.Buffer
	if err := usageTable("0123456789abcdef", u).write(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"ID                 CPU USER   CPU SYSTEM   THROTTLED   MEMORY    PEAK      LIMIT       PIDS   PEAK   LIMIT   OOM KILLS\n" +
		"0123456789abcdef   1.5s       20ms         0s          3.0 MiB   5.0 MiB   512.0 MiB   2      7      none    0\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestExecFailureCode(t *testing.T) {
	tests := []struct {
		msg  string
		code int
	}{
		{"sandbox init: exec: nosuchcmd: command not found in the sandbox (PATH=/usr/bin:/bin)", exitNotFound},
		{"sandbox init: exec: /nonexistent: no such file in the sandbox", exitNotFound},
		{"sandbox init: exec: /app: its interpreter or dynamic loader is missing in the sandbox", exitNotFound},
		{"starting app: sandbox init: exec: /etc/passwd: permission denied (not executable by uid 65534)", exitCannotExec},
		{"sandbox init: exec: /tmp: is a directory", exitCannotExec},
		{"sandbox init: exec: /x: exec format error", exitCannotExec},
		{"sandbox init: chdir: working directory /nope: no such file or directory", exitPinfoldFailed},
		{"creating cgroup: no such file or directory (not found)", exitPinfoldFailed},
		{"", exitPinfoldFailed},
	}
	for _, tc := range tests {
		if got := execFailureCode(tc.msg); got != tc.code {
			t.Errorf("execFailureCode(%q) = %d, want %d", tc.msg, got, tc.code)
		}
	}
}

func TestStartFailureCode(t *testing.T) {
	withDetail := connect.NewError(connect.CodeFailedPrecondition, errors.New("whatever the words"))
	d, err := connect.NewErrorDetail(&v1.ExitStatus{Code: 127})
	if err != nil {
		t.Fatal(err)
	}
	withDetail.AddDetail(d)
	tests := []struct {
		name string
		err  error
		code int
	}{
		{"not found", connect.NewError(connect.CodeFailedPrecondition, errors.New("sandbox init: exec: x: command not found in the sandbox (PATH=/bin)")), exitNotFound},
		{"cannot exec", connect.NewError(connect.CodeFailedPrecondition, errors.New("sandbox init: exec: /tmp: is a directory")), exitCannotExec},
		{"other step", connect.NewError(connect.CodeFailedPrecondition, errors.New("sandbox init: chdir: /x: no such file or directory")), exitPinfoldFailed},
		// Only a start failure is read for the exec step: a bad spec
		// that happens to quote such words is still pinfold's failure.
		{"bad spec", connect.NewError(connect.CodeInvalidArgument, errors.New("sandbox init: exec: not found")), exitPinfoldFailed},
		{"no policy", connect.NewError(connect.CodeNotFound, errors.New(`no policy "x"`)), exitPinfoldFailed},
		{"detail", withDetail, exitNotFound},
		{"not an API error", errors.New("sandbox init: exec: x: command not found"), exitPinfoldFailed},
	}
	for _, tc := range tests {
		if got := startFailureCode(tc.err); got != tc.code {
			t.Errorf("%s: startFailureCode = %d, want %d", tc.name, got, tc.code)
		}
	}
}

func TestDaemonMessage(t *testing.T) {
	dialErr := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.ENOENT)}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"daemon's words", connect.NewError(connect.CodeNotFound, errors.New("no app 0123")), "no app 0123"},
		{"wrapped", fmt.Errorf("context: %w", connect.NewError(connect.CodeFailedPrecondition, errors.New("app x is running: stop it first"))), "app x is running: stop it first"},
		{"code only", connect.NewError(connect.CodeUnavailable, nil), "unavailable"},
		{"unreachable", connect.NewError(connect.CodeUnavailable, fmt.Errorf("post: %w", dialErr)),
			"cannot reach the pinfold daemon at unix:///x.sock: no such file or directory (is pinfold daemon running and serving that socket?)"},
		{"other", errors.New("plain"), "plain"},
	}
	for _, tc := range tests {
		if got := daemonMessage("unix:///x.sock", tc.err); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestPolicyErrorLine(t *testing.T) {
	tests := []struct {
		pe   *v1.PolicyError
		want string
	}{
		{&v1.PolicyError{File: "bad.yaml", Line: 4, Column: 9, Path: "metadata.name", Message: "must be lowercase"}, "bad.yaml:4:9: metadata.name: must be lowercase"},
		{&v1.PolicyError{File: "bad.yaml", Line: 1, Column: 1, Message: "yaml syntax error"}, "bad.yaml:1:1: yaml syntax error"},
		{&v1.PolicyError{File: "p.yaml", Message: `applying policy "x": conflicting policy file: it is defined in /etc/x.yaml`}, `p.yaml: applying policy "x": conflicting policy file: it is defined in /etc/x.yaml`},
		{&v1.PolicyError{Message: "no file"}, "no file"},
		{&v1.PolicyError{File: "a.yaml", Line: 2, Column: 3, Path: "spec", Message: "bad\x1b[31m"}, "a.yaml:2:3: spec: bad?[31m"},
	}
	for _, tc := range tests {
		if got := policyErrorLine(tc.pe); got != tc.want {
			t.Errorf("policyErrorLine(%v) = %q, want %q", tc.pe, got, tc.want)
		}
	}
}

func TestPrintJSON(t *testing.T) {
	app := &v1.App{Id: "0123456789abcdef", State: "exited", Exit: &v1.ExitStatus{Code: 0, Wall: durationpb.New(1500 * time.Millisecond)}}
	var b bytes.Buffer
	if err := printJSON(&b, app); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b.String())
	}
	exit, ok := got["exit"].(map[string]any)
	if !ok {
		t.Fatalf("no exit object: %s", b.String())
	}
	// A zero exit code is there, as 0: scripts must not see it missing.
	if code, ok := exit["code"].(float64); !ok || code != 0 {
		t.Errorf("exit.code = %v, want 0", exit["code"])
	}
	if exit["wall"] != "1.500s" || got["id"] != "0123456789abcdef" || got["policyHash"] != "" {
		t.Errorf("fields: %s", b.String())
	}
	if n := bytes.Count(bytes.TrimSpace(b.Bytes()), []byte("\n}")); n < 1 || !bytes.HasSuffix(b.Bytes(), []byte("}\n")) {
		t.Errorf("not one document ending in a newline: %q", b.String())
	}

	b.Reset()
	ev := &v1.Event{Id: 7, Kind: "app.exited", Time: timestamppb.New(time.Unix(1, 0))}
	if err := printJSONLine(&b, ev); err != nil {
		t.Fatal(err)
	}
	if strings.Count(b.String(), "\n") != 1 {
		t.Errorf("event JSON is not one line: %q", b.String())
	}
	var e map[string]any
	if err := json.Unmarshal(b.Bytes(), &e); err != nil || e["id"] != "7" || e["kind"] != "app.exited" {
		t.Errorf("event JSON %q (%v): want id \"7\" (a uint64 is a JSON string) and the kind", b.String(), err)
	}
}

func TestExitCell(t *testing.T) {
	tests := []struct {
		x    *v1.ExitStatus
		want string
	}{
		{nil, ""},
		{&v1.ExitStatus{}, "0"},
		{&v1.ExitStatus{Code: 3}, "3"},
		{&v1.ExitStatus{Code: 143, Signal: 15}, "143 (SIGTERM)"},
		{&v1.ExitStatus{Code: 137, Signal: 9, OomKilled: true}, "137 (SIGKILL, oom)"},
	}
	for _, tc := range tests {
		if got := exitCell(tc.x); got != tc.want {
			t.Errorf("exitCell(%v) = %q, want %q", tc.x, got, tc.want)
		}
	}
}

func TestExitFromProto(t *testing.T) {
	x := exitFromProto(&v1.ExitStatus{Code: 137, Signal: 9, TimedOut: true, Wall: durationpb.New(time.Second)})
	if x.ExitCode() != 137 || x.Code != -1 || x.Signal != syscall.SIGKILL || !x.TimedOut || x.Wall != time.Second {
		t.Errorf("killed: %+v (ExitCode %d)", x, x.ExitCode())
	}
	x = exitFromProto(&v1.ExitStatus{Code: 3})
	if x.ExitCode() != 3 || x.Code != 3 || x.Signal != 0 {
		t.Errorf("exited: %+v", x)
	}
}

func TestClientRunFlags(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		env  []string
		want *v1.AppSpec
		det  bool
		code int
	}{
		{name: "plain", args: []string{"--", "true"}, want: &v1.AppSpec{Args: []string{"true"}}},
		{name: "no dashes", args: []string{"sh", "-c", "exit 3"}, want: &v1.AppSpec{Args: []string{"sh", "-c", "exit 3"}}},
		{
			name: "everything",
			args: []string{"--policy", "strict", "--name", "job", "--timeout", "30s", "--env", "A=1", "--env", "B=",
				"--bind", dir + ":/data:rw", "--bind", dir, "--workdir", "/data/", "-d", "--", "cmd", "arg"},
			env: []string{"TERM", "xterm"},
			det: true,
			want: &v1.AppSpec{
				Name: "job", Policy: "strict", Args: []string{"cmd", "arg"}, Workdir: "/data",
				Env:     map[string]string{"A": "1", "B": "", "TERM": "xterm"},
				Binds:   []*v1.Bind{{Source: dir, Destination: "/data", ReadWrite: true}, {Source: dir, Destination: dir}},
				Timeout: durationpb.New(30 * time.Second),
			},
		},
		{name: "--env wins over TERM", args: []string{"--env", "TERM=dumb", "--", "true"}, env: []string{"TERM", "xterm"},
			want: &v1.AppSpec{Args: []string{"true"}, Env: map[string]string{"TERM": "dumb"}}},
		{name: "no command", args: []string{"--name", "x"}, code: exitRunUsage},
		{name: "bad env", args: []string{"--env", "NOEQUALS", "--", "true"}, code: exitRunUsage},
		{name: "relative workdir", args: []string{"--workdir", "data", "--", "true"}, code: exitRunUsage},
		{name: "missing bind", args: []string{"--bind", dir + "/none:/x", "--", "true"}, code: exitRunUsage},
		{name: "negative timeout", args: []string{"--timeout", "-1s", "--", "true"}, code: exitRunUsage},
		{name: "state dir", args: []string{"--state-dir", dir, "--", "true"}, code: exitRunUsage},
		{name: "stats detached", args: []string{"--stats", "-d", "--", "true"}, code: exitRunUsage},
		{name: "yaml", args: []string{"-o", "yaml", "--", "true"}, code: exitRunUsage},
		{name: "unknown flag", args: []string{"--bogus", "--", "true"}, code: exitRunUsage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, args, err := parseClientRunFlags(tc.args)
			var spec *v1.AppSpec
			if err == nil {
				spec, err = f.appSpec(args, env(tc.env...))
			}
			if got := exitCode(err); got != tc.code {
				t.Fatalf("error %v (status %d), want status %d", err, got, tc.code)
			}
			if err != nil {
				return
			}
			if f.detach != tc.det {
				t.Errorf("detach %v, want %v", f.detach, tc.det)
			}
			if !proto.Equal(spec, tc.want) {
				t.Errorf("spec %v, want %v", spec, tc.want)
			}
		})
	}
}

func TestClientPolicyDispatch(t *testing.T) {
	// Nothing listens there: a subcommand sent to the daemon fails to
	// reach it (status 1), one done locally never tries.
	host := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	file := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		host string
		args []string
		done bool
		code int
	}{
		{"", []string{"validate", file}, false, 0},
		{host, []string{"validate", file}, true, exitFailed},
		{host, []string{"apply", file}, true, exitFailed},
		{host, []string{"list"}, true, exitFailed},
		{host, []string{"get", "p"}, true, exitFailed},
		{host, []string{"rm", "p"}, true, exitFailed},
		{host, []string{"reload"}, true, exitFailed},
		{"", []string{"apply", file}, true, exitFailed}, // no daemon: says so
		{"", []string{"default"}, false, 0},
		{host, []string{"default"}, false, 0},
		{host, []string{"show", file}, false, 0},
		{"", nil, false, 0},
		{host, []string{"-h"}, false, 0},
	}
	stderr := os.Stderr
	t.Cleanup(func() { os.Stderr = stderr })
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	for _, tc := range tests {
		os.Stderr = null // the failures' messages
		done, err := clientPolicy(tc.host, tc.args)
		os.Stderr = stderr
		if done != tc.done || exitCode(err) != tc.code {
			t.Errorf("policy %q with host %q: handled by the client %v (status %d), want %v (%d)", tc.args, tc.host, done, exitCode(err), tc.done, tc.code)
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []struct {
		name   string
		script string
	}{{"bash", bashCompletion()}, {"zsh", zshCompletion()}} {
		t.Run(shell.name, func(t *testing.T) {
			for _, c := range completionSpec {
				if !strings.Contains(shell.script, " "+c.cmd+" ") && !strings.Contains(shell.script, "\t"+c.cmd+")") {
					t.Errorf("the %s script does not complete %s", shell.name, c.cmd)
				}
			}
			for cmd := range daemonCommands {
				if !slices.ContainsFunc(completionSpec, func(s completionEntry) bool { return s.cmd == cmd }) {
					t.Errorf("command %s is missing from the completion list", cmd)
				}
			}
			path, err := exec.LookPath(shell.name)
			if err != nil {
				t.Skipf("%s is not installed: the script's syntax is not checked", shell.name)
			}
			cmd := exec.Command(path, "-n")
			cmd.Stdin = strings.NewReader(shell.script)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s -n: %v\n%s", shell.name, err, out)
			}
		})
	}
}

// TestCompletionFlagsExist keeps the completion lists in step with the
// flags the commands define.
func TestCompletionFlagsExist(t *testing.T) {
	for _, c := range completionSpec {
		if c.cmd != "run" {
			continue
		}
		for _, fl := range strings.Fields(c.flags) {
			if fl == "--" {
				continue
			}
			args := []string{fl}
			switch strings.TrimLeft(fl, "-") {
			case "stats", "d":
			case "state-dir":
				continue // accepted, then refused with a hint
			default:
				args = append(args, "x")
			}
			_, _, err := parseClientRunFlags(append(args, "--", "true"))
			var ee *exitError
			if errors.As(err, &ee) && strings.Contains(ee.msg, "flag provided but not defined") {
				t.Errorf("run completes %s, which run does not define", fl)
			}
		}
	}
}

// TestBashCompletion drives the bash script as bash's completion would.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	tests := []struct {
		words []string
		want  []string
	}{
		{[]string{"pinfold", "p"}, []string{"ps", "policy"}},
		{[]string{"pinfold", "--host", "unix:///x.sock", "st"}, []string{"stats", "stop"}},
		{[]string{"pinfold", "-"}, []string{"--host"}},
		{[]string{"pinfold", "kill", "-"}, []string{"-s"}},
		{[]string{"pinfold", "kill", "-s", "T"}, []string{"TERM"}},
		{[]string{"pinfold", "policy", "re"}, []string{"reload"}},
		{[]string{"pinfold", "events", "--"}, []string{"--since", "--app"}},
		{[]string{"pinfold", "run", "-o", ""}, []string{"json"}},
		{[]string{"pinfold", "completion", ""}, []string{"bash", "zsh"}},
		{[]string{"pinfold", "ps", "-"}, []string{"-a", "-q", "-o"}},
	}
	for _, tc := range tests {
		quoted := make([]string, len(tc.words))
		for i, w := range tc.words {
			quoted[i] = "'" + w + "'"
		}
		script := bashCompletion() + fmt.Sprintf(`
COMP_WORDS=(%s); COMP_CWORD=%d; COMPREPLY=()
_pinfold
printf '%%s\n' "${COMPREPLY[@]}"
`, strings.Join(quoted, " "), len(tc.words)-1)
		out, err := exec.Command(bash, "--norc", "--noprofile", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.words, err, out)
		}
		got := strings.Fields(string(out))
		if !slices.Equal(got, tc.want) {
			t.Errorf("completing %q: %q, want %q", tc.words, got, tc.want)
		}
	}
}
