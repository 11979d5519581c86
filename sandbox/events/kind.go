package events

import (
	"fmt"
	"strconv"
)

// Kind says what an event records. Its String form is dotted
// ("app.exited"); that form is what the API and the CLI show, and what
// ParseKind reads back. The comments give the meaning of Value and Detail
// for each kind; durations are nanoseconds.
type Kind uint16

// Kinds. The zero Kind is not valid: an event always says what it is.
const (
	// APICall is one request to the daemon's API. Detail: the method;
	// Peer: who asked. Events the request causes name it as Parent.
	APICall Kind = iota + 1
	// AppCreated: an app was created (state record and cgroup exist).
	// Detail: the policy name.
	AppCreated
	// AppSpawned: the app's init stage was started. Value: how long a
	// start phase took; Detail: the phase.
	AppSpawned
	// AppReady: the init stage set the sandbox up and waits to exec.
	AppReady
	// AppRunning: the app's own program runs.
	AppRunning
	// AppSignalled: a signal was sent to the app. Value: the signal
	// number; Detail: why (a client, stop, kill, shutdown).
	AppSignalled
	// AppExited: the app's pid 1 ended. Value: the exit code as pinfold
	// run reports it (128+N for signal N).
	AppExited
	// AppOOMKilled: the kernel's OOM killer killed a process of the app.
	AppOOMKilled
	// AppTimedOut: the app was killed at its wall-time limit. Value: the
	// wall time it ran.
	AppTimedOut
	// AppStartFailed: creating or starting the app failed. Detail: the
	// error, naming the failing step.
	AppStartFailed
	// CleanupStep: one resource was released. Value: how long it took;
	// Detail: the resource kind, and the error if it failed.
	CleanupStep
	// AppCleaned: everything the app held was released. Value: how long
	// the cleanup took in all.
	AppCleaned
	// AppRemoved: the app's record was removed from the daemon.
	AppRemoved
	// PolicyApplied: a policy was loaded or replaced. Detail: its name.
	PolicyApplied
	// PolicyRejected: a policy file failed validation; the previous version
	// stays. Detail: the file.
	PolicyRejected
	// PolicyDeleted: a policy was removed. Detail: its name.
	PolicyDeleted
	// PolicyReloaded: the policy directory was read again. Value: how many
	// policies it holds; Detail: the directory.
	PolicyReloaded
	// MemoryPressure: the app's memory use crossed a level of its memory
	// limit (upwards). Value: the usage in bytes; Detail: the level ("80%").
	MemoryPressure
	// PidsLimitHit: forks of the app were refused at its pids limit.
	// Value: how many.
	PidsLimitHit
	// Anomaly: a finished app was more than 3 standard deviations from
	// its policy's baseline. Value: the distance in thousandths of a
	// standard deviation; Detail: the metric.
	Anomaly
	// DaemonStarted: the daemon started. Causal root of recovery events.
	DaemonStarted
	// DaemonStopping: the daemon began to shut down. Value: 1 when it
	// kills apps at once, 0 when it stops them with their grace period.
	DaemonStopping
	// Recovered: an app left behind by an earlier daemon was released.
	// Value: how long that took.
	Recovered
	// EventsDropped is never emitted into a Log. Subscription.Next returns
	// it when the subscriber fell behind the ring and events were lost
	// before it could read them. Value: how many; ID: 0.
	EventsDropped

	// IPCGranted: an app got a handle on an IPC object (created or
	// attached). App: the app; Other: the object's owner app; Detail:
	// "kind name access".
	IPCGranted
	// IPCDenied: an IPC call was refused. App: the caller; Other: the
	// object's owner app when known; Value: the errno; Detail: the call,
	// the object and why.
	IPCDenied
	// IPCCreated: an IPC object was created. App: its owner; Value: its
	// size in bytes; Detail: "kind name".
	IPCCreated
	// IPCRemoved: an IPC object is gone. App: its owner; Detail: "kind
	// name: why" (unlinked, owner exited, last holder released).
	IPCRemoved
	// IPCReleased: an exited app's IPC handles were released. Value: how
	// many objects it held.
	IPCReleased
	// IPCHostile: pinfold closed an app's control channel after a run of
	// malformed messages. Detail: the last error.
	IPCHostile

	numKinds = iota + 1 // one past the last Kind
)

var kindNames = [numKinds]string{
	APICall:        "api.call",
	AppCreated:     "app.created",
	AppSpawned:     "app.spawned",
	AppReady:       "app.ready",
	AppRunning:     "app.running",
	AppSignalled:   "app.signalled",
	AppExited:      "app.exited",
	AppOOMKilled:   "app.oom_killed",
	AppTimedOut:    "app.timed_out",
	AppStartFailed: "app.start_failed",
	CleanupStep:    "cleanup.step",
	AppCleaned:     "app.cleaned",
	AppRemoved:     "app.removed",
	PolicyApplied:  "policy.applied",
	PolicyRejected: "policy.rejected",
	PolicyDeleted:  "policy.deleted",
	PolicyReloaded: "policy.reloaded",
	MemoryPressure: "memory.pressure",
	PidsLimitHit:   "limit.pids",
	Anomaly:        "anomaly",
	DaemonStarted:  "daemon.started",
	DaemonStopping: "daemon.stopping",
	Recovered:      "daemon.recovered",
	IPCGranted:     "ipc.granted",
	IPCDenied:      "ipc.denied",
	IPCCreated:     "ipc.created",
	IPCRemoved:     "ipc.removed",
	IPCReleased:    "ipc.released",
	IPCHostile:     "ipc.hostile",
	EventsDropped:  "events.dropped",
}

// kindByName is the reverse of kindNames, built once.
var kindByName = func() map[string]Kind {
	m := make(map[string]Kind, numKinds)
	for k, name := range kindNames {
		if name != "" {
			m[name] = Kind(k)
		}
	}
	return m
}()

// Kinds returns every valid Kind, in order.
func Kinds() []Kind {
	out := make([]Kind, 0, numKinds-1)
	for k := Kind(1); k < numKinds; k++ {
		out = append(out, k)
	}
	return out
}

// Valid reports whether k is one of the Kind constants.
func (k Kind) Valid() bool { return k > 0 && k < numKinds }

// String returns the dotted name ("app.exited"), or "kind(N)" for a value
// that is not a Kind.
func (k Kind) String() string {
	if k.Valid() {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind returns the Kind whose String is name. Other names give an
// error wrapping ErrUnknownKind.
func ParseKind(name string) (Kind, error) {
	if k, ok := kindByName[name]; ok {
		return k, nil
	}
	return 0, fmt.Errorf("event kind %q: %w (kinds look like \"app.exited\")", name, ErrUnknownKind)
}

// MarshalText implements encoding.TextMarshaler with the dotted name, so
// Kinds appear by name in JSON. Invalid kinds are an error.
func (k Kind) MarshalText() ([]byte, error) {
	if !k.Valid() {
		return nil, fmt.Errorf("event kind %d: %w", k, ErrUnknownKind)
	}
	return []byte(kindNames[k]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseKind.
func (k *Kind) UnmarshalText(b []byte) error {
	v, err := ParseKind(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}
