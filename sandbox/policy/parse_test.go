package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestParseErrors checks the exact messages for bad policy files: every
// problem in a file, each at its line and column, in file order.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		file string
		is   error // errors.Is must find it in the list
		want []string
	}{
		{"bad-name.yaml", ErrInvalidValue, []string{
			"4:9: metadata.name: \"Python_Tool\" is not a valid name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
		}},
		{"capabilities.yaml", ErrInvalidValue, []string{
			"7:29: spec.capabilities.add[1]: \"CAP_NET_BIND\" is not a capability (did you mean CAP_NET_BIND_SERVICE?)",
			"7:43: spec.capabilities.add[2]: \"sys_admn\" is not a capability (did you mean CAP_SYS_ADMIN?)",
			"7:63: spec.capabilities.add[4]: CAP_KILL is listed twice",
			"7:69: spec.capabilities.add[5]: expected a string, got 42",
		}},
		{"comments-only.yaml", ErrMissingField, []string{
			"1:1: the file is empty (a policy starts with apiVersion: pinfold/v1)",
		}},
		{"cpu-period.yaml", ErrWrongType, []string{
			"7:10: spec.resources.cpu: expected a number, got .inf",
			"8:16: spec.resources.cpuPeriod: must be between 1ms and 1s, got 2s",
		}},
		{"duplicate-keys.yaml", ErrDuplicateField, []string{
			"9:5: spec.env.LANG: duplicate key (first given at line 7)",
			"12:3: spec.resources: duplicate key (first given at line 10)",
		}},
		{"durations.yaml", ErrInvalidValue, []string{
			"7:16: spec.resources.cpuPeriod: 100 is not a duration (use e.g. 30s or 1m30s)",
			"9:15: spec.limits.wallTime: \"3 sec\" is not a duration (use e.g. 30s or 1m30s)",
			"10:18: spec.limits.stopTimeout: 30 is not a duration (use e.g. 30s or 1m30s)",
		}},
		{"empty.yaml", ErrMissingField, []string{
			"1:1: the file is empty (a policy starts with apiVersion: pinfold/v1)",
		}},
		{"env.yaml", ErrInvalidValue, []string{
			"7:9: spec.env.1X: \"1X\" is not a valid variable name (letters, digits and '_', not starting with a digit)",
			"8:10: spec.env[\"A-B\"]: \"A-B\" is not a valid variable name (letters, digits and '_', not starting with a digit)",
			"9:10: spec.env.NUL: value contains a NUL byte",
			"10:11: spec.env.LIST: expected a string, got a sequence",
		}},
		{"cgroupfs.yaml", ErrInvalidValue, []string{
			"12:15: spec.filesystem.cgroupfs: needs namespaces.cgroup: true (without a cgroup namespace the view would show the host's cgroup tree; write cgroupfs: false)",
		}},
		{"hostname.yaml", ErrInvalidValue, []string{
			"6:13: spec.hostname: \"my_app.-bad\" is not a valid hostname (letters, digits and '-' in labels separated by '.', each label at most 63 characters, at most 64 in all)",
		}},
		{"ipc-channels.yaml", ErrInvalidValue, []string{
			"9:14: spec.ipc.posixMQ: needs a create or attach grant with kind mq: without one every mq_open(3) of the app is refused (add a grant, or write posixMQ: false)",
			"16:18: spec.ipc.create[1].maxSize: 128Mi is more than maxBytes, 64Mi: no object could be that large (lower maxSize or raise maxBytes)",
			"22:77: spec.ipc.channels[0].maxMsg: applies only to mq channels",
			"23:9: spec.ipc.channels[1]: size 48Mi is more than the maxSize of spec.ipc.create[0], 32Mi: the app would fail to start (shrink the channel or raise the limit)",
			"26:16: spec.ipc.channels[4].name: object name \"/abs\" has an empty segment (a leading, trailing or doubled '/')",
			"27:45: spec.ipc.channels[5].access: a pipe channel is one end of the pipe: write access: read or access: write",
			"28:46: spec.ipc.channels[6].access: write, but spec.ipc.attach[0], the grant for pipe jobs/in2, allows only read: the app would fail to start (raise the grant's access or lower the channel's)",
			"29:45: spec.ipc.channels[7].access: readwrite, but spec.ipc.attach[0], the grant for shm jobs/shm, allows only read: the app would fail to start (raise the grant's access or lower the channel's)",
			"30:9: spec.ipc.channels[8]: attaches shm other for read, but no attach grant allows that: the app would fail to start (add an attach grant such as {names: [other], kinds: [shm], access: read}, or give the channel size to create the object)",
			"31:55: spec.ipc.channels[9].size: applies only to shm and region channels (a queue is sized by maxMsg and msgSize)",
			"31:68: spec.ipc.channels[9].maxMsg: must be between 0 and 65536, got 70000",
			"32:9: spec.ipc.channels[10].maxMsg: required with msgSize (the number of messages the queue holds, e.g. 10)",
			"33:16: spec.ipc.channels[11].name: channel results/a is already listed at spec.ipc.channels[0]",
			"34:9: spec.ipc.channels[12]: creates mq queue (maxMsg 10 × msgSize 8Ki = 80Ki) when it is absent, but no create grant allows that: the app would fail to start (add a create grant whose names match queue with kind mq, or drop maxMsg and msgSize to attach an object another app created)",
			"35:9: spec.ipc.channels[13].kind: required (pipe, shm, region or mq)",
			"35:9: spec.ipc.channels[13].name: required (the object name, such as results/main)",
		}},
		{"ipc-values.yaml", ErrWrongType, []string{
			"7:17: spec.ipc.maxObjects: must be between 0 and 65536, got -1",
			"8:15: spec.ipc.maxBytes: \"12XB\" is not a size (use e.g. 256Mi)",
			"9:14: spec.ipc.posixMQ: expected true or false, got \"yes\"",
			"11:17: spec.ipc.create[0].names[0]: name pattern \"results//x\" has an empty segment (a leading, trailing or doubled '/')",
			"11:39: spec.ipc.create[0].names[2]: \"ok/*\" is listed twice",
			"11:47: spec.ipc.create[0].names[3]: name pattern \"a**b\": \"**\" must be a whole segment (write \"a/**/b\", not \"a**b\")",
			"12:22: spec.ipc.create[0].kinds[1]: \"tube\" is not an IPC object kind (use pipe, shm, region or mq)",
			"12:28: spec.ipc.create[0].kinds[2]: shm is listed twice",
			"13:17: spec.ipc.create[0].peers[0]: \"Consumer\" is not a policy name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
			"13:37: spec.ipc.create[0].peers[2]: consumer is listed twice",
			"14:9: spec.ipc.create[0].persistant: unknown field (did you mean \"persistent\"?)",
			"15:16: spec.ipc.create[1].names: required (name patterns such as results/* or jobs/**)",
			"16:16: spec.ipc.create[1].kinds: required (pipe, shm, region or mq)",
			"17:9: spec.ipc.create[2]: expected a mapping, got \"results/*\"",
			"21:17: spec.ipc.attach[0].access: \"rw\" is not an access (use read, write or readwrite)",
			"22:18: spec.ipc.attach[0].owners[0]: \"producer-\" is not a policy name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)",
			"23:9: spec.ipc.attach[1].access: required (read, write or readwrite)",
			"23:16: spec.ipc.attach[1].names: expected a sequence, got \"jobs/*\"",
		}},
		{"many-errors.yaml", ErrUnknownField, []string{
			"9:22: spec.filesystem.readOnly[1]: \"usr/lib\" is not an absolute path",
			"9:31: spec.filesystem.readOnly[2]: /nope does not exist on this host",
			"10:14: spec.filesystem.workdir: \"tmp\" is not an absolute path",
			"12:5: spec.resources.memroy: unknown field (did you mean \"memory\"?)",
			"13:13: spec.resources.memory: \"12XB\" is not a size (use e.g. 256Mi)",
			"14:11: spec.resources.pids: expected an integer, got \"many\"",
			"15:16: spec.resources.cpuPeriod: \"3 sec\" is not a duration (use e.g. 30s or 1m30s)",
			"17:29: spec.limits.rlimits.RLIMIT_NPROC: RLIMIT_NPROC is not supported: it counts all processes of a uid, which sandboxes share; the number of tasks is limited by resources.pids (a cgroup limit)",
			"19:11: spec.capabilities.add[0]: \"CAP_NET_BIND\" is not a capability (did you mean CAP_NET_BIND_SERVICE?)",
			"20:3: spec.seccomp.defaultAction: required with profile: none (errno, kill_process or log)",
			"22:12: spec.network: host means no network namespace: set namespaces.net: false",
		}},
		{"missing-header.yaml", ErrMissingField, []string{
			"1:1: apiVersion: required (write apiVersion: pinfold/v1)",
			"1:1: kind: required (write kind: SandboxPolicy)",
			"1:1: metadata.name: required (a name such as python-tool)",
		}},
		{"missing-source.yaml", fs.ErrNotExist, []string{
			"8:9: spec.filesystem.readOnly[0]: /nope does not exist on this host",
			"10:9: spec.filesystem.readOnly[2]: /nope/models does not exist on this host",
		}},
		{"mount-conflicts.yaml", ErrInvalidValue, []string{
			"8:17: spec.filesystem.readWrite[0]: /data is already mounted by spec.filesystem.readOnly[1]",
			"9:13: spec.filesystem.tmpfs[\"/usr\"]: /usr is already mounted by spec.filesystem.readOnly[0]",
		}},
		{"namespaces.yaml", ErrUnsupported, []string{
			"7:10: spec.namespaces.pid: the pid namespace cannot be disabled: pinfold relies on it to contain and reap the app",
			"8:12: spec.namespaces.mount: the mount namespace cannot be disabled: pinfold relies on it to build the app's filesystem",
			"11:13: spec.hostname: needs namespaces.uts: true (without a UTS namespace the app sees the host's hostname)",
			"12:12: spec.network: \"none\" needs namespaces.net: true (without a network namespace the app shares the host's network; write network: host)",
		}},
		{"network.yaml", ErrUnsupported, []string{
			"6:12: spec.network: \"bridge\" is not supported (only none, a network namespace with loopback only, is supported)",
		}},
		{"not-mapping.yaml", ErrWrongType, []string{
			"1:1: expected a mapping with apiVersion, kind, metadata and spec, got a sequence",
		}},
		{"paths.yaml", ErrInvalidValue, []string{
			"9:9: spec.filesystem.readOnly[1]: \"usr/lib\" is not an absolute path",
			"10:9: spec.filesystem.readOnly[2]: \"/usr/../etc\" must not contain \"..\"",
			"11:9: spec.filesystem.readOnly[3]: \"/usr/\" is not a clean path (write /usr)",
			"12:9: spec.filesystem.readOnly[4]: \"/usr:/opt:/x\" has more than one ':' (write PATH or SRC:DST)",
			"13:9: spec.filesystem.readOnly[5]: \"lib\" is not an absolute path",
			"14:17: spec.filesystem.readWrite[0]: cannot mount over /: pinfold builds the root filesystem",
			"14:27: spec.filesystem.readWrite[1]: cannot mount at /proc/x: pinfold mounts /proc itself (hide paths with masked)",
			"14:43: spec.filesystem.readWrite[2]: cannot mount at /dev/null: pinfold builds /dev itself",
			"15:13: spec.filesystem.tmpfs.tmp: \"tmp\" is not an absolute path",
			"15:23: spec.filesystem.tmpfs[\"/sys/x\"]: cannot mount at /sys/x: pinfold mounts /sys itself (see sysfs)",
			"16:27: spec.filesystem.masked[1]: \"relative\" is not an absolute path",
			"16:37: spec.filesystem.masked[2]: \"/proc//x\" is not a clean path (write /proc/x)",
			"17:14: spec.filesystem.workdir: \"./app\" is not an absolute path",
		}},
		{"resources.yaml", ErrInvalidValue, []string{
			"7:10: spec.resources.cpu: 0.001 cores over a 100ms period is a quota of 100µs, below the kernel's minimum of 1ms (raise cpu or cpuPeriod)",
			"8:16: spec.resources.cpuShares: must be between 2 and 262144, got 1",
			"9:11: spec.resources.pids: must be between 1 and 4194304, got 0",
			"10:15: spec.resources.ioWeight: must be between 10 and 1000, got 5000",
			"12:16: spec.limits.openFiles: must be between 1 and 2147483584, got 0",
			"13:15: spec.limits.wallTime: must not be negative (0 is no limit)",
		}},
		{"rlimits.yaml", ErrMissingField, []string{
			"8:21: spec.limits.rlimits.RLIMIT_NPROC: RLIMIT_NPROC is not supported: it counts all processes of a uid, which sandboxes share; the number of tasks is limited by resources.pids (a cgroup limit)",
			"9:7: spec.limits.rlimits.RLIMIT_NOFILE: set RLIMIT_NOFILE with limits.openFiles",
			"10:7: spec.limits.rlimits.RLIMIT_STAK: \"RLIMIT_STAK\" is not a resource limit (did you mean RLIMIT_STACK?)",
			"11:21: spec.limits.rlimits.RLIMIT_STACK.soft: soft limit 16Mi is above the hard limit 8Mi",
			"12:27: spec.limits.rlimits.RLIMIT_NICE.soft: \"1Ki\": RLIMIT_NICE is a count, not a size (write an integer or unlimited)",
			"13:7: spec.limits.rlimits.RLIMIT_MEMLOCK.hard: required (the hard limit, e.g. 8Mi)",
		}},
		{"scalar.yaml", ErrWrongType, []string{
			"1:1: expected a mapping with apiVersion, kind, metadata and spec, got \"just a string\"",
		}},
		{"seccomp-allow-default.yaml", ErrInvalidValue, []string{
			"8:20: spec.seccomp.defaultAction: \"allow\" cannot be the default action (use errno, kill, kill_process, kill_thread or log)",
		}},
		{"seccomp-none.yaml", ErrMissingField, []string{
			"6:3: spec.seccomp.defaultAction: required with profile: none (errno, kill_process or log)",
		}},
		{"seccomp-profile-relative.yaml", ErrInvalidValue, []string{
			"7:14: spec.seccomp.profile: \"docker.json\" is not an absolute path (use default, none, or the absolute path of an OCI seccomp profile)",
		}},
		{"seccomp-profile.yaml", fs.ErrNotExist, []string{
			"7:14: spec.seccomp.profile: seccomp profile /nonexistent/seccomp.json does not exist on this host",
		}},
		{"seccomp.yaml", ErrInvalidValue, []string{
			"8:20: spec.seccomp.defaultAction: applies only with profile: none (a profile has its own default action)",
			"10:25: spec.seccomp.syscalls[0].names[1]: \"PTRACE\" is not a syscall name (lowercase, e.g. ptrace)",
			"11:17: spec.seccomp.syscalls[0].action: \"permit\" is not a seccomp action (use allow, errno, kill, kill_process, kill_thread, log, trap, trace, notify)",
			"14:19: spec.seccomp.syscalls[1].errnoRet: applies only to action errno or trace",
			"16:21: spec.seccomp.syscalls[1].args[0].index: must be between 0 and 5, got 7",
			"16:38: spec.seccomp.syscalls[1].args[0].op: \"equals\" is not a comparison (use eq, ne, lt, le, gt, ge or masked_eq)",
			"17:44: spec.seccomp.syscalls[1].args[1].valueTwo: applies only to op masked_eq",
			"18:9: spec.seccomp.syscalls[2].names: required (syscall names, e.g. [ptrace])",
		}},
		{"sizes.yaml", ErrInvalidValue, []string{
			"8:13: spec.filesystem.tmpfs[\"/tmp\"]: size 0 is too small (use e.g. 64Mi)",
			"9:17: spec.filesystem.tmpfs[\"/dev/shm\"]: \"64MB\" is not a size (use e.g. 256Mi)",
			"10:17: spec.filesystem.tmpfs[\"/var/tmp\"]: \"1.5Gi\" is not a size (use e.g. 256Mi)",
			"12:13: spec.resources.memory: \"12XB\" is not a size (use e.g. 256Mi)",
			"13:17: spec.resources.memorySwap: -1 is not a size (use e.g. 256Mi)",
			"15:15: spec.limits.coreSize: \"99999999999Ti\" is too large",
		}},
		{"small-memory.yaml", ErrInvalidValue, []string{
			"7:13: spec.resources.memory: 1Mi is below the minimum of 4Mi",
		}},
		{"syntax.yaml", ErrSyntax, []string{
			"8:3: invalid YAML: ',' or ']' must be specified",
		}},
		{"two-documents.yaml", ErrUnsupported, []string{
			"6:1: a second YAML document: a policy file holds one policy",
		}},
		{"unknown-fields.yaml", ErrUnknownField, []string{
			"5:3: metadata.labels: unknown field (known fields: name)",
			"8:5: spec.resources.memroy: unknown field (did you mean \"memory\"?)",
			"9:5: spec.resources.cpuperiod: unknown field (did you mean \"cpuPeriod\"?)",
			"11:5: spec.filesystem.read_only: unknown field (did you mean \"readOnly\"?)",
			"12:3: spec.sekcomp: unknown field (did you mean \"seccomp\"?)",
			"13:3: spec.frobnicate: unknown field (known fields: namespaces, hostname, user, env, filesystem, resources, limits, capabilities, seccomp, network, ipc)",
		}},
		{"user-namespace.yaml", ErrMissingField, []string{
			"7:5: spec.namespaces.user.gidMappings: required with a user namespace (e.g. [{containerID: 0, hostID: 100000, size: 65536}])",
			"10:11: spec.namespaces.user.uidMappings[1]: container ids overlap those of spec.namespaces.user.uidMappings[0]",
			"11:50: spec.namespaces.user.uidMappings[2].size: must be between 1 and 4294967295, got 0",
			"13:10: spec.user.uid: uid 65534 is not mapped by spec.namespaces.user.uidMappings",
			"14:10: spec.user.gid: gid 0 is not mapped by spec.namespaces.user.gidMappings",
			"15:22: spec.user.additionalGids[0]: must be between 0 and 4294967294, got 4294967295",
		}},
		{"wrong-header.yaml", ErrUnsupported, []string{
			"1:13: apiVersion: \"pinfold/v2\" is not supported (use pinfold/v1)",
			"2:7: kind: \"Sandbox\" is not supported (use SandboxPolicy)",
		}},
		{"wrong-types.yaml", ErrWrongType, []string{
			"7:10: spec.namespaces.uts: expected true or false, got \"yes\"",
			"8:10: spec.namespaces.ipc: expected true or false, got 1",
			"9:13: spec.hostname: expected a string, got 123",
			"10:15: spec.user.uid: expected an integer, got \"root\"",
			"10:26: spec.user.gid: must be between 0 and 4294967294, got -1",
			"11:8: spec.env: expected a mapping, got a sequence",
			"13:15: spec.filesystem.readOnly: expected a sequence, got \"/usr\"",
			"14:12: spec.filesystem.sysfs: expected true or false, got null",
			"16:11: spec.resources.pids: expected an integer, got \"many\"",
			"17:10: spec.resources.cpu: expected a number, got \"half\"",
			"18:16: spec.resources.cpuShares: expected an integer, got 1.5",
			"20:16: spec.limits.openFiles: must be between 1 and 2147483584, got 99999999999999999999",
			"21:17: spec.capabilities: expected a mapping, got a sequence",
		}},
		{"yaml-features.yaml", ErrUnsupported, []string{
			"7:8: spec.env.A: YAML aliases are not supported in a policy file (write the value out)",
			"9:5: spec.resources: YAML merge keys (<<) are not supported in a policy file (write the fields out)",
			"10:13: spec.hostname: the YAML tag \"!custom\" is not supported in a policy file",
		}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "bad", tt.file)
			p, err := LoadFile(path)
			if err == nil {
				t.Fatalf("LoadFile(%s) accepted the policy: %+v", path, p)
			}
			if p != nil {
				t.Errorf("LoadFile(%s) returned a policy with its error", path)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is a %T, not an ErrorList: %v", err, err)
			}
			got := strings.Split(err.Error(), "\n")
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = path + ":" + w
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if len(list) != len(tt.want) {
				t.Errorf("ErrorList has %d entries for %d lines", len(list), len(tt.want))
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) is false", tt.is)
			}
		})
	}
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no entry in the table", f)
		}
	}
}

