package ipc

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// Policies of the grant matrix.
var (
	producerGrants = Grants{
		Create: []CreateGrant{
			{Names: []string{"results/*"}, Kinds: AllKinds, MaxSize: 1 << 20},
			{Names: []string{"private/*"}, Kinds: AllKinds, Peers: []string{"trusted"}},
		},
		MaxObjects: 16,
		MaxBytes:   64 << 20,
	}
	consumerGrants = Grants{
		Attach: []AttachGrant{
			{Names: []string{"results/*"}, Kinds: []Kind{Shm}, Access: Read},
			{Names: []string{"results/*"}, Kinds: []Kind{Region, MQ, Pipe}, Access: ReadWrite},
			{Names: []string{"private/*"}, Kinds: AllKinds, Access: ReadWrite},
		},
	}
	trustedGrants = Grants{
		Attach: []AttachGrant{{Names: []string{"private/*", "results/**"}, Kinds: AllKinds, Access: ReadWrite}},
	}
	ownersGrants = Grants{
		Attach: []AttachGrant{{Names: []string{"results/*"}, Kinds: AllKinds, Access: ReadWrite, Owners: []string{"someone-else"}}},
	}
)

// attachAny attaches name as kind with access through the method of that
// kind, attach only.
func attachAny(s *Session, k Kind, name string, a Access) (int, error) {
	switch k {
	case Pipe:
		return s.PipeOpen(name, a)
	case Shm:
		fd, _, err := s.ShmAttach(name, a)
		return fd, err
	case Region:
		fd, _, _, err := s.RegionMap(name, 0, a)
		return fd, err
	case MQ:
		fd, _, _, err := s.MQOpen(name, MQAttr{}, a, 0)
		return fd, err
	}
	return -1, fmt.Errorf("kind %v", k)
}

