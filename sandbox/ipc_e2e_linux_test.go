package sandbox_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/policy"
	"github.com/pinfold/pinfold/syscalls/abi"
)

// End-to-end tests of IPC between apps in real sandboxes: the broker, the
// control channel, the clients, pre-wired channels and the seccomp-notify
// path for POSIX message queues, all through sandbox.Supervisor. The apps
// are the steps role of the test binary (ipcapp_linux_test.go) or the same
// steps in Python (pythonSteps); each prints one line per step, which the
// test compares with a table.

// step is one step an app runs and the result line it must print; "{X}"
// in want is replaced by the test's variable X (an app id), and a "*" in
// want matches any text.
type step struct{ do, want string }

// matchStar matches s against pattern, whose one "*" matches any text.
func matchStar(pattern, s string) bool {
	pre, suf, _ := strings.Cut(pattern, "*")
	return len(s) >= len(pre)+len(suf) && strings.HasPrefix(s, pre) && strings.HasSuffix(s, suf)
}

func doList(steps []step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.do
	}
	return out
}

// e2eApp is an app running a list of steps, its stdout read line by line
// and its stdin a pipe that releases each "wait" step.
type e2eApp struct {
	*sandbox.App
	steps  []step
	next   int
	lines  *lineReader
	stdout *os.File // read by lines
	stdin  *os.File
	stderr *syncBuffer
	vars   map[string]string
	// waiting: the app is blocked in a "wait" step.
	waiting bool
}

// ipcEnv is what the tests of one supervisor share: the supervisor, its
// broker, the broker's events and the calls each app made on its control
// channel.
type ipcEnv struct {
	sup    *sandbox.Supervisor
	broker *ipc.Broker

	mu     sync.Mutex
	events []ipc.Event
	calls  map[string]int // app id -> calls on its control channel
	vars   map[string]string
}

// newIPCEnv builds a supervisor with a broker of its own whose events the
// test records. After the test, the broker must hold nothing.
func newIPCEnv(t testing.TB) *ipcEnv {
	t.Helper()
	requireRoot(t)
	return newIPCEnvAt(t, newStateDir(t))
}

// newIPCEnvAt is newIPCEnv on an existing state dir.
func newIPCEnvAt(t testing.TB, stateDir string) *ipcEnv {
	t.Helper()
	env := &ipcEnv{calls: map[string]int{}, vars: map[string]string{}}
	b, err := ipc.New(ipc.Options{Events: env.record})
	if err != nil {
		t.Fatalf("ipc.New: %v", err)
	}
	env.broker = b
	opts := supervisorOptions(stateDir)
	opts.Broker = b
	opts.ServerHook = func(app string, _ abi.Sysno, _ abi.Errno, _ time.Duration) {
		env.mu.Lock()
		env.calls[app]++
		env.mu.Unlock()
	}
	sup, err := sandbox.NewSupervisor(opts)
	if err != nil {
		t.Fatalf("NewSupervisor: %v", err)
	}
	env.sup = sup
	t.Cleanup(func() {
		// Registered before any app's release, so it runs after them.
		if err := b.Close(); err != nil {
			t.Errorf("closing the broker: %v", err)
		}
	})
	return env
}

func (env *ipcEnv) record(e ipc.Event) {
	env.mu.Lock()
	env.events = append(env.events, e)
	env.mu.Unlock()
}

// checkEmpty fails when the broker still has sessions or objects.
func (env *ipcEnv) checkEmpty(t testing.TB) {
	t.Helper()
	st := env.broker.Stats()
	if st.Sessions != 0 || st.Objects != 0 || st.Bytes != 0 || st.FDs != 0 {
		t.Errorf("broker after every app exited: %+v; want nothing", st)
		for _, o := range env.broker.Objects() {
			t.Errorf("  object left: %+v", o)
		}
	}
}

// findEvent returns the first recorded event that match accepts.
func (env *ipcEnv) findEvent(match func(ipc.Event) bool) (ipc.Event, bool) {
	env.mu.Lock()
	defer env.mu.Unlock()
	for _, e := range env.events {
		if match(e) {
			return e, true
		}
	}
	return ipc.Event{}, false
}

func (env *ipcEnv) callsOf(app string) int {
	env.mu.Lock()
	defer env.mu.Unlock()
	return env.calls[app]
}

// start runs the steps role with steps under policy name pol and grants g.
func (env *ipcEnv) start(t testing.TB, pol string, g ipc.Grants, steps []step) *e2eApp {
	t.Helper()
	spec, err := ipcSpec(pol, g, doList(steps)...)
	if err != nil {
		t.Fatal(err)
	}
	return env.startSpec(t, spec, steps)
}

// startPython runs pythonSteps with steps under the default policy with
// grants g and policy name pol, as /usr/bin/python3.
func (env *ipcEnv) startPython(t testing.TB, pol string, g ipc.Grants, steps []step) *e2eApp {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("/usr/bin/python3 is not installed")
	}
	args := append([]string{"/usr/bin/python3", "-B", "-s", "-c", pythonSteps}, doList(steps)...)
	spec, err := sandbox.FromPolicy(policy.Default(), args, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec.Policy, spec.IPC = pol, g
	return env.startSpec(t, spec, steps)
}

func (env *ipcEnv) startSpec(t testing.TB, spec sandbox.Spec, steps []step) *e2eApp {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &e2eApp{steps: steps, stdin: inW, stderr: &syncBuffer{}, vars: env.vars}
	spec.Stdin, spec.Stdout, spec.Stderr = inR, outW, a.stderr
	app, err := env.sup.Start(spec)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		t.Fatalf("Start %s: %v", spec.Policy, err)
	}
	a.App = app
	a.stdout = outR
	a.lines = newLineReader(outR)
	t.Cleanup(func() {
		if rep := app.Close(); rep.Err() != nil {
			t.Errorf("cleanup of app %s (%s): %v", app.ID, spec.Policy, rep.Err())
		}
		inW.Close()
		outR.Close()
	})
	return a
}

// run reads the results of the steps up to the next "wait" (included) or
// the end, and compares each with the table.
func (a *e2eApp) run(t testing.TB) {
	t.Helper()
	for a.next < len(a.steps) {
		if a.step(t) == "wait" {
			a.waiting = true
			return
		}
	}
}

// runN reads the results of the next n steps.
func (a *e2eApp) runN(t testing.TB, n int) {
	t.Helper()
	for range n {
		a.step(t)
	}
}

// step reads the result of the next step, compares it with the table and
// returns the step's verb.
func (a *e2eApp) step(t testing.TB) string {
	t.Helper()
	if a.next >= len(a.steps) {
		t.Fatalf("app %s: no step left", a.ID)
	}
	s := a.steps[a.next]
	a.next++
	var line string
	select {
	case l, ok := <-a.lines.lines:
		if !ok {
			t.Fatalf("app %s: output ended before step %q; stderr:\n%s", a.ID, s.do, a.stderr.String())
		}
		line = l
	case <-time.After(hangTimeout):
		t.Fatalf("app %s: no result for step %q after %s", a.ID, s.do, hangTimeout)
	}
	want := s.want
	for k, v := range a.vars {
		want = strings.ReplaceAll(want, "{"+k+"}", v)
	}
	got, ok := strings.CutPrefix(line, s.do+" => ")
	switch {
	case !ok:
		t.Errorf("app %s: step %q: printed %q", a.ID, s.do, line)
	case strings.Contains(want, "*") && matchStar(want, got):
	case got != want:
		t.Errorf("app %s (%s): %s => %q, want %q", a.ID, a.Spec().Policy, s.do, got, want)
	}
	return strings.Fields(s.do)[0]
}

