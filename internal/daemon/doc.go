// Package daemon is the pinfold supervisor as a root service: the API
// (Connect: gRPC and HTTP/JSON) on a unix socket with SO_PEERCRED
// authorisation and an audit event per request, the table of apps with
// their logs, the policy directory, the causal event log, memory-pressure
// and anomaly watching, Prometheus metrics, crash recovery at start and
// graceful shutdown.
//
// Apps do not survive a daemon restart: they die with the daemon (their
// parent-death signal), and the next daemon releases whatever they held.
// The daemon owns their stdio and logs, their wall-time timers and the IPC
// broker through which they share objects; letting them outlive it would
// need a shim process per app. See docs/operating.md.
//
// The broker (package ipc) is the daemon's: it is made in New with a sink
// that turns each of its events into an ipc.* event of the log, naming the
// app that acted and the owner of the object; it is closed by Shutdown once
// every app is cleaned. Calls on the apps' control channels and the seccomp
// notifications served for them are counted in the metrics, by name, never
// by app.
//
// It does not build sandboxes (package sandbox does) nor parse policies
// (sandbox/policy); cmd/pinfold runs it and talks to it.
package daemon
