package sandbox

import (
	"fmt"

	"github.com/pinfold/pinfold/sandbox/initstage"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/vfs"
)

// initConfig translates the spec into what the init stage executes.
func (a *App) initConfig(plan *vfs.Plan, waitStart bool, seccompFlags uint) (*initstage.Config, error) {
	spec := &a.spec
	cfg := &initstage.Config{
		Args:           spec.Process.Args,
		Env:            spec.Process.Env,
		Cwd:            spec.Process.Cwd,
		RootDir:        a.sup.rootDir,
		Plan:           plan,
		CgroupNS:       spec.Namespaces.Cgroup,
		UID:            spec.User.UID,
		GID:            spec.User.GID,
		AdditionalGIDs: spec.User.AdditionalGIDs,
		WaitStart:      waitStart,
		SeccompFlags:   seccompFlags,
	}
	if spec.Namespaces.UTS {
		cfg.Hostname = spec.Hostname
	}
	for _, name := range spec.Capabilities {
		n, ok := syscalls.CapabilityNumber(name)
		if !ok {
			return nil, fmt.Errorf("%w: unknown capability %q", ErrInvalidSpec, name)
		}
		cfg.Caps = append(cfg.Caps, n)
	}
	msgQueue := false
	for _, r := range spec.Rlimits {
		n, ok := syscalls.RlimitNumber(r.Type)
		if !ok {
			return nil, fmt.Errorf("%w: unknown rlimit %q", ErrInvalidSpec, r.Type)
		}
		msgQueue = msgQueue || r.Type == "RLIMIT_MSGQUEUE"
		cfg.Rlimits = append(cfg.Rlimits, syscalls.Rlimit{Resource: n, Soft: r.Soft, Hard: r.Hard})
	}
	if !msgQueue {
		// The supervisor raised its own limit for the broker's queues
		// (ipc.New); the app must not inherit that.
		n, _ := syscalls.RlimitNumber("RLIMIT_MSGQUEUE")
		cfg.Rlimits = append(cfg.Rlimits, syscalls.Rlimit{Resource: n, Soft: DefaultMsgQueueBytes, Hard: DefaultMsgQueueBytes})
	}
	return cfg, nil
}
