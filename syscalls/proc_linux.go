package syscalls

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Credential and process-attribute wrappers for the init stage. Every call here
// acts on the calling thread only (capabilities, prctl flags and, unlike the
// syscall package's versions, the uid/gid calls too): the init stage runs on
// one locked OS thread and execs from it, so the exec'd app inherits exactly
// that thread's state and nothing else matters.

// SetResGID sets the real, effective and saved gid of the calling thread.
func SetResGID(gid uint32) error {
	return rawErr("setresgid", unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), uintptr(gid))
}

// SetResUID sets the real, effective and saved uid of the calling thread.
// The kernel clears the parent-death signal when credentials change: re-arm
// it with SetPdeathsig afterwards.
func SetResUID(uid uint32) error {
	return rawErr("setresuid", unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid))
}

// SetGroups sets the supplementary groups of the calling thread.
func SetGroups(gids []uint32) error {
	if len(gids) == 0 {
		return rawErr("setgroups", unix.SYS_SETGROUPS, 0, 0, 0)
	}
	return rawErr("setgroups", unix.SYS_SETGROUPS, uintptr(len(gids)), uintptrOf(gids), 0)
}

func rawErr(name string, trap, a1, a2, a3 uintptr) error {
	_, _, e := unix.RawSyscall(trap, a1, a2, a3)
	if e != 0 {
		return os.NewSyscallError(name, e)
	}
	return nil
}

// SetPdeathsig arranges for sig to be delivered when the thread that created
// the caller exits.
func SetPdeathsig(sig syscall.Signal) error {
	return prctl("prctl(PR_SET_PDEATHSIG)", unix.PR_SET_PDEATHSIG, uintptr(sig))
}

// SetNoNewPrivs sets no_new_privs: execve can never grant privileges again.
func SetNoNewPrivs() error {
	return prctl("prctl(PR_SET_NO_NEW_PRIVS)", unix.PR_SET_NO_NEW_PRIVS, 1)
}

// SetKeepCaps keeps permitted capabilities across a uid change away from 0.
func SetKeepCaps(on bool) error {
	v := uintptr(0)
	if on {
		v = 1
	}
	return prctl("prctl(PR_SET_KEEPCAPS)", unix.PR_SET_KEEPCAPS, v)
}

// SetDumpable controls core dumps and ptrace-attach by same-uid processes.
func SetDumpable(on bool) error {
	v := uintptr(0)
	if on {
		v = 1
	}
	return prctl("prctl(PR_SET_DUMPABLE)", unix.PR_SET_DUMPABLE, v)
}

// DropBoundingCap removes cap from the calling thread's bounding set.
// It needs CAP_SETPCAP, so it must come before the uid change.
func DropBoundingCap(capability uint) error {
	err := prctl("prctl(PR_CAPBSET_DROP)", unix.PR_CAPBSET_DROP, uintptr(capability))
	if errorIs(err, unix.EINVAL) {
		return nil // not a capability this kernel knows
	}
	return err
}

// ClearAmbientCaps empties the ambient capability set.
func ClearAmbientCaps() error {
	return prctl("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL)
}

// RaiseAmbientCap adds cap to the ambient set (it must be permitted and inheritable).
func RaiseAmbientCap(capability uint) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(capability), 0, 0, 0)
	if e != 0 {
		return os.NewSyscallError("prctl(PR_CAP_AMBIENT_RAISE)", e)
	}
	return nil
}

func prctl(name string, option, arg uintptr) error {
	_, _, e := unix.RawSyscall6(unix.SYS_PRCTL, option, arg, 0, 0, 0, 0)
	if e != 0 {
		return os.NewSyscallError(name, e)
	}
	return nil
}

// SetCaps sets the effective, permitted and inheritable sets of the calling
// thread to exactly caps (an empty list drops everything).
func SetCaps(caps []uint) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	for _, c := range caps {
		if c >= 64 {
			continue
		}
		data[c/32].Effective |= 1 << (c % 32)
		data[c/32].Permitted |= 1 << (c % 32)
		data[c/32].Inheritable |= 1 << (c % 32)
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capset", err)
	}
	return nil
}

// LastCap returns the highest capability number this kernel knows.
func LastCap() (uint, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
	if err != nil {
		return 0, err
	}
	return uint(n), nil
}