// release lets the app past its current "wait" step.
func (a *e2eApp) release(t testing.TB) {
	t.Helper()
	if !a.waiting {
		t.Fatalf("app %s is not at a wait step", a.ID)
	}
	a.waiting = false
	if _, err := a.stdin.Write([]byte("go\n")); err != nil {
		t.Fatalf("releasing app %s: %v", a.ID, err)
	}
}

// finish runs the remaining steps, waits for the app's exit with code and
// releases it, as the daemon does when an app exits: its IPC session
// closes then.
func (a *e2eApp) finish(t testing.TB, code int) {
	t.Helper()
	for {
		if a.waiting {
			a.release(t)
		}
		if a.next >= len(a.steps) {
			break
		}
		a.run(t)
	}
	exit := waitExit(t, a.App)
	if exit.ExitCode() != code {
		t.Errorf("app %s: exit status %d, want %d; stderr:\n%s", a.ID, exit.ExitCode(), code, a.stderr.String())
	}
	a.close(t)
}

// close releases the app and closes the test's ends of its stdio.
func (a *e2eApp) close(t testing.TB) {
	t.Helper()
	if rep := a.Close(); rep.Err() != nil {
		t.Errorf("cleanup of app %s: %v", a.ID, rep.Err())
	}
	a.stdin.Close()
	a.stdout.Close()
}

// kill SIGKILLs every process of the app and releases it.
func (a *e2eApp) kill(t testing.TB) {
	t.Helper()
	if err := a.Kill(); err != nil {
		t.Fatalf("killing app %s: %v", a.ID, err)
	}
	exit := waitExit(t, a.App)
	if exit.Signal != syscall.SIGKILL {
		t.Errorf("app %s: %+v, want killed by SIGKILL", a.ID, exit)
	}
	a.close(t)
}

var shmKinds = []ipc.Kind{ipc.Shm}

// TestIPCE2EGrantMatrix runs a producer and consumers of other policies
// against one broker: every grant and refusal the policy model has (no
// grant, read-only attach enforced by the kernel, owner and peer
// restrictions, per-object size limit, object and byte quotas, missing and
// existing names) and checks that the broker reported each decision naming
// both the app that asked and the object's owner.
func TestIPCE2EGrantMatrix(t *testing.T) {
	env := newIPCEnv(t)
	producer := ipc.Grants{
		Create: []ipc.CreateGrant{
			{Names: []string{"results/*"}, Kinds: []ipc.Kind{ipc.Shm, ipc.Pipe}, MaxSize: 64 << 10},
			{Names: []string{"private/*"}, Kinds: shmKinds, Peers: []string{"trusted"}},
		},
		MaxObjects: 4, MaxBytes: 128 << 10,
	}
	a := env.start(t, "producer", producer, []step{
		{"shm_create results/x 4096", "ok"},
		{"pwrite results/x data-from-A", "ok"},
		{"shm_create results/x 4096", "EEXIST"},
		{"pipe_open results/x write", "EEXIST"},            // another kind under the name
		{"shm_create results/big 65537", "E2BIG"},          // over the grant's maxSize
		{"shm_create results/huge 2199023255552", "E2BIG"}, // over ipc.MaxObjectSize
		{"shm_create elsewhere/x 4096", "EPERM"},           // no grant names it
		{"shm_create private/p 4096", "ok"},                // peers: trusted only
		{"pwrite private/p secret", "ok"},                  //
		{"shm_create results/y 65536", "ok"},               // 3 objects, 73728 bytes
		{"shm_create results/z 65536", "ENOSPC"},           // 139264 > maxBytes 131072
		{"shm_create results/z 4096", "ok"},                // 4 objects
		{"shm_create results/v 4096", "ENOSPC"},            // over maxObjects 4
		{"unlink results/y", "ok"},                         //
		{"shm_create results/v 4096", "ENOSPC"},            // y stays charged while A holds it
		{"self", "ok {A} producer 4 131072 4 77824"},       //
		{"shm_attach results/missing read", "ENOENT"},      //
		{"mmapw results/x data-from-A", "ok"},              // the owner maps read-write
		{"wait", "waiting"},
	})
	env.vars["A"] = a.ID
	a.run(t)

	readResults := ipc.AttachGrant{Names: []string{"results/*", "private/*"}, Kinds: shmKinds, Access: ipc.Read}
	consumers := []struct {
		name   string
		policy string
		grants ipc.Grants
		steps  []step
	}{
		{"no grant", "consumer", ipc.Grants{}, []step{
			{"shm_attach results/x read", "EPERM"},
			{"stat results/x", "EPERM"},
			{"list", "ok []"},
		}},
		{"read grant", "consumer", ipc.Grants{Attach: []ipc.AttachGrant{readResults}}, []step{
			{"shm_attach results/x readwrite", "EPERM"},
			{"shm_attach results/x read", "ok size=4096"},
			{"pread results/x 11", "ok data-from-A"},
			{"mmapr results/x 11", "ok data-from-A"},
			{"mmapw results/x overwrite", "EACCES"}, // mmap(PROT_WRITE, MAP_SHARED) on O_RDONLY
			{"write results/x overwrite", "EBADF"},  // write(2) on O_RDONLY
			{"ftruncate results/x 0", "EINVAL"},     // ftruncate(2) on O_RDONLY
			{"reopen results/x", "EACCES"},          // /proc/self/fd/N O_RDWR: mode 0, root's
			{"pread results/x 11", "ok data-from-A"},
			{"shm_attach results/missing read", "ENOENT"},
			{"shm_attach private/p read", "EPERM"}, // the creator's peers exclude consumer
			{"stat private/p", "EPERM"},
			{"stat results/x", "ok shm 4096 {A} producer holders=2"},
			{"list", "ok [results/x,results/z]"},
			{"shm_create results/b 4096", "ENOENT"}, // attach-only: "no such object, and no create grant"
			{"unlink results/x", "EPERM"},
			{"pipe_open results/x read", "EPERM"},
		}},
		{"owners exclude", "consumer", ipc.Grants{Attach: []ipc.AttachGrant{{
			Names: []string{"results/*"}, Kinds: shmKinds, Access: ipc.Read, Owners: []string{"someone-else"},
		}}}, []step{
			{"shm_attach results/x read", "EPERM"},
			{"stat results/x", "EPERM"},
		}},
		{"owners include", "consumer", ipc.Grants{Attach: []ipc.AttachGrant{{
			Names: []string{"results/*"}, Kinds: shmKinds, Access: ipc.Read, Owners: []string{"producer"},
		}}}, []step{
			{"shm_attach results/x read", "ok size=4096"},
			{"mmapr results/x 11", "ok data-from-A"},
		}},
		{"peer", "trusted", ipc.Grants{Attach: []ipc.AttachGrant{readResults}}, []step{
			{"shm_attach private/p read", "ok size=4096"},
			{"pread private/p 6", "ok secret"},
			{"list", "ok [private/p,results/x,results/z]"},
		}},
	}
	ids := map[string]string{}
	for _, c := range consumers {
		b := env.start(t, c.policy, c.grants, c.steps)
		ids[c.name] = b.ID
		b.finish(t, 0)
	}
	a.finish(t, 0)
	env.checkEmpty(t)

	// Every decision on an existing object names the app that asked and
	// the owner.
	A := a.ID
	wantEvents := []struct {
		what  string
		match func(ipc.Event) bool
	}{
		{"denied: no grant", func(e ipc.Event) bool {
			return e.Kind == ipc.Denied && e.App == ids["no grant"] && e.Policy == "consumer" && e.Owner == A &&
				e.Op == "shm_attach" && e.Object == "results/x" && e.Errno == syscall.EPERM
		}},
		{"denied: stat without grant", func(e ipc.Event) bool {
			return e.Kind == ipc.Denied && e.App == ids["no grant"] && e.Owner == A &&
				e.Op == "stat" && e.Object == "results/x" && e.Errno == syscall.EPERM
		}},
		{"denied: read-only grant asked for readwrite", func(e ipc.Event) bool {
			return e.Kind == ipc.Denied && e.App == ids["read grant"] && e.Owner == A &&
				e.Object == "results/x" && e.Access == ipc.ReadWrite && e.Errno == syscall.EPERM
		}},
		{"granted: read", func(e ipc.Event) bool {
			return e.Kind == ipc.Granted && e.App == ids["read grant"] && e.Policy == "consumer" && e.Owner == A &&
				e.Op == "shm_attach" && e.Object == "results/x" && e.Access == ipc.Read
		}},
		{"denied: peers", func(e ipc.Event) bool {
			return e.Kind == ipc.Denied && e.App == ids["read grant"] && e.Owner == A &&
				e.Object == "private/p" && e.Errno == syscall.EPERM && strings.Contains(e.Reason, "trusted")
		}},
		{"denied: owners", func(e ipc.Event) bool {
			return e.Kind == ipc.Denied && e.App == ids["owners exclude"] && e.Owner == A &&
				e.Object == "results/x" && e.Errno == syscall.EPERM
		}},
		{"granted: owners", func(e ipc.Event) bool {
			return e.Kind == ipc.Granted && e.App == ids["owners include"] && e.Owner == A && e.Object == "results/x"
		}},
		{"granted: peer", func(e ipc.Event) bool {
			return e.Kind == ipc.Granted && e.App == ids["peer"] && e.Policy == "trusted" && e.Owner == A && e.Object == "private/p"
		}},
		{"denied: E2BIG", func(e ipc.Event) bool {
			return e.Kind == ipc.Denied && e.App == A && e.Object == "results/big" && e.Errno == syscall.E2BIG
		}},
		{"denied: ENOSPC", func(e ipc.Event) bool {
			return e.Kind == ipc.Denied && e.App == A && e.Object == "results/v" && e.Errno == syscall.ENOSPC &&
				strings.Contains(e.Reason, "maxObjects")
		}},
		{"denied: EEXIST", func(e ipc.Event) bool {
			return e.Kind == ipc.Denied && e.App == A && e.Owner == A && e.Object == "results/x" && e.Errno == syscall.EEXIST
		}},
		{"removed: owner exited", func(e ipc.Event) bool {
			return e.Kind == ipc.Removed && e.Owner == A && e.Object == "results/x" && e.App == A
		}},
		{"released: the producer", func(e ipc.Event) bool {
			return e.Kind == ipc.Released && e.App == A && e.Policy == "producer"
		}},
	}
	for _, w := range wantEvents {
		if _, ok := env.findEvent(w.match); !ok {
			t.Errorf("no event %s", w.what)
		}
	}
	if t.Failed() {
		env.mu.Lock()
		for _, e := range env.events {
			t.Logf("event: %+v", e)
		}
		env.mu.Unlock()
	}
}

