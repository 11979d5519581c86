package policy

import (
	"bytes"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/ipc"
)

// fixed is a policy that does not depend on the host, with something in
// every field.
func fixed() *Policy {
	p := Default()
	p.Metadata.Name = "fixed"
	errno := uint(38)
	p.Spec.Namespaces.IPC = false
	p.Spec.Namespaces.User = &UserNamespace{
		UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}},
	}
	p.Spec.User.AdditionalGids = []uint32{10, 20}
	p.Spec.Env["TZ"] = "UTC"
	p.Spec.Filesystem.ReadOnly = []Bind{{"/usr", "/usr"}, {"/etc/ssl", "/etc/ssl"}, {"/etc", "/host-etc"}}
	p.Spec.Filesystem.ReadWrite = []Bind{{"/tmp", "/data"}}
	p.Spec.Filesystem.Masked = []string{"/etc/shadow"}
	p.Spec.Filesystem.Workdir = "/data"
	p.Spec.Resources.CPUShares = 512
	p.Spec.Resources.IOWeight = 100
	p.Spec.Resources.CPU = 0.25
	p.Spec.Limits.WallTime = 90 * time.Second
	p.Spec.Limits.Rlimits = []specs.POSIXRlimit{
		{Type: "RLIMIT_NICE", Soft: 0, Hard: 5},
		{Type: "RLIMIT_STACK", Soft: 8 << 20, Hard: rlimitInfinity},
	}
	p.Spec.Capabilities.Add = []string{"CAP_NET_BIND_SERVICE"}
	p.Spec.Seccomp.Syscalls = []specs.LinuxSyscall{
		{Names: []string{"ptrace", "process_vm_readv"}, Action: specs.ActErrno, ErrnoRet: &errno},
		{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
			{Index: 0, Value: 0xffff, ValueTwo: 8, Op: specs.OpMaskedEqual},
		}},
	}
	p.Spec.IPC = ipc.Grants{
		MaxObjects: 8, MaxBytes: int64(256 * MiB), POSIXMQ: true,
		Create: []ipc.CreateGrant{
			{Names: []string{"results/*", "tmp/**"}, Kinds: []ipc.Kind{ipc.Shm, ipc.Pipe}, MaxSize: int64(64 * MiB), Persistent: true, Peers: []string{"consumer"}},
			{Names: []string{"jobs"}, Kinds: []ipc.Kind{ipc.MQ}, MaxSize: int64(MiB)},
		},
		Attach: []ipc.AttachGrant{
			{Names: []string{"control/?"}, Kinds: []ipc.Kind{ipc.Pipe, ipc.Region}, Access: ipc.Read, Owners: []string{"supervisor"}},
		},
		Channels: []ipc.Channel{
			{Name: "results/main", Kind: ipc.Shm, Access: ipc.ReadWrite, Size: int64(16 * MiB)},
			{Name: "jobs", Kind: ipc.MQ, Access: ipc.Write, MaxMsg: 64, MsgSize: int64(8 * KiB)},
			{Name: "control/a", Kind: ipc.Pipe, Access: ipc.Read},
		},
	}
	return p
}

const fixedYAML = `apiVersion: pinfold/v1
kind: SandboxPolicy
metadata:
  name: fixed
spec:
  namespaces:
    uts: true
    ipc: false
    net: true
    cgroup: true
    user:
      uidMappings:
        - {containerID: 0, hostID: 100000, size: 65536}
      gidMappings:
        - {containerID: 0, hostID: 100000, size: 65536}
  hostname: sandbox
  user:
    uid: 65534
    gid: 65534
    additionalGids: [10, 20]
  env:
    LANG: C.UTF-8
    TZ: UTC
  filesystem:
    readOnly: [/usr, /etc/ssl, "/etc:/host-etc"]
    readWrite: ["/tmp:/data"]
    tmpfs:
      /dev/shm: 64Mi
      /tmp: 64Mi
    masked: [/etc/shadow]
    workdir: /data
    sysfs: false
    cgroupfs: true
  resources:
    memory: 512Mi
    memorySwap: 0
    cpu: 0.25
    cpuPeriod: 100ms
    cpuShares: 512
    pids: 256
    ioWeight: 100
  limits:
    wallTime: 1m30s
    stopTimeout: 10s
    openFiles: 1024
    coreSize: 0
    logSize: 0
    removeAfter: 0s
    rlimits:
      RLIMIT_NICE: {soft: 0, hard: 5}
      RLIMIT_STACK: {soft: 8Mi, hard: unlimited}
  capabilities:
    add: [CAP_NET_BIND_SERVICE]
  seccomp:
    profile: default
    syscalls:
      - names: [ptrace, process_vm_readv]
        action: errno
        errnoRet: 38
      - names: [personality]
        action: allow
        args:
          - {index: 0, value: 65535, valueTwo: 8, op: masked_eq}
  network: none
  ipc:
    maxObjects: 8
    maxBytes: 256Mi
    posixMQ: true
    create:
      - names: ["results/*", "tmp/**"]
        kinds: [shm, pipe]
        maxSize: 64Mi
        persistent: true
        peers: [consumer]
      - names: [jobs]
        kinds: [mq]
        maxSize: 1Mi
        persistent: false
        peers: []
    attach:
      - names: ["control/?"]
        kinds: [pipe, region]
        access: read
        owners: [supervisor]
    channels:
      - {name: results/main, kind: shm, access: readwrite, size: 16Mi}
      - {name: jobs, kind: mq, access: write, maxMsg: 64, msgSize: 8Ki}
      - {name: control/a, kind: pipe, access: read}
`