// Rlimit is one resource limit for SetRlimit.
type Rlimit struct {
	Resource   int
	Soft, Hard uint64
}

// SetRlimit sets a resource limit of the calling process.
func SetRlimit(r Rlimit) error {
	lim := unix.Rlimit{Cur: r.Soft, Max: r.Hard}
	if err := unix.Prlimit(0, r.Resource, &lim, nil); err != nil {
		return os.NewSyscallError("prlimit", err)
	}
	return nil
}

// Sethostname sets the hostname of the caller's UTS namespace.
func Sethostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return os.NewSyscallError("sethostname", err)
	}
	return nil
}

// UnshareCgroupNS moves the caller into a new cgroup namespace rooted at its
// current cgroups.
func UnshareCgroupNS() error {
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return os.NewSyscallError("unshare(CLONE_NEWCGROUP)", err)
	}
	return nil
}

// Setsid makes the caller a session leader.
func Setsid() error {
	if _, err := unix.Setsid(); err != nil {
		return os.NewSyscallError("setsid", err)
	}
	return nil
}

// Chdir changes the working directory.
func Chdir(dir string) error {
	return os.NewSyscallError("chdir", retry(func() error { return unix.Chdir(dir) }))
}

// Dup3 duplicates oldfd onto newfd; cloexec sets FD_CLOEXEC on the copy.
func Dup3(oldfd, newfd int, cloexec bool) error {
	flags := 0
	if cloexec {
		flags = unix.O_CLOEXEC
	}
	return os.NewSyscallError("dup3", retry(func() error { return unix.Dup3(oldfd, newfd, flags) }))
}

// DupHigh duplicates fd to the lowest free descriptor >= min, close-on-exec.
func DupHigh(fd, min int) (int, error) {
	nfd, err := retryN(func() (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, min) })
	if err != nil {
		return -1, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", err)
	}
	return nfd, nil
}

// CloseFrom closes every descriptor >= first.
func CloseFrom(first int) error {
	if err := unix.CloseRange(uint(first), ^uint(0), 0); err != nil {
		return os.NewSyscallError("close_range", err)
	}
	return nil
}

// CloseOnExecFrom marks every descriptor >= first close-on-exec.
func CloseOnExecFrom(first int) error {
	if err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return os.NewSyscallError("close_range", err)
	}
	return nil
}

// SetCloexec sets or clears FD_CLOEXEC on fd.
func SetCloexec(fd int, on bool) error {
	flags := 0
	if on {
		flags = unix.FD_CLOEXEC
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags); err != nil {
		return os.NewSyscallError("fcntl(F_SETFD)", err)
	}
	return nil
}

// Exec replaces the calling process image. It returns only on failure.
func Exec(path string, argv, env []string) error {
	return os.NewSyscallError("execve", unix.Exec(path, argv, env))
}

// Access reports whether the caller may access path with mode (unix.X_OK...).
func Access(path string, mode uint32) error {
	return unix.Faccessat(unix.AT_FDCWD, path, mode, unix.AT_EACCESS)
}

// ExecOK is the mode for Access that checks execute permission.
const ExecOK = unix.X_OK

// PidfdSendSignal sends sig to the process behind pidfd.
func PidfdSendSignal(pidfd int, sig syscall.Signal) error {
	if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil {
		return os.NewSyscallError("pidfd_send_signal", err)
	}
	return nil
}

// PidfdOpen returns a pidfd for pid.
func PidfdOpen(pid int) (int, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, os.NewSyscallError("pidfd_open", err)
	}
	return fd, nil
}