var (
	pipeWriter = ipc.Grants{
		Create:     []ipc.CreateGrant{{Names: []string{"jobs/*"}, Kinds: []ipc.Kind{ipc.Pipe}}},
		MaxObjects: 4, MaxBytes: 1 << 20,
	}
	pipeReader = ipc.Grants{Attach: []ipc.AttachGrant{{Names: []string{"jobs/*"}, Kinds: []ipc.Kind{ipc.Pipe}, Access: ipc.Read}}}
)

// TestIPCE2EPipe checks that no app waits forever on a pipe whose other
// side is gone: the reader reads end of file when the writer app exits or
// is killed in the middle of a write; the writer gets EPIPE when the reader
// app exits or is killed.
func TestIPCE2EPipe(t *testing.T) {
	env := newIPCEnv(t)

	t.Run("writer exits", func(t *testing.T) {
		w := env.start(t, "writer", pipeWriter, []step{
			{"pipe_open jobs/eof write", "ok"},
			{"write jobs/eof hello-reader", "ok"},
			{"wait", "waiting"},
		})
		w.run(t)
		r := env.start(t, "reader", pipeReader, []step{
			{"pipe_open jobs/eof read", "ok"},
			{"read jobs/eof 12", "ok hello-reader"},
			{"readall jobs/eof", "ok "}, // end of file, nothing more
		})
		r.runN(t, 2) // then readall waits for the writer
		w.finish(t, 0)
		r.finish(t, 0)
	})

	t.Run("writer exits, not yet closed", func(t *testing.T) {
		// The broker releases an app's holds when its pid 1 is reaped,
		// not only when the app is closed: a library user who only
		// waits does not leave peers blocked.
		w := env.start(t, "writer", pipeWriter, []step{
			{"pipe_open jobs/early write", "ok"},
			{"write jobs/early bye", "ok"},
			{"wait", "waiting"},
		})
		w.run(t)
		r := env.start(t, "reader", pipeReader, []step{
			{"pipe_open jobs/early read", "ok"},
			{"wait", "waiting"},
			{"readall jobs/early", "ok bye"},
		})
		r.run(t)
		w.release(t)
		if exit := waitExit(t, w.App); exit.ExitCode() != 0 {
			t.Errorf("writer: %+v, want exit 0", exit)
		}
		r.finish(t, 0)
		w.close(t)
	})

	t.Run("reader exits", func(t *testing.T) {
		w := env.start(t, "writer", pipeWriter, []step{
			{"pipe_open jobs/epipe write", "ok"},
			{"wait", "waiting"},
			{"write jobs/epipe too-late", "EPIPE"},
			{"pipe_open jobs/epipe write @again", "EPIPE"},
		})
		w.run(t)
		r := env.start(t, "reader", pipeReader, []step{
			{"pipe_open jobs/epipe read", "ok"},
		})
		r.finish(t, 0)
		w.finish(t, 0)
	})

	t.Run("writer killed mid-write", func(t *testing.T) {
		w := env.start(t, "writer", pipeWriter, []step{
			{"pipe_open jobs/kw write", "ok"},
			{"writeloop jobs/kw", "never"},
		})
		w.step(t) // pipe_open (the pipe exists before the reader looks); then it writes until killed
		r := env.start(t, "reader", pipeReader, []step{
			{"pipe_open jobs/kw read", "ok"},
			{"readfull jobs/kw 1048576", "ok"}, // the writer is writing
			{"wait", "waiting"},
			{"readall jobs/kw", "ok * bytes"},
		})
		r.run(t) // up to wait: a MiB has flowed
		w.kill(t)
		r.finish(t, 0)
	})

	t.Run("reader killed mid-read", func(t *testing.T) {
		w := env.start(t, "writer", pipeWriter, []step{
			{"pipe_open jobs/kr write", "ok"},
			{"writeloop jobs/kr", "EPIPE"},
		})
		w.step(t) // pipe_open (the pipe exists before the reader looks); then it writes until the pipe breaks
		r := env.start(t, "reader", pipeReader, []step{
			{"pipe_open jobs/kr read", "ok"},
			{"readfull jobs/kr 1048576", "ok"},
			{"sleep jobs/kr", "never"},
		})
		r.runN(t, 2) // pipe_open, readfull; then it sleeps
		r.kill(t)
		w.finish(t, 0)
	})
	env.checkEmpty(t)
}

