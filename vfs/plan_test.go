package vfs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fakeHost builds a small host tree: merged /bin and /lib (but a real
// /sbin), /usr, an /etc with secrets and carried files, and /srv sources.
func fakeHost(t *testing.T) string {
	t.Helper()
	h := t.TempDir()
	dirs := []string{"usr/bin", "usr/lib", "sbin", "etc/ssl/certs", "etc/ld.so.conf.d",
		"etc/python3.11", "etc/python3.9", "srv/data/sub", "srv/models", "srv/data/ro"}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(h, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"usr/bin/sh":                   "#!",
		"etc/passwd":                   "host:x:0:0::/:/bin/sh\n",
		"etc/shadow":                   "root:secret\n",
		"etc/hostname":                 "hostbox\n",
		"etc/machine-id":               "0123\n",
		"etc/ld.so.conf":               "include /etc/ld.so.conf.d/*.conf\n",
		"etc/ld.so.cache":              strings.Repeat("c", 4*copyLimit),
		"etc/ld.so.conf.d/libc.conf":   "/usr/local/lib\n",
		"etc/python3.11/sitecustomize": "# site\n",
		"etc/gai.conf":                 strings.Repeat("# comment\n\n  # indented\n", 200),
		"etc/host.conf":                "multi on\n",
		"etc/services":                 "# only comments\n\n  # here\n",
		"etc/mime.types":               strings.Repeat("# comment\n", 200), // bound unread
		"etc/protocols":                strings.Repeat("ip 0 IP\n", 200),
		"srv/file":                     "data",
		"srv/data/file":                "data",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(h, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"bin":             "usr/bin",
		"lib":             "usr/lib",
		"etc/localtime":   "/usr/share/zoneinfo/UTC",
		"srv/link":        "models",
		"usr/bin/python3": "python3.11",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(h, name)); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// opsByPath indexes a plan's ops by path (the last op wins: a mountpoint is
// followed by its mount).
func opsByPath(p *Plan) map[string]Op {
	m := map[string]Op{}
	for _, op := range p.Ops {
		m[op.Path] = op
	}
	return m
}

func TestNewPlan(t *testing.T) {
	h := fakeHost(t)
	def := DefaultSpec()
	with := func(f func(*Spec)) Spec {
		s := def
		s.ReadOnly = append([]Bind(nil), def.ReadOnly...)
		f(&s)
		return s
	}
	type want struct {
		kind   Kind
		source string // checked when not empty; host prefix added for binds
		attr   Attr   // checked for binds and mounts
	}
	tests := []struct {
		name    string
		spec    Spec
		want    map[string]want // ops that must be in the plan, by path
		absent  []string        // paths no op may have
		content map[string]string
	}{{
		name: "default",
		spec: def,
		want: map[string]want{
			"/usr":                {KindBind, "/usr", ReadOnly | NoSuid | NoDev},
			"/bin":                {KindSymlink, "usr/bin", 0},
			"/lib":                {KindSymlink, "usr/lib", 0},
			"/tmp":                {KindMount, "", NoSuid | NoDev},
			"/etc/passwd":         {kind: KindFile},
			"/etc/hostname":       {kind: KindFile},
			"/etc/host.conf":      {kind: KindFile},
			"/etc/ld.so.cache":    {KindBind, "/etc/ld.so.cache", ReadOnly | NoSuid | NoDev | NoExec},
			"/etc/ssl":            {KindBind, "/etc/ssl", ReadOnly | NoSuid | NoDev | NoExec},
			"/etc/python3.11":     {KindBind, "/etc/python3.11", ReadOnly | NoSuid | NoDev | NoExec},
			"/etc/protocols":      {KindBind, "/etc/protocols", ReadOnly | NoSuid | NoDev | NoExec},
			"/etc/mime.types":     {KindBind, "/etc/mime.types", ReadOnly | NoSuid | NoDev | NoExec},
			"/etc/localtime":      {KindSymlink, "/usr/share/zoneinfo/UTC", 0},
			"/etc/mtab":           {KindSymlink, "../proc/self/mounts", 0},
			"/dev":                {KindSeal, "", 0},
			"/dev/null":           {kind: KindDevice},
			"/dev/ptmx":           {KindSymlink, "pts/ptmx", 0},
			"/dev/pts":            {KindMount, "", NoSuid | NoExec},
			"/dev/shm":            {KindMount, "", NoSuid | NoDev | NoExec},
			"/dev/mqueue":         {KindMount, "", NoSuid | NoDev | NoExec},
			"/proc":               {KindMount, "", NoSuid | NoDev | NoExec},
			"/proc/kcore":         {kind: KindMask},
			"/proc/sys":           {kind: KindReadOnly},
			"/proc/sysrq-trigger": {kind: KindReadOnly},
			"/proc/timer_list":    {kind: KindMask},
			"/proc/latency_stats": {kind: KindMask},
			"/proc/acpi":          {kind: KindMask},
			"/etc/nsswitch.conf":  {kind: KindFile},
			"/etc/resolv.conf":    {kind: KindFile},
			"/etc/hosts":          {kind: KindFile},
			"/etc/group":          {kind: KindFile},
		},
		absent: []string{"/sbin", "/etc/shadow", "/etc/machine-id", "/sys", "/sys/firmware", "/lib64",
			"/etc/gai.conf", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/services",
			"/etc/python3.11/sitecustomize", "/etc/python3.9"},
		content: map[string]string{
			"/etc/hostname": "sandbox\n",
			"/etc/passwd":   "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
			"/etc/group":    "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
			"/etc/hosts":    "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		},
	}, {
		name: "sysfs, user namespace, nobody, no hostname",
		spec: with(func(s *Spec) { s.Sysfs, s.UserNS, s.UID, s.GID, s.Hostname = true, true, 65534, 65534, "" }),
		want: map[string]want{
			"/sys":          {KindMount, "", ReadOnly | NoSuid | NoDev | NoExec},
			"/sys/firmware": {kind: KindMask},
			"/dev/null":     {KindBind, "/dev/null", NoSuid | NoExec},
			"/dev/tty":      {KindBind, "/dev/tty", NoSuid | NoExec},
		},
		content: map[string]string{
			"/etc/hostname": "localhost\n",
			"/etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
			"/etc/hosts":    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		},
	}, {
		name: "policy binds, tmpfs, masks",
		spec: with(func(s *Spec) {
			s.ReadOnly = append(s.ReadOnly, Bind{"/srv/file", "/opt/file"}, Bind{"/srv/link", "/models"},
				Bind{"/srv/models", "/data/ro"}, Bind{"/sbin", "/sbin"})
			s.ReadWrite = []Bind{{"/srv/data", "/data"}}
			s.Tmpfs = append(s.Tmpfs, Tmpfs{Path: "/scratch/a", Size: 1 << 20})
			s.Masked = []string{"/usr/share/doc"}
			s.ShmSize = 1 << 20
		}),
		want: map[string]want{
			"/opt":           {KindDir, "", 0},
			"/opt/file":      {KindBind, "/srv/file", ReadOnly | NoSuid | NoDev},
			"/models":        {KindSymlink, "models", 0},
			"/data":          {KindBind, "/srv/data", NoSuid | NoDev},
			"/data/ro":       {KindBind, "/srv/models", ReadOnly | NoSuid | NoDev},
			"/scratch":       {KindDir, "", 0},
			"/scratch/a":     {KindMount, "", NoSuid | NoDev},
			"/sbin":          {KindBind, "/sbin", ReadOnly | NoSuid | NoDev},
			"/usr/share/doc": {kind: KindMask},
		},
	}, {
		name: "a policy file replaces the generated one and /etc/ssl",
		spec: with(func(s *Spec) {
			s.ReadOnly = append(s.ReadOnly, Bind{"/srv/file", "/etc/hosts"}, Bind{"/srv/models", "/etc/ssl"})
		}),
		want: map[string]want{
			"/etc/hosts": {KindBind, "/srv/file", ReadOnly | NoSuid | NoDev},
			"/etc/ssl":   {KindBind, "/srv/models", ReadOnly | NoSuid | NoDev},
		},
	}, {
		name:   "no /usr bind, no merged-/usr links",
		spec:   Spec{Hostname: "x"},
		absent: []string{"/usr", "/bin", "/lib", "/tmp"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := newPlan(tc.spec, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("NewPlan made an invalid plan: %v", err)
			}
			ops := opsByPath(p)
			for path, w := range tc.want {
				op, ok := ops[path]
				if !ok {
					t.Errorf("%s: no op", path)
					continue
				}
				if op.Kind != w.kind {
					t.Errorf("%s: kind %s, want %s", path, op.Kind, w.kind)
				}
				src := w.source
				if op.Kind == KindBind && src != "" {
					src = h + src
				}
				if src != "" && op.Source != src {
					t.Errorf("%s: source %q, want %q", path, op.Source, src)
				}
				if (op.Kind == KindBind || op.Kind == KindMount) && op.Attr != w.attr {
					t.Errorf("%s: attr %s, want %s", path, op.Attr, w.attr)
				}
			}
			for _, path := range tc.absent {
				if op, ok := ops[path]; ok {
					t.Errorf("%s: unexpected op %s", path, op.String())
				}
			}
			for path, c := range tc.content {
				if got := string(ops[path].Content); got != c {
					t.Errorf("%s: content %q, want %q", path, got, c)
				}
			}
			checkOrder(t, p)
		})
	}
}

// checkOrder checks the invariants Apply relies on: every node is created
// after its parent directory, and every mount comes after the op that
// created its target.
func checkOrder(t *testing.T, p *Plan) {
	t.Helper()
	made := map[string]bool{"/": true}
	for _, op := range p.Ops {
		switch op.Kind {
		case KindDir, KindFile, KindSymlink, KindDevice:
			if made[op.Path] && op.Kind != KindDir {
				t.Errorf("%s created twice", op.Path)
			}
			if !made[filepath.Dir(op.Path)] {
				t.Errorf("%s %s: parent not created before it", op.Kind, op.Path)
			}
			made[op.Path] = true
		case KindBind, KindMount:
			if !made[op.Path] && !insideBind(p, op.Path) {
				t.Errorf("%s %s: target not created before it", op.Kind, op.Path)
			}
			made[op.Path] = true
			if op.FSType == "sysfs" {
				made[op.Path+"/fs/cgroup"] = true // every sysfs has it
			}
		}
	}
}

func insideBind(p *Plan, path string) bool {
	for _, op := range p.Ops {
		if op.Kind == KindBind && op.Dir && op.Path != path && within(path, op.Path) {
			return true
		}
	}
	return false
}

func TestNewPlanErrors(t *testing.T) {
	h := fakeHost(t)
	ro := func(b ...Bind) Spec { return Spec{ReadOnly: append([]Bind{{"/usr", "/usr"}}, b...)} }
	tests := []struct {
		name     string
		spec     Spec
		notExist bool   // the error also wraps fs.ErrNotExist
		mention  string // the message must name this
	}{
		{"relative source", ro(Bind{"srv/data", "/data"}), false, "not absolute"},
		{"relative target", ro(Bind{"/srv/data", "data"}), false, "not absolute"},
		{"unclean target", ro(Bind{"/srv/data", "/data/../x"}), false, "not clean"},
		{"root target", ro(Bind{"/srv/data", "/"}), false, "root"},
		{"target in /proc", ro(Bind{"/srv/data", "/proc/x"}), false, "/proc"},
		{"target /dev", ro(Bind{"/srv/data", "/dev"}), false, "/dev"},
		{"target /etc", ro(Bind{"/srv/data", "/etc"}), false, "/etc"},
		{"duplicate target", ro(Bind{"/srv/data", "/x"}, Bind{"/srv/models", "/x"}), false, "both target /x"},
		{"missing source", ro(Bind{"/srv/nope", "/models"}), true, "/srv/nope"},
		{"target missing inside a bind", ro(Bind{"/srv/models", "/usr/models"}), true, "/usr/models"},
		{"dir source onto a file inside a bind", ro(Bind{"/srv/data", "/data"}, Bind{"/srv/models", "/data/file"}), false, "/data/file"},
		{"file source onto a dir inside a bind", ro(Bind{"/srv/data", "/data"}, Bind{"/srv/file", "/data/sub"}), false, "/data/sub"},
		{"link inside a bind", ro(Bind{"/srv/data", "/data"}, Bind{"/srv/link", "/data/sub/l"}), false, "never creates files in host directories"},
		{"through a merged-/usr link", ro(Bind{"/srv/models", "/lib/models"}), false, "/lib"},
		{"through a bound file", ro(Bind{"/srv/file", "/f"}, Bind{"/srv/models", "/f/x"}), false, "/f"},
		{"negative tmpfs", Spec{Tmpfs: []Tmpfs{{Path: "/tmp", Size: -1}}}, false, "negative"},
		{"tmpfs in /sys", Spec{Tmpfs: []Tmpfs{{Path: "/sys/x"}}}, false, "/sys"},
		{"bad hostname", Spec{Hostname: "a b"}, false, "hostname"},
		{"relative mask", Spec{Masked: []string{"proc/x"}}, false, "masked"},
		{"negative shm", Spec{ShmSize: -1}, false, "shm"},
		{"cgroupfs without a layout", Spec{Cgroupfs: true}, false, "Spec.Cgroups"},
		{"cgroupfs, unknown layout", cgroupSpec("v2"), false, `"v2"`},
		{"cgroupfs, v1 hierarchies on a unified host", cgroupSpec(CgroupUnified, "memory"), false, "unified"},
		{"cgroupfs, legacy without hierarchies", cgroupSpec(CgroupLegacy), false, "no hierarchy"},
		{"cgroupfs, empty hierarchy", Spec{Cgroupfs: true, Cgroups: CgroupView{Mode: CgroupHybrid, V1: [][]string{{}}}}, false, "empty"},
		{"cgroupfs, controller twice", cgroupSpec(CgroupHybrid, "memory", "cpu,memory"), false, "memory is listed twice"},
		{"cgroupfs, path in a controller", cgroupSpec(CgroupLegacy, "../memory"), false, `"../memory"`},
		{"cgroupfs, named hierarchy", cgroupSpec(CgroupLegacy, "name=systemd"), false, "name=systemd"},
		{"cgroupfs, an option as a controller", cgroupSpec(CgroupLegacy, "memory,xattr"), false, `"xattr"`},
		{"cgroupfs, unified as a controller", cgroupSpec(CgroupHybrid, "unified"), false, `"unified"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newPlan(tc.spec, h)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("%v: does not wrap ErrInvalidSpec", err)
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tc.notExist {
				t.Errorf("%v: errors.Is(fs.ErrNotExist) = %v, want %v", err, got, tc.notExist)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
		})
	}
}

// cgroupSpec is a Spec with Cgroupfs on a host of the given mode; each
// hierarchy is written "cpu,cpuacct".
func cgroupSpec(mode string, hierarchies ...string) Spec {
	s := Spec{Cgroupfs: true, Cgroups: CgroupView{Mode: mode}}
	for _, h := range hierarchies {
		s.Cgroups.V1 = append(s.Cgroups.V1, strings.Split(h, ","))
	}
	return s
}

// TestNewPlanCgroupfs checks the operations that build /sys/fs/cgroup for
// each host layout, with and without sysfs, in order.
func TestNewPlanCgroupfs(t *testing.T) {
	h := fakeHost(t)
	const ro = "ro,nosuid,nodev,noexec"
	const maskText = "dir: empty ro tmpfs; else /dev/null (skipped if absent)"
	tests := []struct {
		name  string
		spec  Spec
		sysfs bool
		ops   []string // the /sys operations, as Op.String renders them
	}{{
		name: "off",
		spec: Spec{Cgroups: CgroupView{Mode: CgroupHybrid, V1: [][]string{{"memory"}}}},
	}, {
		name: "unified",
		spec: cgroupSpec(CgroupUnified),
		ops: []string{
			"dir /sys 0755", "dir /sys/fs 0755", "dir /sys/fs/cgroup 0755",
			"mount /sys/fs/cgroup cgroup2 " + ro,
		},
	}, {
		name:  "unified over sysfs",
		spec:  cgroupSpec(CgroupUnified),
		sysfs: true,
		ops: []string{
			"dir /sys 0755", "mount /sys sysfs " + ro, "mask /sys/devices/virtual/powercap " + maskText, "mask /sys/firmware " + maskText,
			"mount /sys/fs/cgroup cgroup2 " + ro,
		},
	}, {
		name: "hybrid, pinfold's hierarchies (sorted by name)",
		spec: cgroupSpec(CgroupHybrid, "pids", "memory", "cpu", "cpuacct"),
		ops: []string{
			"dir /sys 0755", "dir /sys/fs 0755", "dir /sys/fs/cgroup 0755",
			"dir /sys/fs/cgroup/cpu 0755", "mount /sys/fs/cgroup/cpu cgroup cpu " + ro,
			"dir /sys/fs/cgroup/cpuacct 0755", "mount /sys/fs/cgroup/cpuacct cgroup cpuacct " + ro,
			"dir /sys/fs/cgroup/memory 0755", "mount /sys/fs/cgroup/memory cgroup memory " + ro,
			"dir /sys/fs/cgroup/pids 0755", "mount /sys/fs/cgroup/pids cgroup pids " + ro,
			"dir /sys/fs/cgroup/unified 0755", "mount /sys/fs/cgroup/unified cgroup2 " + ro,
		},
	}, {
		name: "legacy, co-mounted controllers get links",
		spec: cgroupSpec(CgroupLegacy, "memory", "cpu,cpuacct", "pids", "freezer"),
		ops: []string{
			"dir /sys 0755", "dir /sys/fs 0755", "dir /sys/fs/cgroup 0755",
			"dir /sys/fs/cgroup/cpu,cpuacct 0755", "mount /sys/fs/cgroup/cpu,cpuacct cgroup cpu,cpuacct " + ro,
			"dir /sys/fs/cgroup/freezer 0755", "mount /sys/fs/cgroup/freezer cgroup freezer " + ro,
			"dir /sys/fs/cgroup/memory 0755", "mount /sys/fs/cgroup/memory cgroup memory " + ro,
			"dir /sys/fs/cgroup/pids 0755", "mount /sys/fs/cgroup/pids cgroup pids " + ro,
			"symlink /sys/fs/cgroup/cpu -> cpu,cpuacct", "symlink /sys/fs/cgroup/cpuacct -> cpu,cpuacct",
		},
	}, {
		name:  "hybrid over sysfs: a sealed tmpfs holds the mountpoints",
		spec:  cgroupSpec(CgroupHybrid, "memory"),
		sysfs: true,
		ops: []string{
			"dir /sys 0755", "mount /sys sysfs " + ro, "mask /sys/devices/virtual/powercap " + maskText, "mask /sys/firmware " + maskText,
			"mount /sys/fs/cgroup tmpfs size=4096,mode=0755 rw,nosuid,nodev,noexec",
			"dir /sys/fs/cgroup/memory 0755", "mount /sys/fs/cgroup/memory cgroup memory " + ro,
			"dir /sys/fs/cgroup/unified 0755", "mount /sys/fs/cgroup/unified cgroup2 " + ro,
			"seal /sys/fs/cgroup read-only",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := DefaultSpec()
			spec.Sysfs, spec.Cgroupfs, spec.Cgroups = tc.sysfs, tc.spec.Cgroupfs, tc.spec.Cgroups
			p, err := newPlan(spec, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Validate(); err != nil {
				t.Fatalf("NewPlan made an invalid plan: %v", err)
			}
			var got []string
			for _, op := range p.Ops {
				if within(op.Path, "/sys") {
					got = append(got, strings.Join(strings.Fields(op.String()), " "))
				}
			}
			if !slices.Equal(got, tc.ops) {
				t.Errorf("/sys operations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.ops, "\n"))
			}
			checkOrder(t, p)
			// Everything is in place before the policy's masks and the
			// sealing of /dev, which come last.
			if n := len(p.Ops); p.Ops[n-1].Kind != KindSeal || p.Ops[n-1].Path != "/dev" {
				t.Errorf("last op %s, want seal /dev", p.Ops[n-1].String())
			}
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var q Plan
			if err := json.Unmarshal(b, &q); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, &q) {
				t.Errorf("JSON round trip changed the plan:\n%s\n---\n%s", p, &q)
			}
		})
	}
}

func TestPlanJSONRoundTrip(t *testing.T) {
	s := DefaultSpec()
	s.Sysfs = true
	s.ReadWrite = []Bind{{"/srv/data", "/data"}}
	p, err := newPlan(s, fakeHost(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Plan
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, &q) {
		t.Errorf("round trip changed the plan:\n%s\n---\n%s", p, &q)
	}
	for _, line := range []string{`"bind /usr `, `/usr ro,nosuid,nodev dir"`, `"seal /dev"`, `"device /dev/null 666 1 3"`} {
		if !strings.Contains(string(b), line) {
			t.Errorf("JSON lacks %s: %s", line, b)
		}
	}
}

func TestPlanValidate(t *testing.T) {
	tests := []struct {
		name string
		op   Op
		ok   bool
	}{
		{"dir", Op{Kind: KindDir, Path: "/a", Mode: 0o755}, true},
		{"bind", Op{Kind: KindBind, Path: "/a", Source: "/b"}, true},
		{"unknown kind", Op{Kind: "chmod", Path: "/a"}, false},
		{"relative path", Op{Kind: KindDir, Path: "a"}, false},
		{"root path", Op{Kind: KindDir, Path: "/"}, false},
		{"dotdot", Op{Kind: KindDir, Path: "/a/../b"}, false},
		{"relative bind source", Op{Kind: KindBind, Path: "/a", Source: "b"}, false},
		{"empty symlink", Op{Kind: KindSymlink, Path: "/a"}, false},
		{"mount without type", Op{Kind: KindMount, Path: "/a"}, false},
		{"read-only cgroup", Op{Kind: KindMount, Path: "/a", FSType: "cgroup", Options: []string{"memory"}, Attr: ReadOnly}, true},
		{"writable cgroup", Op{Kind: KindMount, Path: "/a", FSType: "cgroup", Options: []string{"memory"}, Attr: NoSuid}, false},
		{"writable cgroup2", Op{Kind: KindMount, Path: "/a", FSType: "cgroup2"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := (&Plan{Ops: []Op{tc.op}}).Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidPlan) {
				t.Errorf("%v does not wrap ErrInvalidPlan", err)
			}
		})
	}
}

func TestAttrText(t *testing.T) {
	tests := []struct {
		a    Attr
		text string
	}{
		{0, "rw"},
		{ReadOnly, "ro"},
		{NoSuid | NoDev, "rw,nosuid,nodev"},
		{ReadOnly | NoSuid | NoDev | NoExec, "ro,nosuid,nodev,noexec"},
	}
	for _, tc := range tests {
		b, _ := tc.a.MarshalText()
		if string(b) != tc.text {
			t.Errorf("%d: %q, want %q", tc.a, b, tc.text)
		}
		var back Attr
		if err := back.UnmarshalText(b); err != nil || back != tc.a {
			t.Errorf("%q: %v, %v", b, back, err)
		}
	}
	var a Attr
	if err := a.UnmarshalText([]byte("ro,suid")); !errors.Is(err, ErrInvalidPlan) {
		t.Errorf("unknown attribute: %v", err)
	}
}

func FuzzAttrText(f *testing.F) {
	for _, s := range []string{"rw", "ro,nosuid,nodev,noexec", "", ",,", "ro,x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var a Attr
		if err := a.UnmarshalText([]byte(s)); err != nil {
			return
		}
		var b Attr
		if err := b.UnmarshalText([]byte(a.String())); err != nil || a != b {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, a, a.String(), b, err)
		}
	})
}

// FuzzPlanJSON feeds arbitrary JSON to the decoder and Validate, as the
// init stage does with what it receives: no panic, and a plan that
// validates has only clean absolute paths.
func FuzzPlanJSON(f *testing.F) {
	f.Add([]byte(`{"root":"size=1,mode=0755","ops":["dir /a 755","file /a/b 644 aGk=","file \"/a/c d\" 600 \"\""]}`))
	f.Add([]byte(`{"ops":["bind /a /b ro,nosuid dir","mount /t tmpfs rw,nodev size=1,mode=1777","device /d 666 1 3"]}`))
	f.Add([]byte(`{"ops":["symlink /a/../b x","mask /p","readonly /q","seal /r","mount /m proc rw"]}`))
	f.Add([]byte(`{"ops":["mount /c/cpu,cpuacct cgroup ro,nosuid cpu,cpuacct","mount /c/u cgroup2 rw","symlink /c/cpu cpu,cpuacct"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Plan
		if json.Unmarshal(b, &p) != nil {
			return
		}
		if p.Validate() != nil {
			return
		}
		for _, op := range p.Ops {
			if checkPath(op.Path) != nil {
				t.Fatalf("validated op with bad path %q", op.Path)
			}
		}
		// What decodes and validates encodes back to the same plan.
		again, err := json.Marshal(&p)
		if err != nil {
			return // e.g. an option with a comma: refused on the way out
		}
		var q Plan
		if err := json.Unmarshal(again, &q); err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		if p.String() != q.String() || len(p.Ops) != len(q.Ops) {
			t.Fatalf("round trip changed the plan:\n%s\n---\n%s", p.String(), q.String())
		}
		for i := range p.Ops {
			if string(p.Ops[i].Content) != string(q.Ops[i].Content) {
				t.Fatalf("op %d: content changed", i)
			}
		}
	})
}

// FuzzPlanUnmarshalJSON feeds arbitrary bytes to Plan.UnmarshalJSON, as
// the init stage does with the plan in its configuration, and checks it
// against encoding/json: what it accepts is valid JSON that encoding/json
// decodes to the same strings, and encodes back to the same plan.
func FuzzPlanUnmarshalJSON(f *testing.F) {
	f.Add([]byte(`{"root":"size=1,mode=0755","ops":["dir /a 755","file /a/b 644 aGk=","file \"/a/c d\" 600 \"\""]}`))
	f.Add([]byte(` { "ops" : [ "mask /p" , "seal \u002fr" ] , "root" : null } `))
	f.Add([]byte(`{"root":"a\ud800\udc00b\ud800x\\\"","ops":null}`))
	f.Add([]byte(`{"root":"\u00e9","ops":[],"ops":["readonly /q"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Plan
		if p.UnmarshalJSON(b) != nil {
			return
		}
		var j struct {
			Root string   `json:"root"`
			Ops  []string `json:"ops"`
		}
		if err := json.Unmarshal(b, &j); err != nil {
			t.Fatalf("UnmarshalJSON accepted what encoding/json refuses (%v): %q", err, b)
		}
		if root := strings.Join(p.RootOptions, ","); root != j.Root {
			t.Fatalf("root %q, encoding/json says %q", root, j.Root)
		}
		if len(p.Ops) != len(j.Ops) {
			t.Fatalf("%d ops, encoding/json says %d", len(p.Ops), len(j.Ops))
		}
		for i, line := range j.Ops {
			var op Op
			if err := op.decode(line); err != nil || !reflect.DeepEqual(op, p.Ops[i]) {
				t.Fatalf("op %d: %v, encoding/json's line %q decodes to %v (%v)", i, p.Ops[i], line, op, err)
			}
		}
		out, err := p.MarshalJSON()
		if err != nil {
			return // e.g. an option with a comma: refused on the way out
		}
		if !json.Valid(out) {
			t.Fatalf("MarshalJSON wrote invalid JSON: %q", out)
		}
		var q Plan
		err = q.UnmarshalJSON(out)
		same := err == nil && slices.Equal(p.RootOptions, q.RootOptions) && len(p.Ops) == len(q.Ops)
		for i := 0; same && i < len(p.Ops); i++ {
			same = reflect.DeepEqual(p.Ops[i], q.Ops[i])
		}
		if !same {
			t.Fatalf("round trip: %v\n%s\n---\n%s", err, p.String(), q.String())
		}
	})
}

// TestCommentsOnly checks the streaming check of files too big to copy
// against onlyComments on the whole content, across its 4 KiB buffer.
func TestCommentsOnly(t *testing.T) {
	long := strings.Repeat("#", maxLine+10) + "\n"
	tests := []struct {
		name    string
		content string
		want    bool
	}{
		{"empty", "", true},
		{"blank lines", "\n\n \t\r\n", true},
		{"comments, no final newline", "# a\n  # b", true},
		{"crlf comments", "# a\r\n\r\n# b\r\n", true},
		{"unicode space before comment", "\u00a0# a\n", true},
		{"entry", "# a\nip 0 IP\n", false},
		{"entry without newline", "# a\nip 0 IP", false},
		{"comment across the buffer", strings.Repeat("#", 4090) + "\n# x\n", true},
		{"entry across the buffer", strings.Repeat("# c\n", 1023) + "  ab\n", false},
		{"many comment lines", strings.Repeat("# comment\n\n  # indented\n", 500), true},
		{"line longer than maxLine", long, false},
		{"binary", "glibc-ld.so.cache1.1\x00\x02\n", false},
	}
	pl := &planner{buf: make([]byte, 4096)}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "f")
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			if got := pl.commentsOnly(p, int64(len(tc.content))); got != tc.want {
				t.Errorf("commentsOnly = %v, want %v", got, tc.want)
			}
			if len(tc.content) <= maxLine {
				if got := onlyComments([]byte(tc.content)); got != tc.want {
					t.Errorf("onlyComments = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestReadSmall checks the copy limit and that a short read at the lstat
// size ends the file.
func TestReadSmall(t *testing.T) {
	pl := &planner{buf: make([]byte, 4096)}
	dir := t.TempDir()
	for _, n := range []int{0, 1, 100, copyLimit - 1, copyLimit, copyLimit + 1, 3000} {
		p := filepath.Join(dir, "f")
		content := bytes.Repeat([]byte("x"), n)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		// The lstat size may be stale: the file may have grown or
		// shrunk since.
		for _, size := range []int64{int64(n), 0, int64(n) + 5} {
			got, err := pl.readSmall(p, size)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case n > copyLimit && got != nil:
				t.Errorf("%d bytes (lstat %d): read %d, want nil (too big)", n, size, len(got))
			case n <= copyLimit && (got == nil || !bytes.Equal(got, content)):
				t.Errorf("%d bytes (lstat %d): read %d bytes, want all", n, size, len(got))
			}
		}
	}
	if _, err := pl.readSmall(filepath.Join(dir, "missing"), 0); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

// FuzzCommentsOnly checks the streaming check against the in-memory one.
func FuzzCommentsOnly(f *testing.F) {
	f.Add([]byte("# a\n\n  # b\r\n"))
	f.Add([]byte("# a\nentry\n"))
	f.Add([]byte("\u2003#\n"))
	dir := f.TempDir()
	pl := &planner{buf: make([]byte, 4096)}
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if got, want := pl.commentsOnly(p, int64(len(b))), onlyComments(b); got != want && len(b) <= maxLine {
			t.Fatalf("commentsOnly %v, onlyComments %v for %q", got, want, b)
		}
	})
}

// TestPythonNames checks which /etc/python3* names NewPlan looks for.
func TestPythonNames(t *testing.T) {
	tests := []struct {
		link string // target of /usr/bin/python3; "" for none
		want []string
	}{
		{"python3.11", []string{"python3", "python3.11"}},
		{"/usr/bin/python3.13", []string{"python3", "python3.13"}},
		{"pypy3", []string{"python3"}},
		{"", []string{"python3"}},
	}
	for _, tc := range tests {
		h := t.TempDir()
		if err := os.MkdirAll(filepath.Join(h, "usr/bin"), 0o755); err != nil {
			t.Fatal(err)
		}
		if tc.link != "" {
			if err := os.Symlink(tc.link, filepath.Join(h, "usr/bin/python3")); err != nil {
				t.Fatal(err)
			}
		}
		pl := &planner{host: h}
		if got := pl.pythonNames(); !slices.Equal(got, tc.want) {
			t.Errorf("/usr/bin/python3 -> %q: %q, want %q", tc.link, got, tc.want)
		}
	}
}
