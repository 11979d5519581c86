package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/sandbox/initstage"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/notify"
	"github.com/pinfold/pinfold/syscalls/seccomp"
	"github.com/pinfold/pinfold/vfs"
)

// App is one sandboxed app. Its methods are safe for concurrent use.
type App struct {
	// ID is unique among apps of all supervisors sharing a state dir.
	ID   string
	Name string

	sup     *Supervisor
	spec    Spec
	life    *lifecycle
	cleanup cleanupStack

	afterMu  sync.Mutex
	after    []func() // AfterExit's, until they ran
	afterRan bool

	stdio  *stdio
	netns  *os.File // network namespace made by the supervisor, until sent
	ipc    *appIPC
	pid    int
	pidfd  int
	cg     cgroup.Cgroup
	ch     *initstage.Channel
	record *recordFile

	// exited is closed once the app's pid 1 has been reaped; waitErr
	// is what exec.Cmd.Wait said.
	exited  chan struct{}
	status  syscall.WaitStatus
	waitErr error

	started  time.Time
	exitedAt time.Time // set before exited is closed
	phases   []Phase
	lastMark time.Time
	timedOut atomic.Bool
	timer    *time.Timer

	finishOnce sync.Once
	exit       *Exit
}

// Exit describes how an app ended. The resources it used are read with
// App.Usage (until App.Close).
type Exit struct {
	// Code is the exit code when the app exited normally, else -1.
	Code int `json:"code"`
	// Signal is the signal that killed the app, 0 when it exited.
	Signal syscall.Signal `json:"signal,omitempty"`
	// OOMKilled reports that the kernel's OOM killer killed a process of
	// the app (its memory limit was hit).
	OOMKilled bool `json:"oomKilled"`
	// TimedOut reports that the app was killed at its wall-time limit.
	TimedOut bool `json:"timedOut"`
	// Wall is how long the app ran, from its exec to its exit.
	Wall time.Duration `json:"wallNs"`
	// Err is set when the exit could not be fully determined (e.g. the
	// OOM-kill counter could not be read).
	Err string `json:"error,omitempty"`
}

// ExitCode is the status a shell would report, like docker run: the app's
// own code, or 128+N when signal N killed it.
func (e *Exit) ExitCode() int {
	if e.Signal != 0 {
		return 128 + int(e.Signal)
	}
	return e.Code
}

// StartError is a failure to create or start an app. Everything acquired
// up to the failure has been released; Cleanup says how that went.
type StartError struct {
	Err     error
	Cleanup Report
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Create builds the sandbox and stops before running the app's command
// (state Ready); Start runs it.
func (s *Supervisor) Create(spec Spec) (*App, error) {
	return s.create(spec, true)
}

// Start builds the sandbox and runs the app's command at once (state
// Running), without the extra round trip of Create followed by App.Start.
func (s *Supervisor) Start(spec Spec) (*App, error) {
	return s.create(spec, false)
}

func (s *Supervisor) create(spec Spec, waitStart bool) (_ *App, err error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if u := spec.Namespaces.User; u != nil {
		if err := s.checkUserNSReach(u); err != nil {
			return nil, err
		}
	}
	a := &App{
		lastMark: time.Now(),
		ID:       newID(),
		Name:     spec.Name,
		sup:      s,
		spec:     spec,
		life:     newLifecycle(),
		pidfd:    -1,
		exited:   make(chan struct{}),
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error while creating the sandbox: %v\n%s", p, debug.Stack())
		}
		if err != nil {
			err = &StartError{Err: err, Cleanup: a.abort()}
		}
	}()
	if err := a.build(waitStart); err != nil {
		return nil, err
	}
	return a, nil
}

