package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/client"
)

// A worker is this binary run as an app: a plain child process ("raw"
// mode: its descriptors were inherited from the benchmark, named in
// IPCBENCH_FDS) or a sandboxed app started by the benchmark's supervisor
// ("pinfold" mode: its descriptors are the pre-wired channels named in
// PINFOLD_FDS, and it has a control channel at PINFOLD_CTL_FD). Both run
// the same code on the same kind of descriptors; only where the descriptors
// came from differs, and, for the round trips, who answers: another plain
// process (raw) or pinfold's server (pinfold).
//
// It reads one JSON command per line on stdin and answers each with one
// JSON reply line on stdout.

const (
	// workerArg as the first argument selects the worker role.
	workerArg = "__ipcbench_worker"
	// envMode is "raw" or "pinfold".
	envMode = "IPCBENCH_MODE"
	// envFDs lists a raw worker's descriptors, in PINFOLD_FDS's format.
	envFDs = "IPCBENCH_FDS"
)

// The channel names, the same in both modes.
const (
	chShm   = "bench/shm"   // shared memory: W maps read-write, R read-only
	chNote  = "bench/note"  // pipe W -> R: "the buffer is written"
	chAck   = "bench/ack"   // pipe R -> W: "done reading"
	chPipe  = "bench/pipe"  // pipe W -> R: the pipe throughput test
	chMQ    = "bench/mq"    // message queue W -> R
	chCtl   = "ctl"         // raw only: the socket the raw round trips use
	chMemfd = "memfd"       // raw only: what the raw echo sends back
	rawMQ   = "ipcbench-mq" // raw only: the queue the raw mq_open test opens by name
)

// command is one request to a worker.
type command struct {
	Op    string `json:"op"`
	CPU   int    `json:"cpu,omitempty"`   // pin: the CPU, -1 for all
	N     int    `json:"n,omitempty"`     // passes, messages or calls
	Bytes int64  `json:"bytes,omitempty"` // pipe: bytes to move
	Size  int    `json:"size,omitempty"`  // pipe chunk, mq message size
	FD    bool   `json:"fd,omitempty"`    // rtt/echo: the call returns a descriptor
	Wait  string `json:"wait,omitempty"`  // echo: how to wait for a request: recvmsg, epoll or netpoll
	Stamp uint64 `json:"stamp,omitempty"` // shm: first stamp of this command
}

// reply is a worker's answer.
type reply struct {
	Err string  `json:"err,omitempty"`
	A   []int64 `json:"a,omitempty"` // per-pass durations, ns
	B   []int64 `json:"b,omitempty"` // a second series, ns
	// P50, P99 and Mean summarise per-call latencies, ns.
	P50  int64 `json:"p50,omitempty"`
	P99  int64 `json:"p99,omitempty"`
	Mean int64 `json:"mean,omitempty"`
	// Faults counts the page faults (minor and major) the worker took
	// during the command.
	Faults int64 `json:"faults"`
	// CPU is the CPU the worker ran on when it answered.
	CPU int `json:"cpu"`
}

type worker struct {
	mode string
	ch   map[string]*os.File
	ctl  *client.Client // pinfold mode

	shm      []byte
	shmWrite bool
	buf      []byte
	rawMQ    bool            // raw mode: the queue rawMQ exists in this ipc namespace
	epfd     int             // echo waiting in epoll: the epoll instance, 0 until made
	pollable *os.File        // echo waiting in Go's netpoller: a non-blocking copy of ctl
	rc       syscall.RawConn // its raw connection
}

func workerMain() int {
	if err := runWorker(); err != nil {
		fmt.Fprintf(os.Stderr, "ipcbench worker (%s): %v\n", os.Getenv(envMode), err)
		return 1
	}
	return 0
}