func TestEncode(t *testing.T) {
	var b bytes.Buffer
	if err := fixed().Encode(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != fixedYAML {
		t.Errorf("Encode:\n%s\nwant:\n%s", b.String(), fixedYAML)
	}
}

// TestEncodeRoundTrip encodes valid policies and parses them back.
func TestEncodeRoundTrip(t *testing.T) {
	policies := map[string]*Policy{"default": Default(), "fixed": fixed()}
	files, err := filepath.Glob("testdata/good/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p, err := LoadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		policies[f] = p
	}
	odd := fixed()
	odd.Spec.Env = map[string]string{
		"BOOL": "true", "NULL": "null", "TILDE": "~", "NUM": "0x1F", "FLOAT": "1e3", "DASH": "- x",
		"COLON": "a: b", "HASH": "# not a comment", "SPACES": "  padded  ", "QUOTES": `'single' "double"`,
		"BACKSLASH": `C:\path\`, "NEWLINES": "a\nb\r\n", "CONTROL": "\x01\x1b[0m\x7f", "UNICODE": "héllo wörld ☃ 😀",
		"NONPRINT": "\u00a0\u2028\ufeff", "EMPTY": "", "BRACKETS": "[a, {b}]", "ANCHOR": "&a *b !c %d @e `f",
		"YES": "yes", "LEADING_ZERO": "007", "DOT": ".inf", "DATE": "2001-12-14",
	}
	odd.Spec.Filesystem.Masked = []string{"/a b", "/ünïcode", "/with:colon", "/#hash"}
	odd.Spec.Filesystem.Tmpfs = map[string]Size{"/tmp": 1, "/x y": 1000, "/big": math.MaxInt64}
	odd.Spec.Resources = Resources{Memory: math.MaxInt64, CPU: 0.0123456789, CPUPeriod: 999999 * time.Microsecond, Pids: maxPids}
	odd.Spec.Limits = Limits{
		WallTime: time.Duration(math.MaxInt64), StopTimeout: 0, OpenFiles: maxOpenFiles, CoreSize: math.MaxInt64,
		Rlimits: []specs.POSIXRlimit{
			{Type: "RLIMIT_AS", Soft: 1<<63 + 5, Hard: rlimitInfinity - 1},
			{Type: "RLIMIT_CPU", Soft: 7, Hard: rlimitInfinity},
		},
	}
	odd.Spec.Seccomp = Seccomp{Profile: ProfileNone, DefaultAction: specs.ActLog, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"read"}, Action: specs.ActNotify},
		{Names: []string{"write"}, Action: specs.ActTrace, Args: []specs.LinuxSeccompArg{
			{Index: 5, Value: math.MaxUint64, Op: specs.OpGreaterEqual},
		}},
	}}
	odd.Spec.Namespaces.UTS, odd.Spec.Hostname = false, ""
	odd.Spec.Namespaces.Net, odd.Spec.Network = false, NetworkHost
	policies["odd values"] = odd

	for name, p := range policies {
		t.Run(name, func(t *testing.T) {
			if err := p.Validate(); err != nil {
				t.Fatalf("the policy to encode is not valid: %v", err)
			}
			var b bytes.Buffer
			if err := p.Encode(&b); err != nil {
				t.Fatal(err)
			}
			q, err := Parse("encoded.yaml", b.Bytes())
			if err != nil {
				t.Fatalf("Parse(Encode(p)): %v\n%s", err, b.String())
			}
			if !reflect.DeepEqual(p, q) {
				t.Errorf("round trip changed the policy:\n%#v\n%#v\nencoded:\n%s", p, q, b.String())
			}
		})
	}
}

func TestYAMLString(t *testing.T) {
	for in, want := range map[string]string{
		"sandbox": "sandbox", "/usr/lib": "/usr/lib", "C.UTF-8": "C.UTF-8", "_x": "_x",
		"true": `"true"`, "Off": `"Off"`, "1": `"1"`, "": `""`, "a b": `"a b"`, "a:b": `"a:b"`,
		"tab\t": `"tab\t"`, "\x00": `"\x00"`, "é": `"é"`, "\u2028": `"\u2028"`, `"`: `"\""`,
	} {
		if got := yamlString(in); got != want {
			t.Errorf("yamlString(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestEncodeNoHostname checks that a policy without a UTS namespace has no
// hostname line, rather than an empty one.
func TestEncodeNoHostname(t *testing.T) {
	p := Default()
	p.Spec.Namespaces.UTS, p.Spec.Hostname = false, ""
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "hostname") {
		t.Errorf("encoded policy has a hostname:\n%s", b.String())
	}
}
