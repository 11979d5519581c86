package client

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
)

// CtlFDEnv names the environment variable holding the control channel's
// descriptor number.
const CtlFDEnv = "PINFOLD_CTL_FD"

// Client is an app's connection to pinfold. It is safe for concurrent use:
// calls from several goroutines take turns, one round trip at a time.
type Client struct {
	mu     sync.Mutex
	f      *os.File
	rc     syscall.RawConn
	closed bool
	nextID uint64

	rb  abi.RequestBuilder
	rep abi.Reply
	out []byte
	in  []byte
	oob []byte
	fds []int

	// The socket callbacks, made once, and what they report.
	rfn, wfn func(uintptr) bool
	send     []byte
	msg      syscalls.CtlMsg
	rerr     error
	werr     error
}

// FromEnv connects to pinfold through the control channel named by
// PINFOLD_CTL_FD. The descriptor is marked close-on-exec so that programs
// the app runs do not share the channel. Call it once: the Client owns the
// descriptor.
func FromEnv() (*Client, error) {
	v, ok := os.LookupEnv(CtlFDEnv)
	if !ok || v == "" {
		return nil, ErrNotUnderPinfold
	}
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 0 || strconv.Itoa(fd) != v {
		return nil, fmt.Errorf("%s=%q is not a descriptor number", CtlFDEnv, v)
	}
	// Check before wrapping the descriptor in an *os.File, which would
	// close it when collected: one that is not pinfold's is not ours.
	if seq, err := syscalls.IsSeqpacket(fd); err != nil || !seq {
		if err == nil {
			err = errors.New("not a SOCK_SEQPACKET socket")
		}
		return nil, fmt.Errorf("%s=%d is not a pinfold control channel: %w", CtlFDEnv, fd, err)
	}
	if err := syscalls.SetCloexec(fd, true); err != nil {
		return nil, fmt.Errorf("%s=%d: %w", CtlFDEnv, fd, err)
	}
	return New(os.NewFile(uintptr(fd), "pinfold-ctl"))
}

// New connects to pinfold through f, the app's end of a control channel.
// The Client owns f from then on; when New fails, f is left to the caller.
func New(f *os.File) (*Client, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("pinfold control channel: %w", err)
	}
	var seq bool
	var serr error
	if err := rc.Control(func(fd uintptr) { seq, serr = syscalls.IsSeqpacket(int(fd)) }); err != nil {
		return nil, fmt.Errorf("pinfold control channel: %w", err)
	}
	if serr != nil || !seq {
		if serr == nil {
			serr = errors.New("not a SOCK_SEQPACKET socket")
		}
		return nil, fmt.Errorf("%s is not a pinfold control channel: %w", f.Name(), serr)
	}
	c := &Client{
		f: f, rc: rc,
		out: make([]byte, 0, abi.MaxMessage),
		in:  make([]byte, abi.MaxMessage),
		oob: make([]byte, syscalls.RightsSpace(abi.MaxFDs)),
		fds: make([]int, 0, abi.MaxFDs),
	}
	// Blocking calls when the descriptor is blocking (it usually is: it
	// was inherited); on a non-blocking one EAGAIN waits in the poller.
	c.wfn = func(fd uintptr) bool {
		wouldBlock, err := syscalls.CtlSendmsg(int(fd), c.send, nil, false)
		c.werr = err
		return !wouldBlock
	}
	c.rfn = func(fd uintptr) bool {
		m, wouldBlock, err := syscalls.CtlRecvmsg(int(fd), c.in, c.oob, false)
		c.msg, c.rerr = m, err
		return !wouldBlock
	}
	return c, nil
}

// Close closes the control channel. Calls after Close fail with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.f.Close()
}

// call is one call of a request: its sysno and arguments (the name first,
// if it takes one, then the numbers).
type call struct {
	sysno abi.Sysno
	name  string
	nums  [4]uint64
}

