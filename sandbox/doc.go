// Package sandbox owns an app's life: from a Spec (usually made from a
// policy) to a process running in its own namespaces, cgroup, filesystem view
// and seccomp filter, and back to nothing.
//
// A Supervisor is built once per process; Supervisor.Start (or Create, then
// App.Start) acquires, in order, a state record, a cgroup, a cached seccomp
// program and the init-stage process, registering the release of each as it
// is acquired. App.Close releases them in reverse order on every path —
// normal exit, signal, timeout, OOM kill, a failure half-way through the init
// stage, or a panic in pinfold — and reports how long each release took and
// whether it failed. Supervisor.Recover releases what supervisors that died
// left behind, found through their state records.
//
// The init stage itself (what runs inside the new namespaces before exec) is
// in sandbox/initstage; policy files are parsed by sandbox/policy. The cgroup,
// vfs and syscalls packages do the kernel work.
package sandbox