const header = "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: inline\n"

// TestParseInput covers inputs that are awkward to keep as files.
func TestParseInput(t *testing.T) {
	tests := []struct {
		name string
		file string
		data string
		is   error
		want string // "" for success
	}{
		{"invalid UTF-8", "p.yaml", header + "spec:\n  hostname: a\xffb\n", ErrSyntax,
			"p.yaml:6:14: not valid UTF-8 text"},
		{"too large", "p.yaml", header + "# " + strings.Repeat("x", MaxFileSize) + "\n", ErrInvalidValue,
			"p.yaml:1:1: file is larger than 1Mi: a policy file is small"},
		{"no file name", "", "kind: SandboxPolicy\n", ErrMissingField,
			"<input>:1:1: apiVersion: required (write apiVersion: pinfold/v1)\n" +
				"<input>:1:1: metadata.name: required (a name such as python-tool)"},
		{"tab indentation", "p.yaml", header + "spec:\n\thostname: a\n", ErrSyntax,
			"p.yaml:6:1: invalid YAML: found character '\t' that cannot start any token"},
		{"null section", "p.yaml", header + "spec:\n  resources:\n", ErrWrongType,
			"p.yaml:6:3: spec.resources: expected a mapping, got null"},
		{"null value", "p.yaml", header + "spec:\n  resources:\n    memory:\n", ErrWrongType,
			"p.yaml:7:5: spec.resources.memory: expected a size such as 256Mi, got null"},
		{"non-string key", "p.yaml", header + "spec:\n  [a]: 1\n", ErrSyntax,
			"p.yaml:6:6: invalid YAML: found an invalid key for this map"},
		{"deep nesting", "p.yaml", header + "spec:\n  env: " + strings.Repeat("[", 100000) + "\n", ErrSyntax,
			"p.yaml:6:40: YAML collections nested more than 32 deep: a policy needs far fewer"},
		{"byte order mark", "p.yaml", "\xef\xbb\xbf" + header, nil, ""},
		{"CRLF line ends", "p.yaml", strings.ReplaceAll(header+"spec:\n  hostname: crlf\n", "\n", "\r\n"), nil, ""},
		{"document end marker", "p.yaml", "---\n" + header + "...\n", nil, ""},
		{"pid and mount on", "p.yaml", header + "spec:\n  namespaces: {pid: true, mount: true}\n", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse(tt.file, []byte(tt.data))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if p.Metadata.Name != "inline" {
					t.Fatalf("name = %q, want inline", p.Metadata.Name)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.data)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tt.want)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) is false", tt.is)
			}
		})
	}
}

