package policy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pinfold/pinfold/ipc"
)

func abs(t testing.TB, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestParseGroup(t *testing.T) {
	g, err := ParseGroupFile("testdata/groups/good/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := abs(t, "testdata/groups/good")
	want := &Group{
		Name: "ipc-pipeline",
		Dir:  dir,
		Channels: []GroupChannel{
			{Name: "ring", Kind: ipc.Shm, Size: int64(64 * MiB),
				Apps:    map[string]ipc.Access{"producer": ipc.ReadWrite, "consumer": ipc.Read},
				Members: []ChannelMember{{"producer", ipc.ReadWrite}, {"consumer", ipc.Read}}},
			{Name: "ready", Kind: ipc.Pipe,
				Apps:    map[string]ipc.Access{"producer": ipc.Write, "consumer": ipc.Read},
				Members: []ChannelMember{{"producer", ipc.Write}, {"consumer", ipc.Read}}},
			{Name: "jobs/queue", Kind: ipc.MQ, MaxMsg: 10, MsgSize: int64(8 * KiB),
				Apps:    map[string]ipc.Access{"consumer": ipc.ReadWrite},
				Members: []ChannelMember{{"consumer", ipc.ReadWrite}}},
		},
		Apps: []GroupApp{
			{Name: "producer", Policy: "default", Command: []string{"python3", "/app/producer.py"},
				Env:      map[string]string{"CHUNK": "1Mi", "COUNT": "3"},
				ReadOnly: []Bind{{dir, "/app"}}},
			{Name: "consumer", Policy: "../../good/ipc.yaml", PolicyPath: abs(t, "testdata/good/ipc.yaml"),
				Command:   []string{"sleep", "10"},
				ReadOnly:  []Bind{{abs(t, "testdata/groups"), "/data"}, {"/usr", "/usr"}},
				ReadWrite: []Bind{{"/tmp", "/scratch"}}},
			{Name: "lone", Policy: DefaultGroupPolicy, Command: []string{"/bin/true"}},
		},
	}
	if !reflect.DeepEqual(g, want) {
		t.Errorf("got\n%#v\nwant\n%#v", g, want)
	}
	if err := g.Validate(); err != nil {
		t.Errorf("Validate rejects what ParseGroup accepted: %v", err)
	}
}

// TestParseGroupErrors checks the exact messages for bad group files.
// DIR stands for the absolute directory of the file.
func TestParseGroupErrors(t *testing.T) {
	tests := []struct {
		file string
		is   error
		want []string
	}{
		{"empty-apps.yaml", ErrMissingField, []string{
			`2:7: kind: "SandboxPolicy" is not supported (use AppGroup)`,
			"5:1: spec.apps: required: at least one app (e.g. - {name: worker, policy: default, command: [/bin/true]})",
			"7:35: spec.channels[0].apps: a pipe needs an app that reads it: no app has access read (give one read)",
			`7:36: spec.channels[0].apps.a: "a" is not an app of this group (the group has no apps)`,
		}},
		{"values.yaml", fs.ErrNotExist, []string{
			`4:9: metadata.name: "Bad_Group" is not a valid name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)`,
			"7:7: spec.channels[0].size: required: the group creates the shm (e.g. 64Mi)",
			`9:35: spec.channels[0].apps.consumr: "consumr" is not an app of this group (did you mean consumer?)`,
			"10:13: spec.channels[1].name: channel ring is already defined at spec.channels[0]",
			`11:13: spec.channels[1].kind: "tube" is not an IPC object kind (use pipe, shm, region or mq)`,
			`12:24: spec.channels[1].apps.producer: "rw" is not an access (use read, write or readwrite)`,
			"15:13: spec.channels[2].size: a pipe has no size (remove size)",
			"16:14: spec.channels[2].apps.producer: an app gets one end of a pipe: write read or write",
			"19:13: spec.channels[3].apps: a pipe needs an app that writes it: no app has access write (give one write)",
			"20:7: spec.channels[4].maxMsg: required: the group creates the queue (the number of messages it holds, e.g. 10)",
			"20:7: spec.channels[4].msgSize: required: the group creates the queue (the largest message, e.g. 8Ki)",
			`23:13: spec.channels[5].name: object name "/abs" has an empty segment (a leading, trailing or doubled '/')`,
			"26:13: spec.channels[5].apps: required (the apps that get the channel and their access, e.g. {producer: write, consumer: read})",
			"29:15: spec.apps[0].policy: policy file DIR/Default does not exist (policy is a policy name, lowercase letters, digits and '-', or the path of a policy file relative to the group file)",
			"30:16: spec.apps[0].command: required (the program and its arguments, e.g. [python3, /app/main.py])",
			`31:17: spec.apps[0].env.1X: "1X" is not a valid variable name (letters, digits and '_', not starting with a digit)`,
			"32:14: spec.apps[0].bind[0]: DIR/missing does not exist on this host",
			`32:30: spec.apps[0].bind[1]: destination: "./" is not an absolute path (write SRC:DST with an absolute DST)`,
			"32:36: spec.apps[0].bind[2]: cannot mount at /proc/x: pinfold mounts /proc itself (hide paths with masked)",
			`32:52: spec.apps[0].bind[3]: "a:b:c" has more than one ':' (write PATH or SRC:DST)`,
			"32:61: spec.apps[0].bind[4]: empty source (write PATH or SRC:DST)",
			"33:19: spec.apps[0].bindWrite[0]: /app is already mounted by spec.apps[0].bind[0]",
			"34:13: spec.apps[1].name: app producer is already defined at spec.apps[0]",
			"37:15: spec.apps[2].policy: policy file DIR/nope.yaml does not exist (policy is a policy name, lowercase letters, digits and '-', or the path of a policy file relative to the group file)",
			"38:17: spec.apps[2].command[0]: the program is empty",
			"38:21: spec.apps[2].command[1]: expected a string, got a mapping",
			"39:7: spec.apps[2].extra: unknown field (known fields: name, policy, command, env, bind, bindWrite)",
			"40:7: spec.apps[3].name: required (a name such as producer; it prefixes the app's output)",
			"40:15: spec.apps[3].policy: policy file DIR/../good is not a regular file",
		}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		seen[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("testdata", "groups", "bad", tt.file)
			g, err := ParseGroupFile(path)
			if err == nil {
				t.Fatalf("ParseGroupFile(%s) accepted the group: %+v", path, g)
			}
			if g != nil {
				t.Errorf("ParseGroupFile(%s) returned a group with its error", path)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is a %T, not an ErrorList: %v", err, err)
			}
			dir := abs(t, filepath.Dir(path))
			got := strings.Split(err.Error(), "\n")
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				w = strings.ReplaceAll(w, "DIR/../good", filepath.Join(dir, "../good"))
				want[i] = path + ":" + strings.ReplaceAll(w, "DIR", dir)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) is false", tt.is)
			}
		})
	}
	files, err := filepath.Glob("testdata/groups/bad/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no entry in the table", f)
		}
	}
}