func runWorker() error {
	w := &worker{mode: os.Getenv(envMode)}
	switch w.mode {
	case "pinfold":
		ch, err := client.Channels()
		if err != nil {
			return err
		}
		w.ch = ch
		if _, ok := os.LookupEnv(client.CtlFDEnv); ok {
			c, err := client.FromEnv()
			if err != nil {
				return err
			}
			w.ctl = c
		}
	case "raw":
		m, err := client.ParseChannels(os.Getenv(envFDs))
		if err != nil {
			return err
		}
		w.ch = make(map[string]*os.File, len(m))
		for name, fd := range m {
			w.ch[name] = os.NewFile(uintptr(fd), name)
		}
	default:
		return fmt.Errorf("%s=%q: want raw or pinfold", envMode, w.mode)
	}
	dec := json.NewDecoder(os.Stdin)
	enc := json.NewEncoder(os.Stdout)
	for {
		var c command
		if err := dec.Decode(&c); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("reading a command: %w", err)
		}
		if c.Op == "exit" {
			return nil
		}
		f0 := faults()
		r, err := w.do(c)
		if err != nil {
			r = reply{Err: fmt.Sprintf("%s: %v", c.Op, err)}
		}
		r.Faults = faults() - f0
		r.CPU = getcpu()
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("writing a reply: %w", err)
		}
	}
}

func (w *worker) do(c command) (reply, error) {
	switch c.Op {
	case "pin":
		return reply{}, pinProcess(c.CPU)
	case "shm-touch":
		return w.shmTouch(c)
	case "shm-write":
		return w.shmWriter(c)
	case "shm-read":
		return w.shmReader(c)
	case "pipe-write":
		return w.pipeWriter(c)
	case "pipe-read":
		return w.pipeReader(c)
	case "mq-send":
		return w.mqSender(c)
	case "mq-recv":
		return w.mqReceiver(c)
	case "rtt":
		return w.roundTrips(c)
	case "echo":
		return w.echo(c)
	case "mqopen":
		return w.mqOpens(c)
	}
	return reply{}, fmt.Errorf("unknown op")
}

func (w *worker) file(name string) (*os.File, error) {
	f, ok := w.ch[name]
	if !ok {
		return nil, fmt.Errorf("no channel %s", name)
	}
	return f, nil
}

// mapShm maps the shared memory once: read-write for the writer, read-only
// for the reader (whose descriptor is read-only in both modes).
func (w *worker) mapShm(write bool) ([]byte, error) {
	if w.shm != nil {
		if w.shmWrite != write {
			return nil, errors.New("shm already mapped with other access")
		}
		return w.shm, nil
	}
	f, err := w.file(chShm)
	if err != nil {
		return nil, err
	}
	size, err := syscalls.FileSize(int(f.Fd()))
	if err != nil {
		return nil, err
	}
	if size < 16 || size%8 != 0 {
		return nil, fmt.Errorf("shm of %d bytes: want a multiple of 8, at least 16", size)
	}
	m, err := mapShared(f, int(size), write)
	if err != nil {
		return nil, err
	}
	w.shm, w.shmWrite = m, write
	return m, nil
}

// notifyPair returns the descriptors of one handshake: out says "go" to
// the peer, in waits for the peer's word.
func (w *worker) notifyPair(out, in string) (*os.File, *os.File, error) {
	o, err := w.file(out)
	if err != nil {
		return nil, nil, err
	}
	i, err := w.file(in)
	if err != nil {
		return nil, nil, err
	}
	return o, i, nil
}

// shmTouch writes Size bytes at offset Bytes of the shared memory: the
// first touch, which allocates the pages.
func (w *worker) shmTouch(c command) (reply, error) {
	m, err := w.mapShm(true)
	if err != nil {
		return reply{}, err
	}
	if c.Bytes < 0 || c.Size < 0 || c.Bytes > int64(len(m)) {
		return reply{}, fmt.Errorf("range %d+%d outside the %d bytes", c.Bytes, c.Size, len(m))
	}
	clear(m[c.Bytes:min(int64(len(m)), c.Bytes+int64(c.Size))])
	return reply{}, nil
}

// faults is the number of page faults this process has taken.
func faults() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Minflt + ru.Majflt
}

