// Package daemon is the pinfold supervisor as a root service: the API
// (Connect: gRPC and HTTP/JSON) on a unix socket with SO_PEERCRED
// authorisation and an audit event per request, the table of apps with
// their logs, the policy directory, the causal event log, memory-pressure
// and anomaly watching, Prometheus metrics, crash recovery at start and
// graceful shutdown.
//
// Apps do not survive a daemon restart: they die with the daemon (their
// parent-death signal), and the next daemon releases whatever they held.
// The daemon owns their stdio and logs, their wall-time timers and (later)
// their IPC objects; letting them outlive it would need a shim process per
// app. See docs/operating.md.
//
// It does not build sandboxes (package sandbox does) nor parse policies
// (sandbox/policy); cmd/pinfold runs it and talks to it.
package daemon