// build acquires every resource in order, registering each release as it
// goes, and runs the init stage up to ready (and exec unless waitStart).
func (a *App) build(waitStart bool) error {
	s, spec := a.sup, &a.spec

	// The network namespace is made on another thread while everything
	// below runs (see newNetNS). A user-namespaced init stage could not
	// join a namespace owned by the host's user namespace, so it clones
	// its own.
	var netnsDone chan error
	if spec.Namespaces.Net && spec.Namespaces.User == nil {
		netnsDone = make(chan error, 1)
		go func() {
			f, err := newNetNS()
			if err == nil {
				a.netns = f
				a.cleanup.add(ResNetNS, "network namespace", f.Close)
			}
			netnsDone <- err
		}()
	}
	// Every return path waits for it, so its release is registered
	// before the cleanup stack can run.
	defer func() {
		if netnsDone != nil {
			<-netnsDone
		}
	}()

	// The state record, with the cgroup paths, exists before anything it
	// describes, so a supervisor killed at any point leaves nothing that
	// Recover cannot find.
	cgcfg := cgroup.Config{Name: s.opts.CgroupParent + "/" + a.ID, Resources: spec.Resources}
	paths, err := s.cgroups.PathsFor(cgcfg)
	if err != nil {
		return fmt.Errorf("creating cgroup: %w", err)
	}
	if spec.Filesystem.Cgroupfs {
		// The app's cgroup view (vfs): the hierarchies it has a cgroup of
		// its own in.
		spec.Filesystem.Cgroups = vfs.CgroupView{Mode: string(paths.Mode), V1: s.cgroups.Hierarchies(paths)}
	}
	rec := s.self
	rec.Version, rec.ID, rec.Name, rec.Created, rec.Cgroup = recordVersion, a.ID, a.Name, time.Now(), &paths
	recPath := filepath.Join(s.appsDir, a.ID+".json")
	rf, err := writeRecord(recPath, &rec, nil)
	if err != nil {
		return err
	}
	a.record = rf
	a.cleanup.add(ResStateRecord, recPath, func() error { return a.record.remove() })
	a.mark("state record")

	cg, err := s.cgroups.New(cgcfg)
	if err != nil {
		return fmt.Errorf("creating cgroup: %w", err)
	}
	a.cg = cg
	a.cleanup.add(ResCgroup, cgcfg.Name, func() error {
		// An app whose pid 1 has exited is usually gone entirely (its pid
		// namespace died with it); only kill what is still there.
		var kerr error
		if busy, err := cg.Populated(); err != nil || busy {
			kerr = cg.Kill(context.Background())
		}
		derr := cg.Delete()
		return errors.Join(kerr, derr, cg.Close())
	})
	a.mark("cgroup")

	// Cloning the init stage (a new network namespace alone costs ~0.9 ms
	// here) runs on the spawner thread while this goroutine prepares what
	// the init stage will need; the init stage meanwhile starts its runtime
	// and waits for the config.
	spawned := make(chan error, 1)
	spawnStart := time.Now()
	var spawnTook time.Duration
	go func() {
		err := a.spawn()
		spawnTook = time.Since(spawnStart)
		spawned <- err
	}()
	cfg, bpf, prepErr := a.prepare(waitStart)
	// The profile is compiled; an app kept for days (a daemon's) need not
	// hold its ~40 KB of rules.
	a.spec.Seccomp = nil
	if err := <-spawned; err != nil {
		return err
	}
	a.phases = append(a.phases, Phase{Name: "clone init stage (in parallel)", Duration: spawnTook})
	if prepErr != nil {
		return prepErr
	}
	a.mark("wait for clone")
	if netnsDone != nil {
		err := <-netnsDone
		netnsDone = nil
		if err != nil {
			return err
		}
		cfg.JoinNetNS = true
		a.mark("wait for network namespace")
	}
	if err := a.life.to(Initializing); err != nil {
		return err
	}
	if spec.Namespaces.Net && a.netns == nil {
		// The init stage cloned its own network namespace (user
		// namespace): bring lo up in it from here.
		if err := loopbackUpIn(a.pid); err != nil {
			return err
		}
		a.mark("bring up lo")
	}

	fds := make([]int, len(spec.ExtraFiles), len(spec.ExtraFiles)+8)
	for i, f := range spec.ExtraFiles {
		fds[i] = int(f.Fd())
	}
	fds = append(fds, a.ipc.fds()...)
	netns := -1
	if a.netns != nil {
		netns = int(a.netns.Fd())
	}
	err = a.ch.SendGo(cfg, bpf, netns, fds)
	// The init stage has its copies now (or never will).
	a.ipc.closeAppFDs()
	if err != nil {
		return err
	}
	phases, err := a.ch.WaitReady()
	if err != nil {
		return a.initFailure(err)
	}
	a.markInit(phases)
	if err := a.life.to(Ready); err != nil {
		return err
	}
	if waitStart {
		return nil
	}
	return a.execAndRun()
}

