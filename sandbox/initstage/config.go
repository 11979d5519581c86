package initstage

import (
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/vfs"
)

// Config is everything the init stage does, decided by the supervisor. It is
// plain data: the init stage makes no policy decisions of its own.
type Config struct {
	Version int

	// Args, Env and Cwd describe the app's process. Args[0] is resolved
	// against PATH from Env inside the new root when it has no slash.
	Args []string
	Env  []string
	Cwd  string

	// RootDir is an existing empty host directory the new root is mounted
	// on inside the sandbox's own mount namespace; Plan builds the root.
	RootDir string
	Plan    *vfs.Plan

	// Hostname is set when the sandbox has its own UTS namespace.
	Hostname string
	// JoinNetNS: the first descriptor received with the go message is a
	// network namespace (made by the supervisor, lo already up) to join
	// instead of one cloned with the init stage. (In a network namespace
	// cloned with the init stage, the supervisor brings lo up from outside.)
	JoinNetNS bool
	// CgroupNS unshares a cgroup namespace rooted at the app's cgroup.
	CgroupNS bool

	UID            uint32
	GID            uint32
	AdditionalGIDs []uint32
	// Caps are the capabilities the app keeps in every set (bounding,
	// permitted, effective, inheritable, ambient); empty means none.
	Caps    []uint
	Rlimits []syscalls.Rlimit

	// NumFDs app descriptors arrive with the go message and are placed at
	// 3, 4, ... in order.
	NumFDs int

	// WaitStart makes the init stage stop after 'ready' until the
	// supervisor sends 'start' (create/start split). Otherwise it goes on
	// to exec at once.
	WaitStart bool

	// SeccompFlags are passed to seccomp(2) with the program that follows
	// the config in the go message (seccomp.Program.Flags); no program
	// means no filter, and then SeccompFlags must be 0. With
	// syscalls.SeccompFilterFlagNewListener (a program with SCMP_ACT_NOTIFY
	// rules) the init stage installs the filter with a notification
	// listener and sends it to the supervisor before execve
	// (Channel.WaitExecListener).
	SeccompFlags uint
}

// WantsListener reports whether the seccomp program has notification rules,
// so that the init stage sends its listener before execve.
func (c *Config) WantsListener() bool {
	return c.SeccompFlags&syscalls.SeccompFilterFlagNewListener != 0
}

// Steps named in errors. The vfs package names its own steps.
const (
	StepReceive    = "receive config"
	StepCgroupNS   = "unshare cgroup namespace"
	StepHostname   = "sethostname"
	StepJoinNetNS  = "join network namespace"
	StepRlimit     = "setrlimit"
	StepFDs        = "place fds"
	StepBounding   = "drop capability bounding set"
	StepSetgroups  = "setgroups"
	StepSetgid     = "setresgid"
	StepSetuid     = "setresuid"
	StepPdeathsig  = "set parent death signal"
	StepCaps       = "capset"
	StepNoNewPrivs = "no_new_privs"
	StepChdir      = "chdir"
	StepReady      = "report ready"
	StepStart      = "wait for start"
	StepSeccomp    = "seccomp"
	StepListener   = "send seccomp listener"
	StepExec       = "exec"
)
