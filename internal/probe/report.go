package probe

// Env is the environment variable that selects the probe role of a test
// binary: TestMain calls Main when it is "1".
const Env = "PINFOLD_PROBE"

// OK is the outcome of an operation that succeeded. Failures are errno names
// ("EPERM"); outcomes that are neither start with "skipped:" or are
// documented next to the check.
const OK = "ok"

// Report is what Main prints in report mode.
type Report struct {
	Pid  int `json:"pid"`
	PPid int `json:"ppid"`
	// Pids are the numeric entries of /proc.
	Pids     []int  `json:"pids"`
	Hostname string `json:"hostname"`

	UID    int   `json:"uid"`
	EUID   int   `json:"euid"`
	GID    int   `json:"gid"`
	EGID   int   `json:"egid"`
	Groups []int `json:"groups"`
	// UIDMap and GIDMap are /proc/self/uid_map and gid_map, whitespace
	// collapsed, one mapping per line.
	UIDMap string `json:"uidMap"`
	GIDMap string `json:"gidMap"`

	// Status holds CapInh, CapPrm, CapEff, CapBnd, CapAmb, NoNewPrivs and
	// Seccomp from /proc/self/status, as written there.
	Status map[string]string `json:"status"`
	// MsgQueueLimit is RLIMIT_MSGQUEUE (soft, hard).
	MsgQueueLimit [2]uint64 `json:"msgQueueLimit"`

	Interfaces []Interface `json:"interfaces"`
	// InterfacesErr is set when the interfaces could not be listed.
	InterfacesErr string `json:"interfacesErr,omitempty"`

	Cwd string   `json:"cwd"`
	Env []string `json:"env"`

	// FDs are the open descriptors (the probe's own directory handle on
	// /proc/self/fd excluded), listed before the probe opens anything.
	FDs []FD `json:"fds"`

	// Paths maps each path asked about to "ok" (lstat succeeded) or the
	// errno name.
	Paths map[string]string `json:"paths"`
	// Writable maps a directory to "ok" when a new file could be created
	// in it (it is removed again), else the errno name.
	Writable map[string]string `json:"writable"`

	// Proc maps each path of ProcMasked to how it looks: "masked" (a
	// /dev/null node or an empty read-only tmpfs), "visible", or the errno
	// of lstat; and each path of ProcReadOnly to "ro" or "rw" (its
	// mount's flags) or the errno.
	Proc map[string]string `json:"proc"`

	// Checks maps an operation (see the Check* constants) to its outcome.
	Checks map[string]string `json:"checks"`
}

// Interface is one network interface.
type Interface struct {
	Name     string `json:"name"`
	Up       bool   `json:"up"`
	Loopback bool   `json:"loopback"`
}

// FD is one open descriptor.
type FD struct {
	FD     int    `json:"fd"`
	Target string `json:"target"` // readlink of /proc/self/fd/N
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	// Cloexec is FD_CLOEXEC. A descriptor the process inherited through
	// execve cannot have it (it would have been closed), and everything
	// the Go runtime opens has it: Cloexec false means inherited.
	Cloexec bool `json:"cloexec"`
}

// Names of the operations in Report.Checks.
const (
	CheckMountTmpfs      = "mount tmpfs"
	CheckUmount          = "umount2"
	CheckUnshareNS       = "unshare(CLONE_NEWNS)"
	CheckUnshareUser     = "unshare(CLONE_NEWUSER)"
	CheckSetns           = "setns"
	CheckSethostname     = "sethostname"
	CheckSetdomainname   = "setdomainname"
	CheckChroot          = "chroot"
	CheckPivotRoot       = "pivot_root"
	CheckSocketRaw       = "socket(AF_INET, SOCK_RAW)"
	CheckSocketPacket    = "socket(AF_PACKET)"
	CheckSocketVsock     = "socket(AF_VSOCK)"
	CheckKeyctl          = "keyctl"
	CheckAddKey          = "add_key"
	CheckBPF             = "bpf"
	CheckPerfEventOpen   = "perf_event_open"
	CheckUserfaultfd     = "userfaultfd"
	CheckIOUringSetup    = "io_uring_setup"
	CheckPtraceAttach1   = "ptrace(PTRACE_SEIZE, 1)"
	CheckPtraceTraceme   = "ptrace(PTRACE_TRACEME)"
	CheckProcessVMReadv1 = "process_vm_readv(1)"
	CheckOpenByHandleAt  = "open_by_handle_at"
	CheckReboot          = "reboot"
	CheckInitModule      = "init_module"
	CheckKexecLoad       = "kexec_load"
	CheckSwapon          = "swapon"
	CheckSettimeofday    = "settimeofday"
	CheckClockSettime    = "clock_settime"
	CheckPersonality     = "personality(ADDR_NO_RANDOMIZE)"
	CheckCloneNewNS      = "clone(CLONE_NEWNS)"
	CheckUnknownSyscall  = "syscall 1000"
	CheckMknodChar       = "mknod char device"
	CheckWriteSysrq      = "write /proc/sysrq-trigger"
	CheckReadKcore       = "read /proc/kcore"
	CheckWriteProcHost   = "write /proc/sys/kernel/hostname"
	CheckUDPConnect      = "connect udp 192.0.2.1:53"
	CheckUDPSend         = "sendto udp 192.0.2.1:53"
	CheckFsopen          = "fsopen"
)

// Outcomes in Report.Proc.
const (
	Masked    = "masked"
	Visible   = "visible"
	ReadOnly  = "ro"
	ReadWrite = "rw"
)

// Empty is the outcome of CheckReadKcore when the file reads as empty (it
// is masked with /dev/null).
const Empty = "empty"

// ForkResult is what Main prints in fork mode.
type ForkResult struct {
	// Forked is how many children were alive when a fork failed (or the
	// cap was reached).
	Forked int `json:"forked"`
	// Errno is the errno of the fork that failed, or "ok" when Cap
	// children were forked without a failure.
	Errno string `json:"errno"`
	Cap   int    `json:"cap"`
	// Threads is the probe's own thread count when the fork failed.
	Threads int `json:"threads"`
}
