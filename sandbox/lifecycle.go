package sandbox

import (
	"fmt"
	"sync"
)

// State is where an app is in its life. Transitions are checked: an app
// moves only forward, along the edges in transitions.
//
//	creating ──► initializing ──► ready ──► running ──► exited ──► cleaned
//	    │              │            │                     ▲
//	    └──────────────┴────────────┴─────────────────────┘  (failure before running)
type State int

const (
	// Creating: resources (state record, cgroup) are being acquired; no
	// process exists yet.
	Creating State = iota
	// Initializing: the init stage runs inside the new namespaces.
	Initializing
	// Ready: the sandbox is fully built; the app has not been exec'd.
	Ready
	// Running: the app's command is executing.
	Running
	// Exited: the app's processes are gone (or never started); resources
	// are still held.
	Exited
	// Cleaned: every resource has been released.
	Cleaned
)

var stateNames = [...]string{"creating", "initializing", "ready", "running", "exited", "cleaned"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// MarshalText makes a State print by name in JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

var transitions = map[State][]State{
	Creating:     {Initializing, Exited},
	Initializing: {Ready, Exited},
	Ready:        {Running, Exited},
	Running:      {Exited},
	Exited:       {Cleaned},
}

// lifecycle is a checked state machine, safe for concurrent use.
type lifecycle struct {
	mu    sync.Mutex
	state State
	// changed is closed and replaced on every transition.
	changed chan struct{}
}

func newLifecycle() *lifecycle {
	return &lifecycle{state: Creating, changed: make(chan struct{})}
}

func (l *lifecycle) get() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// to moves to next, or fails with ErrBadTransition.
func (l *lifecycle) to(next State) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range transitions[l.state] {
		if s == next {
			l.state = next
			close(l.changed)
			l.changed = make(chan struct{})
			return nil
		}
	}
	return fmt.Errorf("%w: %s → %s", ErrBadTransition, l.state, next)
}

// require fails unless the current state is one of want.
func (l *lifecycle) require(op string, want ...State) error {
	cur := l.get()
	for _, s := range want {
		if cur == s {
			return nil
		}
	}
	return fmt.Errorf("%w: cannot %s an app that is %s", ErrWrongState, op, cur)
}