// TestIPCE2EChannels gives two apps pre-wired channels (Spec.IPC.Channels):
// they find them in PINFOLD_FDS and use them with plain system calls,
// never calling pinfold — one of them is /bin/sh.
func TestIPCE2EChannels(t *testing.T) {
	env := newIPCEnv(t)
	producer := ipc.Grants{
		Create:     []ipc.CreateGrant{{Names: []string{"wire/**"}, Kinds: ipc.AllKinds}},
		MaxObjects: 8, MaxBytes: 1 << 20,
		Channels: []ipc.Channel{
			{Name: "wire/data", Kind: ipc.Pipe, Access: ipc.Write},
			{Name: "wire/shm", Kind: ipc.Shm, Access: ipc.ReadWrite, Size: 4096},
			{Name: "wire/q", Kind: ipc.MQ, Access: ipc.Write, MaxMsg: 4, MsgSize: 64},
		},
	}
	p := env.start(t, "wire-producer", producer, []step{
		{"fd wire/data", "ok"},
		{"fd wire/shm", "ok"},
		{"fd wire/q", "ok"},
		{"write wire/data hello-pipe", "ok"},
		{"mmapw wire/shm hello-shm", "ok"},
		{"send wire/q hello-mq 2", "ok"},
		{"wait", "waiting"},
	})
	p.run(t)

	// A shell writes into a pipe of its own: no pinfold code at all.
	shGrants := ipc.Grants{
		Create:     []ipc.CreateGrant{{Names: []string{"wire/**"}, Kinds: []ipc.Kind{ipc.Pipe}}},
		MaxObjects: 1, MaxBytes: 1 << 20,
		Channels: []ipc.Channel{{Name: "wire/sh", Kind: ipc.Pipe, Access: ipc.Write}},
	}
	// It writes once the test says so on its stdin, after the consumer
	// attached the pipe (sh owns it: it is removed when sh exits).
	shSpec := shSpec(t, nil, `read go; fd=${PINFOLD_FDS#wire/sh:}; echo hello-from-sh >&"$fd"`)
	shSpec.Policy, shSpec.IPC = "wire-sh", shGrants
	var shErr syncBuffer
	shSpec.Stderr = &shErr
	shIn, shGo, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer shIn.Close()
	defer shGo.Close()
	shSpec.Stdin = shIn
	sh, err := env.sup.Start(shSpec)
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()

	consumer := ipc.Grants{
		Attach: []ipc.AttachGrant{{Names: []string{"wire/**"}, Kinds: ipc.AllKinds, Access: ipc.Read}},
		Channels: []ipc.Channel{
			{Name: "wire/data", Kind: ipc.Pipe, Access: ipc.Read},
			{Name: "wire/shm", Kind: ipc.Shm, Access: ipc.Read},
			{Name: "wire/q", Kind: ipc.MQ, Access: ipc.Read},
			{Name: "wire/sh", Kind: ipc.Pipe, Access: ipc.Read},
		},
	}
	c := env.start(t, "wire-consumer", consumer, []step{
		{"fd wire/data", "ok"},
		{"fd wire/shm", "ok"},
		{"fd wire/q", "ok"},
		{"fd wire/sh", "ok"},
		{"mmapr wire/shm 9", "ok hello-shm"},
		{"mmapw wire/shm nope", "EACCES"},
		{"recv wire/q", "ok hello-mq prio=2"},
		{"readall wire/sh", `ok hello-from-sh\n`},
		{"readall wire/data", "ok hello-pipe"},
	})
	c.runN(t, 7) // all but the two readall
	// sh writes and exits; its write end goes with it, and the consumer
	// reads end of file after its line.
	if _, err := shGo.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	if exit := waitExit(t, sh); exit.ExitCode() != 0 {
		t.Fatalf("sh: exit status %d, stderr %q", exit.ExitCode(), shErr.String())
	}
	c.step(t)
	if rep := sh.Close(); rep.Err() != nil {
		t.Errorf("cleanup of sh: %v", rep.Err())
	}
	p.finish(t, 0)
	c.finish(t, 0)
	for _, app := range []struct{ name, id string }{{"producer", p.ID}, {"consumer", c.ID}, {"sh", sh.ID}} {
		if n := env.callsOf(app.id); n != 0 {
			t.Errorf("%s made %d calls to pinfold; the channels should need none", app.name, n)
		}
	}
	env.checkEmpty(t)
}

// clientSteps is one scenario for both clients: every call, its results
// and its errors as the app sees them.
var clientSteps = []step{
	{"self", "ok {APP} default 8 1048576 0 0"},
	{"shm_create c/shm 4096", "ok"},
	{"shm_create c/shm 4096", "EEXIST"},
	{"shm_create c/big 2097152", "E2BIG"},
	{"shm_attach c/none read", "ENOENT"},
	{"shm_attach other/x read", "EPERM"},
	{"shm_create c/bad..name/ 1", "EINVAL"},
	{"mmapw c/shm hello-shm", "ok"},
	{"shm_attach c/shm read @ro", "ok size=4096"},
	{"pread @ro 9", "ok hello-shm"},
	{"write @ro x", "EBADF"},
	{"mmapw @ro x", "EACCES"},
	{"stat c/shm", "ok shm 4096 {APP} default holders=1"},
	{"pipe_open c/pipe read", "ok"},
	{"pipe_open c/pipe write @w", "ok"},
	{"write @w ping", "ok"},
	{"read c/pipe 4", "ok ping"},
	{"mq_open c/q 4 64 readwrite", "ok maxmsg=4 msgsize=64"},
	{"send c/q hello-mq 3", "ok"},
	{"recv c/q", "ok hello-mq prio=3"},
	{"mq_open c/q2 0 0 read", "ENOENT"},
	{"region_map c/r 8192 readwrite", "ok size=8192 created=true"},
	{"pwrite c/r reg", "ok"},
	{"region_map c/r 0 read @r2", "ok size=8192 created=false"},
	{"pread @r2 3", "ok reg"},
	{"list", "ok [c/pipe,c/q,c/r,c/shm]"},
	{"self", "ok {APP} default 8 1048576 4 78080"}, // 4096 + 65536 (a pipe) + 4*64 + 8192
	{"unlink c/shm", "ok"},
	{"stat c/shm", "ENOENT"},
	{"unlink c/shm", "ENOENT"},
	{"pread c/shm 9", "ok hello-shm"}, // a descriptor outlives the name
}

var clientGrants = ipc.Grants{
	Create:     []ipc.CreateGrant{{Names: []string{"c/**"}, Kinds: ipc.AllKinds}},
	MaxObjects: 8, MaxBytes: 1 << 20,
}

