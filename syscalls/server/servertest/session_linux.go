package servertest

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
)

// Session is one app's fake broker session. Its rules:
//   - any valid name may be created, up to MaxObjects objects, MaxBytes
//     bytes in all (ENOSPC) and MaxSize bytes each (E2BIG);
//   - objects whose names start with DenyPrefix may not be attached
//     (EPERM, with a reason shaped like the broker's);
//   - Fail[name], when set, is what every call on that name returns.
//
// Set the exported fields before the Session is first used.
type Session struct {
	App, Policy string
	MaxObjects  int
	MaxBytes    int64
	MaxSize     int64
	DenyPrefix  string
	Fail        map[string]error

	mu    sync.Mutex
	objs  map[string]*object
	bytes int64
	fdDir int
}

type object struct {
	info ipc.ObjectInfo
	fd   int // memfd or queue, read-write; the pipe's read end
	wfd  int // the pipe's write end
}

var mqSeq atomic.Int64

// New returns a Session for app under policy, with room for 64 objects
// of 1 MiB in all.
func New(app, policy string) *Session {
	return &Session{App: app, Policy: policy, MaxObjects: 64, MaxBytes: 1 << 20, DenyPrefix: "private/"}
}

// Close releases every object. The descriptors handed out stay valid.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, o := range s.objs {
		o.close()
		delete(s.objs, name)
	}
	if s.fdDir > 0 {
		syscalls.Close(s.fdDir)
		s.fdDir = 0
	}
	return nil
}

func (o *object) close() {
	if o.fd >= 0 {
		syscalls.Close(o.fd)
	}
	if o.wfd >= 0 {
		syscalls.Close(o.wfd)
	}
}

func fail(op, name string, errno syscall.Errno, format string, args ...any) error {
	return &ipc.Error{Op: op, Name: name, Errno: errno, Reason: fmt.Sprintf(format, args...)}
}

// check runs the checks every named call starts with. Call with s.mu held.
func (s *Session) check(op, name string) error {
	if err := ipc.ValidName(name); err != nil {
		return err
	}
	if err := s.Fail[name]; err != nil {
		return err
	}
	if s.objs == nil {
		s.objs = map[string]*object{}
	}
	return nil
}

// reserve checks the quota for a new object of size bytes.
func (s *Session) reserve(op, name string, size int64) error {
	limit := s.MaxSize
	if limit == 0 {
		limit = s.MaxBytes
	}
	if size > limit {
		return fail(op, name, syscall.E2BIG, "size %d is over the limit of %d bytes", size, limit)
	}
	if len(s.objs)+1 > s.MaxObjects {
		return fail(op, name, syscall.ENOSPC, "over quota: app %s owns %d objects, its limit is %d", s.App, len(s.objs), s.MaxObjects)
	}
	if s.bytes+size > s.MaxBytes {
		return fail(op, name, syscall.ENOSPC, "over quota: app %s owns %d bytes, %d more would pass its limit of %d", s.App, s.bytes, size, s.MaxBytes)
	}
	return nil
}

func (s *Session) add(name string, k ipc.Kind, size int64, fd, wfd int) *object {
	o := &object{fd: fd, wfd: wfd, info: ipc.ObjectInfo{
		Name: name, Kind: k, Size: size, Owner: s.App, OwnerPolicy: s.Policy, Created: time.Now(),
	}}
	s.objs[name] = o
	s.bytes += size
	return o
}

// lookup finds an existing object of kind k to attach with access.
func (s *Session) lookup(op, name string, k ipc.Kind, access ipc.Access) (*object, error) {
	o := s.objs[name]
	if o == nil {
		return nil, fail(op, name, syscall.ENOENT, "no %s named %s", k, name)
	}
	if o.info.Kind != k {
		return nil, fail(op, name, syscall.EINVAL, "%s is a %s, not a %s", name, o.info.Kind, k)
	}
	if s.DenyPrefix != "" && strings.HasPrefix(name, s.DenyPrefix) {
		return nil, fail(op, name, syscall.EPERM, "not granted: no attach grant of policy %s matches %s %s with access %s", s.Policy, k, name, access)
	}
	return o, nil
}

