package policy

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/pinfold/pinfold/ipc"
)

func TestParseIPC(t *testing.T) {
	tests := []struct {
		file string
		want ipc.Grants
	}{
		{"testdata/good/ipc.yaml", ipc.Grants{
			MaxObjects: 8,
			MaxBytes:   int64(256 * MiB),
			POSIXMQ:    true,
			Create: []ipc.CreateGrant{
				{Names: []string{"results/*"}, Kinds: []ipc.Kind{ipc.Shm, ipc.Pipe}, MaxSize: int64(64 * MiB), Peers: []string{"consumer"}},
				// maxSize absent: the whole quota.
				{Names: []string{"scratch/**", "tmp-?"}, Kinds: []ipc.Kind{ipc.Region, ipc.MQ}, MaxSize: int64(256 * MiB), Persistent: true},
			},
			Attach: []ipc.AttachGrant{
				{Names: []string{"jobs/*"}, Kinds: []ipc.Kind{ipc.MQ}, Access: ipc.Read, Owners: []string{"producer"}},
				{Names: []string{"**"}, Kinds: []ipc.Kind{ipc.Pipe}, Access: ipc.Write},
			},
			Channels: []ipc.Channel{
				{Name: "results/main", Kind: ipc.Shm, Access: ipc.ReadWrite, Size: int64(16 * MiB)},
				{Name: "jobs/incoming", Kind: ipc.MQ, Access: ipc.Read},
				{Name: "scratch/queue", Kind: ipc.MQ, Access: ipc.ReadWrite, MaxMsg: 10, MsgSize: int64(8 * KiB)},
				{Name: "log", Kind: ipc.Pipe, Access: ipc.Write},
			},
		}},
		{"testdata/good/ipc-defaults.yaml", ipc.Grants{
			MaxObjects: DefaultIPCMaxObjects,
			MaxBytes:   int64(DefaultIPCMaxBytes),
			Create: []ipc.CreateGrant{
				{Names: []string{"out/*"}, Kinds: []ipc.Kind{ipc.Shm}, MaxSize: int64(DefaultIPCMaxBytes)},
				{Names: []string{"small"}, Kinds: []ipc.Kind{ipc.Region}, MaxSize: int64(MiB)},
			},
		}},
		// Nothing granted: no quota either.
		{"testdata/good/minimal.yaml", ipc.Grants{}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			p, err := LoadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.Spec.IPC, tt.want) {
				t.Errorf("ipc section:\n%+v\nwant\n%+v", p.Spec.IPC, tt.want)
			}
			if err := p.Spec.IPC.Validate(); err != nil {
				t.Errorf("the broker rejects the grants Parse accepted: %v", err)
			}
		})
	}
	if g := Default().Spec.IPC; !reflect.DeepEqual(g, ipc.Grants{}) {
		t.Errorf("the default policy grants IPC: %+v", g)
	}
}

