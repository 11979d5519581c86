package sandbox_test

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/policy"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/client"
	"github.com/pinfold/pinfold/vfs"
)

// The in-sandbox side of the IPC end-to-end tests (ipc_e2e_linux_test.go).
//
// The test binary, bound at /probe in each sandbox, runs a role here when
// ipcRoleEnv is set. The dispatch is a package init function, which runs
// before TestMain: the existing TestMain knows only its own roles, and
// this way it needs no change. The init stage never has ipcRoleEnv (it
// starts with an empty environment), so it still reaches TestMain.
//
// The "steps" role interprets its arguments, one step each, and prints one
// line per step, "STEP => RESULT", where RESULT is "ok ..." or the name of
// the errno the step failed with ("EPERM"). A test compares these lines
// with what it expects. The same step language is spoken by pythonSteps (the
// Python client and ctypes), so the Go client and the Python client can be
// held to one table.

const (
	ipcRoleEnv = "PINFOLD_IPC_E2E_ROLE"
	// ipcStateEnv and ipcProbeEnv configure the restart-supervisor role.
	ipcStateEnv = "PINFOLD_IPC_E2E_STATE"
	ipcProbeEnv = "PINFOLD_IPC_E2E_PROBE"
)

func init() {
	role := os.Getenv(ipcRoleEnv)
	if role == "" {
		return
	}
	os.Exit(ipcRoleMain(role, os.Args[1:]))
}

func ipcRoleMain(role string, args []string) int {
	switch role {
	case "steps":
		return runSteps(args)
	case "restart-supervisor":
		return restartSupervisor()
	}
	fmt.Fprintf(os.Stderr, "unknown IPC test role %q\n", role)
	return 2
}

// stepper runs steps. Handles (descriptors the app got) are kept by name:
// the object name, or "@alias" when the step ends with one. The steps:
//
//	pinfold calls (Go client): self, list, nop, stat N, unlink N,
//	  pipe_open N read|write, shm_create N SIZE, shm_attach N ACCESS,
//	  region_map N SIZE ACCESS, mq_open N MAXMSG MSGSIZE ACCESS
//	fd N                  adopt pre-wired channel N from PINFOLD_FDS
//	posix_open N r|w|rw [MAXMSG MSGSIZE]   raw mq_open(2), O_CREAT if sized
//	posix_unlink N        raw mq_unlink(2)
//	write|pwrite H TEXT   write(2) / pwrite(2) at 0
//	read|pread H N        read(2) / pread(2) at 0, up to N bytes
//	readfull H N, readall H, writeloop H (write until it fails)
//	mmapr H N, mmapw H TEXT   map shared read-only / read-write
//	hold H                map read-only and never unmap
//	ftruncate H SIZE, reopen H (open /proc/self/fd/FD O_RDWR), close H
//	send H TEXT [PRIO], recv H   mq_timedsend(2) / mq_timedreceive(2)
//	ls DIR, raw MSG (see rawCtl), wait (a line on stdin), sleep, exit CODE
type stepper struct {
	c       *client.Client
	handles map[string]*os.File
	stdin   *bufio.Reader
}

func runSteps(steps []string) int {
	s := &stepper{handles: map[string]*os.File{}, stdin: bufio.NewReader(os.Stdin)}
	for _, step := range steps {
		f := strings.Fields(step)
		if len(f) == 0 {
			continue
		}
		if f[0] == "exit" {
			code, _ := strconv.Atoi(f[1])
			return code
		}
		if f[0] == "wait" {
			// The line goes out before blocking: the test knows the app
			// reached this point.
			fmt.Printf("%s => waiting\n", step)
			if _, err := s.stdin.ReadString('\n'); err != nil && !errors.Is(err, io.EOF) {
				fmt.Fprintln(os.Stderr, "reading stdin:", err)
				return 1
			}
			continue
		}
		fmt.Printf("%s => %s\n", step, s.do(f))
	}
	return 0
}

// handleKey is the key a step stores its descriptor under: its "@alias"
// last field, else the object name.
func handleKey(f []string) (key string, rest []string) {
	if n := len(f); n > 2 && strings.HasPrefix(f[n-1], "@") {
		return f[n-1], f[:n-1]
	}
	return f[1], f
}

func (s *stepper) client() (*client.Client, error) {
	if s.c == nil {
		c, err := client.FromEnv()
		if err != nil {
			return nil, err
		}
		s.c = c
	}
	return s.c, nil
}

