package ipc

import (
	"fmt"
	"os"
	"time"

	"github.com/pinfold/pinfold/syscalls"
)

// object is one IPC object. All fields are guarded by Broker.mu, except
// while ready is non-nil: then the creating goroutine alone fills in the
// kernel side (fd, end, size) outside the lock, and everyone else waits
// for ready to close.
type object struct {
	name string
	kind Kind
	// charge is what the object counts against quotas.
	charge int64
	// size: shm and region size as created, pipe capacity at creation.
	size            int64
	maxMsg, msgSize int64
	// owner is the creating session until it closes; ownerID and
	// ownerPolicy stay.
	owner                *Session
	ownerID, ownerPolicy string
	persistent           bool
	peers                []string // policies allowed to attach; nil: any
	created              time.Time
	// named: the object is in the namespace (false: pending or unlinked).
	named bool
	// ready is non-nil while the kernel object is being made; it is
	// closed (and set to nil) when creation succeeded or failed.
	ready chan struct{}
	// fd is the broker's descriptor of a shm, region or mq (O_RDWR);
	// -1 once closed.
	fd int
	// end are a pipe's read ([0]) and write ([1]) ends.
	end [2]pipeEnd
	// holders counts the descriptors handed to each live session.
	holders map[*Session]int
}

// pipeEnd is the broker's copy of one end of a pipe.
type pipeEnd struct {
	fd int // -1 once dropped
	// exited: an app that held the end has exited (Session.Close, not
	// Abort). The broker's copy is closed once that is so and no live app
	// holds the end: from then on nobody can write to (read from) it.
	exited  bool
	holders map[*Session]int
}

func newObject(name string, k Kind, owner *Session) *object {
	o := &object{
		name:        name,
		kind:        k,
		owner:       owner,
		ownerID:     owner.app.ID,
		ownerPolicy: owner.app.Policy,
		created:     time.Now(),
		ready:       make(chan struct{}),
		fd:          -1,
		holders:     make(map[*Session]int),
	}
	for i := range o.end {
		o.end[i].fd = -1
		if k == Pipe {
			o.end[i].holders = make(map[*Session]int)
		}
	}
	return o
}

// endIndex is the index in object.end of a pipe end asked for as an Access.
func endIndex(a Access) int {
	if a == Write {
		return 1
	}
	return 0
}

var endNames = [2]string{"read", "write"}

// makeKernel creates the kernel object behind o. It runs outside the
// broker's lock, on an object nobody else touches until it is ready.
func (b *Broker) makeKernel(o *object) error {
	switch o.kind {
	case Pipe:
		return makePipe(o)
	case Shm:
		return makeShm(o)
	case Region:
		return makeRegion(o)
	case MQ:
		return b.mq.create(o)
	}
	return fmt.Errorf("%w: unknown kind %d", ErrInvalid, o.kind)
}

// makePipe: pipe2(O_CLOEXEC), mode 0 on the pipe inode (so that an app
// running as uid 0 without capabilities cannot reopen its read end for
// writing through /proc/self/fd), capacity read back for ObjectInfo.
func makePipe(o *object) error {
	r, w, err := syscalls.Pipe2()
	if err != nil {
		return err
	}
	o.end[0].fd, o.end[1].fd = r, w
	if err := syscalls.Fchmod(r, 0); err != nil {
		o.closeFDs()
		return err
	}
	n, err := syscalls.PipeSize(r)
	if err != nil {
		o.closeFDs()
		return err
	}
	o.size = int64(n)
	return nil
}

// makeShm: a memfd of the asked size, sealed against growing, shrinking
// and further seals (and, with MFD_NOEXEC_SEAL, against exec), mode 0.
func makeShm(o *object) error {
	fd, err := syscalls.MemfdCreate("pinfold:" + o.name)
	if err != nil {
		return err
	}
	o.fd = fd
	err = syscalls.Ftruncate(fd, o.size)
	if err == nil {
		err = syscalls.AddSeals(fd, syscalls.SealGrow|syscalls.SealShrink|syscalls.SealSeal)
	}
	if err == nil {
		err = syscalls.Fchmod(fd, 0)
	}
	if err != nil {
		o.closeFDs()
		return err
	}
	return nil
}

// regionInodes is nr_inodes of a region's tmpfs: its root directory and
// the one file.
const regionInodes = 2