func TestGrantMatrix(t *testing.T) {
	b, rec := newBroker(t, Options{})
	prod := join(t, b, "p1", "producer", producerGrants)
	prod2 := join(t, b, "p2", "producer", producerGrants)
	cons := join(t, b, "c1", "consumer", consumerGrants)
	trusted := join(t, b, "t1", "trusted", trustedGrants)
	owners := join(t, b, "o1", "owners", ownersGrants)
	nobody := join(t, b, "n1", "nobody", Grants{})

	for _, c := range []Channel{
		{Name: "results/shm", Kind: Shm, Size: 4096},
		{Name: "results/region", Kind: Region, Size: 8192},
		{Name: "results/mq", Kind: MQ, MaxMsg: 4, MsgSize: 64},
		{Name: "results/pipe", Kind: Pipe},
		{Name: "private/shm", Kind: Shm, Size: 4096},
	} {
		if err := prod.Create(c); err != nil {
			t.Fatalf("create %s: %v", c.Name, err)
		}
	}

	cases := []struct {
		s      *Session
		kind   Kind
		name   string
		access Access
		want   syscall.Errno
	}{
		// The owner attaches its objects with any access.
		{prod, Shm, "results/shm", ReadWrite, 0},
		{prod, Pipe, "results/pipe", Write, 0},
		// Attach grants: kind, name and access.
		{cons, Shm, "results/shm", Read, 0},
		{cons, Shm, "results/shm", ReadWrite, syscall.EPERM},
		{cons, Shm, "results/shm", Write, syscall.EPERM},
		{cons, Region, "results/region", ReadWrite, 0},
		{cons, MQ, "results/mq", Write, 0},
		{cons, Pipe, "results/pipe", Read, 0},
		{cons, Shm, "results/missing", Read, syscall.ENOENT},
		{cons, Shm, "elsewhere/x", Read, syscall.EPERM},
		{cons, Shm, "results/sub/shm", Read, syscall.EPERM}, // "*" is one segment
		// A name holding another kind.
		{cons, Region, "results/mq", Read, syscall.EEXIST},
		// No grant at all: EPERM, whether the object exists or not.
		{nobody, Shm, "results/shm", Read, syscall.EPERM},
		{nobody, Shm, "results/missing", Read, syscall.EPERM},
		// Peers of the creator's grant.
		{cons, Shm, "private/shm", Read, syscall.EPERM},
		{trusted, Shm, "private/shm", ReadWrite, 0},
		// Owners of the attacher's grant.
		{owners, Shm, "results/shm", Read, syscall.EPERM},
		// Another app of the owner's policy is not the owner.
		{prod2, Shm, "results/shm", Read, syscall.EPERM},
		// ** matches any number of segments.
		{trusted, Shm, "results/shm", ReadWrite, 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%v/%s/%v", c.s.app.ID, c.kind, c.name, c.access), func(t *testing.T) {
			fd, err := attachAny(c.s, c.kind, c.name, c.access)
			wantErrno(t, "attach", err, c.want)
			if err == nil {
				closeFD(t, fd)
			}
			kind := Granted
			if c.want != 0 {
				kind = Denied
			}
			e, ok := rec.last(kind)
			if !ok || e.App != c.s.app.ID || e.Object != c.name {
				t.Fatalf("last %v event %+v, want one for app %s on %s", kind, e, c.s.app.ID, c.name)
			}
			if (c.want == 0 || c.want == syscall.EPERM && c.s != nobody) && !strings.HasPrefix(c.name, "results/missing") && c.name != "elsewhere/x" && c.name != "results/sub/shm" {
				if e.Owner != "p1" {
					t.Errorf("%v event names owner %q, want p1", kind, e.Owner)
				}
			}
			if kind == Denied && e.Errno != c.want {
				t.Errorf("denied event errno %v, want %v", e.Errno, c.want)
			}
		})
	}

	t.Run("reasons", func(t *testing.T) {
		_, _, err := cons.ShmAttach("results/shm", ReadWrite)
		var e *Error
		if !errors.As(err, &e) {
			t.Fatal(err)
		}
		for _, want := range []string{"not granted", "policy consumer", "shm results/shm", "readwrite"} {
			if !strings.Contains(e.Reason, want) {
				t.Errorf("reason %q lacks %q", e.Reason, want)
			}
		}
		_, _, err = cons.ShmAttach("private/shm", Read)
		if !errors.As(err, &e) || !strings.Contains(e.Reason, "lets only policies [trusted]") {
			t.Errorf("peer refusal: %v", err)
		}
	})

	t.Run("create needs a create grant", func(t *testing.T) {
		_, err := cons.ShmCreate("results/new", 4096)
		wantErrno(t, "consumer shm_create", err, syscall.ENOENT)
		_, err = cons.ShmCreate("results/shm", 4096)
		wantErrno(t, "consumer shm_create of an existing name", err, syscall.EEXIST)
		_, err = nobody.ShmCreate("results/new", 4096)
		wantErrno(t, "nobody shm_create", err, syscall.EPERM)
		_, err = prod.ShmCreate("results/pipe", 4096)
		wantErrno(t, "shm_create over a pipe", err, syscall.EEXIST)
		_, _, _, err = prod.RegionMap("results/pipe", 4096, ReadWrite)
		wantErrno(t, "region_map over a pipe", err, syscall.EEXIST)
	})

	t.Run("unlink", func(t *testing.T) {
		wantErrno(t, "consumer unlink", cons.Unlink("results/shm"), syscall.EPERM)
		wantErrno(t, "nobody unlink", nobody.Unlink("results/shm"), syscall.EPERM)
		wantErrno(t, "unlink missing", prod.Unlink("results/missing"), syscall.ENOENT)
		wantErrno(t, "same-policy unlink", prod2.Unlink("results/region"), 0)
		wantErrno(t, "owner unlink", prod.Unlink("results/mq"), 0)
		if _, err := cons.Stat("results/mq"); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("stat after unlink: %v", err)
		}
		e, ok := rec.last(Removed)
		if !ok || e.Object != "results/mq" || e.App != "p1" || !strings.Contains(e.Reason, "unlinked by app p1") {
			t.Errorf("removed event %+v", e)
		}
	})
}

func TestListAndStatVisibility(t *testing.T) {
	b, _ := newBroker(t, Options{})
	prod := join(t, b, "p1", "producer", producerGrants)
	cons := join(t, b, "c1", "consumer", consumerGrants)
	nobody := join(t, b, "n1", "nobody", Grants{})
	for _, c := range []Channel{
		{Name: "results/b", Kind: Shm, Size: 4096},
		{Name: "results/a", Kind: Pipe},
		{Name: "private/x", Kind: Shm, Size: 4096}, // peers: trusted only
	} {
		if err := prod.Create(c); err != nil {
			t.Fatal(err)
		}
	}
	total, objs := prod.List(0, 10)
	if total != 3 || len(objs) != 3 || objs[0].Name != "private/x" || objs[1].Name != "results/a" {
		t.Errorf("owner lists %d %+v", total, objs)
	}
	total, objs = cons.List(0, 10)
	if total != 2 || len(objs) != 2 || objs[0].Name != "results/a" || objs[1].Name != "results/b" {
		t.Errorf("consumer lists %d %+v", total, objs)
	}
	total, objs = cons.List(1, 10)
	if total != 2 || len(objs) != 1 || objs[0].Name != "results/b" {
		t.Errorf("consumer lists from 1: %d %+v", total, objs)
	}
	if total, objs = cons.List(5, -1); total != 2 || len(objs) != 0 {
		t.Errorf("out of range list: %d %+v", total, objs)
	}
	if total, _ = nobody.List(0, 10); total != 0 {
		t.Errorf("nobody sees %d objects", total)
	}
	info, err := cons.Stat("results/b")
	if err != nil || info.Kind != Shm || info.Size != 4096 || info.Owner != "p1" || info.OwnerPolicy != "producer" {
		t.Errorf("stat: %+v %v", info, err)
	}
	_, err = cons.Stat("private/x")
	wantErrno(t, "stat of a peers-only object", err, syscall.EPERM)
	_, err = nobody.Stat("results/b")
	wantErrno(t, "stat without grants", err, syscall.EPERM)
	_, err = cons.Stat("../etc")
	wantErrno(t, "stat of a bad name", err, syscall.EINVAL)
	if s := prod.Self(); s.Objects != 3 || s.Bytes != 2*4096+PipeBytes || s.MaxObjects != 16 || s.MaxBytes != 64<<20 {
		t.Errorf("self: %+v", s)
	}
}

