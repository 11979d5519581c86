package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/internal/applog"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/events"
	"github.com/pinfold/pinfold/sandbox/initstage"
	"github.com/pinfold/pinfold/sandbox/monitor"
	"github.com/pinfold/pinfold/sandbox/policy"
)

// defaultLogSize is the size cap of a detached app's log.
const defaultLogSize = 8 << 20

// appEntry is one app of the daemon, from its creation until it is
// removed. Exited apps stay, with their exit status, usage and log.
type appEntry struct {
	d        *Daemon
	id, name string
	policy   *policy.Entry
	owner    Peer
	detached bool
	args     []string
	app      *sandbox.App
	log      *applog.Log // detached apps only
	created  time.Time

	// done is closed when the app has exited and every resource it held
	// is released; the fields below are then final.
	done chan struct{}

	// last is the id of the app's latest lifecycle event: the next one's
	// parent. Written under mu (so that the app's events form one chain),
	// read without it by the broker's event sink.
	last atomic.Uint64

	mu           sync.Mutex
	started      time.Time
	exitedAt     time.Time
	exit         *sandbox.Exit
	usage        *cgroup.Stats
	cleanup      sandbox.Report
	finished     bool
	stopPressure func()
}

// emit records an event of the app, caused by its previous one (or by
// parent when given).
func (e *appEntry) emit(kind events.Kind, parent uint64, value int64, detail string) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if parent == 0 {
		parent = e.last.Load()
	}
	id := e.d.events.Emit(events.Event{Kind: kind, App: e.id, Parent: parent, Value: value, Detail: detail})
	e.last.Store(id)
	return id
}

// createApp builds (and, with start, runs) an app for a request.
func (d *Daemon) createApp(ctx context.Context, c call, spec *v1.AppSpec, detached, start bool, stdio func(*sandbox.Spec)) (*appEntry, error) {
	if err := validateAppSpec(spec); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	sp, pe, err := d.buildSpec(c.peer, spec)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	stopping := d.stopping
	if !stopping {
		d.appsWG.Add(1)
	}
	d.mu.Unlock()
	if stopping {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("the daemon is shutting down"))
	}
	e := &appEntry{
		d: d, name: spec.GetName(), policy: pe, owner: c.peer, detached: detached,
		args: sp.Process.Args, created: time.Now(), done: make(chan struct{}),
	}
	e.last.Store(c.event)
	if detached {
		// The log is named by the api.call event (unique): the app id is not known yet.
		l, err := applog.Open(filepath.Join(d.logsDir(), fmt.Sprintf("log-%d", c.event)), logSize(pe))
		if err != nil {
			d.appsWG.Done()
			return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("opening the app's log: %w", err))
		}
		e.log = l
		w := logWriter{l}
		sp.Stdout, sp.Stderr = w, w
	} else if stdio != nil {
		stdio(&sp)
	}
	t0 := time.Now()
	var app *sandbox.App
	if start {
		app, err = d.sup.Start(sp)
	} else {
		app, err = d.sup.Create(sp)
	}
	if err != nil {
		d.appsWG.Done()
		if e.log != nil {
			e.log.Close()
			e.log.Remove()
		}
		d.metrics.startFailed(pe.Name)
		d.events.Emit(events.Event{Kind: events.AppStartFailed, Parent: c.event, Detail: err.Error()})
		return nil, startError(err)
	}
	e.app, e.id = app, app.ID
	d.metrics.started(pe.Name, time.Since(t0))
	d.mu.Lock()
	d.apps[e.id] = e
	d.mu.Unlock()
	e.emit(events.AppCreated, c.event, 0, pe.Name)
	for _, p := range app.StartPhases() {
		e.emit(events.AppSpawned, 0, int64(p.Duration), p.Name)
	}
	e.emit(events.AppReady, 0, 0, "")
	if start {
		e.running()
	}
	return e, nil
}

// logSize is the policy's log cap, or the default.
func logSize(pe *policy.Entry) int64 {
	if n := pe.Policy.Spec.Limits.LogSize; n > 0 {
		return int64(n)
	}
	return defaultLogSize
}

