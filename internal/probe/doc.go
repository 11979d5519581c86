// Package probe is test tooling: the logic of a program that runs inside a
// pinfold sandbox and reports, as one JSON object on stdout, what it can see
// and do there — its pid and the pids it can see, hostname, credentials,
// capabilities, no_new_privs and seccomp mode, network interfaces, working
// directory, environment, open descriptors, which host paths are visible,
// which directories are writable, and the outcome (an errno name or "ok") of
// dozens of operations a sandbox must refuse: mounts, namespace changes,
// raw and packet sockets, keyrings, bpf, perf, userfaultfd, io_uring, ptrace,
// kernel modules, kexec, reboot, swap, the clock, device nodes, /proc writes.
//
// The integration tests of package sandbox and of cmd/pinfold bind their own
// test binary into a sandbox and run it with Env set; TestMain then calls
// Main, which never returns. Other modes of Main stress one limit: allocate
// memory, fork until the pids limit refuses, burn CPU in several threads,
// exit with a code, die of a signal, trap a signal.
//
// Every operation is chosen to be harmless even if the sandbox were broken:
// mounts go on directories the probe created and are undone, reboot and
// kexec get invalid arguments, the hostname is set to its current value,
// sysrq gets the help key, a raw clone's child exits at once. It is not used
// by pinfold itself.
package probe