// prepare compiles (or finds) the seccomp program and plans the filesystem:
// everything the init stage is sent.
func (a *App) prepare(waitStart bool) (*initstage.Config, []byte, error) {
	s, spec := a.sup, &a.spec
	if err := a.setupIPC(); err != nil {
		return nil, nil, err
	}
	a.mark("ipc")
	var bpf []byte
	var seccompFlags uint
	if spec.IPC.POSIXMQ {
		// The app's own mq_open/mq_unlink go to the broker (notify.MQ),
		// whatever its profile says of them.
		spec.Seccomp = seccomp.WithNotify(spec.Seccomp, notify.MQSyscalls...)
	}
	if spec.Seccomp != nil {
		prog, release, err := s.seccompProgram(spec)
		if err != nil {
			return nil, nil, fmt.Errorf("compiling seccomp profile: %w", err)
		}
		a.cleanup.add(ResSeccomp, prog.Hash, release)
		bpf, seccompFlags = prog.Insns, prog.Flags
	}
	a.mark("seccomp program")
	plan, err := vfs.NewPlan(spec.Filesystem)
	if err != nil {
		return nil, nil, fmt.Errorf("planning filesystem: %w", err)
	}
	cfg, err := a.initConfig(plan, waitStart, seccompFlags)
	if err != nil {
		return nil, nil, err
	}
	a.mark("filesystem plan")
	return cfg, bpf, nil
}

