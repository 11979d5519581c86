package policy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pinfold/pinfold/ipc"
)

// FuzzParse checks that Parse never panics, that every error it reports has
// a position and the list is sorted, and that any policy it accepts encodes
// to YAML that parses back to an equal policy.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/*/*.yaml", "../../examples/policies/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkParse(t, data)
	})
}

// checkParse parses data and checks the error list, or the round trip of
// the policy. It returns the policy Parse accepted, or nil.
func checkParse(t *testing.T, data []byte) *Policy {
	t.Helper()
	p, err := Parse("fuzz.yaml", data)
	if err != nil {
		checkErrorList(t, err, "fuzz.yaml")
		return nil
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("Parse accepted a policy that Validate rejects: %v", err)
	}
	var buf bytes.Buffer
	if err := p.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	q, err := Parse("encoded.yaml", buf.Bytes())
	if err != nil {
		t.Fatalf("encoded policy does not parse: %v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip changed the policy:\nbefore %#v\nafter  %#v\nencoded:\n%s", p, q, buf.String())
	}
	return p
}

// checkErrorList checks that err is a non-empty ErrorList whose every
// entry has a position in file and a message, sorted by position.
func checkErrorList(t *testing.T, err error, file string) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error is not a non-empty ErrorList: %#v", err)
	}
	for _, e := range list {
		if e.File != file || e.Line < 1 || e.Column < 1 || e.Msg == "" {
			t.Fatalf("error without position or message: %#v", e)
		}
	}
	if !sort.SliceIsSorted(list, func(i, j int) bool {
		return list[i].Line < list[j].Line || list[i].Line == list[j].Line && list[i].Column < list[j].Column
	}) {
		t.Fatalf("errors not sorted:\n%v", err)
	}
}

// FuzzEncode checks that Encode writes any valid strings so that Parse reads
// them back unchanged: the quoting of environment values, paths and keys.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "x", "true", "null", "~", "- a", "a: b", "#c", " lead", "trail ", "\t",
		"\n", "'", `"`, `\`, "0x10", "1e3", "&a", "*a", "!t", "%d", "@", "`", "[", "{", "é", "\u2028", "\ufeff", "\x7f"} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, value, path, key string) {
		p := Default()
		p.Spec.Env = map[string]string{"V": value}
		if key != "" && isEnvName(key) {
			p.Spec.Env[key] = value
		}
		p.Spec.Filesystem.Masked = []string{cleanPath("/" + path)}
		p.Spec.Filesystem.Tmpfs = map[string]Size{cleanPath("/tmp/" + path): MiB}
		p.Spec.Filesystem.Workdir = cleanPath("/" + path)
		if err := p.Validate(); err != nil {
			return // not a value a policy can hold, e.g. a NUL byte
		}
		var b bytes.Buffer
		if err := p.Encode(&b); err != nil {
			t.Fatal(err)
		}
		q, err := Parse("encoded.yaml", b.Bytes())
		if err != nil {
			t.Fatalf("encoded policy does not parse: %v\n%s", err, b.String())
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the policy:\nbefore %#v\nafter  %#v\nencoded:\n%s", p.Spec, q.Spec, b.String())
		}
	})
}

