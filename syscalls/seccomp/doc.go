// Package seccomp owns pinfold's seccomp policies: the default profile, loading
// OCI/Docker JSON profiles as-is (specs.LinuxSeccomp), compiling a profile to a
// BPF program with libseccomp, and caching compiled programs keyed by content so
// a sandbox start never pays for compilation twice.
//
// Loading a compiled program into a process is not done here: the init stage
// installs the raw BPF with syscalls.SetSeccompFilter and needs no libseccomp.
package seccomp