// reopen opens a fresh open file description of fd with the access mode.
func (s *Session) reopen(op, name string, fd int, access ipc.Access, nonblock bool) (int, error) {
	if s.fdDir == 0 {
		d, err := syscalls.OpenFDDir()
		if err != nil {
			return -1, err
		}
		s.fdDir = d
	}
	flags := syscalls.OpenReadWrite
	switch access {
	case ipc.Read:
		flags = syscalls.OpenReadOnly
	case ipc.Write:
		flags = syscalls.OpenWriteOnly
	}
	if nonblock {
		flags |= syscalls.OpenNonblock
	}
	nfd, err := syscalls.ReopenFD(s.fdDir, fd, flags)
	if err != nil {
		return -1, fmt.Errorf("%s %s: %w", op, name, err)
	}
	return nfd, nil
}

// Self implements server.Session.
func (s *Session) Self() ipc.SelfInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ipc.SelfInfo{App: s.App, Policy: s.Policy, MaxObjects: s.MaxObjects, MaxBytes: s.MaxBytes,
		Objects: len(s.objs), Bytes: s.bytes}
}

// List implements server.Session.
func (s *Session) List(offset, max int) (int, []ipc.ObjectInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.objs))
	for n := range s.objs {
		names = append(names, n)
	}
	slices.Sort(names)
	if offset >= len(names) || max <= 0 {
		return len(names), nil
	}
	end := min(offset+max, len(names))
	out := make([]ipc.ObjectInfo, 0, end-offset)
	for _, n := range names[offset:end] {
		out = append(out, s.objs[n].info)
	}
	return len(names), out
}

// Stat implements server.Session.
func (s *Session) Stat(name string) (ipc.ObjectInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check("stat", name); err != nil {
		return ipc.ObjectInfo{}, err
	}
	o := s.objs[name]
	if o == nil {
		return ipc.ObjectInfo{}, fail("stat", name, syscall.ENOENT, "no object named %s", name)
	}
	return o.info, nil
}

// Unlink implements server.Session.
func (s *Session) Unlink(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check("unlink", name); err != nil {
		return err
	}
	o := s.objs[name]
	if o == nil {
		return fail("unlink", name, syscall.ENOENT, "no object named %s", name)
	}
	o.close()
	s.bytes -= o.info.Size
	delete(s.objs, name)
	return nil
}

// PipeOpen implements server.Session: the pipe is created on first use.
func (s *Session) PipeOpen(name string, end ipc.Access) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check("pipe_open", name); err != nil {
		return -1, err
	}
	o := s.objs[name]
	if o == nil {
		const pipeBytes = 64 << 10
		if err := s.reserve("pipe_open", name, pipeBytes); err != nil {
			return -1, err
		}
		r, w, err := syscalls.Pipe2()
		if err != nil {
			return -1, err
		}
		o = s.add(name, ipc.Pipe, pipeBytes, r, w)
	}
	if _, err := s.lookup("pipe_open", name, ipc.Pipe, end); err != nil {
		return -1, err
	}
	fd := o.fd
	if end == ipc.Write {
		fd = o.wfd
	}
	o.info.Holders++
	return syscalls.DupCloexec(fd)
}

