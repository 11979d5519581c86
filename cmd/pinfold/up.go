package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/internal/client"
	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/policy"
	"github.com/pinfold/pinfold/syscalls/abi"
)

const upUsage = `Usage: pinfold up [flags] FILE

Starts the apps of an AppGroup file (docs/up.md) together, each in its own
sandbox, with the channels the file declares already created and wired in
(each app finds its descriptors in PINFOLD_FDS). Each line an app writes is
copied to pinfold's stdout or stderr, prefixed with the app's name.

An app that exits is released at once (its peers see end of file on the
pipes it wrote); pinfold up returns when every app has exited. SIGINT,
SIGTERM and SIGHUP are forwarded to every app, and an app still running
after its policy's stopTimeout is killed; a second signal kills them all.
With --abort-on-exit, the first app to exit stops the others (SIGTERM, then
kill after stopTimeout).

Exit status: 0 if every app exited 0; otherwise the status of the first app
to exit non-zero (its code, or 128+N if signal N killed it). With
--abort-on-exit, the status of the app that exited first. 125 if pinfold
failed (a bad group or policy file, an app that could not be set up), 126 or
127 if an app's command cannot be executed or was not found.

Flags:
`

type upFlags struct {
	abortOnExit bool
	stateDir    string
	verbose     bool
}

func parseUpFlags(args []string) (*upFlags, string, error) {
	f := &upFlags{}
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&f.abortOnExit, "abort-on-exit", false, "stop every app as soon as one exits")
	fs.BoolVar(&f.verbose, "v", false, "print every IPC event (grants, denials, creations, removals) to stderr")
	fs.StringVar(&f.stateDir, "state-dir", sandbox.DefaultStateDir, "state `DIR` (records, seccomp cache)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Print(upUsage)
			fs.PrintDefaults()
			return nil, "", &exitError{code: 0}
		}
		return nil, "", &exitError{code: exitPinfoldFailed, msg: "up: " + err.Error() + " (see pinfold up -h)"}
	}
	if fs.NArg() != 1 {
		return nil, "", &exitError{code: exitPinfoldFailed, msg: "up: give exactly one group file (usage: pinfold up [flags] FILE)"}
	}
	return f, fs.Arg(0), nil
}

// upApp is one member of the group.
type upApp struct {
	name string
	spec sandbox.Spec
	app  *sandbox.App
	out  *prefixWriter
	errw *prefixWriter

	// Touched by the main loop only.
	killTimer *time.Timer // the stopTimeout after a stop signal
	stopSig   syscall.Signal
	aborted   bool // stopped by --abort-on-exit: its status does not count
	closed    bool
}

// upGroup is a running `pinfold up`: what it acquired, for teardown.
type upGroup struct {
	out    *sync.Mutex // held for each line written to stdout or stderr
	g      *policy.Group
	broker *ipc.Broker
	events *eventPrinter
	sess   *ipc.Session // the group's own session: it owns the channels
	apps   []*upApp
}

func upCmd(host string, args []string) error {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	f, file, err := parseUpFlags(args)
	if err != nil {
		return err
	}
	if host != "" {
		return &exitError{code: exitPinfoldFailed, msg: "up: runs its apps under its own supervisor, not through a daemon: drop --host (and unset " + client.EnvHost + ")"}
	}
	g, err := policy.ParseGroupFile(file)
	if err != nil {
		return groupFileError(err)
	}

	var outMu sync.Mutex // one line at a time on stdout and stderr
	u := &upGroup{g: g, out: &outMu}
	if f.verbose {
		u.events = newEventPrinter(os.Stderr, &outMu)
	}
	var sink func(ipc.Event)
	if u.events != nil {
		sink = u.events.add
	}
	broker, err := ipc.New(ipc.Options{Events: sink})
	if err != nil {
		return err
	}
	u.broker = broker
	defer func() {
		// On the failure paths; run tears down itself (then this is a no-op).
		if err := u.teardown(); err != nil {
			u.say("warning: %v", err)
		}
	}()

	// The supervisor and the recovery of what dead runs left behind are
	// independent of the policies: they run while those are loaded.
	supReady := make(chan supervisorResult, 1)
	go func() { supReady <- newSupervisor("up", f.stateDir, broker) }()
	width := 0
	for _, a := range g.Apps {
		width = max(width, len(a.Name))
	}
	for _, a := range g.Apps {
		spec, err := upSpec(g, a, groupPolicy(g))
		if err != nil {
			<-supReady
			return err
		}
		prefix := fmt.Sprintf("%-*s | ", width, a.Name)
		m := &upApp{name: a.Name, spec: spec}
		m.out = &prefixWriter{w: os.Stdout, mu: &outMu, prefix: prefix}
		m.errw = &prefixWriter{w: os.Stderr, mu: &outMu, prefix: prefix}
		m.spec.Stdout, m.spec.Stderr = m.out, m.errw
		u.apps = append(u.apps, m)
	}
	sup, err := (<-supReady).get()
	if err != nil {
		return err
	}
	if err := u.start(sup); err != nil {
		return err
	}
	return u.run(f.abortOnExit, sigs)
}