// Close closes a raw descriptor.
func Close(fd int) error {
	if err := unix.Close(fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

// SetChildSubreaper makes the caller the reaper of orphaned descendants.
func SetChildSubreaper() error {
	return prctl("prctl(PR_SET_CHILD_SUBREAPER)", unix.PR_SET_CHILD_SUBREAPER, 1)
}

// ProcStartTime returns field 22 of /proc/PID/stat (start time in clock
// ticks since boot), which together with the pid identifies a process
// across pid reuse.
func ProcStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, unix.EINVAL
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, unix.EINVAL
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

var rlimits = map[string]int{
	"RLIMIT_AS":         unix.RLIMIT_AS,
	"RLIMIT_CORE":       unix.RLIMIT_CORE,
	"RLIMIT_CPU":        unix.RLIMIT_CPU,
	"RLIMIT_DATA":       unix.RLIMIT_DATA,
	"RLIMIT_FSIZE":      unix.RLIMIT_FSIZE,
	"RLIMIT_LOCKS":      unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK":    unix.RLIMIT_MEMLOCK,
	"RLIMIT_MSGQUEUE":   unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE":       unix.RLIMIT_NICE,
	"RLIMIT_NOFILE":     unix.RLIMIT_NOFILE,
	"RLIMIT_NPROC":      unix.RLIMIT_NPROC,
	"RLIMIT_RSS":        unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO":     unix.RLIMIT_RTPRIO,
	"RLIMIT_RTTIME":     unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK":      unix.RLIMIT_STACK,
}

// RlimitNumber returns the resource number of an RLIMIT_* name.
func RlimitNumber(name string) (int, bool) {
	n, ok := rlimits[name]
	return n, ok
}

// SignalName returns "SIGKILL" for syscall.SIGKILL, or "" when unknown.
func SignalName(s syscall.Signal) string { return unix.SignalName(s) }

// Wait4 waits for child pid to exit and reaps it.
func Wait4(pid int) (syscall.WaitStatus, *unix.Rusage, error) {
	var ws unix.WaitStatus
	var ru unix.Rusage
	_, err := retryN(func() (int, error) { return unix.Wait4(pid, &ws, 0, &ru) })
	if err != nil {
		return 0, nil, os.NewSyscallError("wait4", err)
	}
	return syscall.WaitStatus(ws), &ru, nil
}

// UnshareNetNS moves the calling thread into a new network namespace.
func UnshareNetNS() error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return os.NewSyscallError("unshare(CLONE_NEWNET)", err)
	}
	return nil
}

// SetnsNet moves the calling thread into the network namespace behind fd.
func SetnsNet(fd int) error {
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return os.NewSyscallError("setns(CLONE_NEWNET)", err)
	}
	return nil
}

// sigchldInfo is siginfo_t as waitid fills it for a child (the SIGCHLD
// layout: pid, uid, status after the common header).
type sigchldInfo struct {
	Signo  int32
	Errno  int32
	Code   int32
	_      int32
	Pid    int32
	UID    uint32
	Status int32
	_      [100]byte
}

// WaitPidfd reaps the child behind pidfd if it has exited, without
// blocking (waitid(P_PIDFD, WEXITED|WNOHANG)). exited is false while the
// child runs. Pair it with the runtime poller (a pidfd becomes readable
// when its process exits) to wait for children without a thread each.
func WaitPidfd(pidfd int) (ws syscall.WaitStatus, exited bool, err error) {
	const pPidfd = 3 // P_PIDFD
	var info sigchldInfo
	_, err = retryN(func() (uintptr, error) {
		r, _, e := unix.Syscall6(unix.SYS_WAITID, pPidfd, uintptr(pidfd), uintptr(unsafe.Pointer(&info)), unix.WEXITED|unix.WNOHANG, 0, 0)
		if e != 0 {
			return r, e
		}
		return r, nil
	})
	if err != nil {
		return 0, false, os.NewSyscallError("waitid", err)
	}
	if info.Pid == 0 {
		return 0, false, nil
	}
	switch info.Code {
	case 1: // CLD_EXITED
		return syscall.WaitStatus(info.Status << 8), true, nil
	case 2: // CLD_KILLED
		return syscall.WaitStatus(info.Status), true, nil
	case 3: // CLD_DUMPED
		return syscall.WaitStatus(info.Status | 0x80), true, nil
	}
	return syscall.WaitStatus(info.Status), true, nil
}

// SetNonblock puts fd in non-blocking mode (for the runtime poller).
func SetNonblock(fd int) error {
	return os.NewSyscallError("fcntl(O_NONBLOCK)", unix.SetNonblock(fd, true))
}

// IsNonblock reports whether fd's open file description is non-blocking.
func IsNonblock(fd int) (bool, error) {
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return false, os.NewSyscallError("fcntl(F_GETFL)", err)
	}
	return fl&unix.O_NONBLOCK != 0, nil
}