// errName names the errno err carries.
func errName(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		return abi.Errno(ce.Errno).Name()
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return abi.Errno(en).Name()
	}
	switch {
	case errors.Is(err, client.ErrClosed):
		return "CLOSED"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	}
	return "error: " + err.Error()
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

func (s *stepper) file(key string) (*os.File, error) {
	f, ok := s.handles[key]
	if !ok {
		return nil, fmt.Errorf("no handle %s", key)
	}
	return f, nil
}

// do runs one step and returns its result.
func (s *stepper) do(f []string) string {
	op := f[0]
	if op == "sleep" {
		for {
			time.Sleep(time.Hour)
		}
	}
	if op == "ls" {
		ents, err := os.ReadDir(f[1])
		if err != nil {
			return errName(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return "ok [" + strings.Join(names, ",") + "]"
	}
	if op == "raw" {
		return rawCtl(f[1])
	}
	if len(f) < 2 && op != "self" && op != "list" && op != "nop" {
		return "error: step needs an argument"
	}
	key, f := "", f
	if len(f) >= 2 {
		key, f = handleKey(f)
	}
	switch op {
	case "self", "list", "nop", "stat", "unlink", "pipe_open", "shm_create", "shm_attach", "region_map", "mq_open":
		c, err := s.client()
		if err != nil {
			return errName(err)
		}
		return s.call(c, key, f)
	case "fd":
		// A pre-wired channel, found the way any program would: by
		// parsing PINFOLD_FDS, without pinfold's client.
		for _, item := range strings.Split(os.Getenv(sandbox.EnvFDs), ",") {
			name, num, ok := strings.Cut(item, ":")
			if ok && name == f[1] {
				fd, err := strconv.Atoi(num)
				if err != nil {
					return "error: " + err.Error()
				}
				var st syscall.Stat_t
				if err := syscall.Fstat(fd, &st); err != nil {
					return errName(err)
				}
				s.handles[key] = os.NewFile(uintptr(fd), f[1])
				return "ok"
			}
		}
		return "error: not in " + sandbox.EnvFDs
	case "posix_open":
		return s.posixOpen(key, f)
	case "posix_unlink":
		return errnoResult(mqUnlinkSys(f[1]))
	}
	h, err := s.file(key)
	if err != nil {
		return "error: " + err.Error()
	}
	switch op {
	case "close":
		delete(s.handles, key)
		return result(h.Close())
	case "write":
		_, err := h.Write([]byte(f[2]))
		return result(err)
	case "pwrite":
		_, err := h.WriteAt([]byte(f[2]), 0)
		return result(err)
	case "read":
		buf := make([]byte, atoi64(f[2]))
		n, err := h.Read(buf)
		if err != nil {
			return errName(err)
		}
		return "ok " + string(buf[:n])
	case "pread":
		buf := make([]byte, atoi64(f[2]))
		n, err := h.ReadAt(buf, 0)
		if err != nil {
			return errName(err)
		}
		return "ok " + string(buf[:n])
	case "readfull":
		_, err := io.ReadFull(h, make([]byte, atoi64(f[2])))
		return result(err)
	case "readall":
		// Reads to end of file keeping only the start: a writer may send
		// for a long while before it is killed (memory stays bounded).
		var head []byte
		total := 0
		buf := make([]byte, 64<<10)
		for {
			n, err := h.Read(buf)
			if len(head) <= 64 {
				head = append(head, buf[:min(n, 65-len(head))]...)
			}
			total += n
			if err == io.EOF {
				break
			}
			if err != nil {
				return errName(err)
			}
		}
		if total > 64 {
			return fmt.Sprintf("ok %d bytes", total)
		}
		return "ok " + strings.ReplaceAll(string(head), "\n", `\n`)
	case "writeloop":
		// Writes until the write fails: a writer in the middle of a
		// transfer, blocked on a full pipe most of the time.
		chunk := make([]byte, 64<<10)
		for {
			if _, err := h.Write(chunk); err != nil {
				return errName(err)
			}
		}
	case "mmapr", "mmapw":
		return mmapStep(h, op, f[2])
	case "hold":
		// Maps the object read-only and never unmaps it: the memory is
		// held by a mapping as well as by the descriptor.
		var st syscall.Stat_t
		if err := syscall.Fstat(int(h.Fd()), &st); err != nil {
			return errName(err)
		}
		if _, err := syscall.Mmap(int(h.Fd()), 0, int(st.Size), syscall.PROT_READ, syscall.MAP_SHARED); err != nil {
			return errName(err)
		}
		return "ok"
	case "ftruncate":
		return result(h.Truncate(atoi64(f[2])))
	case "reopen":
		g, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", h.Fd()), os.O_RDWR, 0)
		if err != nil {
			return errName(err)
		}
		g.Close()
		return "ok"
	case "send":
		prio := uint(0)
		if len(f) > 3 {
			prio = uint(atoi64(f[3]))
		}
		return errnoResult(mqSendSys(int(h.Fd()), []byte(f[2]), prio))
	case "recv":
		msg, prio, errno := mqReceiveSys(int(h.Fd()))
		if errno != 0 {
			return abi.Errno(errno).Name()
		}
		return fmt.Sprintf("ok %s prio=%d", msg, prio)
	}
	return "error: unknown step " + op
}

func result(err error) string {
	if err != nil {
		return errName(err)
	}
	return "ok"
}

func errnoResult(e syscall.Errno) string {
	if e != 0 {
		return abi.Errno(e).Name()
	}
	return "ok"
}

// call runs a step that is a pinfold call, with the Go client.
func (s *stepper) call(c *client.Client, key string, f []string) string {
	access := func(i int) ipc.Access {
		a, _ := ipc.ParseAccess(f[i])
		return a
	}
	keep := func(file *os.File, err error, ok string) string {
		if err != nil {
			return errName(err)
		}
		s.handles[key] = file
		return ok
	}
	switch f[0] {
	case "nop":
		return result(c.Nop())
	case "self":
		me, err := c.Self()
		if err != nil {
			return errName(err)
		}
		return fmt.Sprintf("ok %s %s %d %d %d %d", me.App, me.Policy, me.MaxObjects, me.MaxBytes, me.Objects, me.Bytes)
	case "list":
		objs, err := c.List()
		if err != nil {
			return errName(err)
		}
		var names []string
		for _, o := range objs {
			names = append(names, o.Name)
		}
		return "ok [" + strings.Join(names, ",") + "]"
	case "stat":
		o, err := c.Stat(f[1])
		if err != nil {
			return errName(err)
		}
		return fmt.Sprintf("ok %s %d %s %s holders=%d", o.Kind, o.Size, o.Owner, o.OwnerPolicy, o.Holders)
	case "unlink":
		return result(c.Unlink(f[1]))
	case "pipe_open":
		file, err := c.PipeOpen(f[1], access(2))
		return keep(file, err, "ok")
	case "shm_create":
		file, err := c.ShmCreate(f[1], atoi64(f[2]))
		return keep(file, err, "ok")
	case "shm_attach":
		file, size, err := c.ShmAttach(f[1], access(2))
		return keep(file, err, fmt.Sprintf("ok size=%d", size))
	case "region_map":
		file, size, created, err := c.RegionMap(f[1], atoi64(f[2]), access(3))
		return keep(file, err, fmt.Sprintf("ok size=%d created=%t", size, created))
	case "mq_open":
		file, attr, err := c.MQOpen(f[1], atoi64(f[2]), atoi64(f[3]), access(4), 0)
		return keep(file, err, fmt.Sprintf("ok maxmsg=%d msgsize=%d", attr.MaxMsg, attr.MsgSize))
	}
	return "error: unknown call " + f[0]
}

// mmapStep maps the whole object shared: "mmapr N" read-only, printing
// its first N bytes; "mmapw TEXT" read-write, storing TEXT at the start.
func mmapStep(h *os.File, op, arg string) string {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(h.Fd()), &st); err != nil {
		return errName(err)
	}
	prot := syscall.PROT_READ
	if op == "mmapw" {
		prot |= syscall.PROT_WRITE
	}
	m, err := syscall.Mmap(int(h.Fd()), 0, int(st.Size), prot, syscall.MAP_SHARED)
	if err != nil {
		return errName(err)
	}
	defer syscall.Munmap(m)
	if op == "mmapw" {
		copy(m, arg)
		return "ok"
	}
	return "ok " + string(m[:atoi64(arg)])
}

// posixOpen is "posix_open NAME r|w|rw [MAXMSG MSGSIZE]": mq_open(2) as an
// app that knows nothing of pinfold makes it (glibc strips the leading
// '/'), with O_CREAT and those attributes when they are given.
func (s *stepper) posixOpen(key string, f []string) string {
	flags := map[string]int{"r": syscall.O_RDONLY, "w": syscall.O_WRONLY, "rw": syscall.O_RDWR}[f[2]]
	var attr *mqAttrSys
	if len(f) > 4 {
		flags |= syscall.O_CREAT
		attr = &mqAttrSys{MaxMsg: atoi64(f[3]), MsgSize: atoi64(f[4])}
	}
	fd, errno := mqOpenSys(f[1], flags, attr)
	if errno != 0 {
		return abi.Errno(errno).Name()
	}
	s.handles[key] = os.NewFile(uintptr(fd), f[1])
	return "ok"
}

// mqAttrSys is struct mq_attr.
type mqAttrSys struct {
	Flags, MaxMsg, MsgSize, CurMsgs int64
	_                               [4]int64
}

func mqOpenSys(name string, flags int, attr *mqAttrSys) (int, syscall.Errno) {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return -1, syscall.EINVAL
	}
	r, _, e := syscall.Syscall6(syscall.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags), 0o600, uintptr(unsafe.Pointer(attr)), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), 0
}