// TestParseIPCInput covers the quota defaults and sections that are awkward
// to keep as files.
func TestParseIPCInput(t *testing.T) {
	tests := []struct {
		name  string
		ipc   string // the body of spec.ipc, indented 4
		is    error
		want  string // an error, or "" for success
		check func(t *testing.T, g ipc.Grants)
	}{
		{name: "empty section", ipc: "{}", check: func(t *testing.T, g ipc.Grants) {
			if !reflect.DeepEqual(g, ipc.Grants{}) {
				t.Errorf("grants %+v, want none", g)
			}
		}},
		{name: "attach only: no quota filled in", ipc: "attach: [{names: [a], kinds: [shm], access: read}]", check: func(t *testing.T, g ipc.Grants) {
			if g.MaxObjects != 0 || g.MaxBytes != 0 {
				t.Errorf("quota %d objects %d bytes, want none", g.MaxObjects, g.MaxBytes)
			}
		}},
		{name: "maxBytes given: maxSize follows it", ipc: "maxBytes: 8Mi\n    create: [{names: [a], kinds: [shm]}]", check: func(t *testing.T, g ipc.Grants) {
			if g.MaxObjects != DefaultIPCMaxObjects || g.MaxBytes != int64(8*MiB) || g.Create[0].MaxSize != int64(8*MiB) {
				t.Errorf("quota %d objects %d bytes, maxSize %d; want 16, 8Mi, 8Mi", g.MaxObjects, g.MaxBytes, g.Create[0].MaxSize)
			}
		}},
		{name: "maxSize 0 stays 0 (the quota)", ipc: "create: [{names: [a], kinds: [shm], maxSize: 0}]", check: func(t *testing.T, g ipc.Grants) {
			if g.Create[0].MaxSize != 0 {
				t.Errorf("maxSize %d, want 0", g.Create[0].MaxSize)
			}
		}},
		{name: "null section", ipc: "", is: ErrWrongType,
			want: "p.yaml:6:3: spec.ipc: expected a mapping, got null"},
		{name: "zero quota with create grants", ipc: "maxObjects: 0\n    maxBytes: 0\n    create: [{names: [a], kinds: [shm]}]", is: ErrInvalidValue,
			want: "p.yaml:7:17: spec.ipc.maxObjects: 0 with create grants: the app could create nothing (leave maxObjects out for the default, 16)\n" +
				"p.yaml:8:15: spec.ipc.maxBytes: 0 with create grants: the app could create nothing (leave maxBytes out for the default, 256Mi)"},
		{name: "grant too small for a pipe", ipc: "create: [{names: [a], kinds: [pipe], maxSize: 4Ki}]", is: ErrInvalidValue,
			want: "p.yaml:7:51: spec.ipc.create[0].maxSize: 4Ki is less than the 64Ki a pipe counts: the grant could create no pipe (raise maxSize)"},
		{name: "pipe channel created", ipc: "maxObjects: 1\n    create: [{names: [\"p/*\"], kinds: [pipe]}]\n    channels: [{name: p/a, kind: pipe, access: read}, {name: p/b, kind: pipe, access: write}]", is: ErrInvalidValue,
			want: "p.yaml:9:15: spec.ipc.channels: 2 channels create objects at start, more than maxObjects (1): the app would fail to start (raise maxObjects)"},
		{name: "pipe channel without grants", ipc: "channels: [{name: p, kind: pipe, access: read}]", is: ErrInvalidValue,
			want: "p.yaml:7:16: spec.ipc.channels[0]: attaches pipe p for read, but no create or attach grant allows that: the app would fail to start (add an attach grant such as {names: [p], kinds: [pipe], access: read}, or a create grant for the pipe)"},
		{name: "object over the broker's limit", ipc: "maxBytes: 4Ti\n    create: [{names: [a], kinds: [shm]}]\n    channels: [{name: a, kind: shm, access: read, size: 2Ti}]", is: ErrInvalidValue,
			want: "p.yaml:9:57: spec.ipc.channels[0].size: must be between 0 and 1Ti (the broker's limit), got 2Ti"},
		{name: "quota too small for a pipe", ipc: "maxBytes: 4Ki\n    create: [{names: [a], kinds: [shm, pipe]}]", is: ErrInvalidValue,
			want: "p.yaml:7:15: spec.ipc.maxBytes: 4Ki is less than the 64Ki a pipe counts against it: the app could create no pipe"},
		{name: "more channels than maxObjects", ipc: "maxObjects: 1\n    create: [{names: [\"*\"], kinds: [shm]}]\n" +
			"    channels: [{name: a, kind: shm, access: read, size: 1Mi}, {name: b, kind: shm, access: read, size: 1Mi}]", is: ErrInvalidValue,
			want: "p.yaml:9:15: spec.ipc.channels: 2 channels create objects at start, more than maxObjects (1): the app would fail to start (raise maxObjects)"},
		{name: "channels larger than maxBytes", ipc: "maxBytes: 3Mi\n    create: [{names: [\"*\"], kinds: [shm, mq]}]\n" +
			"    channels: [{name: a, kind: shm, access: read, size: 2Mi}, {name: b, kind: mq, access: read, maxMsg: 16, msgSize: 128Ki}]", is: ErrInvalidValue,
			want: "p.yaml:9:15: spec.ipc.channels: the channels that create objects at start need 4Mi, more than maxBytes (3Mi): the app would fail to start (raise maxBytes or shrink the channels)"},
		{name: "mq over the grant", ipc: "create: [{names: [q], kinds: [mq], maxSize: 64Ki}]\n    channels: [{name: q, kind: mq, access: read, maxMsg: 16, msgSize: 8Ki}]", is: ErrInvalidValue,
			want: "p.yaml:8:16: spec.ipc.channels[0]: maxMsg 16 × msgSize 8Ki = 128Ki is more than the maxSize of spec.ipc.create[0], 64Ki: the app would fail to start (shrink the channel or raise the limit)"},
		{name: "maxSize 0 is the quota", ipc: "maxBytes: 1Mi\n    create: [{names: [s], kinds: [shm], maxSize: 0}]\n    channels: [{name: s, kind: shm, access: read, size: 2Mi}]", is: ErrInvalidValue,
			want: "p.yaml:9:16: spec.ipc.channels[0]: size 2Mi is more than the maxBytes, 1Mi: the app would fail to start (shrink the channel or raise the limit)"},
		{name: "first matching grant decides", ipc: "create: [{names: [\"a/*\"], kinds: [shm], maxSize: 1Mi}, {names: [\"**\"], kinds: [shm]}]\n" +
			"    channels: [{name: a/b, kind: shm, access: read, size: 2Mi}]", is: ErrInvalidValue,
			want: "p.yaml:8:16: spec.ipc.channels[0]: size 2Mi is more than the maxSize of spec.ipc.create[0], 1Mi: the app would fail to start (shrink the channel or raise the limit)"},
		{name: "kernel mq limits", ipc: "create: [{names: [q], kinds: [mq]}]\n    channels: [{name: q, kind: mq, access: read, maxMsg: 65537, msgSize: 32Mi}]", is: ErrInvalidValue,
			want: "p.yaml:8:58: spec.ipc.channels[0].maxMsg: must be between 0 and 65536, got 65537\n" +
				"p.yaml:8:74: spec.ipc.channels[0].msgSize: must be between 0 and 16Mi (the kernel's limit), got 32Mi"},
		{name: "region with maxMsg", ipc: "attach: [{names: [r], kinds: [region], access: read}]\n    channels: [{name: r, kind: region, access: read, msgSize: 1}]", is: ErrInvalidValue,
			want: "p.yaml:8:63: spec.ipc.channels[0].msgSize: applies only to mq channels"},
		{name: "pipe with a size", ipc: "attach: [{names: [p], kinds: [pipe], access: read}]\n    channels: [{name: p, kind: pipe, access: read, size: 1Mi}]", is: ErrInvalidValue,
			want: "p.yaml:8:58: spec.ipc.channels[0].size: a pipe has no size (remove size)"},
		{name: "attach grant with owners still covers", ipc: "attach: [{names: [p], kinds: [pipe], access: readwrite, owners: [other]}]\n    channels: [{name: p, kind: pipe, access: read}]"},
		{name: "posixMQ with an attach grant", ipc: "posixMQ: true\n    attach: [{names: [\"**\"], kinds: [mq], access: readwrite}]"},
		{name: "long pattern", ipc: "attach: [{names: [" + strings.Repeat("a", 201) + "], kinds: [mq], access: read}]", is: ErrInvalidValue,
			want: "p.yaml:7:23: spec.ipc.attach[0].names[0]: name pattern of 201 bytes is longer than 200"},
		{name: "bad character", ipc: "attach: [{names: [\"a b\"], kinds: [mq], access: read}]", is: ErrInvalidValue,
			want: "p.yaml:7:23: spec.ipc.attach[0].names[0]: name pattern \"a b\" has the character ' '; use letters, digits, '.', '_', '-' and '/' between segments"},
		{name: "a glob as a channel name", ipc: "attach: [{names: [\"*\"], kinds: [shm], access: read}]\n    channels: [{name: \"a*\", kind: shm, access: read}]", is: ErrInvalidValue,
			want: "p.yaml:8:23: spec.ipc.channels[0].name: object name \"a*\" has the character '*'; use letters, digits, '.', '_', '-' and '/' between segments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := header + "spec:\n  ipc:"
			if tt.ipc != "" {
				data += "\n    " + tt.ipc
			}
			p, err := Parse("p.yaml", []byte(data+"\n"))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse:\n%v\n%s", err, data)
				}
				if tt.check != nil {
					tt.check(t, p.Spec.IPC)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted\n%s", data)
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

// TestValidateIPC checks grants built in code, which the decoder never saw:
// kinds and accesses out of range, a quota left out.
func TestValidateIPC(t *testing.T) {
	shm := []ipc.Kind{ipc.Shm}
	tests := []struct {
		name string
		g    ipc.Grants
		want string
	}{
		{"nothing", ipc.Grants{}, ""},
		{"no quota", ipc.Grants{Create: []ipc.CreateGrant{{Names: []string{"a"}, Kinds: shm}}},
			"spec.ipc.maxObjects: 0 with create grants: the app could create nothing (leave maxObjects out for the default, 16)\n" +
				"spec.ipc.maxBytes: 0 with create grants: the app could create nothing (leave maxBytes out for the default, 256Mi)"},
		{"negative", ipc.Grants{MaxObjects: -1, MaxBytes: -1, Create: []ipc.CreateGrant{{Names: []string{"a"}, Kinds: shm, MaxSize: -1}}},
			"spec.ipc.maxObjects: must be between 0 and 65536, got -1\n" +
				"spec.ipc.maxBytes: must not be negative\n" +
				"spec.ipc.create[0].maxSize: must not be negative"},
		{"unknown kind and access", ipc.Grants{
			Attach:   []ipc.AttachGrant{{Names: []string{"a"}, Kinds: []ipc.Kind{9}, Access: 4}},
			Channels: []ipc.Channel{{Name: "a", Kind: 7, Access: 8}},
		},
			"spec.ipc.attach[0].kinds[0]: kind(9) is not an IPC object kind (use pipe, shm, region or mq)\n" +
				"spec.ipc.attach[0].access: access(4) is not an access (use read, write or readwrite)\n" +
				"spec.ipc.channels[0].kind: kind(7) is not an IPC object kind (use pipe, shm, region or mq)\n" +
				"spec.ipc.channels[0].access: access(8) is not an access (use read, write or readwrite)"},
		{"negative channel sizes", ipc.Grants{
			Attach:   []ipc.AttachGrant{{Names: []string{"**"}, Kinds: []ipc.Kind{ipc.Shm, ipc.MQ}, Access: ipc.Read}},
			Channels: []ipc.Channel{{Name: "a", Kind: ipc.Shm, Access: ipc.Read, Size: -1}, {Name: "b", Kind: ipc.MQ, Access: ipc.Read, MaxMsg: -1, MsgSize: -2}},
		},
			"spec.ipc.channels[0].size: must be between 0 and 1Ti (the broker's limit), got -1\n" +
				"spec.ipc.channels[1].maxMsg: must be between 0 and 65536 (the kernel's limit), got -1\n" +
				"spec.ipc.channels[1].msgSize: must be between 0 and 16Mi (the kernel's limit), got -2"},
		{"group-style attach", ipc.Grants{
			Attach: []ipc.AttachGrant{
				{Names: []string{"ring"}, Kinds: shm, Access: ipc.Read, Owners: []string{"group"}},
				{Names: []string{"ready"}, Kinds: []ipc.Kind{ipc.Pipe}, Access: ipc.Write, Owners: []string{"group"}},
			},
			Channels: []ipc.Channel{{Name: "ring", Kind: ipc.Shm, Access: ipc.Read}, {Name: "ready", Kind: ipc.Pipe, Access: ipc.Write}},
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Default()
			p.Spec.IPC = tt.g
			err := p.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate:\n%v\nwant:\n%s", err, tt.want)
			}
		})
	}
}
