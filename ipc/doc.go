// Package ipc owns the broker through which sandboxed apps exchange data:
// named pipes, sealed memfd shared memory, file-backed regions on a tmpfs
// only the broker has mounted, and POSIX message queues. The broker creates
// every object, hands out file descriptors under the grants of each app's
// policy, accounts each object to its creator, reports every grant and
// denial, and releases what an app held when it exits. It then stays out of
// the data path: apps move data through the kernel objects directly.
//
// It does not speak the wire protocol apps use to reach it (syscalls/abi,
// served by syscalls/server), does not start apps (sandbox), and does not
// parse policies (sandbox/policy fills in Grants).
//
// # Model
//
// One Broker serves one supervisor. An app joins with its id, its policy
// name and its Grants and gets a Session; Session.Close is its exit. Names
// ("jobs/42/out") form one namespace for all kinds. An object belongs to
// the app that created it and lives until it is unlinked and no live app
// holds it. "Holds" means the broker handed the app a descriptor and the
// app has not exited: the broker cannot see an app close a descriptor, so
// an unlinked object stays (and stays charged to its owner's quota) until
// its holders exit. When an app exits, its holds are released and every
// object it owns is unlinked, except those created under a persistent
// grant, which stay (attributed to the creator's id and policy) until
// unlinked or Broker.Close.
//
// Every descriptor handed out is a new open file description, reopened
// through /proc/self/fd with exactly the access granted (O_RDONLY,
// O_WRONLY, O_RDWR) and close-on-exec, so one app's O_NONBLOCK never
// changes another's and read-only is enforced by the kernel:
// mmap(PROT_WRITE, MAP_SHARED), write(2) and ftruncate(2) fail on a
// read-only descriptor. Every object has mode 0 and belongs to root, so an
// app cannot reopen its descriptor with more access through its own
// /proc/self/fd unless it has CAP_DAC_OVERRIDE — even as uid 0.
//
// # Kinds
//
// Pipe: pipe2(2). The broker keeps a copy of both ends until they are
// handed out. An end's copy is closed once that end has had a holder and
// all its holders have exited: when the writers exit the reader reads end
// of file, when the readers exit a writer gets EPIPE; nobody hangs on an
// app that is gone. Opening an end whose copy is closed (or the write end
// of a pipe without readers) fails with EPIPE. Counts PipeBytes.
//
// Shm: memfd_create(2) with MFD_ALLOW_SEALING (and MFD_NOEXEC_SEAL),
// truncated to its size and sealed with F_SEAL_GROW, F_SEAL_SHRINK and
// F_SEAL_SEAL: nobody, not even a read-write holder, can change its size,
// so a mapping never faults past a shrunken end.
//
// Region: a file on a tmpfs of its own. The broker mounts, per region, a
// detached tmpfs (fsopen/fsmount, never attached to any mount table) whose
// size option is the region's size rounded up to pages, creates one
// unnamed O_TMPFILE file of mode 0 on it and closes the mount descriptor:
// the mount lives only through the file's descriptors and goes with the
// last of them, so a crash of pinfold leaves nothing mounted. Unlike shm, a
// region is an ordinary filesystem file: page-cache semantics (msync,
// fallocate, SEEK_DATA/SEEK_HOLE), no seals (a tmpfs file cannot be
// sealed), so a read-write holder may ftruncate it: it can grow the file,
// but writes past the tmpfs size fail with ENOSPC (and touching such
// pages of a mapping raises SIGBUS), and one region can never take space
// another needs; it can also shrink it, which makes peers' mappings fault
// past the new end. Grant read-write on regions only to apps that may do
// that; use shm where the size must not change.
//
// MQ: a POSIX message queue, created in an ipc namespace private to the
// broker (one locked OS thread unshares CLONE_NEWIPC and serves creations)
// and unlinked at once, so no queue ever has a name an app or the host can
// open, and none outlives pinfold. The broker raises that namespace's
// fs.mqueue limits to the kernel's hard limits (MQMaxMsg, MQMaxMsgSize). It
// counts maxmsg*msgsize.
//
// # Who is charged for memory
//
// On top of the IPC quota (Grants.MaxObjects and MaxBytes, charged to the
// creator while the object lives):
//
//   - shm and region pages: the memory cgroup of the process that first
//     touches each page (writes it, or faults it in through a mapping);
//     ftruncate allocates nothing. The broker never touches them.
//   - pipe buffers: the writer's memory cgroup (kernel memory, allocated
//     when written, freed when read).
//   - queued messages: the sender's memory cgroup (kernel memory, while
//     queued). The queue's maxmsg*msgsize is also charged, up front, to
//     RLIMIT_MSGQUEUE of the broker's user, root (see Options).
//
// TestMemoryCharging checks these three on cgroup v1: a child in its own
// memory cgroup touching 32 MiB of shm raised that cgroup's usage by at
// least 32 MiB, writing 64 KiB into a pipe its kernel memory by 64 KiB,
// sending 512 KiB of messages its kernel memory by 512 KiB (plus message
// headers).
package ipc