func mqUnlinkSys(name string) syscall.Errno {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return syscall.EINVAL
	}
	_, _, e := syscall.Syscall(syscall.SYS_MQ_UNLINK, uintptr(unsafe.Pointer(p)), 0, 0)
	return e
}

func mqSendSys(fd int, msg []byte, prio uint) syscall.Errno {
	var p unsafe.Pointer
	if len(msg) > 0 {
		p = unsafe.Pointer(&msg[0])
	}
	for {
		_, _, e := syscall.Syscall6(syscall.SYS_MQ_TIMEDSEND, uintptr(fd), uintptr(p), uintptr(len(msg)), uintptr(prio), 0, 0)
		if e != syscall.EINTR {
			return e
		}
	}
}

func mqReceiveSys(fd int) (string, uint32, syscall.Errno) {
	var a mqAttrSys
	if _, _, e := syscall.Syscall(syscall.SYS_MQ_GETSETATTR, uintptr(fd), 0, uintptr(unsafe.Pointer(&a))); e != 0 {
		return "", 0, e
	}
	buf := make([]byte, max(a.MsgSize, 1))
	var prio uint32
	for {
		r, _, e := syscall.Syscall6(syscall.SYS_MQ_TIMEDRECEIVE, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), uintptr(unsafe.Pointer(&prio)), 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return "", 0, e
		}
		return string(buf[:r]), prio, 0
	}
}

