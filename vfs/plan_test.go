package vfs

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeHost builds a small host tree: merged /bin and /lib (but a real
// /sbin), /usr, an /etc with secrets and carried files, and /srv sources.
func fakeHost(t *testing.T) string {
	t.Helper()
	h := t.TempDir()
	dirs := []string{"usr/bin", "usr/lib", "sbin", "etc/ssl/certs", "etc/ld.so.conf.d",
		"etc/python3.11", "srv/data/sub", "srv/models", "srv/data/ro"}
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
		"etc/gai.conf":                 "# only comments\n\n  # here\n",
		"etc/host.conf":                "multi on\n",
		"etc/services":                 strings.Repeat("# comment\n\n", 200),
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
		"bin":           "usr/bin",
		"lib":           "usr/lib",
		"etc/localtime": "/usr/share/zoneinfo/UTC",
		"srv/link":      "models",
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
			"/usr":                          {KindBind, "/usr", ReadOnly | NoSuid | NoDev},
			"/bin":                          {KindSymlink, "usr/bin", 0},
			"/lib":                          {KindSymlink, "usr/lib", 0},
			"/tmp":                          {KindMount, "", NoSuid | NoDev},
			"/etc/passwd":                   {kind: KindFile},
			"/etc/hostname":                 {kind: KindFile},
			"/etc/host.conf":                {kind: KindFile},
			"/etc/ld.so.cache":              {KindBind, "/etc/ld.so.cache", ReadOnly | NoSuid | NoDev | NoExec},
			"/etc/ssl":                      {KindBind, "/etc/ssl", ReadOnly | NoSuid | NoDev | NoExec},
			"/etc/python3.11":               {kind: KindDir},
			"/etc/python3.11/sitecustomize": {kind: KindFile},
			"/etc/protocols":                {KindBind, "/etc/protocols", ReadOnly | NoSuid | NoDev | NoExec},
			"/etc/localtime":                {KindSymlink, "/usr/share/zoneinfo/UTC", 0},
			"/etc/mtab":                     {KindSymlink, "../proc/self/mounts", 0},
			"/dev":                          {KindSeal, "", 0},
			"/dev/null":                     {kind: KindDevice},
			"/dev/ptmx":                     {KindSymlink, "pts/ptmx", 0},
			"/dev/pts":                      {KindMount, "", NoSuid | NoExec},
			"/dev/shm":                      {KindMount, "", NoSuid | NoDev | NoExec},
			"/dev/mqueue":                   {KindMount, "", NoSuid | NoDev | NoExec},
			"/proc":                         {KindMount, "", NoSuid | NoDev | NoExec},
			"/proc/kcore":                   {kind: KindMask},
			"/proc/sys":                     {kind: KindReadOnly},
			"/proc/sysrq-trigger":           {kind: KindReadOnly},
			"/proc/timer_list":              {kind: KindMask},
			"/proc/latency_stats":           {kind: KindMask},
			"/proc/acpi":                    {kind: KindMask},
			"/etc/nsswitch.conf":            {kind: KindFile},
			"/etc/resolv.conf":              {kind: KindFile},
			"/etc/hosts":                    {kind: KindFile},
			"/etc/group":                    {kind: KindFile},
		},
		absent: []string{"/sbin", "/etc/shadow", "/etc/machine-id", "/sys", "/sys/firmware", "/lib64",
			"/etc/gai.conf", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/services"},
		content: map[string]string{
			"/etc/hostname":                 "sandbox\n",
			"/etc/passwd":                   "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
			"/etc/group":                    "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
			"/etc/hosts":                    "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n",
			"/etc/python3.11/sitecustomize": "# site\n",
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