// startError maps a failed start to an API error, keeping the step
// message the init stage reported.
// The error carries an ExitStatus detail with the docker-run style code a
// client should exit with: 127 for a command not found, 126 for one that
// cannot be executed, 125 for any other failure to build the sandbox.
func startError(err error) error {
	if errors.Is(err, sandbox.ErrInvalidSpec) {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	cerr := connect.NewError(connect.CodeFailedPrecondition, err)
	code := int32(125)
	var ie *initstage.Error
	if errors.As(err, &ie) && ie.IsExecStep() {
		code = 126
		if errors.Is(ie, syscall.ENOENT) {
			code = 127
		}
	}
	if d, derr := connect.NewErrorDetail(&v1.ExitStatus{Code: code, Error: err.Error()}); derr == nil {
		cerr.AddDetail(d)
	}
	return cerr
}

// running marks the app as running and watches it until it exits.
func (e *appEntry) running() {
	e.mu.Lock()
	e.started = time.Now()
	e.mu.Unlock()
	e.emit(events.AppRunning, 0, 0, "")
	if lim := e.app.Spec().Resources; lim != nil && lim.Memory != nil && lim.Memory.Limit != nil && *lim.Memory.Limit > 0 {
		stop, err := e.d.pressure.Watch(e.id, e.app.Cgroup(), uint64(*lim.Memory.Limit), func(level int, usage uint64) {
			e.emit(events.MemoryPressure, 0, int64(usage), levelDetail(level))
		})
		if err == nil {
			e.mu.Lock()
			e.stopPressure = stop
			e.mu.Unlock()
		} else {
			e.d.log.Warn("watching memory pressure", "app", e.id, "err", err)
		}
	}
	e.app.AfterExit(e.finish)
}

// levelDetail names a memory-pressure level without allocating per event.
func levelDetail(level int) string {
	switch level {
	case 80:
		return "80%"
	case 95:
		return "95%"
	}
	return strconv.Itoa(level) + "%"
}

// watch waits for the app to exit, then records how it ended, releases
// everything it held and reports.
// finish runs once per app: exit status, usage, cleanup, events, metrics.
func (e *appEntry) finish() {
	e.mu.Lock()
	if e.finished {
		e.mu.Unlock()
		return
	}
	e.finished = true
	stop := e.stopPressure
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
	var exit *sandbox.Exit
	if e.app.State() == sandbox.Running || e.app.State() == sandbox.Exited {
		exit, _ = e.app.Wait()
	}
	use, _ := e.app.Usage()
	e.mu.Lock()
	e.exit, e.usage, e.exitedAt = exit, use, time.Now()
	e.mu.Unlock()

	// How the app ended is reported before its cleanup, so that what the
	// cleanup releases (its IPC objects and handles, reported by the
	// broker while Close runs) follows its exit in the log.
	pol := e.policy.Name
	if exit != nil {
		e.emit(events.AppExited, 0, int64(exit.ExitCode()), "")
		if exit.OOMKilled {
			e.emit(events.AppOOMKilled, 0, 0, "")
			e.d.metrics.oomKilled(pol)
		}
		if exit.TimedOut {
			e.emit(events.AppTimedOut, 0, int64(exit.Wall), "")
		}
	}
	if use != nil && use.PidsLimitHits > 0 {
		e.emit(events.PidsLimitHit, 0, int64(use.PidsLimitHits), "")
	}
	rep := e.app.Close()
	if e.log != nil {
		e.log.Close()
	}
	e.mu.Lock()
	e.cleanup = rep
	e.mu.Unlock()
	for _, s := range rep.Steps {
		e.emit(events.CleanupStep, 0, int64(s.Duration), string(s.Resource)+" "+s.Err)
	}
	e.emit(events.AppCleaned, 0, int64(rep.Total), "")
	e.d.metrics.cleaned(rep.Total)
	if exit != nil && use != nil {
		for _, an := range e.d.baseline.Observe(pol, monitor.Sample{
			Duration:   exit.Wall.Seconds(),
			PeakMemory: float64(use.MemoryPeak),
			CPU:        (use.CPUUser + use.CPUSystem).Seconds(),
		}) {
			e.emit(events.Anomaly, 0, int64(an.Sigmas*1000), an.Metric)
		}
	}
	close(e.done)
	e.d.appsWG.Done()
	if after := e.policy.Policy.Spec.Limits.RemoveAfter; e.detached && after > 0 {
		time.AfterFunc(after, func() { e.d.remove(e, 0) })
	}
}

// terminate ends the app for a daemon shutdown: SIGTERM and the policy's
// grace, or a kill when immediate; apps never started are released.
func (e *appEntry) terminate(immediate bool, parent uint64) {
	switch e.app.State() {
	case sandbox.Running:
		e.emit(events.AppSignalled, parent, int64(syscall.SIGTERM), "daemon shutdown")
		if immediate {
			_ = e.app.Kill()
		} else {
			_ = e.app.Stop(e.app.Spec().StopTimeout)
		}
		<-e.done
	default:
		e.finish()
	}
}

// removeLog deletes a detached app's log.
func (e *appEntry) removeLog() {
	if e.log != nil {
		_ = e.log.Remove()
	}
}

// lookup finds an app by id.
func (d *Daemon) lookup(id string) (*appEntry, error) {
	if err := checkID(id); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	d.mu.RLock()
	e, ok := d.apps[id]
	d.mu.RUnlock()
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no app %s", id))
	}
	return e, nil
}

