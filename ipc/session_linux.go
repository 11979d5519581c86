package ipc

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/pinfold/pinfold/syscalls"
)

// Session is one app's handle on a Broker, from Join until Close (the app
// exited). Its methods are what the app may ask for; every descriptor they
// return is close-on-exec and owned by the caller, who passes it to the app
// and closes its own copy. All methods are safe for concurrent use.
type Session struct {
	b          *Broker
	app        AppInfo
	maxObjects int
	maxBytes   int64

	// Guarded by b.mu.
	closed   bool
	owned    map[*object]struct{} // objects this app created, until freed
	held     map[*object]struct{} // objects this app was handed descriptors of
	nobjects int                  // charged: owned objects and pending creations
	nbytes   int64
}

// request is one create-or-attach call, validated by check.
type request struct {
	op   string
	name string
	kind Kind
	// access is the handle to hand out (a pipe's end); 0: none.
	access Access
	// create: the object may be created; excl: it must be.
	create, excl bool
	nonblock     bool
	// size of a shm or region to create; maxMsg and msgSize of a queue.
	size            int64
	maxMsg, msgSize int64
	// badFlags: the app passed flags this broker does not know.
	badFlags bool
}

// result is what a successful request returns.
type result struct {
	fd              int
	size            int64
	maxMsg, msgSize int64
	created         bool
}

// Self reports the app's quota and what it owns.
func (s *Session) Self() SelfInfo {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return SelfInfo{
		App: s.app.ID, Policy: s.app.Policy,
		MaxObjects: s.maxObjects, MaxBytes: s.maxBytes,
		Objects: s.nobjects, Bytes: s.nbytes,
	}
}

// List returns how many objects the app owns or could attach, and up to
// max of them from offset on, sorted by name.
func (s *Session) List(offset, limit int) (total int, objs []ObjectInfo) {
	b := s.b
	b.mu.Lock()
	var vis []*object
	if !b.closed && !s.closed {
		for _, o := range b.names {
			if o.ready == nil && s.canSee(o) {
				vis = append(vis, o)
			}
		}
	}
	slices.SortFunc(vis, func(x, y *object) int { return cmp.Compare(x.name, y.name) })
	total = len(vis)
	offset = min(total, max(offset, 0))
	n := min(total-offset, max(limit, 0))
	for _, o := range vis[offset : offset+n] {
		objs = append(objs, o.info())
	}
	b.mu.Unlock()
	return total, objs
}

