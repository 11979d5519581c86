// Package sched will own fairness across apps: it turns weights, quotas and
// priorities into cgroup knobs (cpu shares/weight, cfs quota, io weight) and
// runs admission control and queueing when the host is full.
//
// It holds no code yet. Per-app limits are set today from each app's policy
// by the cgroup package; sched will sit above it and arbitrate between apps.
package sched
