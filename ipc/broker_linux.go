package ipc

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"syscall"

	"github.com/pinfold/pinfold/syscalls"
)

// DefaultMaxObjects is Options.MaxObjects when left 0.
const DefaultMaxObjects = 4096

// Options configure a Broker. The zero value is usable.
//
// New raises the process's RLIMIT_MSGQUEUE, soft and hard, to unlimited
// (best effort: it needs CAP_SYS_RESOURCE). The kernel charges every queue's
// maxmsg*msgsize (plus its index) to the user that created it, root here,
// against the creating process's limit; the broker bounds queue memory
// itself, with the apps' quotas. The limit is per process and inherited:
// apps spawned afterwards should get their own RLIMIT_MSGQUEUE.
//
// The broker needs, as root does: CAP_SYS_ADMIN (unshare(CLONE_NEWIPC) for
// queues, fsopen for regions), CAP_DAC_OVERRIDE (reopening its own mode-0
// objects to hand out descriptors) and CAP_SYS_RESOURCE (the rlimit).
type Options struct {
	// Events receives every grant, denial, creation, removal and release;
	// nil: none. It is called synchronously, outside the broker's locks
	// (it may call Stats or Objects), possibly from several goroutines at
	// once, and must not block.
	Events func(Event)
	// MaxObjects is how many objects the whole broker holds at once
	// (named, or unlinked and still held); default DefaultMaxObjects.
	MaxObjects int
	// MaxBytes is the total size of the broker's objects, as charged to
	// quotas; 0: no broker-wide byte limit beyond the apps' quotas.
	MaxBytes int64
}

// Broker creates IPC objects and hands out descriptors to them. One Broker
// serves one supervisor's apps; each app joins it with its grants.
// All methods are safe for concurrent use.
type Broker struct {
	opts  Options
	fdDir int // O_PATH /proc/self/fd, for ReopenFD
	mq    mqNamespace

	mu       sync.Mutex
	closed   bool
	names    map[string]*object   // the namespace: named and pending objects
	objects  map[*object]struct{} // every published object, named or not
	sessions map[string]*Session
	nobjects int   // objects charged, including pending creations
	nbytes   int64 // bytes charged, including pending creations
	// inflight counts creations running outside mu; Close waits for
	// them before closing fdDir and the queue namespace they use.
	inflight sync.WaitGroup
}

// New returns a Broker. It opens one descriptor (/proc/self/fd) and raises
// RLIMIT_MSGQUEUE; the private ipc namespace for queues is made on the
// first queue.
func New(opts Options) (*Broker, error) {
	if opts.MaxObjects < 0 || opts.MaxBytes < 0 {
		return nil, fmt.Errorf("%w: negative broker limit in Options", ErrInvalid)
	}
	if opts.MaxObjects == 0 {
		opts.MaxObjects = DefaultMaxObjects
	}
	fdDir, err := syscalls.OpenFDDir()
	if err != nil {
		return nil, fmt.Errorf("starting IPC broker: %w (is /proc mounted?)", err)
	}
	b := &Broker{
		opts:     opts,
		fdDir:    fdDir,
		names:    make(map[string]*object),
		objects:  make(map[*object]struct{}),
		sessions: make(map[string]*Session),
	}
	b.mq.rlimitErr = syscalls.RaiseMsgQueueRlimit(syscalls.RlimInfinity)
	b.mq.maxQueues = int64(opts.MaxObjects)
	return b, nil
}

// Close releases every object and descriptor the broker holds and ends its
// queue namespace. Sessions become closed; descriptors already handed out
// keep working. Idempotent.
func (b *Broker) Close() error {
	var evs []Event
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for _, o := range b.names {
		if o.ready == nil {
			evs = b.unname(evs, o, nil, "broker_close", "the broker closed")
		}
	}
	for o := range b.objects {
		o.closeFDs()
		b.free(o)
	}
	for id, s := range b.sessions {
		s.closed = true
		delete(b.sessions, id)
	}
	b.mu.Unlock()
	b.inflight.Wait()
	b.mq.stop()
	err := syscalls.Close(b.fdDir)
	b.emit(evs)
	return err
}

