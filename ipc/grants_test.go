package ipc

import (
	"errors"
	"fmt"
	"syscall"
	"testing"
)

func TestGrantsValidate(t *testing.T) {
	ok := []string{"**"}
	for _, c := range []struct {
		what string
		g    Grants
		ok   bool
	}{
		{"zero", Grants{}, true},
		{"full", Grants{
			Create:   []CreateGrant{{Names: ok, Kinds: AllKinds, MaxSize: 1, Persistent: true, Peers: []string{"x"}}},
			Attach:   []AttachGrant{{Names: []string{"a/*"}, Kinds: []Kind{Shm}, Access: Read, Owners: []string{"y"}}},
			Channels: []Channel{{Name: "a", Kind: Pipe, Access: Write}, {Name: "b", Kind: Shm, Access: Read, Size: 4096}},
		}, true},
		{"negative maxObjects", Grants{MaxObjects: -1}, false},
		{"negative maxBytes", Grants{MaxBytes: -1}, false},
		{"create without names", Grants{Create: []CreateGrant{{Kinds: AllKinds}}}, false},
		{"create with a bad pattern", Grants{Create: []CreateGrant{{Names: []string{"a**"}, Kinds: AllKinds}}}, false},
		{"create without kinds", Grants{Create: []CreateGrant{{Names: ok}}}, false},
		{"create with a bad kind", Grants{Create: []CreateGrant{{Names: ok, Kinds: []Kind{7}}}}, false},
		{"negative maxSize", Grants{Create: []CreateGrant{{Names: ok, Kinds: AllKinds, MaxSize: -1}}}, false},
		{"attach without access", Grants{Attach: []AttachGrant{{Names: ok, Kinds: AllKinds}}}, false},
		{"attach with a bad access", Grants{Attach: []AttachGrant{{Names: ok, Kinds: AllKinds, Access: 4}}}, false},
		{"channel with a bad name", Grants{Channels: []Channel{{Name: "/x", Kind: Pipe, Access: Read}}}, false},
		{"channel twice", Grants{Channels: []Channel{{Name: "x", Kind: Pipe, Access: Read}, {Name: "x", Kind: Pipe, Access: Write}}}, false},
		{"channel with a bad kind", Grants{Channels: []Channel{{Name: "x", Access: Read}}}, false},
		{"channel without access", Grants{Channels: []Channel{{Name: "x", Kind: Shm}}}, false},
		{"pipe channel of both ends", Grants{Channels: []Channel{{Name: "x", Kind: Pipe, Access: ReadWrite}}}, false},
		{"channel with a negative size", Grants{Channels: []Channel{{Name: "x", Kind: Shm, Access: Read, Size: -1}}}, false},
	} {
		err := c.g.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", c.what, err, c.ok)
		}
		if err != nil && ErrnoOf(err) != syscall.EINVAL {
			t.Errorf("%s: errno %v, want EINVAL", c.what, ErrnoOf(err))
		}
	}
}

func TestGrantLookup(t *testing.T) {
	g := Grants{
		Create: []CreateGrant{{Names: []string{"a/*"}, Kinds: []Kind{Shm}}, {Names: []string{"**"}, Kinds: []Kind{Pipe}, MaxSize: 7}},
		Attach: []AttachGrant{
			{Names: []string{"x/*"}, Kinds: []Kind{MQ}, Access: Read},
			{Names: []string{"x/*"}, Kinds: []Kind{MQ}, Access: ReadWrite, Owners: []string{"boss"}},
		},
	}
	if c := g.CreateGrantFor("a/b", Shm); c == nil || c.MaxSize != 0 {
		t.Errorf("create a/b shm: %+v", c)
	}
	if c := g.CreateGrantFor("a/b", Pipe); c == nil || c.MaxSize != 7 {
		t.Errorf("create a/b pipe: %+v", c)
	}
	if c := g.CreateGrantFor("a/b", MQ); c != nil {
		t.Errorf("create a/b mq: %+v", c)
	}
	for _, c := range []struct {
		access Access
		owner  string
		want   bool
	}{
		{Read, "anyone", true},
		{Write, "anyone", false},
		{Write, "boss", true},
		{ReadWrite, "boss", true},
		{0, "boss", false},
	} {
		if got := g.AttachGrantFor("x/q", MQ, c.access, c.owner) != nil; got != c.want {
			t.Errorf("attach x/q %v from %s: %v, want %v", c.access, c.owner, got, c.want)
		}
	}
}

func TestParseAndFormat(t *testing.T) {
	for _, k := range AllKinds {
		if got, err := ParseKind(k.String()); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k, got, err)
		}
	}
	if _, err := ParseKind("socket"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseKind(socket): %v", err)
	}
	for _, a := range []Access{Read, Write, ReadWrite} {
		if got, err := ParseAccess(a.String()); err != nil || got != a {
			t.Errorf("ParseAccess(%q) = %v, %v", a, got, err)
		}
	}
	if _, err := ParseAccess("all"); !errors.Is(err, ErrInvalid) {
		t.Errorf("ParseAccess(all): %v", err)
	}
	if s := Kind(9).String() + Access(9).String() + EventKind(9).String(); s != "kind(9)access(9)event(9)" {
		t.Errorf("unknown values print as %q", s)
	}
	if got := FDsEnv([]string{"in", "out/x"}, []int{4, 5}); got != "in:4,out/x:5" {
		t.Errorf("FDsEnv = %q", got)
	}
}

func TestErrors(t *testing.T) {
	e := &Error{Op: "shm_attach", Name: "x", Errno: syscall.EPERM, Reason: "not granted: because", Err: ErrInvalid}
	if e.Error() != "shm_attach x: not granted: because" {
		t.Errorf("Error() = %q", e.Error())
	}
	wrapped := fmt.Errorf("serving: %w", e)
	for _, c := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{wrapped, syscall.EPERM},
		{fmt.Errorf("x: %w", ErrNameTooLong), syscall.ENAMETOOLONG},
		{fmt.Errorf("x: %w", syscall.EBADF), syscall.EBADF},
		{errors.New("other"), syscall.EIO},
	} {
		if got := ErrnoOf(c.err); got != c.want {
			t.Errorf("ErrnoOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if !errors.Is(wrapped, syscall.EPERM) || !errors.Is(wrapped, ErrInvalid) || errors.Is(wrapped, syscall.ENOENT) {
		t.Error("errors.Is on a wrapped *Error")
	}
	if !errors.Is(ErrClosed, syscall.ESHUTDOWN) || !errors.Is(ErrNotSupported, syscall.EOPNOTSUPP) {
		t.Error("sentinels do not match their errnos")
	}
}