func (p *call) sc() abi.Syscall {
	sc, _ := abi.Lookup(p.sysno)
	return sc
}

// Result is the outcome of one call of a Batch. Which fields are set
// depends on the call; Err is nil when it succeeded.
type Result struct {
	// Call and Name are the call's name ("shm_attach") and the object it
	// named.
	Call, Name string
	// Err is a *Error when the call failed.
	Err error
	// File is the descriptor pipe_open, shm_create, shm_attach,
	// region_map and mq_open return; the caller owns it.
	File *os.File
	// Size is what shm_create, shm_attach and region_map report.
	Size int64
	// Created reports that region_map or mq_open created the object.
	Created bool
	// MQAttr is what mq_open reports.
	MQAttr ipc.MQAttr
	// Self is what self reports.
	Self Self
	// Object is what stat reports.
	Object Object
	// Total and Objects are what list reports: how many objects there
	// are, and a page of them.
	Total   int
	Objects []Object
}

// roundTrip sends calls as one message (len(calls) <= abi.MaxBatch) and
// fills results. It returns an error only when the exchange itself failed;
// a failed call has its Result.Err set.
func (c *Client) roundTrip(flags abi.Flags, calls []call, results []Result) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.rb.Reset(c.out, flags)
	first := c.nextID + 1
	for i := range calls {
		p := &calls[i]
		c.rb.Begin(first+uint64(i), p.sysno)
		sc := p.sc()
		n := 0
		for _, a := range sc.Args {
			if a.Type == abi.Bytes {
				c.rb.String(p.name)
			} else {
				c.rb.U64(p.nums[n])
				n++
			}
		}
		c.rb.End()
	}
	c.nextID += uint64(len(calls))
	msg, err := c.rb.Finish()
	if err != nil {
		return fmt.Errorf("encoding a request to pinfold: %w", err)
	}

	c.send, c.werr = msg, nil
	if err := c.rc.Write(c.wfn); err != nil {
		return fmt.Errorf("sending to pinfold: %w", err)
	}
	if err := c.werr; err != nil {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			return ErrClosed
		}
		return fmt.Errorf("sending to pinfold: %w", err)
	}
	c.rerr = nil
	if err := c.rc.Read(c.rfn); err != nil {
		return fmt.Errorf("receiving from pinfold: %w", err)
	}
	if err := c.rerr; err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return ErrClosed
		}
		return fmt.Errorf("receiving from pinfold: %w", err)
	}
	m := c.msg
	fds, perr := syscalls.ParseRights(c.oob[:m.OOBN], c.fds[:0])
	if m.N == 0 && len(fds) == 0 {
		return ErrClosed
	}
	if err := c.decode(calls, results, c.in[:m.N], fds, m, perr); err != nil {
		for _, fd := range fds { // decode wraps none of them when it fails
			syscalls.Close(fd)
		}
		return err
	}
	return nil
}