// Join adds an app. Its grants are validated and copied; the Session is
// the app's handle on the broker until Session.Close.
func (b *Broker) Join(app AppInfo) (*Session, error) {
	if app.ID == "" {
		return nil, &Error{Op: "join", Errno: syscall.EINVAL, Reason: "empty app id", Err: ErrInvalid}
	}
	if err := app.Grants.Validate(); err != nil {
		return nil, &Error{Op: "join", Errno: ErrnoOf(err), Reason: fmt.Sprintf("app %s, policy %s: ipc grants: %v", app.ID, app.Policy, err), Err: err}
	}
	app.Grants = app.Grants.clone()
	s := &Session{
		b:          b,
		app:        app,
		maxObjects: app.Grants.MaxObjects,
		maxBytes:   app.Grants.MaxBytes,
		owned:      make(map[*object]struct{}),
		held:       make(map[*object]struct{}),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, &Error{Op: "join", Errno: syscall.ESHUTDOWN, Reason: "the IPC broker is closed", Err: ErrClosed}
	}
	if _, dup := b.sessions[app.ID]; dup {
		return nil, &Error{Op: "join", Errno: syscall.EEXIST, Reason: fmt.Sprintf("app %s has already joined the IPC broker", app.ID)}
	}
	b.sessions[app.ID] = s
	return s, nil
}

// Stats counts what the broker holds now.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := Stats{Sessions: len(b.sessions), ByKind: make(map[Kind]KindStats, len(AllKinds))}
	for o := range b.objects {
		k := st.ByKind[o.kind]
		k.Objects++
		k.Bytes += o.charge
		k.FDs += o.fds()
		st.ByKind[o.kind] = k
		st.Objects++
		st.Bytes += o.charge
		st.FDs += o.fds()
	}
	return st
}

// Objects describes every object the broker holds, named or unlinked and
// still held, sorted by name (unlinked after named of the same name).
func (b *Broker) Objects() []ObjectInfo {
	b.mu.Lock()
	out := make([]ObjectInfo, 0, len(b.objects))
	for o := range b.objects {
		out = append(out, o.info())
	}
	b.mu.Unlock()
	slices.SortFunc(out, func(x, y ObjectInfo) int {
		if c := cmp.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		if x.Unlinked != y.Unlinked {
			if x.Unlinked {
				return 1
			}
			return -1
		}
		return x.Created.Compare(y.Created)
	})
	return out
}

func (b *Broker) emit(evs []Event) {
	if b.opts.Events == nil {
		return
	}
	for _, e := range evs {
		b.opts.Events(e)
	}
}

// unname takes o out of the namespace (nobody can attach it any more),
// closes the broker's descriptors for it and frees it when nobody holds
// it. by is the session that caused it (nil: the broker). Called with mu.
func (b *Broker) unname(evs []Event, o *object, by *Session, op, why string) []Event {
	if b.names[o.name] == o {
		delete(b.names, o.name)
	}
	o.named = false
	o.closeFDs()
	reason := why
	if n := len(o.holders); n > 0 {
		reason += fmt.Sprintf("; %d holder(s) keep its memory until they exit", n)
	} else {
		b.free(o)
	}
	e := Event{Kind: Removed, Op: op, Owner: o.ownerID, Object: o.name, ObjKind: o.kind, Reason: reason}
	if by != nil {
		e.App, e.Policy = by.app.ID, by.app.Policy
	}
	return append(evs, e)
}

// free forgets o and its charges. Its descriptors must be closed. Called
// with mu.
func (b *Broker) free(o *object) {
	if _, ok := b.objects[o]; !ok {
		return
	}
	delete(b.objects, o)
	b.nobjects--
	b.nbytes -= o.charge
	if s := o.owner; s != nil {
		s.nobjects--
		s.nbytes -= o.charge
		delete(s.owned, o)
		o.owner = nil
	}
}