// ---- a hostile app ------------------------------------------------------------

// rawCtl sends what a hostile or broken app might on its control channel,
// with no client, and reports pinfold's answer: the errno of a reply that
// refuses the message as a whole, "ok" for a good reply, "closed" when
// pinfold has hung up.
func rawCtl(what string) string {
	fd, err := strconv.Atoi(os.Getenv(sandbox.EnvCtlFD))
	if err != nil {
		return "error: " + err.Error()
	}
	nop := func() []byte {
		var rb abi.RequestBuilder
		rb.Reset(nil, 0)
		rb.Begin(1, abi.SysNop)
		rb.End()
		m, err := rb.Finish()
		if err != nil {
			panic(err)
		}
		return m
	}
	exchange := func(msg, oob []byte) string {
		if err := syscall.Sendmsg(fd, msg, oob, nil, syscall.MSG_NOSIGNAL); err != nil {
			if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
				return "closed"
			}
			return errName(err)
		}
		return readReply(fd)
	}
	switch what {
	case "nop":
		return exchange(nop(), nil)
	case "garbage":
		b := make([]byte, 512)
		for i := range b {
			b[i] = byte(i*131 + 7)
		}
		return exchange(b, nil)
	case "short":
		return exchange([]byte("PF"), nil)
	case "empty":
		return exchange(nil, nil)
	case "oversized":
		return exchange(make([]byte, abi.MaxMessage+4096), nil)
	case "truncated":
		// A good request cut short: the header's length is not the
		// datagram's.
		m := nop()
		return exchange(m[:len(m)-8], nil)
	case "badversion":
		m := nop()
		m[2] = abi.Version + 1
		return exchange(m, nil)
	case "toomany":
		// A header announcing more entries than a batch may hold.
		m := nop()
		binary.LittleEndian.PutUint16(m[4:], abi.MaxBatch+1)
		return exchange(m, nil)
	case "withfd":
		return exchange(nop(), syscall.UnixRights(0))
	case "withfds":
		// More descriptors than pinfold's buffer for them holds: the
		// kernel closes the rest (MSG_CTRUNC), pinfold the others.
		fds := make([]int, 200)
		return exchange(nop(), syscall.UnixRights(fds...))
	case "badargs":
		// A well-formed message whose one call has arguments of the
		// wrong types: that entry fails, the channel stays.
		var rb abi.RequestBuilder
		rb.Reset(nil, 0)
		rb.Begin(7, abi.SysShmCreate)
		rb.U64(1)
		rb.U64(2)
		rb.End()
		m, err := rb.Finish()
		if err != nil {
			return "error: " + err.Error()
		}
		return exchange(m, nil)
	case "flood":
		// Malformed messages until pinfold hangs up.
		for i := 1; i <= 10*server64; i++ {
			if r := exchange([]byte("garbage!"), nil); r != "EBADMSG" {
				return fmt.Sprintf("%s after %d", r, i-1)
			}
		}
		return "still open"
	case "stuff":
		// Good requests, never reading a reply, until the socket is
		// full: pinfold's server blocks writing to this app only.
		m := nop()
		for n := 0; ; n++ {
			err := syscall.Sendmsg(fd, m, nil, nil, syscall.MSG_DONTWAIT)
			if errors.Is(err, syscall.EAGAIN) {
				if n < 2 {
					return fmt.Sprintf("error: socket full after %d messages", n)
				}
				return "ok full"
			}
			if err != nil {
				return errName(err)
			}
		}
	}
	return "error: unknown raw message " + what
}