// FuzzParseIPC fuzzes the body of spec.ipc. Beyond FuzzParse's checks, the
// grants of an accepted policy pass the broker's own validation and every
// channel is allowed by them: the app would not fail to start for its
// channels.
func FuzzParseIPC(f *testing.F) {
	for _, s := range []string{
		"{}",
		"maxObjects: 8\nmaxBytes: 256Mi\nposixMQ: true\ncreate:\n  - names: [\"results/*\"]\n    kinds: [shm, pipe]\n    maxSize: 64Mi\n    persistent: false\n    peers: [consumer]\nattach:\n  - names: [\"jobs/*\"]\n    kinds: [mq]\n    access: read\n    owners: [producer]\nchannels:\n  - {name: results/main, kind: shm, access: readwrite, size: 16Mi}",
		"create: [{names: [\"**\"], kinds: [mq]}]\nchannels: [{name: q, kind: mq, access: write, maxMsg: 10, msgSize: 8Ki}]",
		"attach: [{names: [\"a/?/b\"], kinds: [pipe, region], access: write}]\nchannels: [{name: a/x/b, kind: pipe, access: write}]",
		"maxObjects: 1\ncreate: [{names: [\"*\"], kinds: [shm]}]\nchannels: [{name: a, kind: shm, access: read, size: 1}, {name: b, kind: shm, access: read, size: 1}]",
		"channels: [{name: /x, kind: pipe, access: readwrite, size: 1, maxMsg: -1}]",
		"create: [{names: [], kinds: [tube]}, x]\nposixMQ: yes",
		"maxBytes: 99999999999Ti\nmaxObjects: 1e3",
	} {
		f.Add(s)
	}
	// The ipc sections of the test files.
	files, err := filepath.Glob("testdata/*/ipc*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		_, section, ok := strings.Cut(string(data), "\n  ipc:\n")
		if !ok {
			f.Fatalf("%s has no ipc section", file)
		}
		var lines []string
		for l := range strings.SplitSeq(section, "\n") {
			lines = append(lines, strings.TrimPrefix(l, "    "))
		}
		f.Add(strings.Join(lines, "\n"))
	}
	f.Fuzz(func(t *testing.T, section string) {
		var b strings.Builder
		b.WriteString("apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: fuzz\nspec:\n  ipc:\n")
		for l := range strings.SplitSeq(section, "\n") {
			b.WriteString("    " + l + "\n")
		}
		p := checkParse(t, []byte(b.String()))
		if p == nil {
			return
		}
		g := &p.Spec.IPC
		if err := g.Validate(); err != nil {
			t.Fatalf("the broker rejects grants Parse accepted: %v", err)
		}
		// What the broker does with a channel (ipc.Session.OpenChannel):
		// create it under a create grant, else attach it.
		for _, c := range g.Channels {
			_, creates := channelObject(c)
			if creates && g.CreateGrantFor(c.Name, c.Kind) != nil {
				continue
			}
			if creates && c.Kind != ipc.Pipe {
				t.Fatalf("channel %+v creates without a create grant", c)
			}
			if !slices.ContainsFunc(g.Attach, func(a ipc.AttachGrant) bool {
				owner := ""
				if len(a.Owners) > 0 {
					owner = a.Owners[0]
				}
				return g.AttachGrantFor(c.Name, c.Kind, c.Access, owner) != nil
			}) {
				t.Fatalf("channel %+v attaches without an attach grant", c)
			}
		}
	})
}

// FuzzParseGroup checks that ParseGroup never panics, that every error it
// reports has a position, and that a group it accepts is valid and gives
// each app channels and attach grants that a policy accepts.
func FuzzParseGroup(f *testing.F) {
	files, err := filepath.Glob("testdata/groups/*/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		groupHeader + "spec:\n  apps: [{name: a, command: [x]}]\n",
		groupHeader + "spec:\n  channels: [{name: c, kind: pipe, apps: {a: write, b: read}}]\n  apps: [{name: a, command: [x]}, {name: b, command: [y], bind: [\".:/b\"]}]\n",
		groupHeader + "spec:\n  channels: [{name: q, kind: mq, maxMsg: 1, msgSize: 1, apps: {a: readwrite}}]\n  apps: [{name: a, policy: ../../good/ipc.yaml, command: [x], env: {A: 1}}]\n",
	} {
		f.Add([]byte(s))
	}
	// Relative paths in the input resolve against testdata/groups/good.
	const file = "testdata/groups/good/fuzz.yaml"
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := ParseGroup(data, file)
		if err != nil {
			checkErrorList(t, err, file)
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("ParseGroup accepted a group that Validate rejects: %v", err)
		}
		for _, c := range g.Channels {
			if _, creates := channelObject(ipc.Channel{Kind: c.Kind, Size: c.Size, MaxMsg: c.MaxMsg, MsgSize: c.MsgSize}); !creates && c.Kind != ipc.Pipe {
				t.Fatalf("channel %+v has no size to create it with", c)
			}
			if len(c.Members) != len(c.Apps) || len(c.Apps) == 0 {
				t.Fatalf("channel %+v: members and apps differ", c)
			}
		}
		for _, a := range g.Apps {
			grants := ipc.Grants{Attach: g.AttachGrantsFor(a.Name, "group"), Channels: g.ChannelsFor(a.Name)}
			v := &validator{}
			v.ipcGrants(&grants)
			if len(v.errs) > 0 {
				t.Fatalf("the grants of app %s do not validate: %v", a.Name, v.errs)
			}
			for _, c := range grants.Channels {
				if grants.AttachGrantFor(c.Name, c.Kind, c.Access, "group") == nil {
					t.Fatalf("app %s could not attach its channel %+v", a.Name, c)
				}
			}
		}
	})
}
