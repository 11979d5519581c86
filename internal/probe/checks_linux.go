package probe

import (
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"
)

// checks are the operations Collect attempts. Each is harmless even if it
// succeeds on a broken sandbox: see the comment of each.
var checks = map[string]func() string{
	CheckMountTmpfs:      mountTmpfs,
	CheckUmount:          umount,
	CheckUnshareNS:       func() string { return onOwnThread(func() string { return unshare(syscall.CLONE_NEWNS) }) },
	CheckUnshareUser:     func() string { return onOwnThread(func() string { return unshare(syscall.CLONE_NEWUSER) }) },
	CheckSetns:           setns,
	CheckSethostname:     sethostname,
	CheckSetdomainname:   setdomainname,
	CheckChroot:          func() string { return outcome(syscall.Chroot("/")) }, // "/" again: no change
	CheckPivotRoot:       pivotRoot,
	CheckSocketRaw:       func() string { return socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP) },
	CheckSocketPacket:    func() string { return socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0x0300) }, // htons(ETH_P_ALL)
	CheckSocketVsock:     func() string { return socket(40, syscall.SOCK_STREAM, 0) },                  // AF_VSOCK
	CheckKeyctl:          keyctl,
	CheckAddKey:          addKey,
	CheckBPF:             bpf,
	CheckPerfEventOpen:   perfEventOpen,
	CheckUserfaultfd:     userfaultfd,
	CheckIOUringSetup:    ioUringSetup,
	CheckPtraceAttach1:   ptraceAttach1,
	CheckPtraceTraceme:   ptraceTraceme,
	CheckProcessVMReadv1: processVMReadv1,
	CheckOpenByHandleAt:  openByHandleAt,
	CheckReboot:          reboot,
	CheckInitModule:      initModule,
	CheckKexecLoad:       kexecLoad,
	CheckSwapon:          swapon,
	CheckSettimeofday:    settimeofday,
	CheckClockSettime:    clockSettime,
	CheckPersonality:     personality,
	CheckCloneNewNS:      cloneNewNS,
	CheckUnknownSyscall:  func() string { return raw(1000, 0, 0, 0) },
	CheckMknodChar:       mknodChar,
	CheckWriteSysrq:      writeSysrq,
	CheckReadKcore:       readKcore,
	CheckWriteProcHost:   writeProcHostname,
	CheckUDPConnect:      udpConnect,
	CheckUDPSend:         udpSend,
	CheckFsopen:          func() string { return closeIfFD(raw(sysFsopen, uintptr(unsafe.Pointer(bytePtr("tmpfs"))), 0, 0)) },
}

// raw makes a system call and returns "ok" or the errno name; a
// successful call that returned a descriptor returns "ok:FD" so the caller
// can close it (see closeIfFD).
func raw(trap, a1, a2, a3 uintptr) string {
	r, _, e := syscall.Syscall(trap, a1, a2, a3)
	if e != 0 {
		return ErrnoName(e)
	}
	return "ok:" + strconv.Itoa(int(r))
}

func raw6(trap, a1, a2, a3, a4, a5, a6 uintptr) string {
	r, _, e := syscall.Syscall6(trap, a1, a2, a3, a4, a5, a6)
	if e != 0 {
		return ErrnoName(e)
	}
	return "ok:" + strconv.Itoa(int(r))
}

// closeIfFD closes the descriptor of an "ok:FD" outcome and returns "ok".
func closeIfFD(s string) string {
	if len(s) > 3 && s[:3] == "ok:" {
		if fd, err := strconv.Atoi(s[3:]); err == nil && fd > 2 {
			syscall.Close(fd)
		}
		return OK
	}
	return s
}

// plain drops the return value of an "ok:N" outcome.
func plain(s string) string {
	if len(s) > 3 && s[:3] == "ok:" {
		return OK
	}
	return s
}

// signed passes a negative int as a system call argument.
func signed(n int) uintptr { return uintptr(n) }

func bytePtr(s string) *byte {
	p, err := syscall.BytePtrFromString(s)
	if err != nil {
		panic(err)
	}
	return p
}

// onOwnThread runs fn on a thread of its own that exits afterwards, for
// operations that change the calling thread (unshare, setns).
func onOwnThread(fn func() string) string {
	c := make(chan string)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		c <- fn()
	}()
	return <-c
}

func unshare(flags uintptr) string {
	return plain(raw(syscall.SYS_UNSHARE, flags, 0, 0))
}

// tempDir makes a fresh directory under /tmp for the mount checks.
func tempDir(tag string) (string, bool) {
	d, err := os.MkdirTemp("/tmp", ".pinfold-probe-"+tag+"-")
	return d, err == nil
}

// mountTmpfs mounts a tmpfs on a directory the probe just created, and
// unmounts it again if that worked.
func mountTmpfs() string {
	d, ok := tempDir("mnt")
	if !ok {
		return "skipped: cannot create a directory in /tmp"
	}
	defer os.Remove(d)
	err := syscall.Mount("pinfold-probe", d, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "size=64k")
	if err == nil {
		syscall.Unmount(d, syscall.MNT_DETACH)
	}
	return outcome(err)
}

