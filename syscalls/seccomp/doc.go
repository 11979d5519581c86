// Package seccomp owns pinfold's seccomp policies: the default profile
// (Default, DefaultFor), loading and validating OCI seccomp profiles such as
// Docker's default profile in OCI form (LoadFile, Parse, Validate), compiling
// a profile to a classic BPF program with libseccomp (Compile), caching
// compiled programs in memory and on disk, keyed by content, so that a
// sandbox start never pays for compilation twice (Cache), and handing chosen
// syscalls to the supervisor through user notification (WithNotify).
//
// It is the only package in pinfold that uses cgo (libseccomp). It does not
// install filters: the init stage installs a Program's raw BPF with
// syscalls.SetSeccompFilter, or SetSeccompFilterListener when
// Program.NeedsListener, which need no libseccomp. It does not serve user
// notifications either: package syscalls/notify does. docs/seccomp.md
// explains the default profile.
package seccomp