// server64 is the server's default MaxMalformed.
const server64 = 64

// readReply reads one reply and names its errno.
func readReply(fd int) string {
	buf := make([]byte, abi.MaxMessage)
	oob := make([]byte, syscall.CmsgSpace(4*abi.MaxFDs))
	n, oobn, _, _, err := syscall.Recvmsg(fd, buf, oob, 0)
	if err != nil {
		if errors.Is(err, syscall.ECONNRESET) {
			return "closed"
		}
		return errName(err)
	}
	if n == 0 && oobn == 0 {
		return "closed"
	}
	if oobn > 0 {
		msgs, _ := syscall.ParseSocketControlMessage(oob[:oobn])
		for _, m := range msgs {
			fds, _ := syscall.ParseUnixRights(&m)
			for _, fd := range fds {
				syscall.Close(fd)
			}
		}
	}
	var rep abi.Reply
	if err := abi.DecodeReply(buf[:n], &rep); err != nil {
		return "error: bad reply: " + err.Error()
	}
	if len(rep.Results) == 0 {
		return "error: empty reply"
	}
	if e := rep.Results[0].Errno; e != 0 {
		return e.Name()
	}
	return "ok"
}

// ---- a supervisor to kill -----------------------------------------------------

// restartStarted is what the restart-supervisor role prints once its two
// apps hold every kind of object.
type restartStarted struct {
	Pid  int      `json:"pid"`
	Apps []int    `json:"apps"`
	IDs  []string `json:"ids"`
}

// restartSteps are the two apps of the restart-supervisor role: the owner
// creates one object of each kind and writes to them, the peer attaches
// them all and maps the memory; both then wait to be killed.
var restartSteps = [2][]string{
	{
		"shm_create crash/shm 65536", "mmapw crash/shm owner-shm",
		"region_map crash/region 65536 readwrite", "mmapw crash/region owner-region",
		"mq_open crash/q 4 64 readwrite", "send crash/q owner-mq",
		"pipe_open crash/pipe write", "write crash/pipe owner-pipe",
		"wait",
	},
	{
		"shm_attach crash/shm read", "region_map crash/region 0 read",
		"mq_open crash/q 0 0 read", "pipe_open crash/pipe read",
		"hold crash/shm", "hold crash/region",
		"wait",
	},
}

// restartGrants are the grants of restartSteps' apps.
var restartGrants = [2]ipc.Grants{
	{
		Create:     []ipc.CreateGrant{{Names: []string{"crash/*"}, Kinds: ipc.AllKinds}},
		MaxObjects: 8, MaxBytes: 1 << 20,
	},
	{
		Attach: []ipc.AttachGrant{{Names: []string{"crash/*"}, Kinds: ipc.AllKinds, Access: ipc.Read}},
	},
}

