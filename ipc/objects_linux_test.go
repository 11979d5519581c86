package ipc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/syscalls"
)

var allGrants = Grants{
	Create:     []CreateGrant{{Names: []string{"**"}, Kinds: AllKinds}},
	Attach:     []AttachGrant{{Names: []string{"**"}, Kinds: AllKinds, Access: ReadWrite}},
	MaxObjects: 64,
	MaxBytes:   1 << 30,
}

func fcntlFlags(t *testing.T, fd int) int {
	t.Helper()
	r, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFL, 0)
	if e != 0 {
		t.Fatal(e)
	}
	return int(r)
}

func TestShm(t *testing.T) {
	b, _ := newBroker(t, Options{})
	a := join(t, b, "a", "p", allGrants)
	c := join(t, b, "c", "q", allGrants)
	const size = 3 * 4096
	wfd, err := a.ShmCreate("s", size)
	wantErrno(t, "create", err, 0)
	defer closeFD(t, wfd)
	if fcntlFlags(t, wfd)&syscall.O_ACCMODE != syscall.O_RDWR {
		t.Error("the creator's descriptor is not O_RDWR")
	}
	_, err = a.ShmCreate("s", size)
	wantErrno(t, "create again", err, syscall.EEXIST)

	rfd, got, err := c.ShmAttach("s", Read)
	wantErrno(t, "attach read", err, 0)
	defer closeFD(t, rfd)
	if got != size {
		t.Errorf("attach size %d, want %d", got, size)
	}
	if fcntlFlags(t, rfd)&syscall.O_ACCMODE != syscall.O_RDONLY {
		t.Error("the read descriptor is not O_RDONLY")
	}
	seals, err := syscalls.Seals(rfd)
	if err != nil {
		t.Fatal(err)
	}
	want := syscalls.SealGrow | syscalls.SealShrink | syscalls.SealSeal
	if seals&want != want {
		t.Errorf("seals %#x, want at least %#x", seals, want)
	}

	// Data written through the creator's mapping is seen through the
	// read-only one.
	wm, err := syscall.Mmap(wfd, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(wm)
	rm, err := syscall.Mmap(rfd, 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(rm)
	copy(wm[size-5:], "hello")
	if string(rm[size-5:]) != "hello" {
		t.Errorf("read mapping sees %q", rm[size-5:])
	}

	// The read-only descriptor cannot write, map writable or resize.
	if _, err := syscall.Mmap(rfd, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED); !errors.Is(err, syscall.EACCES) {
		t.Errorf("mmap(PROT_WRITE, MAP_SHARED) of a read attach: %v, want EACCES", err)
	}
	if _, err := syscall.Write(rfd, []byte("x")); !errors.Is(err, syscall.EBADF) {
		t.Errorf("write to a read attach: %v, want EBADF", err)
	}
	if err := syscall.Ftruncate(rfd, 0); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("ftruncate of a read attach: %v, want EINVAL", err)
	}
	// The seals hold for the read-write descriptor too.
	for _, n := range []int64{0, size + 4096} {
		if err := syscall.Ftruncate(wfd, n); !errors.Is(err, syscall.EPERM) {
			t.Errorf("ftruncate(%d) of sealed shm: %v, want EPERM", n, err)
		}
	}
	if err := syscalls.AddSeals(wfd, syscalls.SealWrite); !errors.Is(err, syscall.EPERM) {
		t.Errorf("adding a seal: %v, want EPERM", err)
	}
	// Mode 0: nobody without CAP_DAC_OVERRIDE reopens it (see
	// TestReadOnlyCannotBeReopened).
	var st syscall.Stat_t
	if err := syscall.Fstat(rfd, &st); err != nil || st.Mode&0o7777 != 0 || st.Uid != 0 {
		t.Errorf("shm mode %o uid %d (%v), want mode 0 owned by root", st.Mode&0o7777, st.Uid, err)
	}
}

func TestRegion(t *testing.T) {
	b, _ := newBroker(t, Options{})
	a := join(t, b, "a", "p", allGrants)
	c := join(t, b, "c", "q", allGrants)
	const size = 10000 // not a page multiple: the tmpfs is rounded up
	page := int64(os.Getpagesize())
	limit := (size + page - 1) / page * page
	mountsBefore := readMountinfo(t)

	wfd, got, created, err := a.RegionMap("r", size, ReadWrite)
	wantErrno(t, "create", err, 0)
	defer closeFD(t, wfd)
	if got != size || !created {
		t.Errorf("create: size %d created %v", got, created)
	}
	rfd, got, created, err := c.RegionMap("r", size*2, Read)
	wantErrno(t, "attach", err, 0)
	defer closeFD(t, rfd)
	if got != size || created {
		t.Errorf("attach: size %d created %v, want the existing %d", got, created, size)
	}

	// No mount table shows the region's tmpfs.
	mnt := fdMountID(t, wfd)
	after := readMountinfo(t)
	if !slices.Equal(mountsBefore, after) {
		t.Errorf("mountinfo changed:\nbefore %v\nafter  %v", mountsBefore, after)
	}
	for _, m := range after {
		if strings.HasPrefix(m, mnt+" ") {
			t.Errorf("the region's mount %s is in /proc/self/mountinfo: %s", mnt, m)
		}
	}

	// Writes up to the tmpfs size work; past it, even after growing the
	// file, they fail with ENOSPC.
	buf := make([]byte, limit)
	if n, err := syscall.Pwrite(wfd, buf, 0); err != nil || int64(n) != limit {
		t.Fatalf("pwrite %d bytes: %d %v", limit, n, err)
	}
	if err := syscall.Ftruncate(wfd, limit*4); err != nil {
		t.Fatalf("growing the file (sparse): %v", err)
	}
	if _, err := syscall.Pwrite(wfd, buf[:page], limit); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("pwrite past the region's tmpfs: %v, want ENOSPC", err)
	}
	if _, err := syscall.Pwrite(rfd, buf[:1], 0); !errors.Is(err, syscall.EBADF) {
		t.Errorf("pwrite on a read attach: %v, want EBADF", err)
	}
	if _, err := syscall.Mmap(rfd, 0, int(page), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED); !errors.Is(err, syscall.EACCES) {
		t.Errorf("mmap(PROT_WRITE, MAP_SHARED) of a read attach: %v, want EACCES", err)
	}
	if info, err := c.Stat("r"); err != nil || info.Size != limit*4 {
		t.Errorf("stat after growing: %+v %v", info, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(rfd, &st); err != nil || st.Mode&0o7777 != 0 || st.Nlink != 0 {
		t.Errorf("region file mode %o nlink %d (%v), want mode 0 and no name", st.Mode&0o7777, st.Nlink, err)
	}
}

// readMountinfo returns this process's mount table lines.
func readMountinfo(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// fdMountID returns the mount id of the file fd refers to (fdinfo mnt_id).
func fdMountID(t *testing.T, fd int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "mnt_id:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no mnt_id in fdinfo")
	return ""
}

func TestMQ(t *testing.T) {
	b, _ := newBroker(t, Options{})
	a := join(t, b, "a", "p", allGrants)
	c := join(t, b, "c", "q", allGrants)
	// Past the kernel's default limits (10 messages, 8 KiB), which the
	// broker raises in its own ipc namespace; within RLIMIT_MSGQUEUE
	// (800 KiB unless the broker could raise it).
	attr := MQAttr{MaxMsg: 20, MsgSize: 16384}
	wfd, got, created, err := a.MQOpen("m", attr, Write, 0)
	wantErrno(t, "create", err, 0)
	defer closeFD(t, wfd)
	if got != attr || !created {
		t.Errorf("create: %+v created %v", got, created)
	}
	_, _, _, err = c.MQOpen("m", attr, Read, MQExclusive)
	wantErrno(t, "exclusive", err, syscall.EEXIST)
	rfd, got, created, err := c.MQOpen("m", MQAttr{MaxMsg: 1, MsgSize: 1}, Read, MQNonblock)
	wantErrno(t, "attach", err, 0)
	defer closeFD(t, rfd)
	if got != attr || created {
		t.Errorf("attach: %+v created %v, want the existing %+v", got, created, attr)
	}
	buf := make([]byte, attr.MsgSize)
	if _, _, err := syscalls.MQReceive(rfd, buf); !errors.Is(err, syscall.EAGAIN) {
		t.Errorf("receive on an empty non-blocking queue: %v, want EAGAIN", err)
	}
	if err := syscalls.MQSend(wfd, []byte("hi"), 3); err != nil {
		t.Fatal(err)
	}
	n, prio, err := syscalls.MQReceive(rfd, buf)
	if err != nil || string(buf[:n]) != "hi" || prio != 3 {
		t.Errorf("receive: %q %d %v", buf[:n], prio, err)
	}
	if err := syscalls.MQSend(rfd, []byte("x"), 0); !errors.Is(err, syscall.EBADF) {
		t.Errorf("send on a read attach: %v, want EBADF", err)
	}
	if _, _, err := syscalls.MQReceive(wfd, buf); !errors.Is(err, syscall.EBADF) {
		t.Errorf("receive on a write attach: %v, want EBADF", err)
	}
	// The writer's descriptor stayed blocking: non-blocking is per
	// descriptor.
	if a, err := syscalls.MQGetAttr(wfd); err != nil || a.Flags&syscall.O_NONBLOCK != 0 || a.MaxMsg != attr.MaxMsg {
		t.Errorf("writer attr %+v %v", a, err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(rfd, &st); err != nil || st.Mode&0o7777 != 0 {
		t.Errorf("queue mode %o (%v), want 0", st.Mode&0o7777, err)
	}
}

// TestMQAcrossIPCNamespaces passes broker queues to a process in its own
// ipc namespace, and checks that the broker's queues never show in the
// host's ipc namespace and live in one of their own.
func TestMQAcrossIPCNamespaces(t *testing.T) {
	b, _ := newBroker(t, Options{})
	a := join(t, b, "a", "p", allGrants)
	peer := join(t, b, "peer", "q", allGrants)
	attr := MQAttr{MaxMsg: 4, MsgSize: 64}
	upR, _, _, err := a.MQOpen("up", attr, Read, 0)
	wantErrno(t, "up", err, 0)
	defer closeFD(t, upR)
	downW, _, _, err := a.MQOpen("down", attr, Write, 0)
	wantErrno(t, "down", err, 0)
	defer closeFD(t, downW)
	upW, _, _, err := peer.MQOpen("up", MQAttr{}, Write, 0)
	wantErrno(t, "peer up", err, 0)
	downR, _, _, err := peer.MQOpen("down", MQAttr{}, Read, 0)
	wantErrno(t, "peer down", err, 0)
	if err := syscalls.MQSend(downW, []byte("to peer"), 2); err != nil {
		t.Fatal(err)
	}

	f3, f4 := os.NewFile(uintptr(upW), "up"), os.NewFile(uintptr(downR), "down")
	cmd := roleCmd(t, "mqpeer", []*os.File{f3, f4})
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWIPC}
	out, err := cmd.Output()
	f3.Close()
	f4.Close()
	if err != nil {
		t.Fatalf("peer: %v: %s", err, cmd.Stderr)
	}
	if got := strings.TrimSpace(string(out)); got != "to peer/2" {
		t.Errorf("peer received %q", got)
	}
	buf := make([]byte, attr.MsgSize)
	n, prio, err := syscalls.MQReceive(upR, buf)
	if err != nil || string(buf[:n]) != "from peer" || prio != 7 {
		t.Errorf("received %q prio %d: %v", buf[:n], prio, err)
	}

	// The host's ipc namespace has no queue of the broker's.
	list := roleCmd(t, "mqlist", nil)
	list.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	out, err = list.Output()
	if err != nil {
		t.Fatalf("mqlist: %v: %s", err, list.Stderr)
	}
	if strings.Contains(string(out), "pinfold") {
		t.Errorf("the host's ipc namespace shows broker queues:\n%s", out)
	}
	// One thread of this process lives in another ipc namespace: the
	// broker's, which ends with the broker.
	if n := foreignIPCThreads(t); n != 1 {
		t.Errorf("%d threads in another ipc namespace, want 1", n)
	}
	b.Close()
	deadline := time.Now().Add(10 * time.Second)
	for foreignIPCThreads(t) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the broker's ipc namespace thread outlived Close")
		}
		time.Sleep(time.Millisecond)
	}
}

// foreignIPCThreads counts this process's threads whose ipc namespace is
// not the main thread's.
func foreignIPCThreads(t *testing.T) int {
	t.Helper()
	own, err := os.Readlink(fmt.Sprintf("/proc/self/task/%d/ns/ipc", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/ipc")
		if err == nil && ns != own {
			n++
		}
	}
	return n
}

// TestReadOnlyCannotBeReopened hands read-only descriptors of each kind to
// a process that is uid 65534, then to one that is uid 0 without
// capabilities, and has each try to reopen them for writing through
// /proc/self/fd, map them writable, write and resize them. Broker objects
// have mode 0, so only CAP_DAC_OVERRIDE (which apps never have) reopens
// them; as a control, this test process (root with capabilities) can.
func TestReadOnlyCannotBeReopened(t *testing.T) {
	b, _ := newBroker(t, Options{})
	a := join(t, b, "a", "p", allGrants)
	c := join(t, b, "c", "q", allGrants)
	wantErrno(t, "shm", a.Create(Channel{Name: "s", Kind: Shm, Size: 8192}), 0)
	wantErrno(t, "region", a.Create(Channel{Name: "r", Kind: Region, Size: 8192}), 0)
	wantErrno(t, "mq", a.Create(Channel{Name: "m", Kind: MQ, MaxMsg: 2, MsgSize: 16}), 0)
	wantErrno(t, "pipe", a.Create(Channel{Name: "p", Kind: Pipe}), 0)
	var files []*os.File
	var fds []string
	for i, ch := range []Channel{
		{Name: "s", Kind: Shm, Access: Read},
		{Name: "r", Kind: Region, Access: Read},
		{Name: "m", Kind: MQ, Access: Read},
		{Name: "p", Kind: Pipe, Access: Read},
	} {
		fd, err := c.OpenChannel(ch)
		wantErrno(t, "attach "+ch.Name, err, 0)
		// Control: root with CAP_DAC_OVERRIDE reopens it read-write.
		nfd, err := syscall.Open("/proc/self/fd/"+strconv.Itoa(fd), syscall.O_WRONLY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
		if err != nil {
			t.Fatalf("control: root cannot reopen %s for writing: %v", ch.Name, err)
		}
		closeFD(t, nfd)
		f := os.NewFile(uintptr(fd), ch.Name)
		defer f.Close()
		files = append(files, f)
		fds = append(fds, fmt.Sprintf("%d:%v", 3+i, ch.Kind))
	}
	for _, cred := range []string{"uid65534", "root-nocaps"} {
		t.Run(cred, func(t *testing.T) {
			cmd := roleCmd(t, "reopen", files, "PINFOLD_IPC_CRED="+cred, "PINFOLD_IPC_FDS="+strings.Join(fds, ","))
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: %s", err, cmd.Stderr)
			}
		})
	}
}

// TestMemoryCharging checks what the package doc claims about memory: the
// pages of shared memory are charged to the memory cgroup of the process
// that touches them, pipe buffers to the writer's, queued messages to the
// sender's; none to the broker's.
func TestMemoryCharging(t *testing.T) {
	b, _ := newBroker(t, Options{})
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var memPath string
	for line := range strings.SplitSeq(string(own), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && slices.Contains(strings.Split(parts[1], ","), "memory") {
			memPath = parts[2]
		}
	}
	root := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(root + "/memory.usage_in_bytes"); memPath == "" || err != nil {
		t.Skip("no cgroup v1 memory controller on this host")
	}
	cg := fmt.Sprintf("%s%s/pinfold-ipc-test-%d", root, memPath, os.Getpid())
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscalls.Rmdir(cg); err != nil {
			t.Errorf("removing the test cgroup: %v", err)
		}
	}()
	usage := func(file string) int64 {
		t.Helper()
		v, err := os.ReadFile(cg + "/" + file)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	a := join(t, b, "a", "p", allGrants)
	const shmSize = 32 << 20
	shm, err := a.ShmCreate("s", shmSize)
	wantErrno(t, "shm", err, 0)
	shmFile := os.NewFile(uintptr(shm), "shm")
	defer shmFile.Close()
	pr, err := a.PipeOpen("p", Read)
	wantErrno(t, "pipe read", err, 0)
	defer closeFD(t, pr)
	pw, err := a.PipeOpen("p", Write)
	wantErrno(t, "pipe write", err, 0)
	pipeFile := os.NewFile(uintptr(pw), "pipe")
	defer pipeFile.Close()
	const msgSize, msgs = 8192, 64
	mq, _, _, err := a.MQOpen("m", MQAttr{MaxMsg: msgs, MsgSize: msgSize}, Write, 0)
	wantErrno(t, "mq", err, 0)
	mqFile := os.NewFile(uintptr(mq), "mq")
	defer mqFile.Close()
	files := []*os.File{shmFile, pipeFile, mqFile}
	cmd := roleCmd(t, "toucher", files)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		f.Close()
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("toucher: %v: %s", err, cmd.Stderr)
		}
	}()
	if err := os.WriteFile(cg+"/cgroup.procs", []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	replies := bufio.NewScanner(stdout)
	do := func(command string) {
		t.Helper()
		fmt.Fprintln(stdin, command)
		if !replies.Scan() || replies.Text() != "ok" {
			t.Fatalf("toucher %q: %s", command, cmd.Stderr)
		}
	}
	memBefore := usage("memory.usage_in_bytes")
	do(fmt.Sprintf("shm %d", shmSize))
	d := usage("memory.usage_in_bytes") - memBefore
	t.Logf("touching %d bytes of shm: toucher's memory cgroup +%d bytes", shmSize, d)
	if d < shmSize {
		t.Errorf("touching %d bytes of shm grew the toucher's cgroup by %d", shmSize, d)
	}
	kmemBefore := usage("memory.kmem.usage_in_bytes")
	do("pipe 65536")
	d = usage("memory.kmem.usage_in_bytes") - kmemBefore
	t.Logf("writing 64 KiB to a pipe: writer's kernel memory +%d bytes", d)
	if d < 65536 {
		t.Errorf("writing 64 KiB to a pipe grew the writer's kernel memory by %d", d)
	}
	kmemBefore = usage("memory.kmem.usage_in_bytes")
	do(fmt.Sprintf("mq %d", msgs))
	d = usage("memory.kmem.usage_in_bytes") - kmemBefore
	t.Logf("sending %d messages of %d bytes: sender's kernel memory +%d bytes", msgs, msgSize, d)
	if d < msgs*msgSize {
		t.Errorf("sending %d bytes of messages grew the sender's kernel memory by %d", msgs*msgSize, d)
	}
}

// TestKernelRefusal: when the kernel refuses an object (here a queue past
// RLIMIT_MSGQUEUE, lowered for the test), the app gets ENOSPC with the
// reason, and the reservation is undone: no object, no charge, the name
// free.
func TestKernelRefusal(t *testing.T) {
	b, rec := newBroker(t, Options{})
	a := join(t, b, "a", "p", allGrants)
	res, ok := syscalls.RlimitNumber("RLIMIT_MSGQUEUE")
	if !ok {
		t.Fatal("no RLIMIT_MSGQUEUE")
	}
	soft, hard, err := syscalls.MsgQueueRlimit()
	if err != nil {
		t.Fatal(err)
	}
	if err := syscalls.SetRlimit(syscalls.Rlimit{Resource: res, Soft: 4096, Hard: hard}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := syscalls.SetRlimit(syscalls.Rlimit{Resource: res, Soft: soft, Hard: hard}); err != nil {
			t.Error(err)
		}
	}()
	_, _, _, err = a.MQOpen("m", MQAttr{MaxMsg: 8, MsgSize: 1024}, Read, 0)
	wantErrno(t, "queue past RLIMIT_MSGQUEUE", err, syscall.ENOSPC)
	if e, ok := rec.last(Denied); !ok || !strings.Contains(e.Reason, "RLIMIT_MSGQUEUE") {
		t.Errorf("denied event %+v", e)
	}
	if st, self := b.Stats(), a.Self(); st.Objects != 0 || self.Objects != 0 || self.Bytes != 0 {
		t.Errorf("after the refusal: %+v %+v", st, self)
	}
	wantErrno(t, "the name is free", a.Create(Channel{Name: "m", Kind: Pipe}), 0)
}