// umount unmounts a directory the probe created, which is not a mount
// point: EINVAL when the kernel lets the caller try, EPERM otherwise.
func umount() string {
	d, ok := tempDir("umount")
	if !ok {
		return "skipped: cannot create a directory in /tmp"
	}
	defer os.Remove(d)
	return outcome(syscall.Unmount(d, 0))
}

// setns joins the network namespace the probe is already in: no change
// even when allowed.
func setns() string {
	return onOwnThread(func() string {
		fd, err := syscall.Open("/proc/self/ns/net", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return "skipped: open /proc/self/ns/net: " + outcome(err)
		}
		defer syscall.Close(fd)
		return plain(raw(sysSetns, uintptr(fd), syscall.CLONE_NEWNET, 0))
	})
}

func utsname() (node, domain string) {
	var uts syscall.Utsname
	if err := syscall.Uname(&uts); err != nil {
		return "", ""
	}
	return cstring(uts.Nodename[:]), cstring(uts.Domainname[:])
}

// sethostname sets the hostname to what it is.
func sethostname() string {
	node, _ := utsname()
	if node == "" {
		return "skipped: uname failed"
	}
	return outcome(syscall.Sethostname([]byte(node)))
}

// setdomainname sets the NIS domain name to what it is.
func setdomainname() string {
	_, domain := utsname()
	b := []byte(domain + "\x00")
	return plain(raw(sysSetdomainname, uintptr(unsafe.Pointer(&b[0])), uintptr(len(domain)), 0))
}

// pivotRoot names paths that do not exist.
func pivotRoot() string {
	p := bytePtr("/.pinfold-probe-nonexistent")
	return plain(raw(syscall.SYS_PIVOT_ROOT, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(p)), 0))
}

func socket(family, typ, proto int) string {
	fd, err := syscall.Socket(family, typ|syscall.SOCK_CLOEXEC, proto)
	if err == nil {
		syscall.Close(fd)
	}
	return outcome(err)
}

// keyctl asks for the id of the session keyring without creating one.
func keyctl() string {
	const getKeyringID, sessionKeyring = 0, -3
	return plain(raw(syscall.SYS_KEYCTL, getKeyringID, signed(sessionKeyring), 0))
}

// addKey adds a key to the process keyring, which ends with the process.
func addKey() string {
	const processKeyring = -2
	payload := []byte("x")
	return plain(raw6(syscall.SYS_ADD_KEY,
		uintptr(unsafe.Pointer(bytePtr("user"))), uintptr(unsafe.Pointer(bytePtr("pinfold-probe"))),
		uintptr(unsafe.Pointer(&payload[0])), 1, signed(processKeyring), 0))
}

// bpf asks to create a map with an all-zero (invalid) attribute.
func bpf() string {
	var attr [128]byte
	return closeIfFD(raw(sysBPF, 0, uintptr(unsafe.Pointer(&attr)), uintptr(len(attr))))
}

// perfEventOpen passes no attribute: EFAULT when the call is allowed.
func perfEventOpen() string {
	return closeIfFD(raw6(syscall.SYS_PERF_EVENT_OPEN, 0, 0, ^uintptr(0), ^uintptr(0), 0, 0))
}

// userfaultfd asks for a user-mode-only descriptor, which unprivileged
// processes may have when the syscall is allowed.
func userfaultfd() string {
	const userModeOnly = 1
	return closeIfFD(raw(sysUserfaultfd, syscall.O_CLOEXEC|userModeOnly, 0, 0))
}

// ioUringSetup creates a one-entry ring and closes it.
func ioUringSetup() string {
	var params [120]byte
	return closeIfFD(raw(sysIOUringSetup, 1, uintptr(unsafe.Pointer(&params)), 0))
}

// ptraceAttach1 seizes pid 1 (PTRACE_SEIZE: the permission check of
// PTRACE_ATTACH without stopping the tracee; the kernel detaches when the
// probe exits). The probe must not be pid 1 itself.
func ptraceAttach1() string {
	if os.Getpid() == 1 {
		return "skipped: the probe is pid 1"
	}
	const ptraceSeize = 0x4206
	return plain(raw6(syscall.SYS_PTRACE, ptraceSeize, 1, 0, 0, 0, 0))
}

// ptraceTraceme runs PTRACE_TRACEME in a forked child that exits at once.
func ptraceTraceme() string {
	pid, e := rawClone(0, childTraceme)
	if e != 0 {
		return "skipped: fork: " + ErrnoName(e)
	}
	ws, err := reap(pid)
	if err != nil {
		return "skipped: wait: " + outcome(err)
	}
	if !ws.Exited() {
		return "skipped: child did not exit: " + strconv.Itoa(int(ws))
	}
	return errnoOutcome(syscall.Errno(ws.ExitStatus()))
}