func TestArgumentsAndQuotas(t *testing.T) {
	b, _ := newBroker(t, Options{MaxObjects: 5})
	g := Grants{
		Create: []CreateGrant{
			{Names: []string{"q/**"}, Kinds: AllKinds, MaxSize: 1 << 20},
			{Names: []string{"big/*"}, Kinds: []Kind{Shm}},
		},
		MaxObjects: 3,
		MaxBytes:   2 << 20,
	}
	a := join(t, b, "a1", "p", g)
	long := strings.Repeat("n", MaxNameLen+1)
	cases := []struct {
		what string
		call func() error
		want syscall.Errno
	}{
		{"empty name", func() error { _, err := a.ShmCreate("", 4096); return err }, syscall.EINVAL},
		{"bad name", func() error { _, err := a.ShmCreate("q/../x", 4096); return err }, syscall.EINVAL},
		{"long name", func() error { _, err := a.ShmCreate(long, 4096); return err }, syscall.ENAMETOOLONG},
		{"zero size", func() error { _, err := a.ShmCreate("q/x", 0); return err }, syscall.EINVAL},
		{"negative size", func() error { _, err := a.ShmCreate("q/x", -1); return err }, syscall.EINVAL},
		{"negative region", func() error { _, _, _, err := a.RegionMap("q/x", -4096, Read); return err }, syscall.EINVAL},
		{"absurd size", func() error { _, err := a.ShmCreate("q/x", MaxObjectSize+1); return err }, syscall.E2BIG},
		{"over grant", func() error { _, err := a.ShmCreate("q/x", 1<<20+1); return err }, syscall.E2BIG},
		{"over maxBytes via grant without maxSize", func() error { _, err := a.ShmCreate("big/x", 2<<20+1); return err }, syscall.E2BIG},
		{"access 0", func() error { _, _, err := a.ShmAttach("q/x", 0); return err }, syscall.EINVAL},
		{"access 4", func() error { _, _, err := a.ShmAttach("q/x", 4); return err }, syscall.EINVAL},
		{"pipe both ends", func() error { _, err := a.PipeOpen("q/p", ReadWrite); return err }, syscall.EINVAL},
		{"bad kind", func() error { return a.Create(Channel{Name: "q/k", Kind: 9}) }, syscall.EINVAL},
		{"mq half attr", func() error { _, _, _, err := a.MQOpen("q/m", MQAttr{MaxMsg: 1}, Read, 0); return err }, syscall.EINVAL},
		{"mq maxmsg", func() error {
			_, _, _, err := a.MQOpen("q/m", MQAttr{MaxMsg: MQMaxMsg + 1, MsgSize: 1}, Read, 0)
			return err
		}, syscall.EINVAL},
		{"mq msgsize", func() error {
			_, _, _, err := a.MQOpen("q/m", MQAttr{MaxMsg: 1, MsgSize: MQMaxMsgSize + 1}, Read, 0)
			return err
		}, syscall.EINVAL},
		{"mq over grant", func() error {
			_, _, _, err := a.MQOpen("q/m", MQAttr{MaxMsg: 1024, MsgSize: 1025}, Read, 0)
			return err
		}, syscall.E2BIG},
		{"mq flags", func() error { _, _, _, err := a.MQOpen("q/m", MQAttr{MaxMsg: 1, MsgSize: 1}, Read, 0x80); return err }, syscall.EINVAL},
		{"mq exclusive attach", func() error { _, _, _, err := a.MQOpen("q/m", MQAttr{}, Read, MQExclusive); return err }, syscall.EINVAL},
		{"attach missing", func() error { _, _, err := a.ShmAttach("q/none", Read); return err }, syscall.ENOENT},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) { wantErrno(t, c.what, c.call(), c.want) })
	}
	if st := b.Stats(); st.Objects != 0 {
		t.Fatalf("refused calls left objects: %+v", st)
	}

	// Quotas: 3 objects and 2 MiB for the app, 5 objects for the broker.
	wantErrno(t, "first 1 MiB", a.Create(Channel{Name: "q/1", Kind: Shm, Size: 1 << 20}), 0)
	fd, err := a.ShmCreate("q/2", 1<<20)
	wantErrno(t, "second 1 MiB", err, 0)
	closeFD(t, fd)
	_, err = a.ShmCreate("q/3", 1)
	wantErrno(t, "past maxBytes", err, syscall.ENOSPC)
	// q/2 was handed to its creator: unlinked, it stays charged until the
	// app exits (the broker cannot see the app close its descriptor).
	wantErrno(t, "unlink held", a.Unlink("q/2"), 0)
	_, err = a.ShmCreate("q/3", 1)
	wantErrno(t, "past maxBytes after unlinking a held object", err, syscall.ENOSPC)
	// q/1 was never handed out: unlinking it frees its charge at once.
	wantErrno(t, "unlink unheld", a.Unlink("q/1"), 0)
	fd, err = a.ShmCreate("q/3", 4096)
	wantErrno(t, "after unlink", err, 0)
	closeFD(t, fd)
	wantErrno(t, "pipe", a.Create(Channel{Name: "q/4", Kind: Pipe}), 0)
	_, err = a.ShmCreate("q/5", 4096)
	wantErrno(t, "past maxObjects", err, syscall.ENOSPC)
	if s := a.Self(); s.Objects != 3 || s.Bytes != 1<<20+4096+PipeBytes {
		t.Errorf("self: %+v", s)
	}

	other := join(t, b, "b1", "p", g)
	wantErrno(t, "broker 4th", other.Create(Channel{Name: "q/6", Kind: Pipe}), 0)
	wantErrno(t, "broker 5th", other.Create(Channel{Name: "q/7", Kind: Pipe}), 0)
	err = other.Create(Channel{Name: "q/8", Kind: Pipe})
	wantErrno(t, "past the broker's MaxObjects", err, syscall.ENOSPC)
	var e *Error
	if !errors.As(err, &e) || !strings.Contains(e.Reason, "broker") {
		t.Errorf("broker quota reason: %v", err)
	}

	t.Run("broker bytes", func(t *testing.T) {
		b2, _ := newBroker(t, Options{MaxBytes: 1 << 20})
		x := join(t, b2, "x", "p", g)
		wantErrno(t, "fits", x.Create(Channel{Name: "q/a", Kind: Shm, Size: 1 << 19}), 0)
		wantErrno(t, "past MaxBytes", x.Create(Channel{Name: "q/b", Kind: Shm, Size: 1<<19 + 1}), syscall.ENOSPC)
	})
}