// TestIPCE2EClients runs the same calls through the Go client (the test
// binary) and the Python client (/usr/bin/python3 with pinfold.py from
// /run/pinfold/python) in sandboxes under the default policy: both must
// see the same results and the same errno names. Then the two exchange
// shared memory.
func TestIPCE2EClients(t *testing.T) {
	env := newIPCEnv(t)
	for _, lang := range []string{"go", "python"} {
		t.Run(lang, func(t *testing.T) {
			var a *e2eApp
			if lang == "go" {
				a = env.start(t, "default", clientGrants, clientSteps)
			} else {
				a = env.startPython(t, "default", clientGrants, clientSteps)
			}
			a.vars = map[string]string{"APP": a.ID}
			a.finish(t, 0)
		})
	}

	t.Run("interop", func(t *testing.T) {
		pyGrants := ipc.Grants{
			Create:     []ipc.CreateGrant{{Names: []string{"x/py"}, Kinds: shmKinds}},
			Attach:     []ipc.AttachGrant{{Names: []string{"x/go"}, Kinds: shmKinds, Access: ipc.Read}},
			MaxObjects: 1, MaxBytes: 4096,
		}
		goGrants := ipc.Grants{
			Create:     []ipc.CreateGrant{{Names: []string{"x/go"}, Kinds: shmKinds}},
			Attach:     []ipc.AttachGrant{{Names: []string{"x/py"}, Kinds: shmKinds, Access: ipc.Read}},
			MaxObjects: 1, MaxBytes: 4096,
		}
		py := env.startPython(t, "py", pyGrants, []step{
			{"shm_create x/py 4096", "ok"},
			{"mmapw x/py from-python", "ok"},
			{"wait", "waiting"},
			{"shm_attach x/go read", "ok size=4096"},
			{"mmapr x/go 7", "ok from-go"},
			{"mmapw x/go nope", "EACCES"},
			{"shm_attach x/go readwrite @rw", "EPERM"},
		})
		py.run(t)
		g := env.start(t, "go", goGrants, []step{
			{"shm_attach x/py read", "ok size=4096"},
			{"mmapr x/py 11", "ok from-python"},
			{"mmapw x/py nope", "EACCES"},
			{"shm_create x/go 4096", "ok"},
			{"mmapw x/go from-go", "ok"},
			{"wait", "waiting"},
		})
		g.run(t)
		py.finish(t, 0)
		g.finish(t, 0)
	})
	env.checkEmpty(t)
}

// TestIPCE2EPosixMQ: apps that know nothing of pinfold call mq_open(3),
// mq_send, mq_receive and mq_unlink the ordinary way — Python through the
// C library (ctypes), Go through the raw syscalls — and exchange messages
// through a broker queue (Grants.POSIXMQ, seccomp user notification).
// Without a grant mq_open of a brokered name fails with EACCES; the queue
// never appears in the app's own /dev/mqueue, where an app without
// POSIXMQ does see its own queues.
func TestIPCE2EPosixMQ(t *testing.T) {
	env := newIPCEnv(t)
	sender := ipc.Grants{
		POSIXMQ:    true,
		Create:     []ipc.CreateGrant{{Names: []string{"mqx/*"}, Kinds: []ipc.Kind{ipc.MQ}}},
		MaxObjects: 2, MaxBytes: 1 << 20,
	}
	s := env.startPython(t, "mq-sender", sender, []step{
		{"posix_open mqx/jobs w 4 64", "ok"},
		{"ls /dev/mqueue", "ok []"},
		{"send mqx/jobs first 1", "ok"},
		{"send mqx/jobs urgent 9", "ok"},
		{"send mqx/jobs last 1", "ok"},
		{"wait", "waiting"},
		{"posix_unlink mqx/jobs", "ok"},
		{"posix_open mqx/jobs r @again", "ENOENT"},
		{"wait", "waiting"},
	})
	s.run(t)

	receiver := ipc.Grants{
		POSIXMQ: true,
		Attach:  []ipc.AttachGrant{{Names: []string{"mqx/*"}, Kinds: []ipc.Kind{ipc.MQ}, Access: ipc.Read}},
	}
	r := env.start(t, "mq-receiver", receiver, []step{
		{"posix_open mqx/jobs r", "ok"},
		{"ls /dev/mqueue", "ok []"},
		{"recv mqx/jobs", "ok urgent prio=9"},
		{"recv mqx/jobs", "ok first prio=1"},
		{"recv mqx/jobs", "ok last prio=1"},
		{"posix_open mqx/jobs w @w", "EACCES"},   // read grant only
		{"posix_unlink mqx/jobs", "EACCES"},      // not its queue
		{"posix_open mqx/new rw 4 64", "ENOENT"}, // no create grant
		{"wait", "waiting"},
	})
	r.run(t)

	denied := env.start(t, "mq-denied", ipc.Grants{POSIXMQ: true}, []step{
		{"posix_open mqx/jobs r", "EACCES"},
		{"posix_open mqx/mine rw 4 64", "EACCES"},
		{"posix_unlink mqx/jobs", "EACCES"},
		{"ls /dev/mqueue", "ok []"},
	})
	denied.finish(t, 0)

	// Without POSIXMQ, mq_open is the kernel's, in the app's own ipc
	// namespace: the queue shows in its /dev/mqueue, so the "ok []" above
	// are not vacuous.
	local := env.start(t, "mq-local", ipc.Grants{}, []step{
		{"posix_open own rw 4 64", "ok"},
		{"ls /dev/mqueue", "ok [own]"},
		{"posix_open mqx/jobs r", "EACCES"}, // the kernel refuses a '/' in the name
	})
	local.finish(t, 0)

	s.release(t)
	s.run(t) // unlinked
	r.release(t)
	r.run(t)
	s.finish(t, 0)
	r.finish(t, 0)
	env.checkEmpty(t)
}

// TestIPCE2EHostile: an app that sends garbage, oversized, truncated and
// otherwise malformed messages on its control channel gets an error reply
// for each and, after 64 in a row, a closed channel; an app that floods
// requests without reading replies blocks only itself. Another app's IPC
// keeps working throughout.
func TestIPCE2EHostile(t *testing.T) {
	env := newIPCEnv(t)
	fds := openFDs(t)
	good := env.start(t, "good", ipc.Grants{
		Create:     []ipc.CreateGrant{{Names: []string{"g/*"}, Kinds: ipc.AllKinds}},
		MaxObjects: 4, MaxBytes: 1 << 20,
	}, []step{
		{"shm_create g/x 4096", "ok"},
		{"wait", "waiting"},
		{"nop", "ok"},
		{"shm_attach g/x read @ro", "ok size=4096"},
		{"wait", "waiting"},
		{"pipe_open g/p read", "ok"},
		{"self", "ok {GOOD} good 4 1048576 2 69632"},
	})
	env.vars["GOOD"] = good.ID
	good.run(t)

	h := env.start(t, "hostile", ipc.Grants{}, []step{
		{"raw nop", "ok"},
		{"raw garbage", "EBADMSG"},
		{"raw short", "EBADMSG"},
		{"raw empty", "EBADMSG"},
		{"raw oversized", "E2BIG"},
		{"raw truncated", "EBADMSG"},
		{"raw badversion", "EPROTONOSUPPORT"},
		{"raw toomany", "E2BIG"},
		{"raw withfd", "EINVAL"},
		{"raw withfds", "EINVAL"},
		{"raw badargs", "EINVAL"},
		{"raw nop", "ok"}, // the channel still works
		{"raw flood", "closed after 64"},
		{"nop", "CLOSED"},
		{"wait", "waiting"},
	})
	h.run(t)
	good.release(t)
	good.run(t)

	stuffer := env.start(t, "stuffer", ipc.Grants{}, []step{
		{"raw stuff", "ok full"},
		{"wait", "waiting"},
	})
	stuffer.run(t)
	good.release(t)
	good.run(t)

	h.finish(t, 0)
	stuffer.finish(t, 0)
	good.finish(t, 0)
	env.checkEmpty(t)
	// The descriptors the hostile app sent were all closed.
	for fd, target := range openFDs(t) {
		if fds[fd] != target {
			t.Errorf("descriptor left open: %s -> %s", fd, target)
		}
	}
	if _, ok := env.findEvent(func(e ipc.Event) bool { return e.Kind == ipc.Hostile && e.App == h.ID }); !ok {
		t.Errorf("no Hostile event for the app whose channel was closed")
	}
	if e, ok := env.findEvent(func(e ipc.Event) bool { return e.Kind == ipc.Hostile && e.App != h.ID }); ok {
		t.Errorf("Hostile event for another app: %+v", e)
	}
}