// spawn clones the init stage into its namespaces and cgroup, from the
// supervisor's spawner thread.
func (a *App) spawn() error {
	s, spec := a.sup, &a.spec
	parentEnd, childEnd, err := syscalls.SeqpacketPair()
	if err != nil {
		return err
	}
	a.ch = initstage.NewChannel(parentEnd)
	a.cleanup.add(ResSyncSocket, "init channel", a.ch.Close)
	defer childEnd.Close()

	io, err := newStdio(spec.Stdin, spec.Stdout, spec.Stderr)
	if err != nil {
		return fmt.Errorf("setting up stdio: %w", err)
	}
	a.stdio = io

	flags := uintptr(syscall.CLONE_NEWPID | syscall.CLONE_NEWNS)
	if spec.Namespaces.UTS {
		flags |= syscall.CLONE_NEWUTS
	}
	if spec.Namespaces.IPC {
		flags |= syscall.CLONE_NEWIPC
	}
	if spec.Namespaces.Net && (spec.Namespaces.User != nil) {
		// Otherwise the supervisor makes the namespace (newNetNS).
		flags |= syscall.CLONE_NEWNET
	}
	pidfd := -1
	attr := &syscall.SysProcAttr{
		Cloneflags: flags,
		Setsid:     true,
		Pdeathsig:  syscall.SIGKILL,
		PidFD:      &pidfd,
	}
	if u := spec.Namespaces.User; u != nil {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = idMaps(u.UIDMappings)
		attr.GidMappings = idMaps(u.GIDMappings)
		attr.GidMappingsEnableSetgroups = true
		// Exec the init stage as root of the new namespace: the caller's
		// uid is not mapped there, and an unmapped uid execs with no
		// capabilities at all.
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	if fd, ok := a.cg.CgroupFD(); ok {
		attr.UseCgroupFD = true
		attr.CgroupFD = fd
	}
	// syscall.ForkExec rather than os/exec: os.StartProcess probes pidfd
	// support with an extra clone the first time it runs, which every
	// pinfold run would pay.
	pa := &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{},
		Files: append(io.fds(), childEnd.Fd()),
		Sys:   attr,
	}
	argv := append([]string{"pinfold-init"}, s.opts.InitArgs...)
	var pid int
	// The child starts inside its cgroup in every hierarchy: nothing of it
	// ever runs outside, and no pid has to be moved afterwards.
	s.onSpawnThread(func() {
		err = s.cgroups.ForkInside(a.cg, func() error {
			var ferr error
			pid, ferr = syscall.ForkExec(s.opts.InitPath, argv, pa)
			return ferr
		})
	})
	io.started()
	if err != nil {
		return fmt.Errorf("starting init stage %s: %w", s.opts.InitPath, err)
	}
	a.pid, a.pidfd = pid, pidfd
	a.cleanup.add(ResPidFD, fmt.Sprint(pidfd), func() error { return syscalls.Close(pidfd) })
	go func() {
		ws, err := waitExit(pid, pidfd)
		if a.life.get() == Running {
			// Every process of the app is gone with its pid 1 (the pid
			// namespace dies with its init): release what it held in
			// the broker now, so that its peers see EOF/EPIPE at once,
			// not when the app is closed. (The cleanup release then
			// finds the session closed.)
			a.ipc.sess.Close()
		}
		a.exitedAt = time.Now()
		a.status, a.waitErr = ws, err
		// Output copiers end when every process holding the pipes is gone.
		if cerr := io.wait(); cerr != nil && a.waitErr == nil {
			a.waitErr = fmt.Errorf("copying app output: %w", cerr)
		}
		close(a.exited)
		a.runAfterExit()
	}()
	a.cleanup.add(ResProcess, fmt.Sprint(pid), func() error {
		a.killProcess()
		select {
		case <-a.exited:
			return nil
		case <-time.After(30 * time.Second):
			return fmt.Errorf("pid %d not reaped 30s after SIGKILL", pid)
		}
	})
	return nil
}

func idMaps(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, x := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(x.ContainerID), HostID: int(x.HostID), Size: int(x.Size)}
	}
	return out
}

// initFailure turns a failure reported by (or the death of) the init stage
// into an error naming the step.
func (a *App) initFailure(err error) error {
	if errors.Is(err, initstage.ErrInitDied) {
		<-a.exited
		return fmt.Errorf("sandbox init: init stage died (%s) before reporting", describeStatus(a.status))
	}
	return err
}

// execAndRun lets the init stage exec the app and waits for the execve.
func (a *App) execAndRun() error {
	listener, err := a.ch.WaitExecListener()
	if err != nil {
		return a.initFailure(err)
	}
	if listener >= 0 {
		if err := a.serveNotify(listener); err != nil {
			return err
		}
	}
	a.mark("exec")
	a.started = time.Now()
	if err := a.life.to(Running); err != nil {
		return err
	}
	if d := a.spec.WallTime; d > 0 {
		a.timer = time.AfterFunc(d, func() {
			a.timedOut.Store(true)
			_ = a.Kill()
		})
		a.cleanup.add(ResTimer, d.String(), func() error { a.timer.Stop(); return nil })
	}
	return nil
}

// Start runs the command of an app made with Create.
func (a *App) Start() error {
	if err := a.life.require("start", Ready); err != nil {
		return err
	}
	if err := a.ch.Start(); err != nil {
		return err
	}
	if err := a.execAndRun(); err != nil {
		a.finish()
		return err
	}
	return nil
}