// say prints one line of pinfold up's own on stderr.
func (u *upGroup) say(format string, args ...any) {
	line := fmt.Sprintf("pinfold up: "+format+"\n", args...)
	u.out.Lock()
	defer u.out.Unlock()
	_, _ = io.WriteString(os.Stderr, line)
}

// groupPolicy is the policy name of the group's own session: the owner its
// apps' attach grants name.
func groupPolicy(g *policy.Group) string { return "group-" + g.Name }

// groupFileError prints every problem of a bad group file as
// FILE:LINE:COL: PATH: MESSAGE, as pinfold policy validate does.
func groupFileError(err error) error {
	var list policy.ErrorList
	if errors.As(err, &list) {
		fmt.Fprintln(os.Stderr, list.Error())
		return &exitError{code: exitPinfoldFailed}
	}
	return &exitError{code: exitPinfoldFailed, msg: "up: " + err.Error()}
}

// start creates the group's channels, then every app's sandbox (each
// stops before exec, holding its pre-wired channels), then starts them all:
// no app runs before its peers' sandboxes exist.
func (u *upGroup) start(sup *sandbox.Supervisor) error {
	sess, err := u.broker.Join(ipc.AppInfo{ID: "group:" + u.g.Name, Policy: groupPolicy(u.g), Grants: u.g.OwnerGrants()})
	if err != nil {
		return fmt.Errorf("up: joining the IPC broker as group %s: %w", u.g.Name, err)
	}
	u.sess = sess
	for _, c := range u.g.Channels {
		if err := sess.Create(c.Channel()); err != nil {
			return fmt.Errorf("up: creating channel %s (%s): %w", c.Name, c.Kind, err)
		}
	}
	named := make(map[string]string, len(u.apps))
	defer func() {
		// Every event so far, and every later one, can name its app.
		if u.events != nil {
			u.events.ready(named)
		}
	}()
	for _, m := range u.apps {
		app, err := sup.Create(m.spec)
		if err != nil {
			return startFailure(fmt.Errorf("up: app %s: creating its sandbox: %w", m.name, err), &runFlags{})
		}
		m.app = app
		named[app.ID] = m.name
	}
	for _, m := range u.apps {
		if err := m.app.Start(); err != nil {
			return startFailure(fmt.Errorf("up: app %s: starting %s: %w", m.name, strings.Join(m.spec.Process.Args, " "), err), &runFlags{})
		}
	}
	return nil
}