// Stat describes one object the app owns or could attach.
func (s *Session) Stat(name string) (ObjectInfo, error) {
	var evs []Event
	defer func() { s.b.emit(evs) }()
	r := request{op: "stat", name: name}
	if err := s.checkName(&evs, &r); err != nil {
		return ObjectInfo{}, err
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := s.liveLocked(&evs, &r); err != nil {
		return ObjectInfo{}, err
	}
	if !s.mayNameAny(name) {
		return ObjectInfo{}, s.refuse(&evs, &r, b.ownerOf(name), syscall.EPERM, nil, "not granted: policy %s has no IPC grant naming %s", s.app.Policy, name)
	}
	o := b.names[name]
	if o == nil || o.ready != nil {
		return ObjectInfo{}, s.refuse(&evs, &r, "", syscall.ENOENT, nil, "no object named %s", name)
	}
	r.kind = o.kind
	if !s.canSee(o) {
		return ObjectInfo{}, s.refuse(&evs, &r, o.ownerID, syscall.EPERM, nil, "not granted: %s %s belongs to app %s of policy %s, which policy %s may not attach", o.kind, name, o.ownerID, o.ownerPolicy, s.app.Policy)
	}
	return o.info(), nil
}

// Unlink removes an object's name: nobody can attach it any more, and it is
// freed when the apps holding descriptors of it have exited. The owner may
// unlink its objects; so may an app whose create grants cover the name and
// kind (another app of the owner's policy managing persistent objects).
func (s *Session) Unlink(name string) error {
	var evs []Event
	defer func() { s.b.emit(evs) }()
	r := request{op: "unlink", name: name}
	if err := s.checkName(&evs, &r); err != nil {
		return err
	}
	b := s.b
	b.mu.Lock()
	for {
		if err := s.liveLocked(&evs, &r); err != nil {
			b.mu.Unlock()
			return err
		}
		if !s.mayNameAny(name) {
			owner := b.ownerOf(name)
			b.mu.Unlock()
			return s.refuse(&evs, &r, owner, syscall.EPERM, nil, "not granted: policy %s has no IPC grant naming %s", s.app.Policy, name)
		}
		o := b.names[name]
		if o != nil && o.ready != nil {
			ch := o.ready
			b.mu.Unlock()
			<-ch
			b.mu.Lock()
			continue
		}
		if o == nil {
			b.mu.Unlock()
			return s.refuse(&evs, &r, "", syscall.ENOENT, nil, "no object named %s", name)
		}
		r.kind = o.kind
		if o.owner != s && s.app.Grants.CreateGrantFor(name, o.kind) == nil {
			b.mu.Unlock()
			return s.refuse(&evs, &r, o.ownerID, syscall.EPERM, nil,
				"not granted: %s %s belongs to app %s of policy %s; only its owner or an app whose policy may create it may unlink it", o.kind, name, o.ownerID, o.ownerPolicy)
		}
		evs = b.unname(evs, o, s, r.op, fmt.Sprintf("unlinked by app %s (policy %s)", s.app.ID, s.app.Policy))
		b.mu.Unlock()
		return nil
	}
}

// PipeOpen creates the pipe name or joins it, and returns a descriptor of
// its end (Read or Write). An end whose apps have all exited is gone
// (EPIPE), and so is the write end of a pipe whose readers are gone.
func (s *Session) PipeOpen(name string, end Access) (int, error) {
	res, err := s.open(request{op: "pipe_open", name: name, kind: Pipe, access: end, create: true})
	return res.fd, err
}

// ShmCreate creates shared memory of size bytes and returns a read-write
// descriptor. EEXIST if the name exists.
func (s *Session) ShmCreate(name string, size int64) (int, error) {
	res, err := s.open(request{op: "shm_create", name: name, kind: Shm, access: ReadWrite, create: true, excl: true, size: size})
	return res.fd, err
}

// ShmAttach returns a descriptor of existing shared memory (O_RDONLY for
// Read, O_RDWR otherwise) and its size.
func (s *Session) ShmAttach(name string, access Access) (int, int64, error) {
	res, err := s.open(request{op: "shm_attach", name: name, kind: Shm, access: access})
	return res.fd, res.size, err
}

// RegionMap creates the region name with size bytes, or attaches it if it
// exists (size 0: attach only), and returns a descriptor (O_RDONLY for
// Read, O_RDWR otherwise) and the region's current size, which is the
// existing region's when it was not created.
func (s *Session) RegionMap(name string, size int64, access Access) (int, int64, bool, error) {
	res, err := s.open(request{op: "region_map", name: name, kind: Region, access: access, create: size != 0, size: size})
	return res.fd, res.size, res.created, err
}

// MQOpen creates the queue name with attr, or attaches it if it exists
// (attr zero: attach only; MQExclusive: it must not exist), and returns a
// descriptor (O_RDONLY for Read, O_WRONLY for Write, O_RDWR for ReadWrite;
// O_NONBLOCK with MQNonblock) and the queue's attributes, which are the
// existing queue's when it was not created.
func (s *Session) MQOpen(name string, attr MQAttr, access Access, flags MQFlags) (int, MQAttr, bool, error) {
	r := request{op: "mq_open", name: name, kind: MQ, access: access,
		create: attr != MQAttr{}, excl: flags&MQExclusive != 0, nonblock: flags&MQNonblock != 0,
		maxMsg: attr.MaxMsg, msgSize: attr.MsgSize}
	r.badFlags = flags&^(MQNonblock|MQExclusive) != 0
	res, err := s.open(r)
	return res.fd, MQAttr{MaxMsg: res.maxMsg, MsgSize: res.msgSize}, res.created, err
}

// Create creates an object without taking a descriptor (pinfold up creates
// a group's channels this way): a pipe, a shm or region of c.Size, a queue
// of c.MaxMsg x c.MsgSize. EEXIST if the name exists. c.Access is not used.
func (s *Session) Create(c Channel) error {
	r := request{op: "create", name: c.Name, kind: c.Kind, create: true, excl: true,
		size: c.Size, maxMsg: c.MaxMsg, msgSize: c.MsgSize}
	_, err := s.open(r)
	return err
}

// OpenChannel opens a pre-wired channel with this session's grants: it
// creates the object when it does not exist and the channel gives a size
// (a pipe always may be created), and attaches it otherwise.
func (s *Session) OpenChannel(c Channel) (int, error) {
	r := request{op: "channel_open", name: c.Name, kind: c.Kind, access: c.Access,
		size: c.Size, maxMsg: c.MaxMsg, msgSize: c.MsgSize}
	switch c.Kind {
	case Pipe:
		r.create = true
	case Shm, Region:
		r.create = c.Size != 0
	case MQ:
		r.create = c.MaxMsg != 0 || c.MsgSize != 0
	}
	res, err := s.open(r)
	return res.fd, err
}

// Close releases the app's holds and objects: it exited. Each pipe end
// whose holders have all exited is closed in the broker (the other side
// sees EOF or EPIPE); every object the app owns is unlinked unless its
// create grant was persistent; objects nobody holds any more are freed.
// Idempotent; calls after Close (or Abort) fail with ESHUTDOWN.
func (s *Session) Close() { s.close(false) }

// Abort is Close for an app that never ran (its start failed, or it was
// created and removed without starting): the descriptors it was handed
// died unused, so its holds on pipe ends do not count as an exit — the
// broker keeps its copy of an end nobody else has held yet, and the next
// app can still open it.
func (s *Session) Abort() { s.close(true) }

func (s *Session) close(aborted bool) {
	b := s.b
	var evs []Event
	b.mu.Lock()
	if s.closed {
		b.mu.Unlock()
		return
	}
	s.closed = true
	delete(b.sessions, s.app.ID)
	handles, objs := 0, len(s.held)
	for o := range s.held {
		handles += o.holders[s]
		delete(o.holders, s)
		if o.kind == Pipe {
			for i := range o.end {
				e := &o.end[i]
				if _, ok := e.holders[s]; !ok {
					continue
				}
				delete(e.holders, s)
				e.exited = e.exited || !aborted
				if len(e.holders) == 0 && e.exited && e.fd >= 0 {
					syscalls.Close(e.fd)
					e.fd = -1
				}
			}
			if o.named && o.end[0].fd < 0 && o.end[1].fd < 0 {
				evs = b.unname(evs, o, s, "close", fmt.Sprintf("both ends of pipe %s closed: the last app holding them (%s) exited", o.name, s.app.ID))
				continue
			}
		}
		if !o.named && len(o.holders) == 0 {
			b.free(o)
		}
	}
	clear(s.held)
	removed, kept := 0, 0
	for o := range s.owned {
		switch {
		case o.named && o.persistent:
			kept++
		case o.named:
			removed++
			evs = b.unname(evs, o, s, "close", fmt.Sprintf("its owner %s exited", s.app.ID))
		}
		if _, live := b.objects[o]; live {
			// Persistent, or unlinked and still held: it stays, attributed
			// to the owner's id and policy, charged to nobody's quota.
			o.owner = nil
		}
	}
	clear(s.owned)
	s.nobjects, s.nbytes = 0, 0
	why := "app exited"
	if aborted {
		why = "app never ran"
	}
	evs = append(evs, Event{Kind: Released, Op: "close", App: s.app.ID, Policy: s.app.Policy, Size: int64(objs),
		Reason: fmt.Sprintf("%s: released %d handle(s) on %d object(s); removed %d owned object(s), kept %d persistent", why, handles, objs, removed, kept)})
	b.mu.Unlock()
	b.emit(evs)
}

// open runs a create-or-attach request.
func (s *Session) open(r request) (result, error) {
	b := s.b
	var evs []Event
	defer func() { b.emit(evs) }()
	if err := s.check(&evs, &r); err != nil {
		return result{fd: -1}, err
	}
	b.mu.Lock()
	for {
		o, wait, res, err := s.decideLocked(&evs, &r)
		switch {
		case wait != nil:
			b.mu.Unlock()
			<-wait
			b.mu.Lock()
		case o != nil:
			b.mu.Unlock()
			return s.createKernel(&evs, &r, o)
		default:
			b.mu.Unlock()
			if err != nil {
				return result{fd: -1}, err
			}
			return res, nil
		}
	}
}

// decideLocked checks r against the grants and the namespace. It returns
// a channel to wait on (a creation of the name is in flight), or a
// reserved object to create outside the lock, or the attached result, or
// an error. Called with b.mu.
func (s *Session) decideLocked(evs *[]Event, r *request) (create *object, wait <-chan struct{}, res result, err error) {
	b := s.b
	res.fd = -1
	if err := s.liveLocked(evs, r); err != nil {
		return nil, nil, res, err
	}
	o := b.names[r.name]
	owner := ""
	if o != nil {
		owner = o.ownerID
	}
	// Refused before anything about the name is revealed, even whether a
	// creation of it is in flight.
	cg := s.app.Grants.CreateGrantFor(r.name, r.kind)
	if cg == nil && !s.mayAttachName(r.name, r.kind) {
		return nil, nil, res, s.refuse(evs, r, owner, syscall.EPERM, nil,
			"not granted: policy %s has no create or attach grant for %s %s", s.app.Policy, r.kind, r.name)
	}
	if o != nil && o.ready != nil {
		return nil, o.ready, res, nil
	}
	if o == nil {
		if !r.create {
			return nil, nil, res, s.refuse(evs, r, "", syscall.ENOENT, nil, "no %s named %s", r.kind, r.name)
		}
		if cg == nil {
			return nil, nil, res, s.refuse(evs, r, "", syscall.ENOENT, nil,
				"no %s named %s, and policy %s has no create grant for it (only attach)", r.kind, r.name, s.app.Policy)
		}
		o, err := s.reserveLocked(evs, r, cg)
		return o, nil, res, err
	}
	if o.kind != r.kind {
		return nil, nil, res, s.refuse(evs, r, owner, syscall.EEXIST, nil, "%s is a %s, not a %s", r.name, o.kind, r.kind)
	}
	if r.excl || r.access == 0 {
		return nil, nil, res, s.refuse(evs, r, owner, syscall.EEXIST, nil,
			"%s %s exists (owner app %s, policy %s)", o.kind, r.name, o.ownerID, o.ownerPolicy)
	}
	if o.owner != s {
		if why := s.attachDenied(o, r.access); why != "" {
			return nil, nil, res, s.refuse(evs, r, owner, syscall.EPERM, nil, "not granted: %s", why)
		}
	}
	if o.kind == Pipe {
		i := endIndex(r.access)
		if o.end[i].fd < 0 {
			return nil, nil, res, s.refuse(evs, r, owner, syscall.EPIPE, nil,
				"the %s end of pipe %s is gone: every app that held it exited", endNames[i], r.name)
		}
		if i == 1 && o.end[0].fd < 0 {
			return nil, nil, res, s.refuse(evs, r, owner, syscall.EPIPE, nil,
				"pipe %s has no reader any more: every app that held its read end exited", r.name)
		}
	}
	fd, kerr := b.handout(o, r.access, r.nonblock)
	if kerr != nil {
		return nil, nil, res, s.refuse(evs, r, owner, kernelErrno(kerr), kerr,
			"opening a descriptor of %s %s: %v", o.kind, r.name, kerr)
	}
	o.hold(s, r.access)
	*evs = append(*evs, s.grantEvent(r, o))
	return nil, nil, result{fd: fd, size: o.currentSize(), maxMsg: o.maxMsg, msgSize: o.msgSize}, nil
}

// reserveLocked checks sizes and quotas and puts a pending object under
// r.name, charged to s and the broker. Called with b.mu.
func (s *Session) reserveLocked(evs *[]Event, r *request, cg *CreateGrant) (*object, error) {
	b := s.b
	charge := r.size
	switch r.kind {
	case Pipe:
		charge = PipeBytes
	case MQ:
		charge = r.maxMsg * r.msgSize
	}
	limit, limitName := cg.MaxSize, "its create grant's maxSize"
	if limit == 0 {
		limit, limitName = s.maxBytes, "its maxBytes"
	}
	if charge > limit {
		what := fmt.Sprintf("of %d bytes", charge)
		switch r.kind {
		case Pipe:
			what = fmt.Sprintf("(a pipe counts %d bytes)", charge)
		case MQ:
			what = fmt.Sprintf("of %d messages of %d bytes (%d bytes)", r.maxMsg, r.msgSize, charge)
		}
		return nil, s.refuse(evs, r, "", syscall.E2BIG, nil, "%s %s %s is larger than policy %s allows: %s is %d bytes",
			r.kind, r.name, what, s.app.Policy, limitName, limit)
	}
	if s.nobjects+1 > s.maxObjects {
		return nil, s.refuse(evs, r, "", syscall.ENOSPC, nil, "app %s already owns %d IPC objects, the most policy %s allows (maxObjects); unlink one first",
			s.app.ID, s.nobjects, s.app.Policy)
	}
	if s.nbytes+charge > s.maxBytes {
		return nil, s.refuse(evs, r, "", syscall.ENOSPC, nil, "app %s owns %d bytes of IPC objects; %d more would pass policy %s's maxBytes of %d",
			s.app.ID, s.nbytes, charge, s.app.Policy, s.maxBytes)
	}
	if b.nobjects+1 > b.opts.MaxObjects {
		return nil, s.refuse(evs, r, "", syscall.ENOSPC, nil, "the IPC broker holds %d objects, its limit; retry when other apps have released some", b.nobjects)
	}
	if b.opts.MaxBytes > 0 && b.nbytes+charge > b.opts.MaxBytes {
		return nil, s.refuse(evs, r, "", syscall.ENOSPC, nil, "the IPC broker holds %d bytes of objects; %d more would pass its limit of %d",
			b.nbytes, charge, b.opts.MaxBytes)
	}
	o := newObject(r.name, r.kind, s)
	o.charge = charge
	o.persistent = cg.Persistent
	o.peers = slices.Clone(cg.Peers)
	switch r.kind {
	case Shm, Region:
		o.size = r.size
	case MQ:
		o.maxMsg, o.msgSize = r.maxMsg, r.msgSize
		o.size = charge
	}
	b.names[r.name] = o
	b.nobjects++
	b.nbytes += charge
	s.nobjects++
	s.nbytes += charge
	b.inflight.Add(1)
	return o, nil
}

// createKernel makes the kernel object of a reserved o outside the lock,
// hands the creator its descriptor and publishes o; or undoes the
// reservation.
func (s *Session) createKernel(evs *[]Event, r *request, o *object) (result, error) {
	b := s.b
	defer b.inflight.Done()
	err := b.makeKernel(o)
	fd := -1
	if err == nil && r.access != 0 {
		fd, err = b.handout(o, r.access, r.nonblock)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ready := o.ready
	o.ready = nil
	defer close(ready)
	if err != nil || b.closed || s.closed {
		delete(b.names, o.name)
		b.nobjects--
		b.nbytes -= o.charge
		if !s.closed { // Close has zeroed the counters
			s.nobjects--
			s.nbytes -= o.charge
		}
		o.closeFDs()
		if fd >= 0 {
			syscalls.Close(fd)
		}
		if err != nil {
			return result{fd: -1}, s.refuse(evs, r, "", kernelErrno(err), err, "creating %s %s: %v", r.kind, r.name, err)
		}
		return result{fd: -1}, s.refuse(evs, r, "", syscall.ESHUTDOWN, ErrClosed, "the app or the IPC broker closed while %s %s was being created", r.kind, r.name)
	}
	o.named = true
	b.objects[o] = struct{}{}
	s.owned[o] = struct{}{}
	*evs = append(*evs, Event{Kind: Created, Op: r.op, App: s.app.ID, Policy: s.app.Policy, Owner: s.app.ID,
		Object: o.name, ObjKind: o.kind, Size: o.size, Reason: o.describe()})
	if fd >= 0 {
		o.hold(s, r.access)
		*evs = append(*evs, s.grantEvent(r, o))
	}
	return result{fd: fd, size: o.currentSize(), maxMsg: o.maxMsg, msgSize: o.msgSize, created: true}, nil
}

// check validates a request's arguments (the caller is a hostile app).
func (s *Session) check(evs *[]Event, r *request) error {
	if err := s.checkName(evs, r); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return s.refuse(evs, r, "", syscall.EINVAL, ErrInvalid, format, args...)
	}
	if _, ok := kindNames[r.kind]; !ok {
		return bad("unknown object kind %d", uint8(r.kind))
	}
	if r.badFlags {
		return bad("unknown flags")
	}
	if r.op != "create" {
		if r.access == 0 || r.access > ReadWrite {
			return bad("access %d: must be read, write or readwrite", uint8(r.access))
		}
		if r.kind == Pipe && r.access == ReadWrite {
			return bad("a pipe is opened one end at a time: access read or write")
		}
	}
	switch r.kind {
	case Shm, Region:
		if r.size < 0 || (r.create && r.size == 0) {
			return bad("the size of %s %s must be positive", r.kind, r.name)
		}
		if r.size > MaxObjectSize {
			return s.refuse(evs, r, "", syscall.E2BIG, nil, "%s %s of %d bytes is larger than the broker's limit of %d", r.kind, r.name, r.size, MaxObjectSize)
		}
	case MQ:
		if !r.create {
			if r.excl {
				return bad("an exclusive mq_open must give maxmsg and msgsize")
			}
			break
		}
		if r.maxMsg < 1 || r.maxMsg > MQMaxMsg {
			return bad("maxmsg %d of queue %s is out of range 1..%d", r.maxMsg, r.name, MQMaxMsg)
		}
		if r.msgSize < 1 || r.msgSize > MQMaxMsgSize {
			return bad("msgsize %d of queue %s is out of range 1..%d", r.msgSize, r.name, MQMaxMsgSize)
		}
	}
	return nil
}

// checkName validates r.name; an invalid name is cleared from r so that it
// is never echoed unquoted.
func (s *Session) checkName(evs *[]Event, r *request) error {
	if err := ValidName(r.name); err != nil {
		r.name = ""
		return s.refuse(evs, r, "", ErrnoOf(err), err, "%v", err)
	}
	return nil
}

// liveLocked fails when the session or the broker is closed.
func (s *Session) liveLocked(evs *[]Event, r *request) error {
	if s.closed || s.b.closed {
		return s.refuse(evs, r, "", syscall.ESHUTDOWN, ErrClosed, "the app's IPC session is closed (the app exited or the broker closed)")
	}
	return nil
}

// refuse builds the error for a refused call and records its Denied event.
func (s *Session) refuse(evs *[]Event, r *request, owner string, errno syscall.Errno, cause error, format string, args ...any) error {
	e := &Error{Op: r.op, Name: r.name, Errno: errno, Reason: fmt.Sprintf(format, args...), Err: cause}
	*evs = append(*evs, Event{Kind: Denied, Op: r.op, App: s.app.ID, Policy: s.app.Policy, Owner: owner,
		Object: r.name, ObjKind: r.kind, Access: r.access & ReadWrite, Errno: errno, Reason: e.Reason})
	return e
}

func (s *Session) grantEvent(r *request, o *object) Event {
	why := "owner"
	if o.owner != s {
		why = fmt.Sprintf("attach grant of policy %s", s.app.Policy)
	}
	return Event{Kind: Granted, Op: r.op, App: s.app.ID, Policy: s.app.Policy, Owner: o.ownerID,
		Object: o.name, ObjKind: o.kind, Access: r.access,
		Reason: fmt.Sprintf("%s access to %s %s of app %s (policy %s), as %s", r.access, o.kind, o.name, o.ownerID, o.ownerPolicy, why)}
}

// mayAttachName reports whether an attach grant names name for kind k
// (whatever its access and owners).
func (s *Session) mayAttachName(name string, k Kind) bool {
	for _, a := range s.app.Grants.Attach {
		if slices.Contains(a.Kinds, k) && matchAny(a.Names, name) {
			return true
		}
	}
	return false
}

// mayNameAny reports whether any grant names name, for any kind.
func (s *Session) mayNameAny(name string) bool {
	for _, c := range s.app.Grants.Create {
		if matchAny(c.Names, name) {
			return true
		}
	}
	for _, a := range s.app.Grants.Attach {
		if matchAny(a.Names, name) {
			return true
		}
	}
	return false
}

// attachDenied says why s may not attach o (another app's object) with
// access want, or returns "".
func (s *Session) attachDenied(o *object, want Access) string {
	g := &s.app.Grants
	if g.AttachGrantFor(o.name, o.kind, want, o.ownerPolicy) == nil {
		var accesses []string
		var owners []string
		for _, a := range g.Attach {
			if !slices.Contains(a.Kinds, o.kind) || !matchAny(a.Names, o.name) {
				continue
			}
			if len(a.Owners) > 0 && !slices.Contains(a.Owners, o.ownerPolicy) {
				owners = append(owners, a.Owners...)
				continue
			}
			accesses = append(accesses, a.Access.String())
		}
		switch {
		case len(accesses) > 0:
			return fmt.Sprintf("policy %s has no attach grant for %s %s with access %s (it may attach it with access %v)",
				s.app.Policy, o.kind, o.name, want, accesses)
		case len(owners) > 0:
			return fmt.Sprintf("policy %s may attach %s %s only from apps of policies %v; its owner %s has policy %s",
				s.app.Policy, o.kind, o.name, owners, o.ownerID, o.ownerPolicy)
		}
		return fmt.Sprintf("policy %s has no attach grant for %s %s with access %s", s.app.Policy, o.kind, o.name, want)
	}
	if len(o.peers) > 0 && !slices.Contains(o.peers, s.app.Policy) {
		return fmt.Sprintf("%s %s belongs to app %s of policy %s, whose create grant lets only policies %v attach it",
			o.kind, o.name, o.ownerID, o.ownerPolicy, o.peers)
	}
	return ""
}

// canSee reports whether s owns o or could attach it with some access.
func (s *Session) canSee(o *object) bool {
	if o.owner == s {
		return true
	}
	if len(o.peers) > 0 && !slices.Contains(o.peers, s.app.Policy) {
		return false
	}
	for _, a := range s.app.Grants.Attach {
		if slices.Contains(a.Kinds, o.kind) && matchAny(a.Names, o.name) &&
			(len(a.Owners) == 0 || slices.Contains(a.Owners, o.ownerPolicy)) {
			return true
		}
	}
	return false
}

// describe says what an object is, for a Created event.
func (o *object) describe() string {
	p := ""
	if o.persistent {
		p = ", persistent"
	}
	switch o.kind {
	case Pipe:
		return fmt.Sprintf("pipe of %d bytes%s", o.size, p)
	case MQ:
		return fmt.Sprintf("queue of %d messages of %d bytes%s", o.maxMsg, o.msgSize, p)
	}
	return fmt.Sprintf("%s of %d bytes%s", o.kind, o.size, p)
}

// kernelErrno is the errno an app sees when the kernel refused something
// the broker tried: the kernel's, except that EPERM and EACCES (which the
// app would read as "not granted") become EIO; a sentinel's errno; EIO.
func kernelErrno(err error) syscall.Errno {
	var se *sentinel
	if errors.As(err, &se) {
		return se.errno
	}
	var n syscall.Errno
	if errors.As(err, &n) {
		if n == syscall.EPERM || n == syscall.EACCES {
			return syscall.EIO
		}
		return n
	}
	return syscall.EIO
}

// ReportHostile records a Hostile event: the app's control channel was
// closed because of what the app sent (reason). The session stays open
// until the app exits.
func (s *Session) ReportHostile(reason string) {
	s.b.emit([]Event{{Kind: Hostile, Op: "control", App: s.app.ID, Policy: s.app.Policy, Reason: reason}})
}

// ownerOf returns the id of the owner of the object named name, or "" when
// there is none (yet), for events: the app's answer does not depend on it.
// b.mu must be held.
func (b *Broker) ownerOf(name string) string {
	if o := b.names[name]; o != nil && o.ready == nil {
		return o.ownerID
	}
	return ""
}