// processVMReadv reads 8 bytes at a (probably unmapped) address of pid 1:
// EFAULT (or success) when allowed.
func processVMReadv1() string {
	if os.Getpid() == 1 {
		return "skipped: the probe is pid 1"
	}
	var buf [8]byte
	local := syscall.Iovec{Base: &buf[0], Len: 8}
	remote := struct{ base, len uintptr }{0x10000, 8}
	return plain(raw6(sysProcessVMReadv, 1, uintptr(unsafe.Pointer(&local)), 1, uintptr(unsafe.Pointer(&remote)), 1, 0))
}

// openByHandleAt opens a made-up handle.
func openByHandleAt() string {
	h := struct {
		bytes uint32
		typ   int32
		data  [8]byte
	}{bytes: 8, typ: 1}
	const atFDCWD = -100
	return closeIfFD(raw(sysOpenByHandleAt, signed(atFDCWD), uintptr(unsafe.Pointer(&h)), syscall.O_RDONLY))
}

// reboot passes invalid magic numbers: EINVAL when allowed, never a reboot.
func reboot() string {
	return plain(raw6(syscall.SYS_REBOOT, 0, 0, 0, 0, 0, 0))
}

// initModule passes no image.
func initModule() string {
	return plain(raw(syscall.SYS_INIT_MODULE, 0, 0, uintptr(unsafe.Pointer(bytePtr("")))))
}

// kexecLoad passes an unknown flag and too many segments: EINVAL when
// allowed. (No segments would unload a loaded crash kernel.)
func kexecLoad() string {
	return plain(raw6(syscall.SYS_KEXEC_LOAD, 0, 0x7fffffff, 0, 0x8000, 0, 0))
}

// swapon names a file that does not exist.
func swapon() string {
	return plain(raw(syscall.SYS_SWAPON, uintptr(unsafe.Pointer(bytePtr("/.pinfold-probe-nonexistent"))), 0, 0))
}

// settimeofday passes neither a time nor a zone: no change when allowed.
func settimeofday() string {
	return plain(raw(syscall.SYS_SETTIMEOFDAY, 0, 0, 0))
}

// clockSettime names a clock that does not exist: EINVAL when allowed.
func clockSettime() string {
	var ts syscall.Timespec
	return plain(raw(syscall.SYS_CLOCK_SETTIME, 0x7fff, uintptr(unsafe.Pointer(&ts)), 0))
}

// personality sets ADDR_NO_RANDOMIZE and restores the old persona if that
// worked.
func personality() string {
	const addrNoRandomize = 0x0040000
	old, _, e := syscall.RawSyscall(syscall.SYS_PERSONALITY, addrNoRandomize, 0, 0)
	if e != 0 {
		return ErrnoName(e)
	}
	syscall.RawSyscall(syscall.SYS_PERSONALITY, old, 0, 0)
	return OK
}

// cloneNewNS clones a child in a new mount namespace; the child exits at
// once.
func cloneNewNS() string {
	pid, e := rawClone(syscall.CLONE_NEWNS, childExit)
	if e != 0 {
		return ErrnoName(e)
	}
	reap(pid)
	return OK
}

// mknodChar makes /dev/null's device node in /tmp and removes it.
func mknodChar() string {
	p := "/tmp/.pinfold-probe-null-" + strconv.Itoa(os.Getpid())
	err := syscall.Mknod(p, syscall.S_IFCHR|0o600, 1<<8|3)
	if err == nil {
		syscall.Unlink(p)
	}
	return outcome(err)
}

// writeSysrq writes 'h' (print the help text to the kernel log).
func writeSysrq() string {
	f, err := os.OpenFile("/proc/sysrq-trigger", os.O_WRONLY, 0)
	if err != nil {
		return outcome(err)
	}
	defer f.Close()
	_, err = f.Write([]byte("h"))
	return outcome(err)
}

// readKcore reads the first bytes of the kernel's memory image.
func readKcore() string {
	f, err := os.Open("/proc/kcore")
	if err != nil {
		return outcome(err)
	}
	defer f.Close()
	var buf [64]byte
	n, err := f.Read(buf[:])
	if n > 0 {
		return OK
	}
	if err != nil && err.Error() != "EOF" {
		return outcome(err)
	}
	return Empty
}

// writeProcHostname writes the current hostname back.
func writeProcHostname() string {
	node, _ := utsname()
	f, err := os.OpenFile("/proc/sys/kernel/hostname", os.O_WRONLY, 0)
	if err != nil {
		return outcome(err)
	}
	defer f.Close()
	_, err = f.Write([]byte(node + "\n"))
	return outcome(err)
}

// testNet is 192.0.2.1 (TEST-NET-1, reserved for documentation), port 53.
var testNet = &syscall.SockaddrInet4{Port: 53, Addr: [4]byte{192, 0, 2, 1}}

func udpConnect() string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "skipped: socket: " + outcome(err)
	}
	defer syscall.Close(fd)
	return outcome(syscall.Connect(fd, testNet))
}

func udpSend() string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return "skipped: socket: " + outcome(err)
	}
	defer syscall.Close(fd)
	return outcome(syscall.Sendto(fd, []byte{0}, 0, testNet))
}