// Pid returns the app's pid 1 as seen from the supervisor.
func (a *App) Pid() int { return a.pid }

// State returns where the app is in its lifecycle.
func (a *App) State() State { return a.life.get() }

// Signal sends sig to the app's pid 1. As pid 1 of its namespace, the app
// receives only signals it installed a handler for (SIGKILL aside).
func (a *App) Signal(sig syscall.Signal) error {
	if err := a.life.require("signal", Running); err != nil {
		return err
	}
	if err := syscalls.PidfdSendSignal(a.pidfd, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil // exited meanwhile
		}
		return fmt.Errorf("signalling app %s: %w", a.ID, err)
	}
	return nil
}

// Kill kills every process of the app (the whole cgroup, so a fork storm
// cannot escape) and returns when they are gone.
func (a *App) Kill() error {
	st := a.life.get()
	if st == Creating || st == Cleaned {
		return fmt.Errorf("%w: cannot kill an app that is %s", ErrWrongState, st)
	}
	a.killProcess()
	if a.cg == nil {
		return nil
	}
	if err := a.cg.Kill(context.Background()); err != nil {
		return fmt.Errorf("killing app %s: %w", a.ID, err)
	}
	return nil
}

// killProcess SIGKILLs pid 1, which takes its whole pid namespace with it.
func (a *App) killProcess() {
	if a.pidfd >= 0 {
		_ = syscalls.PidfdSendSignal(a.pidfd, syscall.SIGKILL)
	}
}

// Stop asks the app to terminate with SIGTERM and kills everything if it
// has not exited after grace.
func (a *App) Stop(grace time.Duration) error {
	if err := a.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-a.exited:
		return nil
	case <-time.After(grace):
		return a.Kill()
	}
}

// Usage reads what the app's cgroup accounted: CPU time, peak memory,
// peak tasks, throttling. It is available from Create until Close.
func (a *App) Usage() (*cgroup.Stats, error) {
	if err := a.life.require("read the usage of", Initializing, Ready, Running, Exited); err != nil {
		return nil, err
	}
	return a.cg.Stats()
}

// Done is closed when the app's pid 1 has exited.
func (a *App) Done() <-chan struct{} { return a.exited }

// AfterExit arranges for f to run once, after Done is closed, on the
// goroutine that reaped the app (so that a caller watching many apps needs
// no goroutine of its own per app); if Done is closed already, f runs at
// once on a new goroutine. f may call Wait and Close. Only for an app whose
// process was spawned (Start or Create succeeded).
func (a *App) AfterExit(f func()) {
	a.afterMu.Lock()
	if a.afterRan {
		a.afterMu.Unlock()
		go f()
		return
	}
	a.after = append(a.after, f)
	a.afterMu.Unlock()
}

// runAfterExit runs the AfterExit functions, once Done is closed.
func (a *App) runAfterExit() {
	a.afterMu.Lock()
	fs := a.after
	a.after, a.afterRan = nil, true
	a.afterMu.Unlock()
	for _, f := range fs {
		f()
	}
}

// Wait waits for the app to exit and describes how it ended.
func (a *App) Wait() (*Exit, error) {
	if err := a.life.require("wait for", Running, Exited); err != nil {
		return nil, err
	}
	<-a.exited
	a.finish()
	return a.exit, nil
}

// finish records the exit once: status, cgroup statistics (before the
// cgroup is deleted) and the transition to Exited.
func (a *App) finish() {
	a.finishOnce.Do(func() {
		if a.pid > 0 {
			<-a.exited
		}
		e := &Exit{Code: -1, TimedOut: a.timedOut.Load()}
		if !a.started.IsZero() {
			e.Wall = a.exitedAt.Sub(a.started)
		}
		if a.pid > 0 && a.waitErr == nil {
			switch ws := a.status; {
			case ws.Exited():
				e.Code = ws.ExitStatus()
			case ws.Signaled():
				e.Signal = ws.Signal()
			}
		}
		if a.cg != nil {
			// One file read: the full statistics cost ~10 and are read
			// only when asked for (Usage).
			if n, err := a.cg.OOMKills(); err != nil {
				e.Err = err.Error()
			} else {
				e.OOMKilled = n > 0
			}
		}
		a.exit = e
		_ = a.life.to(Exited)
	})
}

