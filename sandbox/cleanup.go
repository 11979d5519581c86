package sandbox

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// Resource names a kind of resource an app holds. Every kind has a release
// registered when it is acquired; TestEveryResourceIsReleased checks that a
// real run registers and releases each one.
type Resource string

const (
	ResStateRecord Resource = "state-record" // <state>/apps/<id>.json and its lock
	ResCgroup      Resource = "cgroup"       // per-app cgroup dirs (v1 hierarchies and/or v2)
	ResSeccomp     Resource = "seccomp"      // reference to a cached BPF program
	ResProcess     Resource = "process"      // the init/app process tree: killed and reaped
	ResPidFD       Resource = "pidfd"        // pidfd of the app's pid 1
	ResSyncSocket  Resource = "sync-socket"  // supervisor end of the init-stage channel
	ResTimer       Resource = "timer"        // wall-time deadline
	ResNetNS       Resource = "netns"        // handle on a network namespace made for the app
	ResIPCSession  Resource = "ipc-session"  // the app's broker session: its holds and owned objects
	ResControl     Resource = "control"      // the control channel and its server
	ResListener    Resource = "listener"     // seccomp user-notification listener and its server
)

// AllResources lists every resource kind.
var AllResources = []Resource{ResStateRecord, ResCgroup, ResSeccomp, ResProcess, ResPidFD, ResSyncSocket, ResTimer, ResNetNS, ResIPCSession, ResControl, ResListener}

// Step is one release in a cleanup report.
type Step struct {
	Resource Resource      `json:"resource"`
	Name     string        `json:"name"`
	Duration time.Duration `json:"durationNs"`
	Err      string        `json:"error,omitempty"`
}

// Report is the outcome of releasing everything an app held, in the order
// the releases ran (the reverse of acquisition).
type Report struct {
	Steps []Step        `json:"steps"`
	Total time.Duration `json:"totalNs"`
}

// Err joins the errors of every failed step, or returns nil.
func (r Report) Err() error {
	var errs []error
	for _, s := range r.Steps {
		if s.Err != "" {
			errs = append(errs, fmt.Errorf("releasing %s %s: %s", s.Resource, s.Name, s.Err))
		}
	}
	return errors.Join(errs...)
}

type release struct {
	res  Resource
	name string
	fn   func() error
}

// cleanupStack records how to release each resource as it is acquired and
// releases them all, in reverse, exactly once.
type cleanupStack struct {
	mu       sync.Mutex
	releases []release
	done     bool
	report   Report
}

// add registers fn as the release of a resource that was just acquired.
// Registering after the stack ran is a bug in the caller: the resource is
// released at once so it cannot leak.
func (c *cleanupStack) add(res Resource, name string, fn func() error) {
	c.mu.Lock()
	if !c.done {
		c.releases = append(c.releases, release{res, name, fn})
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	_ = fn()
}

// run releases everything in reverse order of acquisition, timing each step
// and recording its error without stopping. A panic in one release is
// recorded as that step's error. Later calls return the first report.
func (c *cleanupStack) run() Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return c.report
	}
	c.done = true
	start := time.Now()
	for i := len(c.releases) - 1; i >= 0; i-- {
		r := c.releases[i]
		t := time.Now()
		err := safeCall(r.fn)
		s := Step{Resource: r.res, Name: r.name, Duration: time.Since(t)}
		if err != nil {
			s.Err = err.Error()
		}
		c.report.Steps = append(c.report.Steps, s)
	}
	c.releases = nil
	c.report.Total = time.Since(start)
	return c.report
}

func safeCall(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn()
}