// TestIPCE2ELeaks runs 1000 cycles of two apps, an owner creating one
// object of each kind and a peer attaching them all, ending in the four
// ways a transfer can end: both exit; the owner is SIGKILLed in the middle
// of a write (the peer reads end of file); the peer is SIGKILLed in the
// middle of a read (the owner gets EPIPE); both are closed while running.
// Afterwards the supervisor process has exactly the descriptors, mounts,
// goroutines and children it had before, the broker holds nothing, and
// every object created was removed.
func TestIPCE2ELeaks(t *testing.T) {
	env := newIPCEnv(t)
	const cycles, workers = 1000, 4
	// Warm up: process-wide state made on first use (the broker's queue
	// namespace thread, the seccomp program cache, the poller) is not a
	// leak.
	for v := range 4 {
		t.Run(fmt.Sprintf("warmup%d", v), func(t *testing.T) { leakCycle(t, env, -1-v, v) })
	}
	if t.Failed() {
		t.FailNow()
	}
	snap := takeSnapshot(t)
	tmpfsBefore := countTmpfs(t)
	var createdBefore, removedBefore int
	env.mu.Lock()
	for _, e := range env.events {
		switch e.Kind {
		case ipc.Created:
			createdBefore++
		case ipc.Removed:
			removedBefore++
		}
	}
	env.mu.Unlock()

	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				t.Run(fmt.Sprintf("cycle%d", i), func(t *testing.T) { leakCycle(t, env, i, i%4) })
			}
		}()
	}
	for i := range cycles {
		if t.Failed() {
			break // one broken cycle says enough
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	env.checkEmpty(t)
	snap.check(t)
	if n := countTmpfs(t); n > tmpfsBefore {
		t.Errorf("%d tmpfs mounts in /proc/self/mountinfo, %d before", n, tmpfsBefore)
	}
	if n, before := len(openFDs(t)), len(snap.fds); n > before {
		t.Errorf("%d descriptors open, %d before", n, before)
	}
	created, removed := 0, 0
	env.mu.Lock()
	for _, e := range env.events {
		switch e.Kind {
		case ipc.Created:
			created++
		case ipc.Removed:
			removed++
		}
	}
	env.mu.Unlock()
	if created-createdBefore < cycles*4 || created != removed {
		t.Errorf("%d objects created (%d in the cycles), %d removed; want every one removed", created, created-createdBefore, removed)
	}
}

// leakCycle is one owner/peer exchange of TestIPCE2ELeaks; variant 0: both
// exit, 1: the owner is killed mid-write, 2: the peer is killed mid-read,
// 3: both are closed while running.
func leakCycle(t *testing.T, env *ipcEnv, i, variant int) {
	n := fmt.Sprintf("leak/%d", i)
	if i < 0 {
		n = fmt.Sprintf("leak/w%d", -i)
	}
	owner := []step{
		{"shm_create " + n + "/s 4096", "ok"},
		{"mmapw " + n + "/s owner", "ok"},
		{"region_map " + n + "/r 4096 readwrite", "ok size=4096 created=true"},
		{"mq_open " + n + "/q 2 32 readwrite", "ok maxmsg=2 msgsize=32"},
		{"send " + n + "/q m", "ok"},
		{"pipe_open " + n + "/p write", "ok"},
		{"wait", "waiting"},
	}
	peer := []step{
		{"shm_attach " + n + "/s read", "ok size=4096"},
		{"mmapr " + n + "/s 5", "ok owner"},
		{"region_map " + n + "/r 0 read", "ok size=4096 created=false"},
		{"mq_open " + n + "/q 0 0 read", "ok maxmsg=2 msgsize=32"},
		{"recv " + n + "/q", "ok m prio=0"},
		{"pipe_open " + n + "/p read", "ok"},
	}
	switch variant {
	case 0:
		owner = append(owner, step{"write " + n + "/p done", "ok"})
		peer = append(peer, step{"readall " + n + "/p", "ok done"})
	case 1:
		owner = append(owner, step{"writeloop " + n + "/p", "never"})
		peer = append(peer, step{"readfull " + n + "/p 65536", "ok"}, step{"readall " + n + "/p", "ok *"})
	case 2:
		owner = append(owner, step{"writeloop " + n + "/p", "EPIPE"})
		peer = append(peer, step{"readfull " + n + "/p 65536", "ok"}, step{"sleep " + n, "never"})
	case 3:
		owner = append(owner, step{"writeloop " + n + "/p", "never"})
		peer = append(peer, step{"readfull " + n + "/p 65536", "ok"}, step{"sleep " + n, "never"})
	}
	o := env.start(t, "leak-owner", leakOwner, owner)
	o.run(t)
	p := env.start(t, "leak-peer", leakPeer, peer)
	p.runN(t, 6)
	switch variant {
	case 0:
		o.finish(t, 0)
		p.finish(t, 0)
	case 1:
		o.release(t)
		p.step(t) // readfull: the owner is writing
		o.kill(t)
		p.finish(t, 0)
	case 2:
		o.release(t)
		p.step(t)
		p.kill(t)
		o.finish(t, 0)
	case 3:
		o.release(t)
		p.step(t)
		for _, a := range []*e2eApp{o, p} {
			a.close(t)
		}
	}
}

var (
	leakOwner = ipc.Grants{
		Create:     []ipc.CreateGrant{{Names: []string{"leak/**"}, Kinds: ipc.AllKinds}},
		MaxObjects: 4, MaxBytes: 1 << 20,
	}
	leakPeer = ipc.Grants{
		Attach: []ipc.AttachGrant{{Names: []string{"leak/**"}, Kinds: ipc.AllKinds, Access: ipc.Read}},
	}
)

// countTmpfs counts the tmpfs mounts this process sees.
func countTmpfs(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if _, after, ok := strings.Cut(line, " - "); ok && strings.HasPrefix(after, "tmpfs ") {
			n++
		}
	}
	return n
}

