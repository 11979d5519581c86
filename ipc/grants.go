package ipc

import (
	"fmt"
	"slices"
	"strings"
)

// Size limits the broker enforces whatever the grants say.
const (
	// PipeBytes is what a pipe counts against quotas: the kernel's default
	// pipe capacity. (An app may raise its pipe's capacity with
	// F_SETPIPE_SZ up to /proc/sys/fs/pipe-max-size; that memory is
	// charged to the writer's memory cgroup, not to the IPC quota.)
	PipeBytes = 64 << 10
	// MaxObjectSize bounds the size of any shm or region and the
	// maxmsg*msgsize of any queue: 1 TiB.
	MaxObjectSize = 1 << 40
	// MQMaxMsg and MQMaxMsgSize bound a queue's attributes: the kernel's
	// hard limits (HARD_MSGMAX, HARD_MSGSIZEMAX).
	MQMaxMsg     = 65536
	MQMaxMsgSize = 16 << 20
)

// Kind is the kind of an IPC object. The numbers are part of the syscall
// interface (syscalls/abi) and never change.
type Kind uint8

// Kinds.
const (
	// Pipe is a named pipe: a kernel pipe whose read and write ends are
	// handed out separately.
	Pipe Kind = 1
	// Shm is shared memory: a memfd of fixed size, sealed against growing
	// and shrinking.
	Shm Kind = 2
	// Region is a named file of fixed size on a tmpfs that only the broker
	// has mounted (a detached mount), mapped by the apps granted it.
	Region Kind = 3
	// MQ is a POSIX message queue created by the broker; its name is
	// unlinked at once, apps hold descriptors only.
	MQ Kind = 4
)

var kindNames = map[Kind]string{Pipe: "pipe", Shm: "shm", Region: "region", MQ: "mq"}

// AllKinds lists every kind, in number order.
var AllKinds = []Kind{Pipe, Shm, Region, MQ}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind reads a kind's String form.
func ParseKind(s string) (Kind, error) {
	for k, name := range kindNames {
		if name == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown IPC object kind %q (want pipe, shm, region or mq)", ErrInvalid, s)
}

// Access is what a holder may do with an object. The numbers are part of the
// syscall interface and never change.
//
//	kind     Read                    Write                   ReadWrite
//	pipe     the read end            the write end           either end (one per call)
//	shm      map read-only           map read-write          map read-write
//	region   map read-only           map read-write          map read-write
//	mq       receive (O_RDONLY)      send (O_WRONLY)         both (O_RDWR)
//
// Read-only is enforced by the kernel: a read-only descriptor is a fresh
// open file description with O_RDONLY, so mmap(PROT_WRITE, MAP_SHARED),
// write(2) and ftruncate(2) fail on it, and reopening it through
// /proc/self/fd is refused because broker objects have mode 0 and belong
// to root.
type Access uint8

// Accesses.
const (
	Read      Access = 1
	Write     Access = 2
	ReadWrite Access = Read | Write
)

func (a Access) String() string {
	switch a {
	case Read:
		return "read"
	case Write:
		return "write"
	case ReadWrite:
		return "readwrite"
	}
	return fmt.Sprintf("access(%d)", uint8(a))
}

// ParseAccess reads an Access's String form.
func ParseAccess(s string) (Access, error) {
	switch s {
	case "read":
		return Read, nil
	case "write":
		return Write, nil
	case "readwrite":
		return ReadWrite, nil
	}
	return 0, fmt.Errorf("%w: unknown access %q (want read, write or readwrite)", ErrInvalid, s)
}

// Allows reports whether a grant of a covers want.
func (a Access) Allows(want Access) bool { return want != 0 && a&want == want }

// Grants are what one app may do with IPC objects: its policy's ipc section.
// The zero value grants nothing (an app may still call self, list, stat on
// objects it could attach, and nop). MaxObjects and MaxBytes are used as
// they are: 0 means the app can create nothing (sandbox/policy fills in
// defaults for policies with create grants).
type Grants struct {
	// Create lists the names the app may create objects under.
	Create []CreateGrant
	// Attach lists the objects of other apps the app may attach.
	Attach []AttachGrant
	// MaxObjects is how many objects the app may own at once.
	MaxObjects int
	// MaxBytes is the total size of the objects the app owns at once:
	// shm and region sizes, mq maxmsg*msgsize, pipes count 64 KiB.
	MaxBytes int64
	// Channels are opened for the app before it starts and placed at
	// file descriptors announced in PINFOLD_FDS. They are opened with the
	// app's own grants: a channel the grants do not allow fails the start.
	Channels []Channel
	// POSIXMQ brokers the app's own mq_open(3)/mq_unlink(3) calls through
	// seccomp user notification: an app that knows nothing of pinfold
	// opens queues by name and gets broker queues, subject to these grants,
	// shared with other apps.
	POSIXMQ bool
}

// CreateGrant allows creating objects whose names match Names.
type CreateGrant struct {
	// Names are name patterns (ValidPattern).
	Names []string
	// Kinds the app may create under these names; at least one.
	Kinds []Kind
	// MaxSize is the largest object the app may create (bytes; for mq,
	// maxmsg*msgsize). 0 means MaxBytes of Grants.
	MaxSize int64
	// Persistent objects outlive their creator: they stay until unlinked
	// (or until the broker ends). Others are removed when their creator
	// exits.
	Persistent bool
	// Peers, if set, are the only policies whose apps may attach these
	// objects (the creator's side of a grant; the attacher still needs an
	// attach grant). Other apps do not see these objects in List or Stat.
	Peers []string
}

// AttachGrant allows attaching objects whose names match Names.
type AttachGrant struct {
	// Names are name patterns (ValidPattern).
	Names []string
	// Kinds the app may attach; at least one.
	Kinds []Kind
	// Access is the most the app may ask for.
	Access Access
	// Owners, if set, are the only policies whose apps' objects the app may
	// attach.
	Owners []string
}

// Channel is a pre-wired object: opened for the app at spawn.
type Channel struct {
	// Name is the object name; it is also the name in PINFOLD_FDS.
	Name string
	Kind Kind
	// Access is the end or mode the app gets.
	Access Access
	// Size creates the object with this size when it does not exist (shm,
	// region); 0 only attaches.
	Size int64
	// MaxMsg and MsgSize create an mq that does not exist; 0 only attaches.
	MaxMsg, MsgSize int64
}

// Validate checks grants as an operator wrote them; it returns the first
// problem, naming the field.
func (g *Grants) Validate() error {
	if g.MaxObjects < 0 {
		return fmt.Errorf("%w: maxObjects is negative", ErrInvalid)
	}
	if g.MaxBytes < 0 {
		return fmt.Errorf("%w: maxBytes is negative", ErrInvalid)
	}
	for i, c := range g.Create {
		if err := checkGrant(fmt.Sprintf("create[%d]", i), c.Names, c.Kinds); err != nil {
			return err
		}
		if c.MaxSize < 0 {
			return fmt.Errorf("%w: create[%d].maxSize is negative", ErrInvalid, i)
		}
	}
	for i, a := range g.Attach {
		if err := checkGrant(fmt.Sprintf("attach[%d]", i), a.Names, a.Kinds); err != nil {
			return err
		}
		if a.Access == 0 || a.Access > ReadWrite {
			return fmt.Errorf("%w: attach[%d].access must be read, write or readwrite", ErrInvalid, i)
		}
	}
	seen := map[string]bool{}
	for i, c := range g.Channels {
		if err := ValidName(c.Name); err != nil {
			return fmt.Errorf("channels[%d].name: %w", i, err)
		}
		if seen[c.Name] {
			return fmt.Errorf("%w: channels[%d]: channel %q is listed twice", ErrInvalid, i, c.Name)
		}
		seen[c.Name] = true
		if _, ok := kindNames[c.Kind]; !ok {
			return fmt.Errorf("%w: channels[%d].kind: unknown kind %d", ErrInvalid, i, c.Kind)
		}
		if c.Access == 0 || c.Access > ReadWrite {
			return fmt.Errorf("%w: channels[%d].access must be read, write or readwrite", ErrInvalid, i)
		}
		if c.Kind == Pipe && c.Access == ReadWrite {
			return fmt.Errorf("%w: channels[%d]: a pipe channel is one end: access read or write", ErrInvalid, i)
		}
		if c.Size < 0 || c.MaxMsg < 0 || c.MsgSize < 0 {
			return fmt.Errorf("%w: channels[%d]: negative size", ErrInvalid, i)
		}
	}
	return nil
}

func checkGrant(where string, names []string, kinds []Kind) error {
	if len(names) == 0 {
		return fmt.Errorf("%w: %s.names is empty: list the name patterns it grants", ErrInvalid, where)
	}
	for _, n := range names {
		if err := ValidPattern(n); err != nil {
			return fmt.Errorf("%s.names: %w", where, err)
		}
	}
	if len(kinds) == 0 {
		return fmt.Errorf("%w: %s.kinds is empty: list the kinds it grants (pipe, shm, region, mq)", ErrInvalid, where)
	}
	for _, k := range kinds {
		if _, ok := kindNames[k]; !ok {
			return fmt.Errorf("%w: %s.kinds: unknown kind %d", ErrInvalid, where, k)
		}
	}
	return nil
}

// matchAny reports whether name matches one of patterns.
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if Match(p, name) {
			return true
		}
	}
	return false
}