const groupHeader = "apiVersion: pinfold/v1\nkind: AppGroup\nmetadata:\n  name: g\n"

// TestParseGroupInput covers inputs that are awkward to keep as files.
func TestParseGroupInput(t *testing.T) {
	tests := []struct {
		name, data string
		is         error
		want       string
	}{
		{"empty", "", ErrMissingField, "g.yaml:1:1: the file is empty (a group starts with apiVersion: pinfold/v1)"},
		{"two documents", groupHeader + "spec: {apps: [{name: a, command: [x]}]}\n---\n" + groupHeader, ErrUnsupported,
			"g.yaml:7:1: a second YAML document: a group file holds one group"},
		{"alias", groupHeader + "spec:\n  apps: [{name: &n a, command: [*n]}]\n", ErrUnsupported,
			"g.yaml:6:33: spec.apps[0].command[0]: YAML aliases are not supported in a group file (write the value out)"},
		{"not a mapping", "[]\n", ErrWrongType, "g.yaml:1:1: expected a mapping with apiVersion, kind, metadata and spec, got a sequence"},
		{"no header", "spec: {apps: [{name: a, command: [x]}]}\n", ErrMissingField,
			"g.yaml:1:1: apiVersion: required (write apiVersion: pinfold/v1)\n" +
				"g.yaml:1:1: kind: required (write kind: AppGroup)\n" +
				"g.yaml:1:1: metadata.name: required (a name such as ipc-pipeline)"},
		{"null apps", groupHeader + "spec:\n  apps:\n", ErrWrongType, "g.yaml:6:3: spec.apps: expected a sequence, got null"},
		{"unknown app field", groupHeader + "spec:\n  apps: [{name: a, command: [x], binds: [/usr]}]\n", ErrUnknownField,
			`g.yaml:6:34: spec.apps[0].binds: unknown field (did you mean "bind"?)`},
		{"channel app twice", groupHeader + "spec:\n  channels: [{name: c, kind: pipe, apps: {a: write, a: read}}]\n  apps: [{name: a, command: [x]}]\n", ErrDuplicateField,
			"g.yaml:6:53: spec.channels[0].apps.a: duplicate key (first given at line 6)"},
		{"mq access null", groupHeader + "spec:\n  channels: [{name: c, kind: mq, maxMsg: 1, msgSize: 1, apps: {a: }}]\n  apps: [{name: a, command: [x]}]\n", ErrWrongType,
			"g.yaml:6:64: spec.channels[0].apps.a: expected a string, got null"},
		{"dash app name in a channel", groupHeader + "spec:\n  channels: [{name: c, kind: shm, size: 1, apps: {my-app: read}}]\n  apps: [{name: my-ap, command: [x]}]\n", ErrInvalidValue,
			`g.yaml:6:51: spec.channels[0].apps["my-app"]: "my-app" is not an app of this group (did you mean my-ap?)`},
		{"relative destination", groupHeader + "spec:\n  apps: [{name: a, command: [x], bind: [data]}]\n", ErrInvalidValue,
			`g.yaml:6:41: spec.apps[0].bind[0]: destination: "data" is not an absolute path (write SRC:DST with an absolute DST)`},
		{"numbers in a command", groupHeader + "spec:\n  apps: [{name: a, command: [sleep, 1.50, 0x10, true]}]\n", nil, ""},
		{"minimal", groupHeader + "spec:\n  apps: [{name: a, command: [x]}]\n", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ParseGroup([]byte(tt.data), "g.yaml")
			if tt.want == "" {
				if err != nil {
					t.Fatalf("ParseGroup: %v", err)
				}
				if g.Dir != abs(t, ".") || g.Name != "g" {
					t.Errorf("dir %q name %q, want the working directory and g", g.Dir, g.Name)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseGroup accepted\n%s", tt.data)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%v\nwant:\n%s", err, tt.want)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) is false", tt.is)
			}
		})
	}
	g, err := ParseGroup([]byte(groupHeader+"spec:\n  apps: [{name: a, command: [sleep, 1.50, 0x10, true]}]\n"), "g.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"sleep", "1.50", "0x10", "true"}; !reflect.DeepEqual(g.Apps[0].Command, want) {
		t.Errorf("command %q, want %q (as written)", g.Apps[0].Command, want)
	}
}