// TestIPCE2ESupervisorKilled: a supervisor in its own process (the
// restart-supervisor role) runs two apps that hold one object of each kind
// — the peer also maps the shared memory and the region — and is
// SIGKILLed. Afterwards no process on the host holds a descriptor or a
// mapping of any of those objects or of the control channels, the broker's
// private ipc namespace is gone, the region's tmpfs never was in any mount
// table, no mount was added, no process of the apps remains, and a new
// supervisor recovers the dead one's records and runs the same exchange
// under the same names.
func TestIPCE2ESupervisorKilled(t *testing.T) {
	requireRoot(t)
	stateDir := newStateDir(t)
	mountsBefore := mounts(t)
	tmpfsBefore := countTmpfs(t)
	selfIPC, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(probeBin)
	cmd.Env = append(os.Environ(), ipcRoleEnv+"=restart-supervisor", ipcStateEnv+"="+stateDir, ipcProbeEnv+"="+probeBin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed, recovered := false, false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if !recovered {
			// Failed half-way: release what the dead supervisor left
			// (its apps die with it; their cgroups and records stay).
			if sup, err := sandbox.NewSupervisor(supervisorOptions(stateDir)); err == nil {
				sup.Recover()
			}
		}
	}()
	var st restartStarted
	if err := json.Unmarshal([]byte(newLineReader(out).next(t)), &st); err != nil {
		t.Fatalf("restart supervisor: %v; stderr:\n%s", err, stderr.String())
	}
	if len(st.Apps) != 2 {
		t.Fatalf("restart supervisor started %d apps, want 2", len(st.Apps))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("restart supervisor's stderr:\n%s", stderr.String())
		}
	})

	// What the supervisor and its apps hold: every IPC object and socket,
	// minus what this test process shares with them (its pipes to the
	// supervisor).
	held := map[fileID]string{}
	for _, pid := range append([]int{st.Pid}, st.Apps...) {
		for id, what := range mustIPCFiles(t, pid) {
			held[id] = what
		}
	}
	for id := range mustIPCFiles(t, os.Getpid()) {
		delete(held, id)
	}
	kinds := map[string][]fileID{}
	for id, what := range held {
		kinds[id.kind] = append(kinds[id.kind], id)
		if id.kind == "mqueue" && !strings.HasSuffix(what, "(deleted)") {
			// The broker unlinks a queue's name as soon as it made it.
			t.Errorf("a broker queue still has a name: %s", what)
		}
	}
	for _, k := range []string{"memfd", "tmpfs", "mqueue", "pipe", "socket"} {
		if len(kinds[k]) == 0 {
			t.Fatalf("found no %s held by the supervisor or its apps: %v", k, held)
		}
	}
	region := kinds["tmpfs"][0]
	// The region's tmpfs is detached: its device is in no mount table.
	if where := findMountDev(t, region.major, region.minor); where != "" {
		t.Errorf("the region's tmpfs (%d:%d) is mounted: %s", region.major, region.minor, where)
	}
	// The peer's mappings are seen (so the scan below can see them).
	peerMaps := mappedFiles(t, st.Apps[1])
	for _, k := range []string{"memfd", "tmpfs"} {
		found := false
		for _, id := range kinds[k] {
			found = found || peerMaps[id]
		}
		if !found {
			t.Errorf("the peer app maps no %s object: the maps scan is broken", k)
		}
	}
	// The broker's private ipc namespace for queues.
	brokerNS := map[string]bool{}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/ns/ipc", st.Pid))
	for _, p := range tasks {
		if ns, err := os.Readlink(p); err == nil && ns != selfIPC {
			brokerNS[ns] = true
		}
	}
	if len(brokerNS) != 1 {
		t.Errorf("supervisor threads are in ipc namespaces %v besides the host's; want the broker's one", brokerNS)
	}

	var appFDs []int
	for _, pid := range st.Apps {
		fd, err := pidfdOpen(pid)
		if err != nil {
			t.Fatalf("pidfd_open(%d): %v", pid, err)
		}
		defer syscall.Close(fd)
		appFDs = append(appFDs, fd)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true
	for i, fd := range appFDs {
		if !waitPidfd(t, fd) {
			t.Fatalf("app pid %d alive %s after its supervisor was SIGKILLed", st.Apps[i], hangTimeout)
		}
	}

	// Nothing of it remains.
	for pid, ids := range everyProcessFiles(t) {
		for id, where := range ids {
			if what, ok := held[id]; ok {
				t.Errorf("process %d still holds %s (%s): %s", pid, id, what, where)
			}
		}
	}
	nsLinks, _ := filepath.Glob("/proc/[0-9]*/task/*/ns/ipc")
	for _, p := range nsLinks {
		if ns, err := os.Readlink(p); err == nil && brokerNS[ns] {
			t.Errorf("%s is still the broker's ipc namespace %s", p, ns)
		}
	}
	for m := range mounts(t) {
		if !mountsBefore[m] {
			t.Errorf("mount added: %s", m)
		}
	}
	if n := countTmpfs(t); n > tmpfsBefore {
		b, _ := os.ReadFile("/proc/self/mountinfo")
		t.Errorf("%d tmpfs mounts, %d before:\n%s", n, tmpfsBefore, b)
	}
	helperCgroup := fmt.Sprintf("/pinfold-test-%d/", st.Pid)
	procs, _ := filepath.Glob("/proc/[0-9]*/cgroup")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), helperCgroup) {
			continue
		}
		status, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		if !zombieOfOther(string(status)) {
			t.Errorf("%s: a process of the dead supervisor's apps remains:\n%s", p, status)
		}
	}

	// A new supervisor recovers the dead one's records and works, under
	// the same names (the dead broker's objects lived only in its memory).
	env := newIPCEnvAt(t, stateDir)
	left, err := env.sup.Recover()
	recovered = true
	if err != nil {
		t.Errorf("Recover: %v", err)
	}
	var ids []string
	for _, l := range left {
		ids = append(ids, l.ID)
		if err := l.Report.Err(); err != nil {
			t.Errorf("recovering %s: %v", l.ID, err)
		}
	}
	slices.Sort(ids)
	want := slices.Sorted(slices.Values(st.IDs))
	if !slices.Equal(ids, want) {
		t.Errorf("Recover found apps %v, want %v", ids, want)
	}
	owner := env.start(t, "restart", restartGrants[0], []step{
		{"shm_create crash/shm 65536", "ok"},
		{"mmapw crash/shm again", "ok"},
		{"mq_open crash/q 4 64 readwrite", "ok maxmsg=4 msgsize=64"},
		{"send crash/q again-mq", "ok"},
		{"wait", "waiting"},
	})
	owner.run(t)
	peer := env.start(t, "restart", restartGrants[1], []step{
		{"shm_attach crash/shm read", "ok size=65536"},
		{"mmapr crash/shm 5", "ok again"},
		{"mq_open crash/q 0 0 read", "ok maxmsg=4 msgsize=64"},
		{"recv crash/q", "ok again-mq prio=0"},
	})
	peer.finish(t, 0)
	owner.finish(t, 0)
	env.checkEmpty(t)
}

// fileID identifies an open file: the device (major, minor) and inode
// of what a descriptor or mapping refers to, and its kind.
type fileID struct {
	major, minor uint32
	ino          uint64
	kind         string
}

func (id fileID) String() string {
	return fmt.Sprintf("%s %d:%d:%d", id.kind, id.major, id.minor, id.ino)
}

// Filesystem magic numbers (statfs f_type) of the files IPC is made of.
const (
	tmpfsMagic  = 0x01021994 // shm (memfd) and regions
	mqueueMagic = 0x19800202
	pipefsMagic = 0x50495045
	sockfsMagic = 0x534f434b
)

