// Command ipcbench measures pinfold's IPC data path and syscall round trips
// beside raw kernel baselines, in one run of one binary (make bench-ipc,
// hack/bench-ipc.sh; results and method in docs/benchmarks.md, "IPC").
//
// The binary plays three roles: the benchmark, which is also pinfold's
// supervisor (sandbox.Supervisor with its own ipc.Broker); the workers,
// started both as plain child processes ("raw") and as sandboxed apps of
// the default policy ("pinfold"), which run the same code on their
// descriptors; and, when pinfold-init is not installed beside it, the init
// stage. The raw workers get a memfd, pipe2() pipes, a message queue and a
// socketpair by inheritance; the sandboxed apps get the broker's objects
// through their pre-wired channels (PINFOLD_FDS) and call pinfold through
// the Go client on their control channel (PINFOLD_CTL_FD). The raw
// workers' read-only and write-only descriptors are reopened with the same
// access modes the broker hands out.
//
// CPU placement is explicit: every worker pins all of its threads
// (sched_setaffinity on each task) before each test and checks where it
// runs, and the benchmark pins its own threads, among them the servers of
// the apps' control channels and seccomp listeners, to the peer CPU of the
// placement. Workers run with GOMAXPROCS=1, single-threaded like a C app;
// the supervisor keeps GOMAXPROCS at the CPUs it started with, as pinfold
// does.
//
// Both sides' shared memory is first touched in alternating 128 KiB
// slices: on the VMs this was written on, identical memfds filled one
// after the other differ by up to 1.5x in memset speed depending on where
// their pages landed, which would otherwise decide the shm rows.
//
// A few flags change the setup to explain a difference (they are marked
// DIAGNOSTIC in the report): -raw-cgroups puts each raw worker in a cgroup
// like an app's, -raw-echo makes the raw echo wait in epoll or in Go's
// netpoller as pinfold's server does, -app-tweaks runs the apps without the
// default policy's CPU quota or seccomp filter.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main