// restartSupervisor is a supervisor in its own process: it starts the
// restartSteps apps, waits until both hold their objects, prints a
// restartStarted line and waits to be SIGKILLed.
func restartSupervisor() int {
	probeBin = os.Getenv(ipcProbeEnv)
	sup, err := sandbox.NewSupervisor(supervisorOptions(os.Getenv(ipcStateEnv)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "restart supervisor:", err)
		return 1
	}
	st := restartStarted{Pid: os.Getpid()}
	for i, steps := range restartSteps {
		spec, err := ipcSpec("restart", restartGrants[i], steps...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "restart supervisor:", err)
			return 1
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			fmt.Fprintln(os.Stderr, "restart supervisor:", err)
			return 1
		}
		// The apps wait on stdin, a pipe nobody writes to, until killed.
		inR, inW, err := os.Pipe()
		if err != nil {
			fmt.Fprintln(os.Stderr, "restart supervisor:", err)
			return 1
		}
		defer inW.Close()
		spec.Stdin, spec.Stdout, spec.Stderr = inR, pw, os.Stderr
		app, err := sup.Start(spec)
		pw.Close()
		inR.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "restart supervisor:", err)
			return 1
		}
		sc := bufio.NewScanner(pr)
		for n := 0; n < len(steps); n++ {
			if !sc.Scan() {
				fmt.Fprintf(os.Stderr, "restart supervisor: app %d ended its output after %d lines\n", i, n)
				return 1
			}
			line := sc.Text()
			fmt.Fprintln(os.Stderr, "restart app:", line)
			if !strings.HasSuffix(line, "=> ok") && !strings.Contains(line, "=> ok ") && !strings.HasSuffix(line, "=> waiting") {
				fmt.Fprintf(os.Stderr, "restart supervisor: app %d: %s\n", i, line)
				return 1
			}
		}
		st.Apps = append(st.Apps, app.Pid())
		st.IDs = append(st.IDs, app.ID)
	}
	if err := json.NewEncoder(os.Stdout).Encode(st); err != nil {
		return 1
	}
	for {
		time.Sleep(time.Hour)
	}
}

// ipcSpec is the default policy running the steps role with steps, under
// policy name pol with grants g. It does not need a *testing.T, so that
// the restart-supervisor role can use it too.
func ipcSpec(pol string, g ipc.Grants, steps ...string) (sandbox.Spec, error) {
	spec, err := sandbox.FromPolicy(policy.Default(), append([]string{"/probe"}, steps...), map[string]string{
		ipcRoleEnv: "steps",
		// A binary built with -race sleeps a second at exit by default.
		"GORACE": "atexit_sleep_ms=0",
	})
	if err != nil {
		return sandbox.Spec{}, err
	}
	spec.Filesystem.ReadOnly = append(spec.Filesystem.ReadOnly, vfs.Bind{Source: probeBin, Target: "/probe"})
	spec.Policy = pol
	spec.IPC = g
	return spec, nil
}