func devMajor(dev uint64) uint32 { return uint32((dev>>8)&0xfff | (dev>>32)&^0xfff) }
func devMinor(dev uint64) uint32 { return uint32(dev&0xff | (dev>>12)&^0xff) }

// ipcFiles lists the descriptors of pid that are IPC objects or sockets:
// memfds, region files, queues, pipes and sockets, with their targets.
func ipcFiles(pid int) (map[fileID]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[fileID]string{}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		target, err := os.Readlink(p)
		if err != nil {
			continue // closed meanwhile
		}
		var fs syscall.Statfs_t
		var st syscall.Stat_t
		if syscall.Statfs(p, &fs) != nil || syscall.Stat(p, &st) != nil {
			continue
		}
		kind := ""
		switch uint32(fs.Type) {
		case tmpfsMagic:
			switch {
			case strings.HasPrefix(target, "/memfd:"):
				kind = "memfd"
			case strings.HasSuffix(target, "(deleted)"):
				kind = "tmpfs" // an unlinked file: a region's O_TMPFILE
			default:
				continue // a named file on a mounted tmpfs (/tmp): not IPC
			}
		case mqueueMagic:
			kind = "mqueue"
		case pipefsMagic:
			kind = "pipe"
		case sockfsMagic:
			kind = "socket"
		default:
			continue
		}
		id := fileID{major: devMajor(uint64(st.Dev)), minor: devMinor(uint64(st.Dev)), ino: st.Ino, kind: kind}
		out[id] = fmt.Sprintf("pid %d fd %s -> %s", pid, e.Name(), target)
	}
	return out, nil
}

// mustIPCFiles is ipcFiles of a process that must exist.
func mustIPCFiles(t testing.TB, pid int) map[fileID]string {
	t.Helper()
	m, err := ipcFiles(pid)
	if err != nil {
		t.Fatalf("listing the descriptors of %d: %v", pid, err)
	}
	return m
}

// mappedFiles lists the files pid maps (see parseMaps).
func mappedFiles(t testing.TB, pid int) map[fileID]bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatalf("reading the mappings of %d: %v", pid, err)
	}
	return parseMaps(string(b))
}

// parseMaps reads /proc/PID/maps into the identities of the mapped files.
// A mapping does not tell the kind of its file: each is listed under
// every kind, so that it compares equal to ipcFiles' identities.
func parseMaps(maps string) map[fileID]bool {
	out := map[fileID]bool{}
	for _, line := range strings.Split(maps, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] == "0" {
			continue
		}
		maj, min, ok := strings.Cut(f[3], ":")
		if !ok {
			continue
		}
		ma, err1 := strconv.ParseUint(maj, 16, 32)
		mi, err2 := strconv.ParseUint(min, 16, 32)
		ino, err3 := strconv.ParseUint(f[4], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		for _, k := range []string{"memfd", "tmpfs", "mqueue", "pipe", "socket"} {
			out[fileID{major: uint32(ma), minor: uint32(mi), ino: ino, kind: k}] = true
		}
	}
	return out
}

// everyProcessFiles lists, for every process on the host, the IPC files
// it holds a descriptor of or maps. Processes that exit while they are
// scanned are skipped.
func everyProcessFiles(t testing.TB) map[int]map[fileID]string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]map[fileID]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ids, err := ipcFiles(pid)
		if err != nil {
			ids = map[fileID]string{}
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid)); err == nil {
			for id := range parseMaps(string(b)) {
				ids[id] = "mapped"
			}
		}
		if len(ids) > 0 {
			out[pid] = ids
		}
	}
	return out
}

// findMountDev returns a mountinfo line of any process that mounts the
// device major:minor, or "".
func findMountDev(t testing.TB, major, minor uint32) string {
	t.Helper()
	want := fmt.Sprintf("%d:%d", major, minor)
	files, _ := filepath.Glob("/proc/[0-9]*/mountinfo")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[2] == want {
				return p + ": " + line
			}
		}
	}
	return ""
}

// TestIPCE2EChannelStartFails: an app whose pre-wired channels cannot all
// be opened does not start (the error names the errno), and a start that
// failed leaves nothing: no descriptor in the supervisor, no session in
// the broker, no hold on the channels it did open — so the next app with
// the same channels gets them as if the failed one had never been tried.
func TestIPCE2EChannelStartFails(t *testing.T) {
	env := newIPCEnv(t)
	consumerOf := func(chans ...ipc.Channel) ipc.Grants {
		return ipc.Grants{
			Attach:   []ipc.AttachGrant{{Names: []string{"wire/**"}, Kinds: ipc.AllKinds, Access: ipc.Read}},
			Channels: chans,
		}
	}
	data := ipc.Channel{Name: "wire/data", Kind: ipc.Pipe, Access: ipc.Read}
	startFails := func(g ipc.Grants, want syscall.Errno) {
		t.Helper()
		fds := openFDs(t)
		spec, err := ipcSpec("wire-consumer", g, "fd wire/data")
		if err != nil {
			t.Fatal(err)
		}
		app, err := env.sup.Start(spec)
		if err == nil {
			app.Close()
			t.Fatalf("an app with channels %+v started; want %v", g.Channels, want)
		}
		if !errors.Is(err, want) {
			t.Errorf("start with channels %+v: %v; want %v", g.Channels, err, want)
		}
		if se := (*sandbox.StartError)(nil); errors.As(err, &se) && se.Cleanup.Err() != nil {
			t.Errorf("cleanup of the failed start: %v", se.Cleanup.Err())
		}
		for fd, target := range openFDs(t) {
			if fds[fd] != target {
				t.Errorf("descriptor left open by the failed start: %s -> %s", fd, target)
			}
		}
	}

	// Nothing to attach yet.
	startFails(consumerOf(data), syscall.ENOENT)
	env.checkEmpty(t)

	p := env.start(t, "wire-producer", ipc.Grants{
		Create:     []ipc.CreateGrant{{Names: []string{"wire/**"}, Kinds: ipc.AllKinds}},
		MaxObjects: 2, MaxBytes: 1 << 20,
		Channels: []ipc.Channel{{Name: "wire/data", Kind: ipc.Pipe, Access: ipc.Write}},
	}, []step{
		{"fd wire/data", "ok"},
		{"write wire/data hello-pipe", "ok"},
		{"wait", "waiting"},
	})
	p.run(t)

	// Channels are opened under the app's own grants.
	startFails(ipc.Grants{Channels: []ipc.Channel{data}}, syscall.EPERM)
	// The first channel opens, the second does not exist.
	startFails(consumerOf(data, ipc.Channel{Name: "wire/missing", Kind: ipc.Shm, Access: ipc.Read}), syscall.ENOENT)
	for _, o := range env.broker.Objects() {
		if o.Name == "wire/data" && o.Holders != 1 {
			t.Errorf("wire/data after a failed start: %d holders, want 1 (the producer)", o.Holders)
		}
	}
	if st := env.broker.Stats(); st.Sessions != 1 {
		t.Errorf("%d broker sessions after a failed start, want 1 (the producer)", st.Sessions)
	}

	// The app that never ran did not use up the pipe's read end.
	c := env.start(t, "wire-consumer", consumerOf(data), []step{
		{"fd wire/data", "ok"},
		{"readall wire/data", "ok hello-pipe"},
	})
	c.runN(t, 1)
	p.finish(t, 0)
	c.finish(t, 0)
	env.checkEmpty(t)
}
