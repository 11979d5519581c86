package sandbox

import (
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/sandbox/policy"
	"github.com/pinfold/pinfold/syscalls/python"
	"github.com/pinfold/pinfold/syscalls/seccomp"
	"github.com/pinfold/pinfold/vfs"
)

// DefaultMsgQueueBytes is RLIMIT_MSGQUEUE of an app whose spec does not set
// it: the kernel's default (the bytes of POSIX message queues the app's uid
// may create in its own ipc namespace).
const DefaultMsgQueueBytes = 819200

// DefaultPath is the PATH an app gets unless its policy sets one.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// FromPolicy turns a validated policy and a command into a Spec. The app's
// environment is PATH and HOME, then extraEnv (e.g. the caller's TERM), then
// the policy's env; nothing else of the caller's environment.
func FromPolicy(p *policy.Policy, args []string, extraEnv map[string]string) (Spec, error) {
	ps := &p.Spec
	spec := Spec{
		Name: p.Metadata.Name,
		Process: Process{
			Args: args,
			Cwd:  ps.Filesystem.Workdir,
		},
		Namespaces: Namespaces{
			UTS:    ps.Namespaces.UTS,
			IPC:    ps.Namespaces.IPC,
			Net:    ps.Namespaces.Net,
			Cgroup: ps.Namespaces.Cgroup,
		},
		Hostname: ps.Hostname,
		User: User{
			UID:            ps.User.UID,
			GID:            ps.User.GID,
			AdditionalGIDs: ps.User.AdditionalGids,
		},
		Policy:       p.Metadata.Name,
		IPC:          ps.IPC,
		Resources:    ps.Resources.OCI(),
		Capabilities: ps.Capabilities.Add,
		WallTime:     ps.Limits.WallTime,
		StopTimeout:  ps.Limits.StopTimeout,
	}
	if u := ps.Namespaces.User; u != nil {
		spec.Namespaces.User = &UserNamespace{UIDMappings: u.UIDMappings, GIDMappings: u.GIDMappings}
	}

	env := map[string]string{"PATH": DefaultPath, "HOME": ps.Filesystem.Workdir}
	for k, v := range extraEnv {
		env[k] = v
	}
	for k, v := range ps.Env {
		env[k] = v
	}
	// pinfold's Python client is importable in every app.
	if v := env["PYTHONPATH"]; v != "" {
		env["PYTHONPATH"] = v + ":" + python.Dir
	} else {
		env["PYTHONPATH"] = python.Dir
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		spec.Process.Env = append(spec.Process.Env, k+"="+env[k])
	}

	spec.Rlimits = append(spec.Rlimits,
		specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: ps.Limits.OpenFiles, Hard: ps.Limits.OpenFiles},
		specs.POSIXRlimit{Type: "RLIMIT_CORE", Soft: uint64(ps.Limits.CoreSize), Hard: uint64(ps.Limits.CoreSize)},
	)
	spec.Rlimits = append(spec.Rlimits, ps.Limits.Rlimits...)

	fs := vfs.Spec{
		Masked:   ps.Filesystem.Masked,
		Sysfs:    ps.Filesystem.Sysfs,
		Hostname: ps.Hostname,
		UID:      ps.User.UID,
		GID:      ps.User.GID,
		UserNS:   ps.Namespaces.User != nil,
		// The layout (fs.Cgroups) is the host's and the app's cgroups':
		// the supervisor fills it in when it creates them.
		Cgroupfs: ps.Filesystem.Cgroupfs,
	}
	for _, b := range ps.Filesystem.ReadOnly {
		fs.ReadOnly = append(fs.ReadOnly, vfs.Bind{Source: b.Source, Target: b.Destination})
	}
	for _, b := range ps.Filesystem.ReadWrite {
		fs.ReadWrite = append(fs.ReadWrite, vfs.Bind{Source: b.Source, Target: b.Destination})
	}
	tmpfs := make([]string, 0, len(ps.Filesystem.Tmpfs))
	for path := range ps.Filesystem.Tmpfs {
		tmpfs = append(tmpfs, path)
	}
	sort.Strings(tmpfs)
	for _, path := range tmpfs {
		if path == "/dev/shm" {
			// vfs builds /dev itself; the policy only sizes /dev/shm.
			fs.ShmSize = int64(ps.Filesystem.Tmpfs[path])
			continue
		}
		fs.Tmpfs = append(fs.Tmpfs, vfs.Tmpfs{Path: path, Size: int64(ps.Filesystem.Tmpfs[path])})
	}
	fs.Files = append(fs.Files, vfs.File{Path: python.Path, Mode: 0o444, Content: python.Module()})
	spec.Filesystem = fs

	sc, err := resolveSeccomp(ps)
	if err != nil {
		return Spec{}, err
	}
	spec.Seccomp = sc
	return spec, nil
}

// resolveSeccomp builds the filter: the base profile (pinfold's default,
// adjusted for the capabilities the policy grants, or an OCI file, or none
// with the policy's default action) with the policy's inline rules on top.
func resolveSeccomp(ps *policy.Spec) (*specs.LinuxSeccomp, error) {
	if ps.Seccomp.Profile != policy.ProfileDefault {
		return ps.Seccomp.Resolve(nil)
	}
	def := seccomp.DefaultFor(ps.Capabilities.Add)
	if len(ps.Seccomp.Syscalls) == 0 {
		return def, nil // nothing to overlay: skip the copy
	}
	return ps.Seccomp.Resolve(def)
}