// pythonSteps is the steps role in Python, on pinfold.py (the Python
// client every sandbox can import) and, for posix_* steps, on the C
// library's mq_open(3) through ctypes, as an app that knows nothing of
// pinfold would call it. Its output is held to the same tables as the Go
// steps role's, so both must print exactly the same results.
const pythonSteps = `
import ctypes, errno, mmap, os, sys
import pinfold

c = None
handles = {}

def client():
    global c
    if c is None:
        c = pinfold.connect()
    return c

_builtin = {errno.EPERM: PermissionError, errno.ENOENT: FileNotFoundError, errno.EEXIST: FileExistsError}

def name_of(e):
    if isinstance(e, pinfold.Error):
        cls = _builtin.get(e.errno)
        if cls is not None and not isinstance(e, cls):
            return e.name + " (not a " + cls.__name__ + ")"
        return e.name
    if isinstance(e, OSError) and e.errno:
        return pinfold.errno_name(e.errno)
    return "error: %r" % (e,)

class Attr(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_long), ("maxmsg", ctypes.c_long), ("msgsize", ctypes.c_long),
                ("curmsgs", ctypes.c_long), ("pad", ctypes.c_long * 4)]

libc = ctypes.CDLL(None, use_errno=True)
if not hasattr(libc, "mq_open"):
    libc = ctypes.CDLL("librt.so.1", use_errno=True)
libc.mq_open.restype = ctypes.c_int
libc.mq_unlink.argtypes = [ctypes.c_char_p]
libc.mq_timedsend.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_void_p]
libc.mq_timedreceive.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
libc.mq_timedreceive.restype = ctypes.c_ssize_t
libc.mq_getattr.argtypes = [ctypes.c_int, ctypes.POINTER(Attr)]

def check(r):
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r

def fd_of(h):
    return h.fileno() if hasattr(h, "fileno") else h

def do(f):
    op = f[0]
    if op == "ls":
        return "ok [" + ",".join(sorted(os.listdir(f[1]))) + "]"
    key = f[1] if len(f) > 1 else None
    if len(f) > 2 and f[-1].startswith("@"):
        key, f = f[-1], f[:-1]
    if op == "nop":
        client().nop(); return "ok"
    if op == "self":
        s = client().self()
        return "ok %s %s %d %d %d %d" % (s["app"], s["policy"], s["max_objects"], s["max_bytes"], s["objects"], s["bytes"])
    if op == "list":
        return "ok [" + ",".join(o["name"] for o in client().list()) + "]"
    if op == "stat":
        o = client().stat(f[1])
        return "ok %s %d %s %s holders=%d" % (o["kind"], o["size"], o["owner"], o["owner_policy"], o["holders"])
    if op == "unlink":
        client().unlink(f[1]); return "ok"
    if op == "pipe_open":
        handles[key] = client().pipe_open(f[1], f[2]); return "ok"
    if op == "shm_create":
        handles[key] = client().shm_create(f[1], int(f[2])); return "ok"
    if op == "shm_attach":
        fd, size = client().shm_attach(f[1], f[2]); handles[key] = fd
        return "ok size=%d" % size
    if op == "region_map":
        fd, size, created = client().region_map(f[1], int(f[2]), f[3]); handles[key] = fd
        return "ok size=%d created=%s" % (size, "true" if created else "false")
    if op == "mq_open":
        q = client().mq_open(f[1], int(f[2]), int(f[3]), f[4]); handles[key] = q
        return "ok maxmsg=%d msgsize=%d" % (q.maxmsg, q.msgsize)
    if op == "posix_open":
        flags = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}[f[2]]
        if len(f) > 4:
            a = Attr(0, int(f[3]), int(f[4]), 0)
            fd = check(libc.mq_open(("/" + f[1]).encode(), flags | os.O_CREAT, 0o600, ctypes.byref(a)))
        else:
            fd = check(libc.mq_open(("/" + f[1]).encode(), flags))
        handles[key] = fd
        return "ok"
    if op == "posix_unlink":
        check(libc.mq_unlink(("/" + f[1]).encode())); return "ok"
    fd = fd_of(handles[key])
    if op == "close":
        os.close(fd); del handles[key]; return "ok"
    if op == "write":
        os.write(fd, f[2].encode()); return "ok"
    if op == "pwrite":
        os.pwrite(fd, f[2].encode(), 0); return "ok"
    if op == "read":
        return "ok " + os.read(fd, int(f[2])).decode()
    if op == "pread":
        return "ok " + os.pread(fd, int(f[2]), 0).decode()
    if op in ("mmapr", "mmapw"):
        size = os.fstat(fd).st_size
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if op == "mmapw" else 0)
        m = mmap.mmap(fd, size, mmap.MAP_SHARED, prot)
        try:
            if op == "mmapw":
                m[:len(f[2])] = f[2].encode(); return "ok"
            return "ok " + m[:int(f[2])].decode()
        finally:
            m.close()
    if op == "send":
        data = f[2].encode()
        prio = int(f[3]) if len(f) > 3 else 0
        check(libc.mq_timedsend(fd, data, len(data), prio, None)); return "ok"
    if op == "recv":
        a = Attr()
        check(libc.mq_getattr(fd, ctypes.byref(a)))
        buf = ctypes.create_string_buffer(max(a.msgsize, 1))
        prio = ctypes.c_uint()
        n = check(libc.mq_timedreceive(fd, buf, len(buf), ctypes.byref(prio), None))
        return "ok %s prio=%d" % (buf.raw[:n].decode(), prio.value)
    return "error: unknown step " + op

for step in sys.argv[1:]:
    f = step.split()
    if f[0] == "wait":
        print(step + " => waiting", flush=True)
        sys.stdin.readline()
        continue
    try:
        r = do(f)
    except Exception as e:
        r = name_of(e)
    print(step + " => " + r, flush=True)
`
