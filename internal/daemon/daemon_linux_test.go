package daemon_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/internal/client"
	"github.com/pinfold/pinfold/internal/daemon"
)

// runApp runs an attached app through the Run stream and returns its
// output and exit status.
func runApp(t testing.TB, c *client.Client, spec *v1.AppSpec, stdin string) (stdout, stderr string, exit *v1.ExitStatus, app *v1.App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := c.Apps.Run(ctx)
	if err := st.Send(&v1.RunRequest{Msg: &v1.RunRequest_Start{Start: &v1.RunStart{Spec: spec, Stdin: stdin != ""}}}); err != nil {
		t.Fatalf("send start: %v", err)
	}
	if stdin != "" {
		st.Send(&v1.RunRequest{Msg: &v1.RunRequest_Stdin{Stdin: []byte(stdin)}})
		st.Send(&v1.RunRequest{Msg: &v1.RunRequest_CloseStdin{CloseStdin: true}})
	}
	st.CloseRequest()
	var out, errb bytes.Buffer
	for {
		resp, err := st.Receive()
		if err != nil {
			t.Fatalf("run %v: %v (stdout %q, stderr %q)", spec.Args, err, out.String(), errb.String())
		}
		switch m := resp.Msg.(type) {
		case *v1.RunResponse_Started:
			app = m.Started
		case *v1.RunResponse_Stdout:
			out.Write(m.Stdout)
		case *v1.RunResponse_Stderr:
			errb.Write(m.Stderr)
		case *v1.RunResponse_Exit:
			st.CloseResponse()
			return out.String(), errb.String(), m.Exit, app
		}
	}
}

func sh(script string) *v1.AppSpec {
	return &v1.AppSpec{Args: []string{"/bin/sh", "-c", script}}
}

func TestRunAttached(t *testing.T) {
	_, c := startDaemon(t, newEnv(t))
	out, errOut, exit, app := runApp(t, c, sh(`echo out; echo err >&2; read x; echo "got $x"; exit 3`), "hello\n")
	if out != "out\ngot hello\n" || errOut != "err\n" || exit.Code != 3 {
		t.Errorf("stdout %q stderr %q exit %d; want out+got hello, err, 3", out, errOut, exit.Code)
	}
	if app == nil || app.Id == "" || app.Policy != "default" || len(app.PolicyHash) != 64 {
		t.Errorf("started app = %v", app)
	}
	// Attached apps are removed once their exit was delivered.
	if _, err := c.Apps.Inspect(context.Background(), connect.NewRequest(&v1.InspectRequest{Id: app.Id})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("inspect after the run: %v, want NotFound", err)
	}
}

func TestRunStartFailure(t *testing.T) {
	_, c := startDaemon(t, newEnv(t))
	st := c.Apps.Run(context.Background())
	st.Send(&v1.RunRequest{Msg: &v1.RunRequest_Start{Start: &v1.RunStart{Spec: &v1.AppSpec{Args: []string{"nosuchcmd"}}}}})
	st.CloseRequest()
	_, err := st.Receive()
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "sandbox init: exec: nosuchcmd: command not found") {
		t.Errorf("run of a missing command: %v", err)
	}
	for _, spec := range []*v1.AppSpec{{}, {Args: []string{"x\x00"}}, {Args: []string{"true"}, Workdir: "rel"}} {
		st := c.Apps.Run(context.Background())
		st.Send(&v1.RunRequest{Msg: &v1.RunRequest_Start{Start: &v1.RunStart{Spec: spec}}})
		st.CloseRequest()
		if _, err := st.Receive(); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("spec %v: %v, want InvalidArgument", spec, err)
		}
	}
}

