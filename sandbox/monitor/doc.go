// Package monitor watches apps while they run and after they finish, and
// says when something is off; the daemon turns what it reports into events.
//
//   - A [Watcher] reports when an app's memory use crosses levels of its
//     memory limit (80% and 95% by default), once per upward crossing
//     (re-armed 2 points below the level). On cgroup v1 the kernel signals
//     the crossings (memory thresholds on cgroup.event_control, one eventfd
//     per level, all waited on by one goroutine through an epoll set that
//     itself sits in Go's poller), so idle apps cost no CPU and no
//     goroutine. cgroup v2 has no such notification for memory.current, so
//     there one goroutine polls the usage of every watched app (250 ms by
//     default), rereading files it keeps open. [WatcherOptions.PollPeak]
//     polls every app's memory high watermark instead, on both versions:
//     nothing is armed in the kernel, no spike between polls is missed, and
//     each level is reported once per app.
//   - A [Baseline] keeps, per policy, a running mean and variance
//     ([Welford]) of how long apps ran, their peak memory and their CPU
//     time, and reports an [Anomaly] for a finished app more than three
//     standard deviations from its policy's mean, once there are 30 samples.
//
// The package does not emit events, read policies or decide what to do
// about an anomaly; it does not touch cgroup files itself (package cgroup
// does, through [cgroup.MemoryUsage]).
package monitor