// makeRegion: a detached tmpfs of the region's size (rounded up to pages)
// that only this file lives on, an unnamed file on it (O_TMPFILE, mode 0)
// truncated to size. The mount fd is closed at once: the mount then exists
// only through the file's descriptors and is freed with the last of them,
// so it never appears in any mount table and nothing is left if pinfold
// dies.
func makeRegion(o *object) error {
	page := int64(os.Getpagesize())
	limit := (o.size + page - 1) / page * page
	mnt, err := syscalls.FSMount("tmpfs", []string{
		fmt.Sprintf("size=%d", limit),
		fmt.Sprintf("nr_inodes=%d", regionInodes),
		"mode=0700",
	}, syscalls.MountAttrNoSuid|syscalls.MountAttrNoDev|syscalls.MountAttrNoExec)
	if err != nil {
		return err
	}
	fd, err := syscalls.OpenTmpfile(mnt, 0)
	syscalls.Close(mnt)
	if err != nil {
		return err
	}
	o.fd = fd
	if err := syscalls.Ftruncate(fd, o.size); err != nil {
		o.closeFDs()
		return err
	}
	return nil
}

// handout opens a fresh open file description of o for an app: read-only
// or read-write per a (a pipe's end per a), non-blocking if asked. Called
// with the broker's lock held, or by the creator before o is ready, so
// that o's descriptors cannot be closed (and their numbers reused) under
// it.
func (b *Broker) handout(o *object, a Access, nonblock bool) (int, error) {
	flags := 0
	src := o.fd
	switch o.kind {
	case Pipe:
		i := endIndex(a)
		src = o.end[i].fd
		flags = syscalls.OpenReadOnly
		if i == 1 {
			flags = syscalls.OpenWriteOnly
		}
		// Opening a pipe through /proc behaves like opening a FIFO: it
		// would wait for the other side without O_NONBLOCK. The broker's
		// copy of the other end is there (or the end asked for is gone
		// and handout is not called), so the open returns at once.
		fd, err := syscalls.ReopenFD(b.fdDir, src, flags|syscalls.OpenNonblock)
		if err != nil {
			return -1, err
		}
		if !nonblock {
			if err := syscalls.ClearNonblock(fd); err != nil {
				syscalls.Close(fd)
				return -1, err
			}
		}
		return fd, nil
	case Shm, Region:
		flags = syscalls.OpenReadOnly
		if a&Write != 0 {
			// mmap(MAP_SHARED) of any kind needs a readable descriptor.
			flags = syscalls.OpenReadWrite
		}
	case MQ:
		switch a {
		case Read:
			flags = syscalls.OpenReadOnly
		case Write:
			flags = syscalls.OpenWriteOnly
		default:
			flags = syscalls.OpenReadWrite
		}
	}
	if nonblock {
		flags |= syscalls.OpenNonblock
	}
	return syscalls.ReopenFD(b.fdDir, src, flags)
}

// closeFDs closes the broker's descriptors of o.
func (o *object) closeFDs() {
	if o.fd >= 0 {
		syscalls.Close(o.fd)
		o.fd = -1
	}
	for i := range o.end {
		if o.end[i].fd >= 0 {
			syscalls.Close(o.end[i].fd)
			o.end[i].fd = -1
		}
	}
}

// fds counts the broker's descriptors of o.
func (o *object) fds() int {
	n := 0
	if o.fd >= 0 {
		n++
	}
	for _, e := range o.end {
		if e.fd >= 0 {
			n++
		}
	}
	return n
}

// hold records that s was handed a descriptor of o (access a: for a pipe,
// the end).
func (o *object) hold(s *Session, a Access) {
	o.holders[s]++
	s.held[o] = struct{}{}
	if o.kind == Pipe {
		e := &o.end[endIndex(a)]
		e.holders[s]++
	}
}

// currentSize is the size ObjectInfo reports: a region's file size and a
// pipe's capacity now (apps with write access may have changed them).
func (o *object) currentSize() int64 {
	switch o.kind {
	case Region:
		if o.fd >= 0 {
			if n, err := syscalls.FileSize(o.fd); err == nil {
				return n
			}
		}
	case Pipe:
		for _, e := range o.end {
			if e.fd >= 0 {
				if n, err := syscalls.PipeSize(e.fd); err == nil {
					return int64(n)
				}
			}
		}
	case MQ:
		return o.charge
	}
	return o.size
}

func (o *object) info() ObjectInfo {
	return ObjectInfo{
		Name:        o.name,
		Kind:        o.kind,
		Size:        o.currentSize(),
		Owner:       o.ownerID,
		OwnerPolicy: o.ownerPolicy,
		Holders:     len(o.holders),
		Persistent:  o.persistent,
		Unlinked:    !o.named,
		Created:     o.created,
		MaxMsg:      o.maxMsg,
		MsgSize:     o.msgSize,
	}
}
