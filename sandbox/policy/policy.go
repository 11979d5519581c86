package policy

import (
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/ipc"
)

// The only apiVersion and kind this package reads and writes.
const (
	APIVersion = "pinfold/v1"
	Kind       = "SandboxPolicy"
)

// Values of Seccomp.Profile other than an absolute path.
const (
	// ProfileDefault is pinfold's built-in seccomp profile.
	ProfileDefault = "default"
	// ProfileNone is no base profile: only the inline rules, with
	// Seccomp.DefaultAction for every other syscall.
	ProfileNone = "none"
)

// Values of Spec.Network.
const (
	// NetworkNone is a network namespace with only the loopback interface.
	NetworkNone = "none"
	// NetworkHost is the host's network: the policy has namespaces.net
	// false. It is never written in a file; Parse derives it.
	NetworkHost = "host"
)

// Policy is one sandbox policy: what an app may see and use. It is plain data;
// Parse and Default return policies with every default filled in.
type Policy struct {
	APIVersion string
	Kind       string
	Metadata   Metadata
	Spec       Spec
}

// Metadata names a policy.
type Metadata struct {
	// Name is a DNS label: lowercase letters, digits and '-', at most 63.
	Name string
}

// Spec is the sandbox an app runs in.
type Spec struct {
	Namespaces Namespaces
	// Hostname is set in the app's UTS namespace. It is empty when
	// Namespaces.UTS is false (the app sees the host's name).
	Hostname string
	User     User
	// Env is the app's whole environment; nothing is inherited.
	Env          map[string]string
	Filesystem   Filesystem
	Resources    Resources
	Limits       Limits
	Capabilities Capabilities
	Seccomp      Seccomp
	// Network is NetworkNone with a network namespace, NetworkHost without.
	Network string
	// IPC is what the app may do with the broker's IPC objects: the
	// objects it may create and attach, its quota, and the channels opened
	// for it before it starts. The zero value grants nothing. Parse fills
	// in MaxObjects, MaxBytes and each create grant's MaxSize when a file
	// has create grants and leaves them out (DefaultIPCMaxObjects,
	// DefaultIPCMaxBytes, MaxBytes).
	IPC ipc.Grants
}

// Namespaces selects the namespaces an app gets besides the pid and mount
// namespaces, which every sandbox has: pinfold needs them to contain and reap
// the app and to build its filesystem.
type Namespaces struct {
	UTS    bool
	IPC    bool
	Net    bool
	Cgroup bool
	// User is nil for no user namespace.
	User *UserNamespace
}

// UserNamespace maps the app's uids and gids to the host's.
type UserNamespace struct {
	UIDMappings []specs.LinuxIDMapping
	GIDMappings []specs.LinuxIDMapping
}

// User is who the app runs as (inside the user namespace, if there is one).
type User struct {
	UID            uint32
	GID            uint32
	AdditionalGids []uint32
}

// Filesystem is the app's view of the filesystem. Everything not listed is
// absent.
type Filesystem struct {
	// ReadOnly and ReadWrite are bind mounts of host paths.
	ReadOnly  []Bind
	ReadWrite []Bind
	// Tmpfs maps a mount point to the size of a fresh tmpfs there.
	Tmpfs map[string]Size
	// Masked paths are made unreadable, in addition to the built-in masks.
	Masked []string
	// Workdir is the app's working directory.
	Workdir string
	// Sysfs mounts a read-only /sys.
	Sysfs bool
	// Cgroupfs shows the app its own cgroups, read-only, at
	// /sys/fs/cgroup (as a container with a private cgroup namespace sees
	// them), so that runtimes sizing themselves from cgroup limits see
	// the sandbox's. It needs Namespaces.Cgroup.
	Cgroupfs bool
}

// Bind is a bind mount of the host's Source at Destination in the sandbox. In
// a file it is written "PATH" (the same path on both sides) or "SRC:DST".
type Bind struct {
	Source      string
	Destination string
}

// String returns the bind in file syntax.
func (b Bind) String() string {
	if b.Source == b.Destination {
		return b.Source
	}
	return b.Source + ":" + b.Destination
}

// Resources are the app's cgroup limits. Resources.OCI converts them.
type Resources struct {
	// Memory is the memory limit.
	Memory Size
	// MemorySwap is the swap allowed in addition to Memory.
	MemorySwap Size
	// CPU is the CPU bandwidth in cores (0.5 is half a core); 0 is no limit.
	CPU float64
	// CPUPeriod is the CFS period the CPU quota is measured over.
	CPUPeriod time.Duration
	// CPUShares is the relative CPU weight (cgroup v1 shares); 0 is unset.
	CPUShares uint64
	// Pids is the maximum number of tasks.
	Pids int64
	// IOWeight is the relative block I/O weight, 10..1000; 0 is unset.
	IOWeight uint16
}

// Limits are the app's time limits and resource limits (rlimits).
type Limits struct {
	// WallTime is how long the app may run; 0 is no limit.
	WallTime time.Duration
	// StopTimeout is the grace period after SIGTERM before everything in
	// the sandbox is killed.
	StopTimeout time.Duration
	// OpenFiles is RLIMIT_NOFILE (soft = hard).
	OpenFiles uint64
	// CoreSize is RLIMIT_CORE in bytes (soft = hard).
	CoreSize Size
	// LogSize caps the log the daemon keeps of a detached app's output;
	// the oldest output is dropped beyond it. 0: the default, 8Mi.
	LogSize Size
	// RemoveAfter makes the daemon forget a detached app (and delete its
	// log) this long after it exited; 0 keeps it until `pinfold rm`.
	RemoveAfter time.Duration
	// Rlimits are other resource limits, sorted by Type ("RLIMIT_STACK").
	// RLIMIT_NOFILE, RLIMIT_CORE and RLIMIT_NPROC are not allowed here.
	Rlimits []specs.POSIXRlimit
}

// Capabilities are the capabilities the app keeps; by default it has none.
type Capabilities struct {
	// Add holds canonical names ("CAP_NET_BIND_SERVICE").
	Add []string
}

// Seccomp is the app's syscall filter.
type Seccomp struct {
	// Profile is ProfileDefault, ProfileNone or the absolute path of an
	// OCI seccomp profile (JSON, as Docker's).
	Profile string
	// DefaultAction is the action for syscalls no rule matches, used only
	// with ProfileNone: ActErrno, ActKill, ActKillProcess, ActKillThread or
	// ActLog.
	DefaultAction specs.LinuxSeccompAction
	// Syscalls are rules added on top of the profile. A syscall named here
	// is taken out of the profile's rules, so these rules decide it.
	Syscalls []specs.LinuxSyscall
}