// run waits for the apps, forwards signals and stops the group, and returns
// the exit status.
func (u *upGroup) run(abortOnExit bool, sigs <-chan os.Signal) error {
	exits := make(chan *upApp, len(u.apps))
	killDue := make(chan *upApp, len(u.apps))
	for _, m := range u.apps {
		go func() { <-m.app.Done(); exits <- m }()
	}
	stopping := false  // a signal was forwarded, or --abort-on-exit fired
	signalled := false // by a signal
	code, failed := 0, false
	for left := len(u.apps); left > 0; {
		select {
		case sig := <-sigs:
			s := sig.(syscall.Signal)
			switch {
			case !stopping:
				stopping, signalled = true, true
				u.say("%s: stopping every app (send it again to kill them)", signalName(s))
				u.stopAll(s, killDue, false)
				continue
			case signalled:
				u.say("%s again: killing every app", signalName(s))
			default:
				u.say("%s while stopping the apps: killing every app", signalName(s))
			}
			for _, m := range u.apps {
				if !m.closed {
					_ = m.app.Kill()
				}
			}
		case m := <-killDue:
			if !m.closed {
				u.say("%s did not exit within %s of %s; killing everything in its sandbox", m.name, m.spec.StopTimeout, signalName(m.stopSig))
				_ = m.app.Kill()
			}
		case m := <-exits:
			left--
			x, err := u.finish(m)
			status := exitPinfoldFailed
			if err == nil {
				status = x.ExitCode()
			}
			if !failed && !m.aborted && status != 0 {
				code, failed = status, true
			}
			if abortOnExit && !stopping && left > 0 {
				stopping = true
				if !failed {
					// The others are stopped: the first exit decides.
					code, failed = status, status != 0
				}
				u.say("%s exited: stopping the other apps (--abort-on-exit)", m.name)
				u.stopAll(syscall.SIGTERM, killDue, true)
			}
		}
	}
	if err := u.teardown(); err != nil {
		u.say("warning: %v", err)
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// stopAll sends sig to every app still running and arms its stopTimeout.
func (u *upGroup) stopAll(sig syscall.Signal, killDue chan<- *upApp, abort bool) {
	for _, m := range u.apps {
		if m.closed {
			continue
		}
		m.aborted = abort
		m.stopSig = sig
		_ = m.app.Signal(sig)
		m.killTimer = time.AfterFunc(m.spec.StopTimeout, func() { killDue <- m })
	}
}

// finish reads how an exited app ended, prints it, and releases the app
// at once: its cgroup, its record, and its IPC handles (peers now see end
// of file on the pipes it wrote, EPIPE on those it read).
func (u *upGroup) finish(m *upApp) (*sandbox.Exit, error) {
	if m.killTimer != nil {
		m.killTimer.Stop()
	}
	x, err := m.app.Wait()
	m.out.flush()
	m.errw.flush()
	rep := m.app.Close()
	m.closed = true
	if err != nil {
		u.say("%s: %v", m.name, err)
	} else {
		u.say("%s %s", m.name, describeExit(x))
	}
	if cerr := rep.Err(); cerr != nil {
		u.say("warning: cleanup of %s: %v", m.name, cerr)
	}
	return x, err
}

// teardown releases everything still held, in reverse order: the apps
// (killed if they still run), the group's channels, the broker. It reports
// any broker object left over. Idempotent.
func (u *upGroup) teardown() error {
	for _, m := range u.apps {
		if m.app != nil && !m.closed {
			if m.killTimer != nil {
				m.killTimer.Stop()
			}
			rep := m.app.Close()
			m.closed = true
			m.out.flush()
			m.errw.flush()
			if err := rep.Err(); err != nil {
				u.say("warning: cleanup of %s: %v", m.name, err)
			}
		}
	}
	var err error
	if u.broker != nil {
		if u.sess != nil {
			u.sess.Close()
			u.sess = nil
		}
		// Every session is closed: nothing may be left.
		if st := u.broker.Stats(); st.Sessions > 0 || len(u.broker.Objects()) > 0 {
			err = fmt.Errorf("the IPC broker still held %d session(s) and %d object(s) after every app was released", st.Sessions, len(u.broker.Objects()))
		}
		if cerr := u.broker.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("closing the IPC broker: %w", cerr))
		}
		u.broker = nil
	}
	if u.events != nil {
		u.events.close() // after the broker's last event
		u.events = nil
	}
	return err
}

// upSpec makes the sandbox spec of one member: its policy, with the
// group's binds and environment, attach grants for its channels, and the
// channels pre-wired. Errors are exitErrors naming the app.
func upSpec(g *policy.Group, a policy.GroupApp, groupPolicy string) (sandbox.Spec, error) {
	fail := func(format string, args ...any) error {
		return &exitError{code: exitPinfoldFailed, msg: fmt.Sprintf("up: app %s: ", a.Name) + fmt.Sprintf(format, args...)}
	}
	var p *policy.Policy
	switch {
	case a.PolicyPath != "":
		lp, err := policy.LoadFile(a.PolicyPath)
		var list policy.ErrorList
		if errors.As(err, &list) {
			// FILE:LINE:COL lines, as pinfold policy validate prints them.
			fmt.Fprintln(os.Stderr, list.Error())
			return sandbox.Spec{}, fail("policy file %s is invalid (see above)", a.PolicyPath)
		}
		if err != nil {
			return sandbox.Spec{}, fail("%v", err)
		}
		p = lp
	case a.Policy == policy.DefaultGroupPolicy:
		p = policy.Default()
	default:
		return sandbox.Spec{}, fail("policy %q: pinfold up runs without a daemon and knows only %q by name; give the path of a policy file (e.g. ./%s.yaml, relative to %s)",
			a.Policy, policy.DefaultGroupPolicy, a.Policy, g.Dir)
	}
	p.Spec.Filesystem.ReadOnly = append(p.Spec.Filesystem.ReadOnly, a.ReadOnly...)
	p.Spec.Filesystem.ReadWrite = append(p.Spec.Filesystem.ReadWrite, a.ReadWrite...)
	if len(a.Env) > 0 && p.Spec.Env == nil {
		p.Spec.Env = map[string]string{}
	}
	for k, v := range a.Env {
		p.Spec.Env[k] = v
	}
	p.Spec.IPC.Attach = append(p.Spec.IPC.Attach, g.AttachGrantsFor(a.Name, groupPolicy)...)
	p.Spec.IPC.Channels = append(p.Spec.IPC.Channels, g.ChannelsFor(a.Name)...)
	if err := p.Validate(); err != nil {
		return sandbox.Spec{}, fail("policy %s with the group's binds, env and channels added:\n%v", a.Policy, err)
	}
	extra := map[string]string{}
	if t, ok := os.LookupEnv("TERM"); ok {
		extra["TERM"] = t
	}
	spec, err := sandbox.FromPolicy(p, a.Command, extra)
	if err != nil {
		return sandbox.Spec{}, fail("%v", err)
	}
	spec.Name = a.Name
	return spec, nil
}