func TestJoin(t *testing.T) {
	b, _ := newBroker(t, Options{})
	_, err := b.Join(AppInfo{Policy: "p"})
	wantErrno(t, "no id", err, syscall.EINVAL)
	_, err = b.Join(AppInfo{ID: "a", Grants: Grants{Create: []CreateGrant{{Names: []string{"a**"}, Kinds: AllKinds}}}})
	wantErrno(t, "bad pattern", err, syscall.EINVAL)
	g := Grants{Create: []CreateGrant{{Names: []string{"x"}, Kinds: []Kind{Pipe}}}, MaxObjects: 1, MaxBytes: PipeBytes}
	s := join(t, b, "a", "p", g)
	_, err = b.Join(AppInfo{ID: "a", Policy: "p"})
	wantErrno(t, "duplicate id", err, syscall.EEXIST)
	// The session keeps its own copy of the grants.
	g.Create[0].Names[0] = "y"
	wantErrno(t, "grants copied", s.Create(Channel{Name: "x", Kind: Pipe}), 0)
	s.Close()
	s.Close()
	wantErrno(t, "after close", s.Create(Channel{Name: "x", Kind: Pipe}), syscall.ESHUTDOWN)
	if !errors.Is(s.Create(Channel{Name: "x", Kind: Pipe}), ErrClosed) {
		t.Error("closed session error does not wrap ErrClosed")
	}
	if _, err := b.Join(AppInfo{ID: "a", Policy: "p"}); err != nil {
		t.Errorf("rejoin after close: %v", err)
	}
}