// decode checks a reply against its request and fills results.
func (c *Client) decode(calls []call, results []Result, raw []byte, fds []int, m syscalls.CtlMsg, perr error) error {
	if m.Truncated || m.ControlTruncated || perr != nil {
		return fmt.Errorf("%w: truncated reply", ErrProtocol)
	}
	if err := abi.DecodeReply(raw, &c.rep); err != nil {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	rs := c.rep.Results
	if c.rep.IsMessageError() {
		if len(fds) != 0 {
			return fmt.Errorf("%w: descriptors with an error reply", ErrProtocol)
		}
		// The whole request was refused: every call gets the error.
		for i := range calls {
			results[i] = Result{Call: calls[i].sc().Name, Name: calls[i].name,
				Err: callError(&calls[i], syscall.Errno(rs[0].Errno), rs[0].Reason())}
		}
		return nil
	}
	if len(rs) != len(calls) {
		return fmt.Errorf("%w: %d results for %d calls", ErrProtocol, len(rs), len(calls))
	}
	nfds := 0
	for _, r := range rs {
		nfds += r.NFDs
	}
	if nfds != len(fds) {
		return fmt.Errorf("%w: entries claim %d descriptors, %d came", ErrProtocol, nfds, len(fds))
	}
	// Check every entry before taking any descriptor, so that a bad reply
	// leaves only raw descriptors for roundTrip to close.
	first := c.nextID - uint64(len(calls)) + 1
	for i := range rs {
		r, p := &rs[i], &calls[i]
		sc := p.sc()
		if r.ID != first+uint64(i) || r.Sysno != p.sysno {
			return fmt.Errorf("%w: entry %d answers request %d (%s), not %d (%s)", ErrProtocol, i, r.ID, r.Sysno, first+uint64(i), p.sysno)
		}
		if r.Errno != 0 {
			continue
		}
		if err := sc.CheckResults(r.Values); err != nil {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		if (r.NFDs == 1) != sc.FD {
			return fmt.Errorf("%w: %s reply with %d descriptors", ErrProtocol, sc.Name, r.NFDs)
		}
	}
	for i := range rs {
		r, p := &rs[i], &calls[i]
		res := Result{Call: p.sc().Name, Name: p.name}
		if r.Errno != 0 {
			res.Err = callError(p, syscall.Errno(r.Errno), r.Reason())
		} else {
			if r.NFDs == 1 {
				res.File = os.NewFile(uintptr(fds[0]), "pinfold:"+p.name)
				fds = fds[1:]
			}
			fillResult(&res, p.sysno, r.Values)
		}
		results[i] = res
	}
	return nil
}

func callError(p *call, errno syscall.Errno, reason string) error {
	return &Error{Call: p.sc().Name, Name: p.name, Errno: errno, Reason: reason}
}

// fillResult reads a successful call's values (checked against the table).
func fillResult(res *Result, sysno abi.Sysno, v []abi.Value) {
	i64 := func(i int) int64 { return int64(min(v[i].U64, 1<<63-1)) }
	str := func(i int) string { return string(v[i].Bytes) }
	switch sysno {
	case abi.SysSelf:
		res.Self = Self{App: str(0), Policy: str(1), MaxObjects: int(i64(2)), MaxBytes: i64(3), Objects: int(i64(4)), Bytes: i64(5)}
	case abi.SysList:
		res.Total = int(i64(0))
		res.Objects = make([]Object, 0, (len(v)-1)/4)
		for j := 1; j+3 < len(v); j += 4 {
			res.Objects = append(res.Objects, Object{Name: str(j), Kind: ipc.Kind(v[j+1].U64), Size: i64(j + 2), Owner: str(j + 3)})
		}
	case abi.SysStat:
		o := Object{Name: res.Name, Kind: ipc.Kind(v[0].U64), Size: i64(1), Owner: str(2), OwnerPolicy: str(3),
			Holders: int(i64(4)), Persistent: v[5].U64&abi.StatPersistent != 0, Unlinked: v[5].U64&abi.StatUnlinked != 0,
			MaxMsg: i64(7), MsgSize: i64(8)}
		if ns := i64(6); ns != 0 {
			o.Created = time.Unix(0, ns)
		}
		res.Object = o
	case abi.SysShmCreate, abi.SysShmAttach:
		res.Size = i64(0)
	case abi.SysRegionMap:
		res.Size, res.Created = i64(0), v[1].U64 != 0
	case abi.SysMQOpen:
		res.MQAttr = ipc.MQAttr{MaxMsg: i64(0), MsgSize: i64(1)}
		res.Created = v[2].U64 != 0
	}
}

// one makes a single call.
func (c *Client) one(p call) (Result, error) {
	var calls [1]call
	var results [1]Result
	calls[0] = p
	if err := c.roundTrip(0, calls[:], results[:]); err != nil {
		return Result{Call: p.sc().Name, Name: p.name}, err
	}
	return results[0], results[0].Err
}
