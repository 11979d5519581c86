package seccomp

import (
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// pinfold's default profile.
//
// It is an allowlist, never more permissive than Docker's default profile for
// a container without capabilities (a test checks that every name it allows
// is allowed there too), and stricter where an app has no use for a syscall
// and the kernel has a history with it. Three answers:
//
//   - allowed: the groups below, some with argument conditions;
//   - EPERM:  syscalls that are known to be dangerous, so that a program
//     sees "not permitted" and reports it rather than thinking the
//     feature is missing;
//   - ENOSYS: everything else, including syscalls newer than this list, so
//     that they look absent and libc falls back to older interfaces
//     (glibc's clone3 -> clone fallback relies on it).
//
// Only the native architecture is allowed. A 64-bit x86 process can still
// enter the kernel through the 32-bit (int 0x80) and x32 syscall entry
// paths, each with its own syscall table and its own history of escapes;
// nothing an app needs uses them, so a syscall made through them kills the
// process (libseccomp's bad-architecture action, set by Compile).

// group is a set of syscalls with one purpose.
type group struct {
	purpose string
	names   []string
}

// allowedGroups are allowed without conditions.
var allowedGroups = []group{
	{"process lifecycle", []string{
		"execve", "execveat", "exit", "exit_group", "fork", "vfork",
		"wait4", "waitid", "kill", "tkill", "tgkill",
		"getpid", "gettid", "getppid", "getpgid", "getpgrp", "setpgid", "getsid", "setsid",
		"set_tid_address", "set_robust_list", "get_robust_list", "rseq", "restart_syscall",
		"pidfd_open", "pidfd_send_signal", "prctl", "arch_prctl",
	}},
	{"signals", []string{
		"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
		"rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
		"sigaltstack", "signalfd", "signalfd4", "pause", "alarm",
	}},
	{"memory", []string{
		"brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore",
		"mlock", "mlock2", "mlockall", "munlock", "munlockall", "membarrier", "memfd_create",
	}},
	{"threads and synchronisation", []string{
		"futex", "futex_waitv", "sched_yield",
		"sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
		"sched_getscheduler", "sched_setscheduler", "sched_getattr", "sched_setattr",
		"sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval",
		"getpriority", "setpriority", "ioprio_get", "ioprio_set", "getcpu",
	}},
	{"time and timers", []string{
		"clock_gettime", "clock_getres", "clock_nanosleep", "gettimeofday", "time", "nanosleep",
		"getitimer", "setitimer", "timer_create", "timer_delete", "timer_gettime", "timer_settime",
		"timer_getoverrun", "timerfd_create", "timerfd_gettime", "timerfd_settime", "times",
	}},
	{"file descriptor I/O", []string{
		"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
		"lseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "flock",
		"fsync", "fdatasync", "sync", "syncfs", "sync_file_range", "ftruncate", "truncate", "fallocate",
		"fadvise64", "readahead", "sendfile", "splice", "tee", "vmsplice", "copy_file_range",
	}},
	{"paths and file metadata", []string{
		"open", "openat", "openat2", "creat", "access", "faccessat", "faccessat2",
		"stat", "lstat", "fstat", "newfstatat", "statx", "statfs", "fstatfs",
		"readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir", "fchdir",
		"mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2",
		"link", "linkat", "symlink", "symlinkat", "unlink", "unlinkat",
		"chmod", "fchmod", "fchmodat", "chown", "fchown", "fchownat", "lchown", "umask",
		"utime", "utimes", "utimensat", "futimesat", "mknod", "mknodat",
		"getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr",
		"listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr",
	}},
	{"polling and events", []string{
		"poll", "ppoll", "select", "pselect6",
		"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
		"eventfd", "eventfd2", "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	}},
	{"pipes and IPC (the app's own ipc namespace)", []string{
		"pipe", "pipe2",
		"mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
		"msgget", "msgsnd", "msgrcv", "msgctl", "semget", "semop", "semtimedop", "semctl",
		"shmget", "shmat", "shmdt", "shmctl",
	}},
	{"asynchronous I/O (not io_uring)", []string{
		"io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
	}},
	{"sockets (socket and socketpair are limited by family below)", []string{
		"bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
		"getsockopt", "setsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg",
		"sendmmsg", "recvmmsg", "shutdown",
	}},
	{"credentials (the kernel checks CAP_SETUID/CAP_SETGID)", []string{
		"getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
		"setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
		"setfsuid", "setfsgid", "capget", "capset",
	}},
	{"limits and system information", []string{
		"getrlimit", "setrlimit", "prlimit64", "getrusage", "sysinfo", "uname", "getrandom",
	}},
	{"restricting oneself further", []string{
		"seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
	}},
}

// deniedGroups get EPERM. A name listed under a capability in capGroups is
// allowed instead by DefaultFor when that capability is granted.
var deniedGroups = []group{
	{"mounts and the root directory", []string{
		"mount", "umount2", "umount", "pivot_root", "chroot",
		"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
	}},
	{"namespaces (clone with CLONE_NEW* flags is denied below)", []string{"unshare", "setns"}},
	{"host identity", []string{"sethostname", "setdomainname"}},
	{"kernel keyrings (not namespaced)", []string{"keyctl", "add_key", "request_key"}},
	{"eBPF, perf and userfaultfd: large kernel attack surface", []string{"bpf", "perf_event_open", "userfaultfd"}},
	{"io_uring: bypasses seccomp for the operations it queues", []string{"io_uring_setup", "io_uring_enter", "io_uring_register"}},
	{"kernel modules and kexec", []string{
		"init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms",
		"kexec_load", "kexec_file_load",
	}},
	{"file handles: open any inode by handle, past the mount namespace", []string{"open_by_handle_at", "name_to_handle_at"}},
	{"power and swap", []string{"reboot", "swapon", "swapoff"}},
	{"the host clock (adjtimex and clock_adjtime even read-only: the mode is in a struct seccomp cannot see)", []string{
		"settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
	}},
	{"accounting and quotas", []string{"acct", "quotactl", "quotactl_fd", "lookup_dcookie"}},
	{"other processes' memory", []string{"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"}},
	{"raw hardware access", []string{"iopl", "ioperm"}},
	{"NUMA placement", []string{"mbind", "move_pages", "migrate_pages", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node"}},
	{"terminals", []string{"vhangup"}},
	{"filesystem-wide monitoring", []string{"fanotify_init", "fanotify_mark"}},
	{"the kernel log", []string{"syslog"}},
	{"obsolete interfaces", []string{"nfsservctl", "uselib"}},
}

// capGroups are what DefaultFor allows for a granted capability, as Docker
// does, for the capabilities where that makes sense for an app. Others are
// deliberately absent: CAP_SYS_ADMIN does not open mount or namespaces,
// CAP_DAC_READ_SEARCH does not open open_by_handle_at (the "shocker"
// container escape), CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_BPF and CAP_PERFMON
// open nothing. A profile that needs those must be written explicitly.
var capGroups = map[string][]string{
	"CAP_SYS_PTRACE": {"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise"},
	"CAP_SYS_TIME":   {"settimeofday", "clock_settime", "clock_adjtime", "adjtimex"},
	"CAP_SYS_NICE":   {"get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind"},
	"CAP_SYSLOG":     {"syslog"},
	"CAP_SYS_BOOT":   {"reboot"}, // in a pid namespace, reboot ends the namespace's init
	"CAP_SYS_CHROOT": {"chroot"},
	// CAP_NET_RAW additionally allows AF_PACKET sockets (see socketFamilies).
}

// personalityValues are the personality(2) arguments allowed, as in Docker:
// PER_LINUX, PER_LINUX32, UNAME26, PER_LINUX32|UNAME26, and 0xffffffff (query).
// Every other value (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...: weakening
// exploit mitigations for the programs it execs) gets EPERM.
var personalityValues = []uint32{0x0, 0x8, 0x20000, 0x20008, 0xffffffff}

// socketFamilies are the address families socket(2) and socketpair(2) may
// use: local, IP and netlink (routing information, interface lists; glibc's
// getaddrinfo uses it). Every other family gets EAFNOSUPPORT, as if the
// kernel had no support for it: that keeps rarely used protocol modules
// (often auto-loaded on first use, and with a history of local privilege
// escalations) out of reach, and it blocks AF_VSOCK, which is not
// network-namespaced and reaches the hypervisor or host.
var socketFamilies = []uint32{syscall.AF_UNIX, syscall.AF_INET, syscall.AF_INET6, syscall.AF_NETLINK}

// rawSocketFamilies adds AF_PACKET, for apps granted CAP_NET_RAW.
var rawSocketFamilies = append(slices.Clone(socketFamilies), syscall.AF_PACKET)

// deniedIoctls get EPERM: TIOCSTI pushes bytes into a terminal's input
// queue and TIOCLINUX (selection paste) can do the same on a virtual
// console, so a sandboxed program holding the user's terminal could type
// commands into the shell that started it. All other ioctl commands are
// allowed; the values are the asm-generic ones for this architecture.
var deniedIoctls = []uint32{syscall.TIOCSTI, syscall.TIOCLINUX}

// cloneNamespaceFlags are the CLONE_NEW* flags clone(2) may not carry
// (Docker's mask 0x7E020000). CLONE_NEWTIME overlaps the exit-signal byte
// of clone and is reachable only through clone3 and unshare, both refused.
var cloneNamespaceFlags = []uint64{
	syscall.CLONE_NEWNS, syscall.CLONE_NEWCGROUP, syscall.CLONE_NEWUTS, syscall.CLONE_NEWIPC,
	syscall.CLONE_NEWUSER, syscall.CLONE_NEWPID, syscall.CLONE_NEWNET,
}

// The complements of the value lists above, computed once (they take a
// while to compute, and Default is called on every sandbox start).
var (
	personalityBlocks     = sync.OnceValue(func() []block { return complement32(personalityValues) })
	socketFamilyBlocks    = sync.OnceValue(func() []block { return complement32(socketFamilies) })
	rawSocketFamilyBlocks = sync.OnceValue(func() []block { return complement32(rawSocketFamilies) })
	ioctlBlocks           = sync.OnceValue(func() []block { return complement32(deniedIoctls) })
)

// Default returns pinfold's default seccomp profile for an app without
// capabilities. It is a fresh value on every call; the caller may modify it.
func Default() *specs.LinuxSeccomp { return DefaultFor(nil) }

// DefaultFor returns the default profile for an app that keeps caps
// (capability names, e.g. "CAP_SYS_PTRACE"; case and the CAP_ prefix are
// optional): for the capabilities in capGroups it allows the syscalls the
// capability is needed for, as Docker does. Other capabilities change
// nothing.
func DefaultFor(caps []string) *specs.LinuxSeccomp {
	granted := map[string]bool{}
	for _, c := range caps {
		c = strings.ToUpper(c)
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		granted[c] = true
	}
	byCap := map[string]bool{}
	var capNames []string
	for _, c := range slices.Sorted(maps.Keys(capGroups)) {
		if granted[c] {
			for _, n := range capGroups[c] {
				if !byCap[n] {
					byCap[n] = true
					capNames = append(capNames, n)
				}
			}
		}
	}

	// Every rule gets its own ErrnoRet (errnoPtr allocates, and the rule
	// helpers copy): the caller may modify the profile.
	p := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: errnoPtr(syscall.ENOSYS),
		Architectures:   nativeArches(),
	}
	for _, g := range allowedGroups {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: slices.Clone(g.names), Action: specs.ActAllow})
	}
	if len(capNames) > 0 {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: capNames, Action: specs.ActAllow})
	}
	for _, g := range deniedGroups {
		names := slices.DeleteFunc(slices.Clone(g.names), func(n string) bool { return byCap[n] })
		if len(names) > 0 {
			p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: names, Action: specs.ActErrno, ErrnoRet: errnoPtr(syscall.EPERM)})
		}
	}

	// clone: allowed without namespace flags; each namespace flag -> EPERM.
	// clone3 takes its flags in a struct that seccomp cannot read: ENOSYS
	// makes glibc (2.34+) fall back to clone, whose flags are checked here.
	var mask uint64
	for _, f := range cloneNamespaceFlags {
		mask |= f
	}
	arg := cloneFlagsArg()
	p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActAllow,
		Args: []specs.LinuxSeccompArg{{Index: arg, Op: specs.OpMaskedEqual, Value: mask, ValueTwo: 0}}})
	for _, f := range cloneNamespaceFlags {
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(syscall.EPERM),
			Args: []specs.LinuxSeccompArg{{Index: arg, Op: specs.OpMaskedEqual, Value: f, ValueTwo: f}}})
	}
	p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: errnoPtr(syscall.ENOSYS)})

	p.Syscalls = append(p.Syscalls, valueRules("personality", specs.ActAllow, nil, 0, personalityValues)...)
	p.Syscalls = append(p.Syscalls, otherwiseRules("personality", specs.ActErrno, errnoPtr(syscall.EPERM), 0, personalityBlocks())...)

	families, familyBlocks := socketFamilies, socketFamilyBlocks()
	if granted["CAP_NET_RAW"] {
		families, familyBlocks = rawSocketFamilies, rawSocketFamilyBlocks()
	}
	for _, name := range []string{"socket", "socketpair"} {
		p.Syscalls = append(p.Syscalls, valueRules(name, specs.ActAllow, nil, 0, families)...)
		p.Syscalls = append(p.Syscalls, otherwiseRules(name, specs.ActErrno, errnoPtr(syscall.EAFNOSUPPORT), 0, familyBlocks)...)
	}

	p.Syscalls = append(p.Syscalls, otherwiseRules("ioctl", specs.ActAllow, nil, 1, ioctlBlocks())...)
	p.Syscalls = append(p.Syscalls, valueRules("ioctl", specs.ActErrno, errnoPtr(syscall.EPERM), 1, deniedIoctls)...)
	return p
}

func errnoPtr(e syscall.Errno) *uint {
	v := uint(e)
	return &v
}

// nativeArches lists the native architecture only (see the notes at the top
// of this file on the 32-bit and x32 entry paths). libseccomp adds the native architecture
// anyway; naming it makes the profile say so when printed.
func nativeArches() []specs.Arch {
	switch runtime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64}
	case "riscv64":
		return []specs.Arch{specs.ArchRISCV64}
	case "s390x":
		return []specs.Arch{specs.ArchS390X}
	case "ppc64le":
		return []specs.Arch{specs.ArchPPC64LE}
	case "loong64":
		return []specs.Arch{specs.ArchLOONGARCH64}
	}
	return nil
}

// cloneFlagsArg is the index of clone's flags argument: s390 swaps the first
// two arguments.
func cloneFlagsArg() uint {
	if runtime.GOARCH == "s390x" {
		return 1
	}
	return 0
}