// remove forgets an exited app (once, whoever asks first).
func (d *Daemon) remove(e *appEntry, parent uint64) {
	d.mu.Lock()
	_, present := d.apps[e.id]
	delete(d.apps, e.id)
	d.mu.Unlock()
	if !present {
		return
	}
	e.removeLog()
	e.emit(events.AppRemoved, parent, 0, "")
}

// buildSpec resolves the policy and turns a request into a sandbox spec.
func (d *Daemon) buildSpec(p Peer, s *v1.AppSpec) (sandbox.Spec, *policy.Entry, error) {
	name := s.GetPolicy()
	if name == "" {
		name = "default"
	}
	pe, ok := d.policies.Get(name)
	if !ok {
		return sandbox.Spec{}, nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no policy %q (pinfold policy list shows the loaded ones)", name))
	}
	if len(s.GetBinds()) > 0 {
		if err := requireRoot(p, "add host binds to an app (a bind exposes host files)"); err != nil {
			return sandbox.Spec{}, nil, err
		}
	}
	pol := pe.PolicyCopy()
	for _, b := range s.GetBinds() {
		bind := policy.Bind{Source: b.GetSource(), Destination: b.GetDestination()}
		if b.GetReadWrite() {
			pol.Spec.Filesystem.ReadWrite = append(pol.Spec.Filesystem.ReadWrite, bind)
		} else {
			pol.Spec.Filesystem.ReadOnly = append(pol.Spec.Filesystem.ReadOnly, bind)
		}
	}
	if w := s.GetWorkdir(); w != "" {
		pol.Spec.Filesystem.Workdir = w
	}
	if t := s.GetTimeout(); t != nil && t.AsDuration() > 0 {
		pol.Spec.Limits.WallTime = t.AsDuration()
	}
	for k, v := range s.GetEnv() {
		pol.Spec.Env[k] = v
	}
	if err := pol.Validate(); err != nil {
		return sandbox.Spec{}, nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("the app's settings on top of policy %s: %w", name, err))
	}
	spec, err := sandbox.FromPolicy(pol, s.GetArgs(), nil)
	if err != nil {
		return sandbox.Spec{}, nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	spec.Name = s.GetName()
	return spec, pe, nil
}

// logWriter feeds a detached app's output to its log. It never fails: a
// log that cannot be written (disk full) counts the bytes as dropped, and
// the app's pipe keeps being drained so the app never blocks on it.
type logWriter struct{ l *applog.Log }

func (w logWriter) Write(p []byte) (int, error) {
	_, _ = w.l.Write(p)
	return len(p), nil
}

// streamWriter sends an attached app's output on its Run stream.
type streamWriter struct {
	mu     *sync.Mutex
	stream *connect.BidiStream[v1.RunRequest, v1.RunResponse]
	stderr bool
}

func (w *streamWriter) Write(p []byte) (int, error) {
	resp := &v1.RunResponse{}
	b := append([]byte(nil), p...)
	if w.stderr {
		resp.Msg = &v1.RunResponse_Stderr{Stderr: b}
	} else {
		resp.Msg = &v1.RunResponse_Stdout{Stdout: b}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.stream.Send(resp); err != nil {
		return 0, err
	}
	return len(p), nil
}

var _ io.Writer = (*streamWriter)(nil)
