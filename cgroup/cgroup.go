package cgroup

import (
	"context"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mode is a host's cgroup layout.
type Mode string

const (
	// ModeLegacy is cgroup v1 only: one hierarchy per controller (or group
	// of co-mounted controllers) under /sys/fs/cgroup.
	ModeLegacy Mode = "legacy"
	// ModeHybrid is cgroup v1 controllers plus a cgroup2 hierarchy at
	// /sys/fs/cgroup/unified that has no resource controllers.
	ModeHybrid Mode = "hybrid"
	// ModeUnified is cgroup v2 only, mounted at /sys/fs/cgroup.
	ModeUnified Mode = "unified"
)

// Config describes one app's cgroup.
type Config struct {
	// Name is the cgroup's path relative to the supervisor's own cgroup, in
	// every hierarchy: slash-separated components such as "pinfold/<app id>".
	// Each component is 1 to 255 characters from [A-Za-z0-9_.:@-], not
	// starting with a dot. The last component is the app's own cgroup and must
	// not exist yet; the ones before it are shared parents, created when
	// missing and removed by Delete when they become empty.
	Name string

	// Resources are the limits to apply; nil means none. Supported: memory
	// Limit, Swap (memory+swap, as in OCI) and Reservation; cpu Shares, Quota
	// and Period; pids Limit; blockIO Weight. Any other field that is set
	// makes New fail with an error wrapping ErrNotSupported, rather than be
	// silently ignored.
	Resources *specs.LinuxResources
}

// Paths are the absolute directories of a cgroup, as created by
// Manager.New. The value is meant to be persisted (it marshals to JSON) and
// given to Load by a later process.
type Paths struct {
	// Mode is the host mode the cgroup was created in.
	Mode Mode `json:"mode"`
	// V1 maps each cgroup v1 controller to its directory, for example
	// "memory" → "/sys/fs/cgroup/memory/<own>/pinfold/<id>". Empty on
	// unified hosts.
	V1 map[string]string `json:"v1,omitempty"`
	// Unified is the cgroup2 directory: the only one on unified hosts, the
	// controller-less tracking directory on hybrid hosts, and empty on legacy
	// hosts.
	Unified string `json:"unified,omitempty"`
	// Depth is the number of trailing path components that Manager.New
	// created (the components of Config.Name). Delete removes the last one
	// and then, while they are empty, up to Depth-1 parents; never more.
	Depth int `json:"depth"`
}

// Stats is a cgroup's resource usage. A limit of 0 means "no limit";
// counters a kernel does not provide (memory.peak before Linux 5.19,
// pids.peak before 6.1) read as 0.
type Stats struct {
	MemoryCurrent uint64 // bytes charged to the cgroup now
	MemoryPeak    uint64 // highest MemoryCurrent seen
	MemoryLimit   uint64 // memory.max (v2) or memory.limit_in_bytes (v1)
	OOMKills      uint64 // processes killed by the OOM killer in this cgroup

	CPUUsage            time.Duration // user + system CPU time
	CPUUser             time.Duration
	CPUSystem           time.Duration
	CPUThrottledPeriods uint64        // periods in which the quota ran out
	CPUThrottled        time.Duration // time spent throttled

	PidsCurrent   uint64 // tasks (threads) in the cgroup now
	PidsPeak      uint64 // highest PidsCurrent seen
	PidsLimit     uint64 // pids.max
	PidsLimitHits uint64 // forks refused because of pids.max
}

// Cgroup is one app's control group. The v1 implementation serves legacy and
// hybrid hosts; the v2 implementation serves unified hosts. Methods are safe
// for concurrent use.
//
// Kill, Freeze and Thaw wait for the kernel to finish. They give up when ctx
// ends; if ctx has no deadline they give up after DefaultTimeout, so they
// never hang.
type Cgroup interface {
	// Paths returns the directories of this cgroup, for persisting.
	Paths() Paths

	// CgroupFD returns an O_PATH descriptor of the cgroup2 directory (the
	// only one on unified hosts, the tracking one on hybrid hosts), for
	// syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}: the child then
	// starts inside the cgroup (clone3 with CLONE_INTO_CGROUP). On hybrid
	// hosts that places it in the cgroup2 directory only: call AddProc for
	// the v1 hierarchies before the child does any work. ok is false on
	// legacy hosts and after Close. The descriptor stays owned by the
	// Cgroup.
	CgroupFD() (fd int, ok bool)

	// AddProc moves process pid (all its threads) into the cgroup, in every
	// hierarchy.
	AddProc(pid int) error

	// Update applies new limits, with the same rules as Config.Resources.
	Update(r *specs.LinuxResources) error

	// Stats reads the cgroup's current resource usage.
	Stats() (*Stats, error)

	// OOMKills is Stats().OOMKills alone, one file read: what a supervisor
	// needs to tell an OOM kill from another SIGKILL at every exit.
	OOMKills() (uint64, error)

	// Freeze stops every process in the cgroup and returns once the kernel
	// reports the cgroup frozen. If that does not happen in time, Freeze
	// thaws the cgroup again and returns an error.
	Freeze(ctx context.Context) error

	// Thaw resumes a frozen cgroup and returns once it is thawed.
	Thaw(ctx context.Context) error

	// Kill sends SIGKILL to every process in the cgroup, including ones
	// forked while it runs, and returns once the cgroup is empty. It uses
	// cgroup.kill where the kernel has it (v2 and hybrid hosts), and
	// otherwise freezes, kills each task and thaws, which also stops a fork
	// storm. A cgroup that no longer exists is empty.
	Kill(ctx context.Context) error

	// Populated reports whether any process is in the cgroup or below it.
	Populated() (bool, error)

	// OpenMemoryUsage opens the cgroup's memory usage counter for
	// watching: see MemoryUsage. On v2 hosts whose memory controller is not
	// enabled for the cgroup it fails with an error wrapping
	// ErrNotSupported.
	OpenMemoryUsage() (*MemoryUsage, error)

	// OpenMemoryPeak opens the cgroup's memory high watermark
	// (memory.max_usage_in_bytes on v1, memory.peak on v2) for polling:
	// unlike the usage, it cannot fall back between two readings, so a
	// poller sees every level the usage reached. It arms nothing in the
	// kernel (v1 thresholds make removing the cgroup wait).
	OpenMemoryPeak() (*MemoryUsage, error)

	// Delete removes the cgroup's directories in every hierarchy, children
	// first, then the shared parents it created that are now empty (parents
	// still used by other apps are left alone). Missing directories are not
	// errors, so Delete can be repeated. A cgroup that still has processes is
	// left in place with an error wrapping ErrBusy. Delete attempts every
	// directory and returns all failures joined.
	Delete() error

	// Close releases the descriptor behind CgroupFD. It does not remove the
	// cgroup.
	Close() error
}

// DefaultTimeout bounds Kill, Freeze and Thaw when their context has no
// deadline.
const DefaultTimeout = 30 * time.Second
