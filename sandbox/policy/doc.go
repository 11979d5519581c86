// Package policy owns pinfold's sandbox policy files: the versioned YAML format
// operators write (apiVersion pinfold/v1, kind SandboxPolicy), strict parsing
// that reports every problem in a file with its line and column, semantic
// validation, defaults and the built-in default policy, printing a policy back
// as YAML with every default filled in, and the conversion of its resources
// section to OCI runtime-spec types (specs.LinuxResources) and of its seccomp
// section to an OCI seccomp profile (specs.LinuxSeccomp). Its ipc section is
// the broker's own type, ipc.Grants, checked here against what the broker
// would refuse at start.
//
// It also reads group files (kind AppGroup, for `pinfold up`): several apps,
// their policies and the IPC channels between them, with the same strictness
// and positions, and maps a group's channels to each app's pre-wired
// channels and attach grants.
//
// A Policy is plain data. Parse decodes and validates a file; Validate checks a
// policy built or modified in code (for example after command-line flags were
// merged into it). Neither touches the kernel: validation only stats bind-mount
// sources (and a group's policy files) and reads a seccomp profile file named
// by the policy.
//
// The package does not apply a policy. Turning it into namespaces, mounts,
// cgroups and a seccomp filter is the job of package sandbox and the packages
// it drives (cgroup, vfs, syscalls/seccomp, ipc).
//
// The operator's references for the file formats are docs/policy.md and
// docs/up.md.
package policy