// shmWriter fills the whole buffer N times: memset (Go's clear, which
// uses the same non-temporal stores as glibc's memset for buffers this
// large), a stamp in the first and last word, one byte on note, then waits
// for the reader's byte on ack. A is the fill time of each pass, B the
// whole handoff (fill, wake the reader, its read, wake the writer).
func (w *worker) shmWriter(c command) (reply, error) {
	m, err := w.mapShm(true)
	if err != nil {
		return reply{}, err
	}
	note, ack, err := w.notifyPair(chNote, chAck)
	if err != nil {
		return reply{}, err
	}
	one := []byte{1}
	var got [1]byte
	r := reply{A: make([]int64, c.N), B: make([]int64, c.N)}
	for i := range c.N {
		stamp := c.Stamp + uint64(i)
		t0 := time.Now()
		clear(m)
		binary.LittleEndian.PutUint64(m, stamp)
		binary.LittleEndian.PutUint64(m[len(m)-8:], stamp)
		t1 := time.Now()
		if _, err := note.Write(one); err != nil {
			return reply{}, err
		}
		if _, err := io.ReadFull(ack, got[:]); err != nil {
			return reply{}, err
		}
		t2 := time.Now()
		r.A[i], r.B[i] = t1.Sub(t0).Nanoseconds(), t2.Sub(t0).Nanoseconds()
	}
	return r, nil
}

// shmReader waits for note, sums every 64-bit word of the buffer, checks
// the sum is the writer's two stamps (it saw all of the writer's data),
// and answers on ack. A is the read time of each pass.
func (w *worker) shmReader(c command) (reply, error) {
	m, err := w.mapShm(false)
	if err != nil {
		return reply{}, err
	}
	ack, note, err := w.notifyPair(chAck, chNote)
	if err != nil {
		return reply{}, err
	}
	one := []byte{1}
	var got [1]byte
	r := reply{A: make([]int64, c.N)}
	for i := range c.N {
		if _, err := io.ReadFull(note, got[:]); err != nil {
			return reply{}, err
		}
		t0 := time.Now()
		s := sum64(m)
		r.A[i] = time.Since(t0).Nanoseconds()
		if want := 2 * (c.Stamp + uint64(i)); s != want {
			return reply{}, fmt.Errorf("pass %d: the buffer sums to %d, want %d: the reader does not see the writer's data", i, s, want)
		}
		if _, err := ack.Write(one); err != nil {
			return reply{}, err
		}
	}
	return r, nil
}

// sum64 adds up b as little-endian 64-bit words, eight at a time.
func sum64(b []byte) uint64 {
	words := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
	var s0, s1, s2, s3, s4, s5, s6, s7 uint64
	for len(words) >= 8 {
		s0 += words[0]
		s1 += words[1]
		s2 += words[2]
		s3 += words[3]
		s4 += words[4]
		s5 += words[5]
		s6 += words[6]
		s7 += words[7]
		words = words[8:]
	}
	for _, v := range words {
		s0 += v
	}
	return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7
}

func (w *worker) chunk(n int) []byte {
	if len(w.buf) < n {
		w.buf = make([]byte, n)
		for i := range w.buf {
			w.buf[i] = byte(i)
		}
	}
	return w.buf[:n]
}

// pipeWriter writes Bytes in chunks of Size with write(2) on the pipe,
// then waits for the reader's ack. A is that whole time.
func (w *worker) pipeWriter(c command) (reply, error) {
	p, ack, err := w.notifyPair(chPipe, chAck)
	if err != nil {
		return reply{}, err
	}
	buf := w.chunk(c.Size)
	var got [1]byte
	t0 := time.Now()
	for left := c.Bytes; left > 0; {
		n, err := p.Write(buf[:min(int64(len(buf)), left)])
		if err != nil {
			return reply{}, err
		}
		left -= int64(n)
	}
	if _, err := io.ReadFull(ack, got[:]); err != nil {
		return reply{}, err
	}
	return reply{A: []int64{time.Since(t0).Nanoseconds()}}, nil
}

// pipeReader reads Bytes with read(2) into a buffer of Size, then acks.
func (w *worker) pipeReader(c command) (reply, error) {
	ack, p, err := w.notifyPair(chAck, chPipe)
	if err != nil {
		return reply{}, err
	}
	buf := w.chunk(c.Size)
	for left := c.Bytes; left > 0; {
		n, err := p.Read(buf[:min(int64(len(buf)), left)])
		if err != nil {
			return reply{}, err
		}
		left -= int64(n)
	}
	_, err = ack.Write([]byte{1})
	return reply{}, err
}