// CreateGrantFor returns the first create grant that allows creating an
// object of kind k named name, or nil.
func (g *Grants) CreateGrantFor(name string, k Kind) *CreateGrant {
	for i := range g.Create {
		c := &g.Create[i]
		if slices.Contains(c.Kinds, k) && matchAny(c.Names, name) {
			return c
		}
	}
	return nil
}

// AttachGrantFor returns the first attach grant that allows access want to
// an object of kind k named name owned by an app of policy owner, or nil.
func (g *Grants) AttachGrantFor(name string, k Kind, want Access, owner string) *AttachGrant {
	for i := range g.Attach {
		a := &g.Attach[i]
		if !slices.Contains(a.Kinds, k) || !a.Access.Allows(want) || !matchAny(a.Names, name) {
			continue
		}
		if len(a.Owners) > 0 && !slices.Contains(a.Owners, owner) {
			continue
		}
		return a
	}
	return nil
}

// FDsEnv formats the PINFOLD_FDS value for channels placed at fds.
func FDsEnv(names []string, fds []int) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s:%d", n, fds[i])
	}
	return b.String()
}

// clone copies g deeply, so that the caller may reuse its slices.
func (g Grants) clone() Grants {
	c := g
	c.Create = slices.Clone(g.Create)
	for i := range c.Create {
		c.Create[i].Names = slices.Clone(c.Create[i].Names)
		c.Create[i].Kinds = slices.Clone(c.Create[i].Kinds)
		c.Create[i].Peers = slices.Clone(c.Create[i].Peers)
	}
	c.Attach = slices.Clone(g.Attach)
	for i := range c.Attach {
		c.Attach[i].Names = slices.Clone(c.Attach[i].Names)
		c.Attach[i].Kinds = slices.Clone(c.Attach[i].Kinds)
		c.Attach[i].Owners = slices.Clone(c.Attach[i].Owners)
	}
	c.Channels = slices.Clone(g.Channels)
	return c
}