func describeExit(x *sandbox.Exit) string {
	var s string
	switch {
	case x.Signal != 0:
		s = fmt.Sprintf("was killed by %s (status %d)", signalName(x.Signal), x.ExitCode())
	default:
		s = fmt.Sprintf("exited with code %d", x.Code)
	}
	if x.OOMKilled {
		s += " (out of memory)"
	}
	if x.TimedOut {
		s += " (wall-time limit)"
	}
	return s + " after " + round(x.Wall)
}

// eventPrinter prints the broker's events on stderr from its own goroutine
// (the broker's event sink must not block). It holds them back until the
// apps' ids are known, so that every line names the app.
type eventPrinter struct {
	w      io.Writer
	wmu    *sync.Mutex // shared with the apps' output
	ch     chan ipc.Event
	names  chan map[string]string
	done   chan struct{}
	mu     sync.Mutex
	closed bool
	lost   int
}

// eventBacklog is how many events may wait for the printer; more are
// counted and reported as lost.
const eventBacklog = 4096

func newEventPrinter(w io.Writer, wmu *sync.Mutex) *eventPrinter {
	p := &eventPrinter{w: w, wmu: wmu, ch: make(chan ipc.Event, eventBacklog), names: make(chan map[string]string, 1), done: make(chan struct{})}
	go p.print()
	return p
}

func (p *eventPrinter) add(e ipc.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	select {
	case p.ch <- e:
	default:
		p.lost++
	}
}

// ready gives the app names by id; printing starts. Call once.
func (p *eventPrinter) ready(names map[string]string) { p.names <- names }

// close prints what is queued and returns when done.
func (p *eventPrinter) close() {
	p.mu.Lock()
	p.closed = true
	close(p.ch)
	p.mu.Unlock()
	select {
	case p.names <- nil: // ready was never called
	default:
	}
	<-p.done
	if p.lost > 0 {
		fmt.Fprintf(p.w, "pinfold up: ipc: %d event(s) not printed: the terminal could not keep up\n", p.lost)
	}
}

func (p *eventPrinter) print() {
	defer close(p.done)
	names := <-p.names
	name := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	for e := range p.ch {
		for id, n := range names {
			e.Reason = strings.ReplaceAll(e.Reason, id, n)
		}
		line := "pinfold up: ipc " + describeIPCEvent(e, name) + "\n"
		p.wmu.Lock()
		_, _ = io.WriteString(p.w, line)
		p.wmu.Unlock()
	}
}

// describeIPCEvent formats an event: what happened, to whom, by which call,
// on what, and why: "granted: consumer channel_open shm ring read (owner
// group:ipc-pipeline): ...".
func describeIPCEvent(e ipc.Event, name func(id string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s", e.Kind, name(e.App), e.Op)
	if e.Object != "" {
		fmt.Fprintf(&b, " %s %s", e.ObjKind, e.Object)
	}
	if e.Access != 0 {
		fmt.Fprintf(&b, " %s", e.Access)
	}
	if e.Owner != "" && e.Owner != e.App {
		fmt.Fprintf(&b, " (owner %s)", name(e.Owner))
	}
	if e.Errno != 0 {
		fmt.Fprintf(&b, ": %s", abi.Errno(e.Errno).Name())
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	return b.String()
}

// prefixWriter writes whole lines, each prefixed, to a writer shared with
// the other apps' output (under mu, so lines never interleave). Write is
// called by one goroutine (the app's output copier); flush after it ended.
type prefixWriter struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string

	buf []byte // an incomplete last line
}

// maxLine is the longest line kept whole: a longer one is cut, each part
// on a line of its own.
const maxLine = 64 << 10

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	p.buf = append(p.buf, b...)
	var out []byte
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			if len(p.buf) < maxLine {
				break
			}
			i = maxLine - 1
		}
		out = append(out, p.prefix...)
		out = append(out, p.buf[:i+1]...)
		if p.buf[i] != '\n' {
			out = append(out, '\n')
		}
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) == 0 {
		p.buf = nil
	} else if len(out) > 0 {
		p.buf = append([]byte(nil), p.buf...) // do not pin what was written
	}
	if len(out) > 0 {
		p.mu.Lock()
		_, err := p.w.Write(out)
		p.mu.Unlock()
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// flush writes an incomplete last line, ending it with a newline.
func (p *prefixWriter) flush() {
	if len(p.buf) == 0 {
		return
	}
	p.mu.Lock()
	fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
	p.mu.Unlock()
	p.buf = nil
}