func TestDetachedLifecycle(t *testing.T) {
	_, c := startDaemon(t, newEnv(t))
	ctx := context.Background()
	cr, err := c.Apps.Create(ctx, connect.NewRequest(&v1.CreateRequest{Spec: &v1.AppSpec{Name: "job", Args: []string{"/bin/sh", "-c", "for i in 1 2 3; do echo line $i; done; exit 5"}}, Start: true}))
	if err != nil {
		t.Fatal(err)
	}
	id := cr.Msg.App.Id
	w, err := c.Apps.Wait(ctx, connect.NewRequest(&v1.WaitRequest{Id: id}))
	if err != nil || w.Msg.Exit.Code != 5 {
		t.Fatalf("wait: %v %v", w, err)
	}
	logs, err := c.Apps.Logs(ctx, connect.NewRequest(&v1.LogsRequest{Id: id, Follow: true}))
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for logs.Receive() {
		got.Write(logs.Msg().Data)
	}
	if err := logs.Err(); err != nil || got.String() != "line 1\nline 2\nline 3\n" {
		t.Errorf("logs %q, %v", got.String(), err)
	}
	ins, err := c.Apps.Inspect(ctx, connect.NewRequest(&v1.InspectRequest{Id: id}))
	if err != nil || ins.Msg.App.State != "cleaned" || ins.Msg.App.Exit.Code != 5 || len(ins.Msg.App.Cleanup) == 0 {
		t.Errorf("inspect: %v %v", ins, err)
	}
	st, err := c.Apps.Stats(ctx, connect.NewRequest(&v1.StatsRequest{Id: id}))
	if err != nil || st.Msg.Usage.PidsPeak == 0 || st.Msg.Usage.MemoryLimit != 512<<20 {
		t.Errorf("stats: %v %v", st, err)
	}
	list, _ := c.Apps.List(ctx, connect.NewRequest(&v1.ListRequest{All: true}))
	if len(list.Msg.Apps) != 1 {
		t.Errorf("list -a: %v", list.Msg.Apps)
	}
	if _, err := c.Apps.Remove(ctx, connect.NewRequest(&v1.RemoveRequest{Id: id})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apps.Inspect(ctx, connect.NewRequest(&v1.InspectRequest{Id: id})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("inspect after remove: %v", err)
	}
}

func TestStopKillSignal(t *testing.T) {
	_, c := startDaemon(t, newEnv(t))
	ctx := context.Background()
	create := func(script string) string {
		cr, err := c.Apps.Create(ctx, connect.NewRequest(&v1.CreateRequest{Spec: sh(script), Start: true}))
		if err != nil {
			t.Fatal(err)
		}
		return cr.Msg.App.Id
	}
	// pid 1 ignores a default-action SIGTERM: Stop kills it after the grace.
	id := create("sleep 1000")
	stop, err := c.Apps.Stop(ctx, connect.NewRequest(&v1.StopRequest{Id: id, Grace: durationpbMs(200)}))
	if err != nil || stop.Msg.Exit.Signal != int32(syscall.SIGKILL) {
		t.Errorf("stop: %v %v", stop, err)
	}
	id = create(`trap "exit 9" USR1; while :; do sleep 0.05; done`)
	time.Sleep(200 * time.Millisecond) // let the shell install its trap
	if _, err := c.Apps.Signal(ctx, connect.NewRequest(&v1.SignalRequest{Id: id, Signal: int32(syscall.SIGUSR1)})); err != nil {
		t.Fatal(err)
	}
	if w, err := c.Apps.Wait(ctx, connect.NewRequest(&v1.WaitRequest{Id: id})); err != nil || w.Msg.Exit.Code != 9 {
		t.Errorf("signalled app: %v %v", w, err)
	}
	id = create("sleep 1000 & sleep 1000 & wait")
	if _, err := c.Apps.Kill(ctx, connect.NewRequest(&v1.KillRequest{Id: id})); err != nil {
		t.Fatal(err)
	}
	if w, err := c.Apps.Wait(ctx, connect.NewRequest(&v1.WaitRequest{Id: id})); err != nil || w.Msg.Exit.Code != 137 {
		t.Errorf("killed app: %v %v", w, err)
	}
	if _, err := c.Apps.Signal(ctx, connect.NewRequest(&v1.SignalRequest{Id: id, Signal: 99})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("signal 99: %v", err)
	}
	if _, err := c.Apps.Kill(ctx, connect.NewRequest(&v1.KillRequest{Id: "../etc"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("kill of a malformed id: %v", err)
	}
}

// TestEventsCausalChain: an app's events form a chain back to the API
// call that created it, and replay works from any id.
func TestEventsCausalChain(t *testing.T) {
	_, c := startDaemon(t, newEnv(t))
	ctx := context.Background()
	_, _, _, app := runApp(t, c, sh("exit 0"), "")
	// The daemon removes an attached app after the client has its exit
	// status: wait for that last event before replaying.
	waitEvent(t, c, app.Id, "app.removed")
	st, err := c.Events.Watch(ctx, connect.NewRequest(&v1.WatchRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	byID := map[uint64]*v1.Event{}
	var appEvents []*v1.Event
	var last uint64
	for st.Receive() {
		e := st.Msg()
		if e.Id <= last {
			t.Fatalf("event ids not increasing: %d after %d", e.Id, last)
		}
		last = e.Id
		byID[e.Id] = e
		if e.App == app.Id {
			appEvents = append(appEvents, e)
		}
	}
	kinds := map[string]bool{}
	for _, e := range appEvents {
		kinds[e.Kind] = true
	}
	for _, k := range []string{"app.created", "app.running", "app.exited", "cleanup.step", "app.cleaned", "app.removed"} {
		if !kinds[k] {
			t.Errorf("no %s event for the app (got %v)", k, kinds)
		}
	}
	// Walk back from the cleaned event to the API call.
	var cleaned *v1.Event
	for _, e := range appEvents {
		if e.Kind == "app.cleaned" {
			cleaned = e
		}
	}
	if cleaned == nil {
		t.Fatal("no app.cleaned")
	}
	chain := []string{}
	for e := cleaned; e != nil; e = byID[e.Parent] {
		chain = append(chain, e.Kind)
		if e.Parent == 0 {
			break
		}
	}
	if chain[len(chain)-1] != "api.call" || !strings.Contains(byID[findAPI(appEvents, byID)].Detail, "AppService/Run") {
		t.Errorf("causal chain %v does not lead to the Run call", chain)
	}
	// Replay from the middle.
	mid := appEvents[len(appEvents)/2].Id
	st, _ = c.Events.Watch(ctx, connect.NewRequest(&v1.WatchRequest{SinceId: mid, App: app.Id}))
	n := 0
	for st.Receive() {
		if st.Msg().Id <= mid || st.Msg().App != app.Id {
			t.Errorf("replay from %d for %s returned %v", mid, app.Id, st.Msg())
		}
		n++
	}
	if n == 0 {
		t.Error("replay from the middle returned nothing")
	}
}

// waitEvent follows the event log until app has an event of kind.
func waitEvent(t *testing.T, c *client.Client, app, kind string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := c.Events.Watch(ctx, connect.NewRequest(&v1.WatchRequest{App: app, Follow: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for st.Receive() {
		if st.Msg().Kind == kind {
			return
		}
	}
	t.Fatalf("no %s event for app %s within 30s: %v", kind, app, st.Err())
}

func findAPI(evs []*v1.Event, byID map[uint64]*v1.Event) uint64 {
	for _, e := range evs {
		if e.Kind == "app.created" {
			return e.Parent
		}
	}
	return 0
}

func TestPolicyReloadKeepsPrevious(t *testing.T) {
	e := newEnv(t)
	good := "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata: {name: small}\nspec:\n  resources: {memory: 64Mi}\n"
	if err := os.WriteFile(filepath.Join(e.policies, "small.yaml"), []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	_, c := startDaemon(t, e)
	ctx := context.Background()
	before, err := c.Policies.Get(ctx, connect.NewRequest(&v1.GetPolicyRequest{Name: "small"}))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(e.policies, "small.yaml"), []byte(good+"  resources: {memory: 12XB}\n"), 0o644)
	rep, err := c.Policies.Reload(ctx, connect.NewRequest(&v1.ReloadPoliciesRequest{}))
	if err != nil || len(rep.Msg.Rejected) == 0 {
		t.Fatalf("reload of a bad file: %v %v", rep, err)
	}
	after, err := c.Policies.Get(ctx, connect.NewRequest(&v1.GetPolicyRequest{Name: "small"}))
	if err != nil || after.Msg.Policy.Hash != before.Msg.Policy.Hash {
		t.Errorf("the previous version was lost: %v %v", after, err)
	}
	// Apply reports every error with its position, and keeps the old one.
	_, err = c.Policies.Apply(ctx, connect.NewRequest(&v1.ApplyPolicyRequest{Filename: "small.yaml", Content: "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata: {name: small}\nspec:\n  resources: {memory: 12XB, pids: many}\n"}))
	var cerr *connect.Error
	if !errors.As(err, &cerr) || cerr.Code() != connect.CodeInvalidArgument || len(cerr.Details()) != 2 {
		t.Fatalf("apply of a bad file: %v", err)
	}
	if !strings.Contains(err.Error(), `small.yaml:5:23: spec.resources.memory: "12XB" is not a size`) {
		t.Errorf("apply error: %v", err)
	}
	_, _, exit, _ := runApp(t, c, &v1.AppSpec{Policy: "small", Args: []string{"/bin/sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"}}, "")
	if exit.Code != 0 {
		t.Errorf("run with the kept policy: %v", exit)
	}
}

// TestAuthRefusal connects as a real second uid: the daemon refuses it,
// also for read-only calls; root may, and so may the --group.
func TestAuthRefusal(t *testing.T) {
	e := newEnv(t)
	_, c := startDaemon(t, e)
	// Let the unprivileged client reach the socket file, so that the
	// daemon's own SO_PEERCRED check is what refuses it.
	os.Chmod(e.socket, 0o666)
	out, err := asUser(t, 65534, 65534, e.socket)
	if err != nil {
		t.Fatalf("client as uid 65534: %v: %s", err, out)
	}
	if !strings.Contains(out, "permission_denied") {
		t.Errorf("uid 65534 got %q, want permission_denied", out)
	}
	if _, err := c.System.Info(context.Background(), connect.NewRequest(&v1.InfoRequest{})); err != nil {
		t.Errorf("root refused: %v", err)
	}
}

// TestAuthGroup: members of --group may use the API, by primary or
// supplementary group (SO_PEERGROUPS), but may not change policies.
func TestAuthGroup(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Group = "nogroup" // gid 65534 on Debian
	requireRoot(t)
	d, err := daemon.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	t.Cleanup(func() {
		d.Shutdown(context.Background(), true)
		cancel()
		<-served
	})
	waitSocket(t, e.socket)
	if st, err := os.Stat(e.socket); err != nil || st.Mode().Perm() != 0o660 || st.Sys().(*syscall.Stat_t).Gid != 65534 {
		t.Fatalf("socket %v %v: want mode 0660 and group 65534", st, err)
	}
	for _, tc := range []struct {
		name   string
		cred   *syscall.Credential
		expect string
	}{
		{"primary group", &syscall.Credential{Uid: 1000, Gid: 65534}, "result: ok"},
		{"supplementary group", &syscall.Credential{Uid: 1000, Gid: 1000, Groups: []uint32{65534}}, "result: ok"},
		{"other group", &syscall.Credential{Uid: 1000, Gid: 1000}, "connect"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(initBin, "-test.run=^TestClientRole$")
			cmd.Env = []string{"PINFOLD_CLIENT_SOCKET=" + e.socket}
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: tc.cred}
			out, _ := cmd.CombinedOutput()
			if !strings.Contains(string(out), tc.expect) {
				t.Errorf("got %q, want %q", out, tc.expect)
			}
		})
	}
}

// asUser runs a tiny client as uid/gid and prints the outcome of Info.
func asUser(t *testing.T, uid, gid uint32, socket string) (string, error) {
	cmd := exec.Command(initBin, "-test.run=^TestClientRole$")
	cmd.Env = []string{"PINFOLD_CLIENT_SOCKET=" + socket}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestClientRole is not a test: asUser runs it as another uid.
func TestClientRole(t *testing.T) {
	socket := os.Getenv("PINFOLD_CLIENT_SOCKET")
	if socket == "" {
		t.Skip("a helper role of TestAuthRefusal")
	}
	c, err := client.Dial("unix://" + socket)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.System.Info(context.Background(), connect.NewRequest(&v1.InfoRequest{}))
	if err == nil {
		fmt.Println("result: ok")
		return
	}
	fmt.Println("result:", connect.CodeOf(err), err)
}

// TestConcurrentRuns: many attached runs at once all finish with their
// own exit codes.
func TestConcurrentRuns(t *testing.T) {
	_, c := startDaemon(t, newEnv(t))
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			_, _, exit, _ := runApp(t, c, sh(fmt.Sprintf("exit %d", i%7)), "")
			if exit.Code != int32(i%7) {
				errs <- fmt.Errorf("run %d exited %d", i, exit.Code)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestMetrics(t *testing.T) {
	d, c := startDaemon(t, newEnv(t))
	runApp(t, c, sh("exit 0"), "")
	// A streaming call is counted when its handler returns, which may be
	// after the client has its last message; a unary call is counted
	// before its response is sent.
	if _, err := c.System.Info(context.Background(), connect.NewRequest(&v1.InfoRequest{})); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d.MetricsHandler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	for _, name := range []string{"pinfold_apps", "pinfold_app_starts_total", "pinfold_app_start_seconds", "pinfold_app_cleanup_seconds", "pinfold_api_requests_total", "pinfold_events_dropped_total"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// TestCrashRecovery: a daemon SIGKILLed with 20 apps running (forking
// children, attached and detached) leaves nothing once it starts again.
func TestCrashRecovery(t *testing.T) {
	requireRoot(t)
	e := newEnv(t)
	cmd := exec.Command(initBin, "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=daemon", "PINFOLD_TEST_SOCKET="+e.socket, "PINFOLD_TEST_STATE="+e.state,
		"PINFOLD_TEST_POLICIES="+e.policies, "PINFOLD_TEST_INIT="+initBin, "PINFOLD_TEST_CGROUP="+cgroupParent)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitSocket(t, e.socket)
	c, err := client.Dial("unix://" + e.socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 20; i++ {
		spec := sh("sleep 1000 & sleep 1000 & echo up; wait")
		if i%2 == 0 {
			if _, err := c.Apps.Create(ctx, connect.NewRequest(&v1.CreateRequest{Spec: spec, Start: true})); err != nil {
				t.Fatalf("create %d: %v\n%s", i, err, logs.String())
			}
			continue
		}
		st := c.Apps.Run(ctx)
		st.Send(&v1.RunRequest{Msg: &v1.RunRequest_Start{Start: &v1.RunStart{Spec: spec}}})
		if _, err := st.Receive(); err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, logs.String())
		}
	}
	if len(cgroupDirs(t)) == 0 {
		t.Fatal("no app cgroups while 20 apps run")
	}
	cmd.Process.Kill()
	cmd.Wait()
	c.Close()
	// The apps die with the daemon (parent-death signal on their pid 1,
	// whose pid namespace takes every child with it).
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && len(appProcs(t)) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if p := appProcs(t); len(p) > 0 {
		t.Fatalf("processes of the dead daemon's apps still run: %v", p)
	}
	// The next daemon releases everything; new apps run.
	_, c2 := startDaemon(t, e)
	assertClean(t, e)
	if _, _, exit, _ := runApp(t, c2, sh("exit 0"), ""); exit.Code != 0 {
		t.Errorf("a new app after recovery: %v", exit)
	}
}

// appProcs lists live (not zombie) processes in this test's app cgroups.
func appProcs(t testing.TB) []string {
	var out []string
	for _, dir := range cgroupDirs(t) {
		b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		for _, pid := range strings.Fields(string(b)) {
			st, err := os.ReadFile("/proc/" + pid + "/stat")
			if err != nil || strings.Contains(string(st), ") Z ") {
				continue
			}
			out = append(out, pid)
		}
	}
	return out
}

func durationpbMs(ms int) *durationpb.Duration {
	return durationpb.New(time.Duration(ms) * time.Millisecond)
}

// TestRemoveAfter: a policy's removeAfter makes the daemon forget exited
// detached apps by itself.
func TestRemoveAfter(t *testing.T) {
	e := newEnv(t)
	pol := "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata: {name: brief}\nspec:\n  limits: {removeAfter: 100ms}\n"
	if err := os.WriteFile(filepath.Join(e.policies, "brief.yaml"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	_, c := startDaemon(t, e)
	ctx := context.Background()
	cr, err := c.Apps.Create(ctx, connect.NewRequest(&v1.CreateRequest{Spec: &v1.AppSpec{Policy: "brief", Args: []string{"/bin/true"}}, Start: true}))
	if err != nil {
		t.Fatal(err)
	}
	id := cr.Msg.App.Id
	if _, err := c.Apps.Wait(ctx, connect.NewRequest(&v1.WaitRequest{Id: id})); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := c.Apps.Inspect(ctx, connect.NewRequest(&v1.InspectRequest{Id: id}))
		if connect.CodeOf(err) == connect.CodeNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the app is still listed 30s after it exited: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
