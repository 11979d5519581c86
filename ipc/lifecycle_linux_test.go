package ipc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

func TestPersistentObjects(t *testing.T) {
	b, rec := newBroker(t, Options{})
	g := Grants{
		Create: []CreateGrant{
			{Names: []string{"keep/*"}, Kinds: AllKinds, Persistent: true},
			{Names: []string{"tmp/*"}, Kinds: AllKinds},
		},
		MaxObjects: 8, MaxBytes: 1 << 20,
	}
	consumer := Grants{Attach: []AttachGrant{{Names: []string{"**"}, Kinds: AllKinds, Access: Read, Owners: []string{"store"}}}}
	s1 := join(t, b, "s1", "store", g)
	fd, err := s1.ShmCreate("keep/a", 4096)
	wantErrno(t, "persistent", err, 0)
	closeFD(t, fd)
	wantErrno(t, "temporary", s1.Create(Channel{Name: "tmp/b", Kind: Shm, Size: 4096}), 0)
	s1.Close()
	if e, ok := rec.last(Released); !ok || !strings.Contains(e.Reason, "removed 1 owned object(s), kept 1 persistent") {
		t.Errorf("released event %+v", e)
	}

	objs := b.Objects()
	if len(objs) != 1 || objs[0].Name != "keep/a" || objs[0].Owner != "s1" || objs[0].OwnerPolicy != "store" || !objs[0].Persistent || objs[0].Holders != 0 {
		t.Fatalf("objects after the owner exited: %+v", objs)
	}
	// Still attachable under the owner's policy.
	c := join(t, b, "c1", "reader", consumer)
	fd, _, err = c.ShmAttach("keep/a", Read)
	wantErrno(t, "attach a persistent object", err, 0)
	closeFD(t, fd)
	wantErrno(t, "reader unlink", c.Unlink("keep/a"), syscall.EPERM)
	// Another app of the creating policy manages it.
	s2 := join(t, b, "s2", "store", g)
	fd, err = s2.ShmCreate("keep/a", 4096)
	wantErrno(t, "create over it", err, syscall.EEXIST)
	wantErrno(t, "unlink by the same policy", s2.Unlink("keep/a"), 0)
	if objs := b.Objects(); len(objs) != 1 || !objs[0].Unlinked {
		t.Errorf("objects: %+v (the reader still holds it)", objs)
	}
	c.Close()
	if st := b.Stats(); st.Objects != 0 {
		t.Errorf("after the last holder exited: %+v", st)
	}
}

// TestUnlinkHeld: an unlinked object stays (and stays charged to its
// owner) while apps hold it, is invisible by name, and its name is free.
func TestUnlinkHeld(t *testing.T) {
	b, _ := newBroker(t, Options{})
	a := join(t, b, "a", "p", allGrants)
	c := join(t, b, "c", "q", allGrants)
	wantErrno(t, "create", a.Create(Channel{Name: "s", Kind: Shm, Size: 8192}), 0)
	fd, _, err := c.ShmAttach("s", ReadWrite)
	wantErrno(t, "attach", err, 0)
	defer closeFD(t, fd)
	wantErrno(t, "unlink", a.Unlink("s"), 0)
	_, _, err = c.ShmAttach("s", Read)
	wantErrno(t, "attach unlinked", err, syscall.ENOENT)
	if total, _ := c.List(0, 10); total != 0 {
		t.Errorf("list shows %d objects", total)
	}
	if self := a.Self(); self.Objects != 1 || self.Bytes != 8192 {
		t.Errorf("owner's quota while held: %+v", self)
	}
	st := b.Stats()
	if st.Objects != 1 || st.FDs != 0 || st.ByKind[Shm].Objects != 1 {
		t.Errorf("stats while held: %+v", st)
	}
	wantErrno(t, "reuse the name", a.Create(Channel{Name: "s", Kind: Pipe}), 0)
	// The data is still there for the holder.
	if _, err := syscall.Pwrite(fd, []byte("still"), 0); err != nil {
		t.Errorf("the holder lost its object: %v", err)
	}
	c.Close()
	if self := a.Self(); self.Objects != 1 || self.Bytes != PipeBytes {
		t.Errorf("owner's quota after the holder exited: %+v", self)
	}
}