// TestGroupGrants checks the channels and attach grants the group gives
// each app, and that a policy holding them is valid and lets the broker hand
// out exactly those channels, only from objects of the group's policy.
func TestGroupGrants(t *testing.T) {
	g, err := ParseGroupFile("testdata/groups/good/pipeline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wantChannels := map[string][]ipc.Channel{
		"producer": {{Name: "ring", Kind: ipc.Shm, Access: ipc.ReadWrite}, {Name: "ready", Kind: ipc.Pipe, Access: ipc.Write}},
		"consumer": {{Name: "ring", Kind: ipc.Shm, Access: ipc.Read}, {Name: "ready", Kind: ipc.Pipe, Access: ipc.Read}, {Name: "jobs/queue", Kind: ipc.MQ, Access: ipc.ReadWrite}},
		"lone":     nil,
		"absent":   nil,
	}
	for app, want := range wantChannels {
		t.Run(app, func(t *testing.T) {
			channels := g.ChannelsFor(app)
			if !reflect.DeepEqual(channels, want) {
				t.Errorf("ChannelsFor(%s) = %+v, want %+v", app, channels, want)
			}
			attach := g.AttachGrantsFor(app, "ipc-pipeline")
			if len(attach) != len(want) {
				t.Fatalf("AttachGrantsFor(%s) = %+v, want one grant per channel", app, attach)
			}
			for i, c := range want {
				w := ipc.AttachGrant{Names: []string{c.Name}, Kinds: []ipc.Kind{c.Kind}, Access: c.Access, Owners: []string{"ipc-pipeline"}}
				if !reflect.DeepEqual(attach[i], w) {
					t.Errorf("attach grant %d = %+v, want %+v", i, attach[i], w)
				}
			}
			p := Default()
			p.Spec.IPC.Attach = attach
			p.Spec.IPC.Channels = channels
			if err := p.Validate(); err != nil {
				t.Fatalf("a policy with the group's grants does not validate: %v", err)
			}
			gr := &p.Spec.IPC
			for _, c := range channels {
				if gr.AttachGrantFor(c.Name, c.Kind, c.Access, "ipc-pipeline") == nil {
					t.Errorf("the broker would refuse %+v", c)
				}
				if gr.AttachGrantFor(c.Name, c.Kind, c.Access, "other") != nil {
					t.Errorf("the broker would hand out %+v from an object of another policy", c)
				}
				if c.Access != ipc.ReadWrite && c.Kind != ipc.Pipe && gr.AttachGrantFor(c.Name, c.Kind, ipc.ReadWrite, "ipc-pipeline") != nil {
					t.Errorf("the broker would hand out %s with more than %s", c.Name, c.Access)
				}
			}
			if gr.AttachGrantFor("other", ipc.Shm, ipc.Read, "ipc-pipeline") != nil {
				t.Error("the grants allow an object the group does not give the app")
			}
		})
	}
}

