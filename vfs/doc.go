// Package vfs owns the filesystem view of a sandboxed app: which host paths
// it sees and how, what pinfold generates for it (/etc, /dev, /proc, /sys),
// and the sequence of mounts that builds that view inside the sandbox's
// mount namespace.
//
// The work is split in two. On the host, at every start, NewPlan turns a
// Spec (plain data from the policy) into a Plan: it stats every source,
// decides bind versus symbolic link versus copy, reads the small /etc files
// to carry, and orders every operation. The Plan is plain data too, with a
// compact JSON form (encoded and decoded without encoding/json), so the
// supervisor sends it to the init stage. There, as pid 1 of the new
// namespaces and before privileges are dropped, Plan.Apply performs it: a
// private mount tree, a tmpfs root, recursive
// read-only binds through open_tree/mount_setattr/move_mount, a minimal /dev,
// a fresh /proc with masked and read-only paths, the app's own cgroups at
// /sys/fs/cgroup (fresh read-only cgroup mounts, made in the cgroup
// namespace the init stage unshared), and pivot_root into the new root,
// which ends up read-only. Every mount target is resolved with
// openat2(RESOLVE_IN_ROOT) under the new root and never through a symbolic
// link, so nothing outside the new root is ever created or mounted on.
//
// docs/filesystem.md describes the resulting view and every mount flag.
//
// vfs does not create namespaces (the spawner and the init stage do), set
// the hostname (the init stage does; vfs only writes /etc/hostname and
// /etc/hosts), create cgroups or learn the host's cgroup layout (package
// cgroup does; the supervisor passes it in Spec.Cgroups), or drop
// privileges. The Landlock layer that DESIGN.md places here is not written
// yet. vfs is pure Go, without cgo: the init binary links it.
package vfs