func TestEvents(t *testing.T) {
	b, rec := newBroker(t, Options{})
	a := join(t, b, "a", "p", allGrants)
	c := join(t, b, "c", "q", Grants{Attach: []AttachGrant{{Names: []string{"x"}, Kinds: []Kind{Shm}, Access: Read}}})
	fd, err := a.ShmCreate("x", 4096)
	wantErrno(t, "create", err, 0)
	closeFD(t, fd)
	fd, _, err = c.ShmAttach("x", Read)
	wantErrno(t, "attach", err, 0)
	closeFD(t, fd)
	_, _, err = c.ShmAttach("x", ReadWrite)
	wantErrno(t, "attach rw", err, syscall.EPERM)
	c.Close()
	a.Close()
	var got []string
	for _, e := range rec.events() {
		got = append(got, fmt.Sprintf("%v %s %s app=%s owner=%s %v %v size=%d", e.Kind, e.Op, e.Object, e.App, e.Owner, e.Access, e.Errno, e.Size))
	}
	want := []string{
		"created shm_create x app=a owner=a access(0) errno 0 size=4096",
		"granted shm_create x app=a owner=a readwrite errno 0 size=0",
		"granted shm_attach x app=c owner=a read errno 0 size=0",
		"denied shm_attach x app=c owner=a readwrite operation not permitted size=0",
		"released close  app=c owner= access(0) errno 0 size=1",
		"removed close x app=a owner=a access(0) errno 0 size=0",
		"released close  app=a owner= access(0) errno 0 size=1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestCycles: many create/attach/exit cycles of every kind leave nothing:
// no object, no byte, no descriptor in the broker or in this process.
func TestCycles(t *testing.T) {
	const cycles = 1000
	b, _ := newBroker(t, Options{})
	cycle := func(i int) {
		a, err := b.Join(AppInfo{ID: "a", Policy: "p", Grants: allGrants})
		if err != nil {
			t.Fatal(err)
		}
		c, err := b.Join(AppInfo{ID: "c", Policy: "q", Grants: allGrants})
		if err != nil {
			t.Fatal(err)
		}
		var fds []int
		add := func(what string, fd int, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("cycle %d: %s: %v", i, what, err)
			}
			fds = append(fds, fd)
		}
		fd, err := a.ShmCreate("s", 4096)
		add("shm_create", fd, err)
		fd, _, err = c.ShmAttach("s", Read)
		add("shm_attach", fd, err)
		fd, err = a.PipeOpen("p", Write)
		add("pipe write", fd, err)
		fd, err = c.PipeOpen("p", Read)
		add("pipe read", fd, err)
		fd, _, _, err = a.RegionMap("r", 4096, ReadWrite)
		add("region create", fd, err)
		fd, _, _, err = c.RegionMap("r", 0, Read)
		add("region attach", fd, err)
		fd, _, _, err = a.MQOpen("m", MQAttr{MaxMsg: 2, MsgSize: 64}, Write, 0)
		add("mq create", fd, err)
		fd, _, _, err = c.MQOpen("m", MQAttr{}, Read, MQNonblock)
		add("mq attach", fd, err)
		if i%2 == 0 {
			// Sometimes the attacher exits first, sometimes the owner.
			a, c = c, a
		}
		for _, fd := range fds {
			closeFD(t, fd)
		}
		a.Close()
		c.Close()
	}
	cycle(-1) // starts the queue namespace thread
	fdsBefore := countFDs(t)
	for i := range cycles {
		cycle(i)
	}
	if st := b.Stats(); st.Objects != 0 || st.Bytes != 0 || st.FDs != 0 || st.Sessions != 0 {
		t.Errorf("after %d cycles: %+v", cycles, st)
	}
	if n := countFDs(t); n != fdsBefore {
		t.Errorf("descriptors: %d before the cycles, %d after", fdsBefore, n)
	}
}

// TestConcurrentSessions hammers one broker from many sessions at once
// (run it with -race): creations, attaches, unlinks and exits on a small
// set of shared names. At the end every session is closed and the broker
// holds nothing.
func TestConcurrentSessions(t *testing.T) {
	b, _ := newBroker(t, Options{MaxObjects: 64})
	const workers, rounds = 16, 150
	names := []string{"n/0", "n/1", "n/2", "n/3", "n/4", "n/5"}
	kinds := []Kind{Pipe, Shm, Region, MQ}
	var granted, refused atomic.Int64
	var wg, closers sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for round := range rounds {
				s, err := b.Join(AppInfo{ID: fmt.Sprintf("w%d-%d", w, round), Policy: fmt.Sprintf("p%d", w%3), Grants: allGrants})
				if err != nil {
					t.Error(err)
					return
				}
				for range 4 {
					name := names[rng.IntN(len(names))]
					k := kinds[rng.IntN(len(kinds))]
					var fd int
					var err error
					switch rng.IntN(5) {
					case 0:
						err = s.Unlink(name)
						fd = -1
					case 1:
						_, err = s.Stat(name)
						fd = -1
					default:
						switch k {
						case Pipe:
							fd, err = s.PipeOpen(name, Access(1+rng.IntN(2)))
						case Shm:
							if fd, err = s.ShmCreate(name, 4096); errors.Is(err, syscall.EEXIST) {
								fd, _, err = s.ShmAttach(name, Read)
							}
						case Region:
							fd, _, _, err = s.RegionMap(name, 4096, ReadWrite)
						case MQ:
							fd, _, _, err = s.MQOpen(name, MQAttr{MaxMsg: 1, MsgSize: 32}, ReadWrite, MQNonblock)
						}
					}
					if err == nil {
						granted.Add(1)
						if fd >= 0 {
							syscall.Close(fd)
						}
						continue
					}
					refused.Add(1)
					switch ErrnoOf(err) {
					case syscall.EEXIST, syscall.ENOENT, syscall.EPIPE, syscall.ENOSPC:
					default:
						t.Errorf("unexpected error: %v", err)
					}
				}
				if rng.IntN(3) == 0 {
					closers.Go(s.Close) // exits race with other sessions' calls
				} else {
					s.Close()
				}
				_ = b.Stats()
				_ = b.Objects()
			}
		})
	}
	wg.Wait()
	closers.Wait()
	t.Logf("%d calls granted, %d refused", granted.Load(), refused.Load())
	if granted.Load() == 0 {
		t.Fatal("nothing was granted")
	}
	if st := b.Stats(); st.Objects != 0 || st.FDs != 0 || st.Sessions != 0 {
		t.Errorf("after every session closed: %+v", st)
	}
}