// abort is the failure path of create: kill whatever runs, then release.
func (a *App) abort() Report {
	if a.pid > 0 {
		a.killProcess()
	}
	a.finish()
	rep := a.cleanup.run()
	_ = a.life.to(Cleaned)
	return rep
}

// Close releases everything the app holds, killing it first if it still
// runs, and reports each release. Calling it again returns the same report.
func (a *App) Close() Report {
	if st := a.life.get(); st != Exited && st != Cleaned {
		a.killProcess()
		if a.cg != nil {
			_ = a.cg.Kill(context.Background())
		}
	}
	a.finish()
	rep := a.cleanup.run()
	_ = a.life.to(Cleaned)
	return rep
}

// Phase is one step of building a sandbox and how long it took.
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"durationNs"`
}

func (a *App) mark(name string) {
	now := time.Now()
	a.phases = append(a.phases, Phase{Name: name, Duration: now.Sub(a.lastMark)})
	a.lastMark = now
}

// markInit splits the time since the last mark into the phases the init
// stage reported and what remains: starting its runtime, and the wakeups.
func (a *App) markInit(phases []initstage.Phase) {
	now := time.Now()
	total := now.Sub(a.lastMark)
	var inside time.Duration
	for _, p := range phases {
		inside += p.Duration
	}
	if rest := total - inside; rest > 0 {
		a.phases = append(a.phases, Phase{Name: "init: runtime start and wakeups", Duration: rest})
	}
	for _, p := range phases {
		a.phases = append(a.phases, Phase{Name: "init: " + p.Name, Duration: p.Duration})
	}
	a.lastMark = now
}

// StartPhases reports how long each step of building and starting the
// sandbox took, in order.
func (a *App) StartPhases() []Phase { return a.phases }

func describeStatus(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit status %d", ws.ExitStatus())
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

// Cgroup returns the app's cgroup for monitoring (statistics, memory
// thresholds). It is valid from Create until Close; the caller must not
// kill, freeze or delete it: the App does that.
func (a *App) Cgroup() cgroup.Cgroup { return a.cg }

// Spec returns the spec the app was created from, without its seccomp
// profile (dropped once compiled).
func (a *App) Spec() Spec { return a.spec }

// waitExit reaps the app's pid 1 when it exits. It waits in the runtime's
// poller on a copy of the pidfd (readable once the process has exited), so
// a daemon with a thousand idle apps holds a thousand parked goroutines,
// not a thousand threads blocked in wait4. Without a pidfd it falls back to
// a blocking wait4.
func waitExit(pid, pidfd int) (syscall.WaitStatus, error) {
	if pidfd < 0 {
		ws, _, err := syscalls.Wait4(pid)
		return ws, err
	}
	fd, err := syscalls.DupHigh(pidfd, 3)
	if err != nil {
		ws, _, werr := syscalls.Wait4(pid)
		return ws, werr
	}
	if err := syscalls.SetNonblock(fd); err != nil {
		_ = syscalls.Close(fd)
		ws, _, werr := syscalls.Wait4(pid)
		return ws, werr
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		ws, _, werr := syscalls.Wait4(pid)
		return ws, werr
	}
	var ws syscall.WaitStatus
	var werr error
	if err := rc.Read(func(fd uintptr) bool {
		st, exited, err := syscalls.WaitPidfd(int(fd))
		if err != nil {
			werr = err
			return true
		}
		ws = st
		return exited
	}); err != nil {
		return 0, err
	}
	return ws, werr
}