func (s *Session) memfd(op, name string, size int64, seal bool) (int, error) {
	fd, err := syscalls.MemfdCreate(name)
	if err != nil {
		return -1, err
	}
	if err := syscalls.Ftruncate(fd, size); err != nil {
		syscalls.Close(fd)
		return -1, err
	}
	if seal {
		if err := syscalls.AddSeals(fd, syscalls.SealShrink|syscalls.SealGrow|syscalls.SealSeal); err != nil {
			syscalls.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// ShmCreate implements server.Session.
func (s *Session) ShmCreate(name string, size int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check("shm_create", name); err != nil {
		return -1, err
	}
	if size <= 0 {
		return -1, fail("shm_create", name, syscall.EINVAL, "size must be positive, not %d", size)
	}
	if s.objs[name] != nil {
		return -1, fail("shm_create", name, syscall.EEXIST, "%s exists", name)
	}
	if err := s.reserve("shm_create", name, size); err != nil {
		return -1, err
	}
	fd, err := s.memfd("shm_create", name, size, true)
	if err != nil {
		return -1, err
	}
	o := s.add(name, ipc.Shm, size, fd, -1)
	out, err := s.reopen("shm_create", name, fd, ipc.ReadWrite, false)
	if err == nil {
		o.info.Holders++
	}
	return out, err
}

// ShmAttach implements server.Session.
func (s *Session) ShmAttach(name string, access ipc.Access) (int, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check("shm_attach", name); err != nil {
		return -1, 0, err
	}
	o, err := s.lookup("shm_attach", name, ipc.Shm, access)
	if err != nil {
		return -1, 0, err
	}
	fd, err := s.reopen("shm_attach", name, o.fd, access, false)
	if err != nil {
		return -1, 0, err
	}
	o.info.Holders++
	return fd, o.info.Size, nil
}

// RegionMap implements server.Session: regions are memfds here.
func (s *Session) RegionMap(name string, size int64, access ipc.Access) (int, int64, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check("region_map", name); err != nil {
		return -1, 0, false, err
	}
	created := false
	o := s.objs[name]
	if o == nil {
		if size == 0 {
			return -1, 0, false, fail("region_map", name, syscall.ENOENT, "no region named %s (size 0 only attaches)", name)
		}
		if err := s.reserve("region_map", name, size); err != nil {
			return -1, 0, false, err
		}
		fd, err := s.memfd("region_map", name, size, false)
		if err != nil {
			return -1, 0, false, err
		}
		o = s.add(name, ipc.Region, size, fd, -1)
		created = true
	} else if _, err := s.lookup("region_map", name, ipc.Region, access); err != nil {
		return -1, 0, false, err
	} else if size != 0 && size != o.info.Size {
		return -1, 0, false, fail("region_map", name, syscall.EINVAL, "region %s has size %d, not %d", name, o.info.Size, size)
	}
	fd, err := s.reopen("region_map", name, o.fd, access, false)
	if err != nil {
		return -1, 0, false, err
	}
	o.info.Holders++
	return fd, o.info.Size, created, nil
}

// MQOpen implements server.Session: the queue is created under a unique
// name in the test's ipc namespace and unlinked at once.
func (s *Session) MQOpen(name string, attr ipc.MQAttr, access ipc.Access, flags ipc.MQFlags) (int, ipc.MQAttr, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check("mq_open", name); err != nil {
		return -1, ipc.MQAttr{}, false, err
	}
	created := false
	o := s.objs[name]
	switch {
	case o == nil && attr == (ipc.MQAttr{}):
		return -1, ipc.MQAttr{}, false, fail("mq_open", name, syscall.ENOENT, "no mq named %s (maxmsg and msgsize 0 only attach)", name)
	case o == nil:
		if attr.MaxMsg <= 0 || attr.MsgSize <= 0 {
			return -1, ipc.MQAttr{}, false, fail("mq_open", name, syscall.EINVAL, "maxmsg and msgsize must both be positive")
		}
		if err := s.reserve("mq_open", name, attr.MaxMsg*attr.MsgSize); err != nil {
			return -1, ipc.MQAttr{}, false, err
		}
		qname := fmt.Sprintf("pinfold-servertest-%d-%d", os.Getpid(), mqSeq.Add(1))
		fd, err := syscalls.MQOpenExclusive(qname, attr.MaxMsg, attr.MsgSize)
		if err != nil {
			return -1, ipc.MQAttr{}, false, fmt.Errorf("mq_open %s: %w", name, err)
		}
		if err := syscalls.MQUnlink(qname); err != nil {
			syscalls.Close(fd)
			return -1, ipc.MQAttr{}, false, err
		}
		o = s.add(name, ipc.MQ, attr.MaxMsg*attr.MsgSize, fd, -1)
		o.info.MaxMsg, o.info.MsgSize = attr.MaxMsg, attr.MsgSize
		created = true
	case flags&ipc.MQExclusive != 0:
		return -1, ipc.MQAttr{}, false, fail("mq_open", name, syscall.EEXIST, "%s exists (exclusive create)", name)
	default:
		if _, err := s.lookup("mq_open", name, ipc.MQ, access); err != nil {
			return -1, ipc.MQAttr{}, false, err
		}
	}
	fd, err := s.reopen("mq_open", name, o.fd, access, flags&ipc.MQNonblock != 0)
	if err != nil {
		return -1, ipc.MQAttr{}, false, err
	}
	o.info.Holders++
	return fd, ipc.MQAttr{MaxMsg: o.info.MaxMsg, MsgSize: o.info.MsgSize}, created, nil
}