// mqSender sends N messages of Size bytes with mq_timedsend(2), then waits
// for the receiver's ack. A is that whole time.
func (w *worker) mqSender(c command) (reply, error) {
	q, ack, err := w.notifyPair(chMQ, chAck)
	if err != nil {
		return reply{}, err
	}
	fd := int(q.Fd())
	msg := w.chunk(c.Size)
	var got [1]byte
	t0 := time.Now()
	for range c.N {
		if err := syscalls.MQSend(fd, msg, 0); err != nil {
			return reply{}, err
		}
	}
	if _, err := io.ReadFull(ack, got[:]); err != nil {
		return reply{}, err
	}
	return reply{A: []int64{time.Since(t0).Nanoseconds()}}, nil
}

// mqReceiver receives N messages with mq_timedreceive(2), then acks.
func (w *worker) mqReceiver(c command) (reply, error) {
	ack, q, err := w.notifyPair(chAck, chMQ)
	if err != nil {
		return reply{}, err
	}
	fd := int(q.Fd())
	buf := make([]byte, c.Size)
	for i := range c.N {
		n, _, err := syscalls.MQReceive(fd, buf)
		if err != nil {
			return reply{}, err
		}
		if n != c.Size {
			return reply{}, fmt.Errorf("message %d has %d bytes, want %d", i, n, c.Size)
		}
	}
	_, err = ack.Write([]byte{1})
	return reply{}, err
}

// requestBytes encodes the request a pinfold client sends for a nop or a
// shm_attach of bench/shm: the raw round trips send the same bytes.
func requestBytes(fd bool) ([]byte, error) {
	var b abi.RequestBuilder
	b.Reset(nil, 0)
	if fd {
		b.Begin(1, abi.SysShmAttach)
		b.String(chShm)
		b.U64(uint64(ipc.Read))
	} else {
		b.Begin(1, abi.SysNop)
	}
	b.End()
	return b.Finish()
}

// roundTrips makes N calls and reports their latency, each timed from
// before the send to after the reply (closing a returned descriptor is
// not timed). pinfold: the client library's Nop or ShmAttach on the
// control channel. raw: the same request bytes on a SEQPACKET socket to a
// plain process that sends them back (with a descriptor for fd).
func (w *worker) roundTrips(c command) (reply, error) {
	lat := make([]time.Duration, c.N)
	if w.mode == "pinfold" {
		if w.ctl == nil {
			return reply{}, errors.New("no control channel")
		}
		for i := range c.N {
			t0 := time.Now()
			if c.FD {
				f, _, err := w.ctl.ShmAttach(chShm, ipc.Read)
				lat[i] = time.Since(t0)
				if err != nil {
					return reply{}, err
				}
				f.Close()
			} else {
				err := w.ctl.Nop()
				lat[i] = time.Since(t0)
				if err != nil {
					return reply{}, err
				}
			}
		}
	} else {
		s, err := w.file(chCtl)
		if err != nil {
			return reply{}, err
		}
		fd := int(s.Fd())
		msg, err := requestBytes(c.FD)
		if err != nil {
			return reply{}, err
		}
		in := make([]byte, abi.MaxMessage)
		oob := make([]byte, syscalls.RightsSpace(abi.MaxFDs))
		var fds []int
		want := 0
		if c.FD {
			want = 1
		}
		for i := range c.N {
			t0 := time.Now()
			if _, err := syscalls.CtlSendmsg(fd, msg, nil, false); err != nil {
				return reply{}, err
			}
			m, _, err := syscalls.CtlRecvmsg(fd, in, oob, false)
			lat[i] = time.Since(t0)
			if err != nil {
				return reply{}, err
			}
			fds, err = syscalls.ParseRights(oob[:m.OOBN], fds[:0])
			if err != nil || len(fds) != want || m.N != len(msg) {
				return reply{}, fmt.Errorf("echo %d: %d bytes, %d descriptors (%v)", i, m.N, len(fds), err)
			}
			for _, fd := range fds {
				syscalls.Close(fd)
			}
		}
	}
	return summarize(lat), nil
}