// TestGroupValidate checks groups built in code.
func TestGroupValidate(t *testing.T) {
	good := func() *Group {
		return &Group{
			Name: "g", Dir: "/",
			Channels: []GroupChannel{{Name: "c", Kind: ipc.Pipe,
				Apps:    map[string]ipc.Access{"a": ipc.Write, "b": ipc.Read},
				Members: []ChannelMember{{"a", ipc.Write}, {"b", ipc.Read}}}},
			Apps: []GroupApp{
				{Name: "a", Policy: "default", Command: []string{"x"}},
				{Name: "b", Policy: "default", Command: []string{"y"}},
			},
		}
	}
	tests := []struct {
		name   string
		modify func(g *Group)
		is     error
		want   string
	}{
		{"good", func(g *Group) {}, nil, ""},
		{"map only", func(g *Group) { g.Channels[0].Members = nil }, nil, ""},
		{"members disagree", func(g *Group) { g.Channels[0].Members[1].Access = ipc.Write }, ErrInvalidValue,
			"spec.channels[0].apps: Members and Apps differ: Members must list the entries of Apps"},
		{"no name", func(g *Group) { g.Name = "" }, ErrMissingField, "metadata.name: required (a name such as ipc-pipeline)"},
		{"relative source", func(g *Group) { g.Apps[0].ReadOnly = []Bind{{"data", "/data"}} }, ErrInvalidValue,
			`spec.apps[0].bind[0]: the source "data" is not an absolute path`},
		{"policy path with NUL", func(g *Group) { g.Apps[1].Policy, g.Apps[1].PolicyPath = "a\x00", "/a\x00" }, ErrInvalidValue,
			"spec.apps[1].policy: path contains a NUL byte"},
		{"policy neither name nor file", func(g *Group) { g.Apps[1].Policy = "Mine" }, ErrInvalidValue,
			`spec.apps[1].policy: "Mine" is not a policy name and no policy file was resolved for it`},
		{"NUL in an argument", func(g *Group) { g.Apps[0].Command = []string{"x", "a\x00"} }, ErrInvalidValue,
			"spec.apps[0].command[1]: contains a NUL byte"},
		{"unknown access", func(g *Group) {
			g.Channels[0].Apps["b"] = 9
			g.Channels[0].Members[1].Access = 9
		}, ErrInvalidValue, "spec.channels[0].apps.b: access(9) is not an access (use read, write or readwrite)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := good()
			tt.modify(g)
			err := g.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate:\n%v\nwant:\n%s", err, tt.want)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(err, %v) is false", tt.is)
			}
		})
	}
}

func TestParseGroupFileMissing(t *testing.T) {
	_, err := ParseGroupFile(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ParseGroupFile of a missing file: %v, want fs.ErrNotExist", err)
	}
	var list ErrorList
	if errors.As(err, &list) {
		t.Errorf("a missing file is reported as problems in it: %v", err)
	}
}

// TestParseGroupRelative checks that relative paths resolve against the
// file's directory, not the working directory.
func TestParseGroupRelative(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "up.yaml")
	if err := os.WriteFile(file, []byte(groupHeader+"spec:\n  apps: [{name: a, policy: p.yaml, command: [x], bind: [\"app:/app\"], bindWrite: [\".:/work\"]}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := ParseGroupFile(file)
	if err != nil {
		t.Fatal(err)
	}
	a := g.Apps[0]
	if g.Dir != dir || a.PolicyPath != filepath.Join(dir, "p.yaml") ||
		!reflect.DeepEqual(a.ReadOnly, []Bind{{filepath.Join(dir, "app"), "/app"}}) ||
		!reflect.DeepEqual(a.ReadWrite, []Bind{{dir, "/work"}}) {
		t.Errorf("dir %q, policy %q, binds %v %v; want all under %s", g.Dir, a.PolicyPath, a.ReadOnly, a.ReadWrite, dir)
	}
}