// TestParseMaxErrors checks that a file with very many problems gets the
// first MaxErrors of them and a count of the rest.
func TestParseMaxErrors(t *testing.T) {
	data := header + "spec:\n  capabilities:\n    add:\n" + strings.Repeat("      - CAP_NOPE\n", MaxErrors+50)
	_, err := Parse("p.yaml", []byte(data))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse: %v", err)
	}
	if len(list) != MaxErrors+1 {
		t.Fatalf("%d errors, want %d", len(list), MaxErrors+1)
	}
	if got, want := list[0].Error(), `p.yaml:8:9: spec.capabilities.add[0]: "CAP_NOPE" is not a capability (did you mean CAP_BPF?)`; got != want {
		t.Errorf("first error %q, want %q", got, want)
	}
	if got, want := list[MaxErrors].Error(), fmt.Sprintf("p.yaml:%d:9: too many errors: 50 more not shown", 8+MaxErrors); got != want {
		t.Errorf("last error %q, want %q", got, want)
	}
}

func TestParseDefaults(t *testing.T) {
	p, err := LoadFile("testdata/good/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Metadata.Name = "minimal"
	if !reflect.DeepEqual(p, want) {
		t.Errorf("minimal policy:\n%#v\nwant the default:\n%#v", p, want)
	}
}

// TestParsePartial checks that a field given in a file replaces its default
// and that its neighbours keep theirs.
func TestParsePartial(t *testing.T) {
	p, err := Parse("p.yaml", []byte(header+`spec:
  env: {HOME: /tmp}
  resources: {memory: 1Gi}
  filesystem: {tmpfs: {}}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Metadata.Name = "inline"
	want.Spec.Env = map[string]string{"HOME": "/tmp"}
	want.Spec.Resources.Memory = GiB
	want.Spec.Filesystem.Tmpfs = nil
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got\n%#v\nwant\n%#v", p, want)
	}
}

func TestParseFull(t *testing.T) {
	p, err := LoadFile("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	errno13 := uint(13)
	want := &Policy{
		APIVersion: APIVersion,
		Kind:       Kind,
		Metadata:   Metadata{Name: "full-policy-1"},
		Spec: Spec{
			Namespaces: Namespaces{UTS: true, Net: true, User: &UserNamespace{
				UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
				GIDMappings: []specs.LinuxIDMapping{
					{ContainerID: 0, HostID: 100000, Size: 1000},
					{ContainerID: 1000, HostID: 200000, Size: 10},
				},
			}},
			Hostname: "app.example",
			User:     User{UID: 1000, GID: 1005, AdditionalGids: []uint32{1, 2}},
			Env: map[string]string{
				"LANG": "en_US.UTF-8", "PORT": "8080", "EMPTY": "", "QUOTED": "say \"hi\"\tthere",
			},
			Filesystem: Filesystem{
				ReadOnly:  []Bind{{"/usr", "/usr"}, {"/etc", "/host/etc"}},
				ReadWrite: []Bind{{"/tmp", "/data"}},
				Tmpfs:     map[string]Size{"/tmp": 128 * MiB, "/run": 1000000},
				Masked:    []string{"/proc/kcore", "/etc/shadow"},
				Workdir:   "/data",
				Sysfs:     true,
			},
			Resources: Resources{
				Memory: GiB, MemorySwap: 256 * MiB, CPU: 0.5, CPUPeriod: 50 * time.Millisecond,
				CPUShares: 512, Pids: 64, IOWeight: 200,
			},
			Limits: Limits{
				WallTime: 90 * time.Second, StopTimeout: 2 * time.Second, OpenFiles: 4096, CoreSize: MiB,
				Rlimits: []specs.POSIXRlimit{
					{Type: "RLIMIT_NICE", Soft: 0, Hard: 10},
					{Type: "RLIMIT_STACK", Soft: 8 << 20, Hard: rlimitInfinity},
				},
			},
			Capabilities: Capabilities{Add: []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"}},
			Seccomp: Seccomp{
				Profile:       ProfileNone,
				DefaultAction: specs.ActErrno,
				Syscalls: []specs.LinuxSyscall{
					{Names: []string{"read", "write", "exit_group"}, Action: specs.ActAllow},
					{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
						{Index: 0, Value: 0, Op: specs.OpEqualTo},
						{Index: 1, Value: 255, ValueTwo: 8, Op: specs.OpMaskedEqual},
					}},
					{Names: []string{"ptrace"}, Action: specs.ActKillProcess},
					{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: &errno13},
				},
			},
			Network: NetworkNone,
		},
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("got\n%#v\nwant\n%#v", p, want)
	}
}

func TestParseYAMLStyles(t *testing.T) {
	p, err := LoadFile("testdata/good/yaml-styles.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wantEnv := map[string]string{"BANNER": "hello\nworld\n", "FOLDED": "one two", "NUMBER": "0x10"}
	if !reflect.DeepEqual(p.Spec.Env, wantEnv) {
		t.Errorf("env = %q, want %q", p.Spec.Env, wantEnv)
	}
	if p.Metadata.Name != "styles" || p.Spec.Hostname != "box" || p.Spec.Resources.Memory != 256*MiB || p.Spec.Resources.CPU != 2 {
		t.Errorf("name %q, hostname %q, memory %v, cpu %v; want styles, box, 256Mi, 2",
			p.Metadata.Name, p.Spec.Hostname, p.Spec.Resources.Memory, p.Spec.Resources.CPU)
	}
}

func TestParseHostNetwork(t *testing.T) {
	p, err := LoadFile("testdata/good/host-network.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Spec.Network != NetworkHost || p.Spec.Hostname != "" {
		t.Errorf("network %q, hostname %q; want host and none", p.Spec.Network, p.Spec.Hostname)
	}
}

// TestParseCgroupfsDefault: cgroupfs defaults to true, and to false without
// a cgroup namespace unless the file sets it.
func TestParseCgroupfsDefault(t *testing.T) {
	tests := []struct {
		name, spec string
		want       bool
	}{
		{"default", "spec: {}\n", true},
		{"off", "spec: {filesystem: {cgroupfs: false}}\n", false},
		{"no cgroup namespace", "spec: {namespaces: {cgroup: false}}\n", false},
		{"no cgroup namespace, said off", "spec: {namespaces: {cgroup: false}, filesystem: {cgroupfs: false}}\n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("p.yaml", []byte(header+tc.spec))
			if err != nil {
				t.Fatal(err)
			}
			if p.Spec.Filesystem.Cgroupfs != tc.want {
				t.Errorf("cgroupfs = %v, want %v", p.Spec.Filesystem.Cgroupfs, tc.want)
			}
		})
	}
}

func TestParseErrorDetails(t *testing.T) {
	_, err := LoadFile("testdata/bad/many-errors.yaml")
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("errors.As(*FieldError) failed on %v", err)
	}
	want := &FieldError{
		File: "testdata/bad/many-errors.yaml", Line: 9, Column: 22,
		Path: "spec.filesystem.readOnly[1]", Msg: `"usr/lib" is not an absolute path`, Err: ErrInvalidValue,
	}
	if !reflect.DeepEqual(fe, want) {
		t.Errorf("first error = %#v, want %#v", fe, want)
	}
	for _, is := range []error{ErrUnknownField, ErrInvalidValue, ErrWrongType, ErrUnsupported, ErrMissingField, fs.ErrNotExist} {
		if !errors.Is(err, is) {
			t.Errorf("errors.Is(err, %v) is false", is)
		}
	}
	if errors.Is(err, ErrSyntax) {
		t.Error("errors.Is(err, ErrSyntax) is true for a well-formed file")
	}
}

func TestLoadFileMissing(t *testing.T) {
	_, err := LoadFile(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadFile of a missing file: %v, want fs.ErrNotExist", err)
	}
	var list ErrorList
	if errors.As(err, &list) {
		t.Errorf("a missing file is reported as policy problems: %v", err)
	}
}

func TestLoadFileTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(path, []byte(header+strings.Repeat("#\n", MaxFileSize)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFile(path)
	if want := path + ":1:1: file is larger than 1Mi: a policy file is small"; err == nil || err.Error() != want {
		t.Fatalf("LoadFile: %v, want %s", err, want)
	}
}