// echo answers N round trips on the raw socket: each message goes back as
// it came, with a copy of the memfd descriptor for fd. It waits for a
// request in recvmsg(2) (Wait "recvmsg" or ""), in epoll_wait(2) first
// ("epoll"), or in Go's netpoller on a non-blocking copy of the socket, as
// pinfold's server does ("netpoll").
func (w *worker) echo(c command) (reply, error) {
	s, err := w.file(chCtl)
	if err != nil {
		return reply{}, err
	}
	fd := int(s.Fd())
	var oob []byte
	if c.FD {
		mf, err := w.file(chMemfd)
		if err != nil {
			return reply{}, err
		}
		oob = syscalls.AppendRights(nil, []int{int(mf.Fd())})
	}
	buf := make([]byte, abi.MaxMessage)
	switch c.Wait {
	case "", "recvmsg", "epoll":
		epoll := c.Wait == "epoll"
		if epoll && w.epfd == 0 {
			ep, err := syscalls.EpollCreate()
			if err != nil {
				return reply{}, err
			}
			if err := syscalls.EpollAdd(ep, fd); err != nil {
				return reply{}, err
			}
			w.epfd = ep
		}
		events := make([]syscalls.EpollEvent, 1)
		for range c.N {
			if epoll {
				if _, err := syscalls.EpollWait(w.epfd, events, -1); err != nil {
					return reply{}, err
				}
			}
			m, _, err := syscalls.CtlRecvmsg(fd, buf, nil, false)
			if err != nil {
				return reply{}, err
			}
			if _, err := syscalls.CtlSendmsg(fd, buf[:m.N], oob, false); err != nil {
				return reply{}, err
			}
		}
	case "netpoll":
		if w.pollable == nil {
			nfd, err := syscalls.DupCloexec(fd)
			if err != nil {
				return reply{}, err
			}
			if err := syscalls.SetNonblock(nfd); err != nil {
				return reply{}, err
			}
			w.pollable = os.NewFile(uintptr(nfd), "ctl-pollable")
			if w.rc, err = w.pollable.SyscallConn(); err != nil {
				return reply{}, err
			}
		}
		var m syscalls.CtlMsg
		var rerr, werr error
		read := func(fd uintptr) bool {
			var wouldBlock bool
			m, wouldBlock, rerr = syscalls.CtlRecvmsg(int(fd), buf, nil, true)
			return !wouldBlock
		}
		write := func(fd uintptr) bool {
			var wouldBlock bool
			wouldBlock, werr = syscalls.CtlSendmsg(int(fd), buf[:m.N], oob, true)
			return !wouldBlock
		}
		for range c.N {
			if err := w.rc.Read(read); err != nil {
				return reply{}, err
			}
			if rerr != nil {
				return reply{}, rerr
			}
			if err := w.rc.Write(write); err != nil {
				return reply{}, err
			}
			if werr != nil {
				return reply{}, werr
			}
		}
	default:
		return reply{}, fmt.Errorf("unknown wait %q", c.Wait)
	}
	return reply{}, nil
}

// mqOpens times N mq_open(2) calls of an existing queue (each descriptor
// closed, untimed). pinfold: the app's mq_open of bench/mq, which its
// seccomp filter hands to pinfold's broker. raw: mq_open of a queue this
// process created in its own ipc namespace: the kernel alone.
func (w *worker) mqOpens(c command) (reply, error) {
	name := chMQ
	if w.mode == "raw" {
		name = rawMQ
		if !w.rawMQ {
			fd, err := syscalls.MQOpenExclusive(rawMQ, 10, 1024)
			if err != nil {
				return reply{}, err
			}
			syscalls.Close(fd)
			w.rawMQ = true
		}
	}
	lat := make([]time.Duration, c.N)
	for i := range c.N {
		t0 := time.Now()
		fd, err := mqOpen(name, syscall.O_WRONLY)
		lat[i] = time.Since(t0)
		if err != nil {
			return reply{}, err
		}
		if fd <= 2 {
			// stdin, stdout and stderr are open: a descriptor below 3
			// is not a new one. Closing it would close the worker's
			// command or reply pipe.
			return reply{}, fmt.Errorf("call %d of %d: mq_open returned descriptor %d, which this process already had open (stdio): the answer to the notified syscall was lost", i+1, c.N, fd)
		}
		syscalls.Close(fd)
	}
	return summarize(lat), nil
}

// summarize reports the median, 99th percentile and mean of lat.
func summarize(lat []time.Duration) reply {
	if len(lat) == 0 {
		return reply{}
	}
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	slices.Sort(lat)
	return reply{
		P50:  lat[len(lat)/2].Nanoseconds(),
		P99:  lat[len(lat)*99/100].Nanoseconds(),
		Mean: sum.Nanoseconds() / int64(len(lat)),
	}
}
