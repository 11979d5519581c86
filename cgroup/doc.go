// Package cgroup gives each pinfold app its own control group, on cgroup v1
// (legacy and hybrid hosts) and cgroup v2 (unified hosts): it creates the
// group beneath the supervisor's own cgroup, applies resource limits, places
// processes in it, reads usage, freezes and thaws it, kills everything in it,
// and removes it.
//
// A [Manager] is built once per supervisor. It detects the host's cgroup
// mode, finds the supervisor's own cgroup in every hierarchy pinfold uses, and
// on cgroup v2 enables the controllers pinfold needs for its children.
// [Manager.New] then creates one [Cgroup] per app, nested as
// <own cgroup>/<Config.Name> in every hierarchy:
//
//   - v1 (legacy and hybrid): memory, cpu, cpuacct, pids, freezer and, when
//     mounted, blkio. No other hierarchy is touched.
//   - hybrid: also a directory in the controller-less cgroup2 hierarchy
//     (/sys/fs/cgroup/unified), used to start processes straight into the
//     group (CLONE_INTO_CGROUP through [Cgroup.CgroupFD]), to kill with
//     cgroup.kill, and to watch cgroup.events.
//   - v2 (unified): one directory with memory, cpu, pids and, when delegated,
//     io enabled.
//
// The absolute directories are returned by [Cgroup.Paths] as a JSON-friendly
// [Paths] value. Persist it before the app is spawned: [Load] reopens the
// group from it in a later process (crash recovery), whatever cgroup that
// process runs in.
//
// cgroup v2 forbids enabling controllers for the children of a cgroup that
// holds processes ("no internal processes"), except at the root. A supervisor
// started by systemd with Delegate=yes sits in exactly such a cgroup. Set
// [ManagerConfig.SelfLeaf] to let [NewManager] move the supervisor into a leaf
// below its own cgroup first, as systemd expects of delegated services;
// without it, NewManager fails with an error wrapping [ErrNotSupported] that
// says so.
//
// Killing uses cgroup.kill where there is a cgroup2 directory (unified and
// hybrid hosts) and otherwise freezes, signals every task and thaws, which
// also stops a fork storm. Freezing uses cgroup.freeze where there is a
// cgroup2 directory and the v1 freezer otherwise. Every wait is bounded and
// sleeps: cgroup2 state changes are awaited with poll(2) on cgroup.events,
// v1 state is polled with a backoff.
//
// From github.com/containerd/cgroups/v3 the package uses the host mode
// detection (cgroups.Mode) and the /proc/self/cgroup parser. It writes the
// few cgroup files it sets itself rather than through the cgroup1 and
// cgroup2 subpackages: linking cgroup1 alone (it pulls in protobuf metrics,
// D-Bus and systemd clients) adds ~0.7 ms to every start of the pinfold
// binary on these machines, and settings must be ordered correctly, bounded
// in time and report every failure, which those packages do not all do (see
// the notes in v1_linux.go). The supervisor's own v1 cgroups are resolved
// the way cgroup1.NestedPath does it, from one read of mountinfo; the tests
// check the results against cgroup1.NestedPath.
//
// The package does not decide limits (that is package sched and the policy),
// does not spawn processes (package sandbox does, passing [Cgroup.CgroupFD]
// to clone3), and does not manage device access: the sandbox's mount
// namespace and its minimal /dev do that, so [specs.LinuxResources.Devices]
// is rejected here.
package cgroup
