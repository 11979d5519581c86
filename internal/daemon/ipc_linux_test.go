package daemon_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/internal/client"
	"github.com/pinfold/pinfold/internal/daemon"
)

// The two policies of the IPC tests: producer may create shared memory
// under t/ (persistent under keep/), consumer may attach producer's, read
// only.
const (
	producerPolicy = `apiVersion: pinfold/v1
kind: SandboxPolicy
metadata: {name: producer}
spec:
  ipc:
    create:
      - {names: ["t/*"], kinds: [shm], maxSize: 1Mi}
      - {names: ["keep/*"], kinds: [shm], maxSize: 1Mi, persistent: true}
`
	consumerPolicy = `apiVersion: pinfold/v1
kind: SandboxPolicy
metadata: {name: consumer}
spec:
  ipc:
    attach:
      - {names: ["t/*"], kinds: [shm], access: read, owners: [producer]}
`
)

// requirePython skips when the host has no python3 for the sandboxed
// client (the sandbox binds the host's /usr).
func requirePython(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 on this host for the Python IPC client")
	}
}

func writePolicies(t *testing.T, e env) {
	t.Helper()
	for name, content := range map[string]string{"producer.yaml": producerPolicy, "consumer.yaml": consumerPolicy} {
		if err := os.WriteFile(filepath.Join(e.policies, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func python(policy, script string) *v1.AppSpec {
	return &v1.AppSpec{Policy: policy, Args: []string{"/usr/bin/python3", "-c", script}}
}

// startProducer starts a detached producer app that creates shm name of
// 4096 bytes and sleeps, and waits until Inspect lists the object.
func startProducer(t *testing.T, c *client.Client, name string) string {
	t.Helper()
	ctx := context.Background()
	cr, err := c.Apps.Create(ctx, connect.NewRequest(&v1.CreateRequest{Start: true, Spec: python("producer",
		"import pinfold, time\nc = pinfold.connect()\nc.shm_create('"+name+"', 4096)\ntime.sleep(600)\n")}))
	if err != nil {
		t.Fatalf("starting the producer: %v", err)
	}
	id := cr.Msg.App.Id
	deadline := time.Now().Add(30 * time.Second)
	for {
		ins, err := c.Apps.Inspect(ctx, connect.NewRequest(&v1.InspectRequest{Id: id}))
		if err != nil {
			t.Fatal(err)
		}
		if objs := ins.Msg.App.IpcObjects; len(objs) > 0 {
			o := objs[0]
			if len(objs) != 1 || o.Name != name || o.Kind != "shm" || o.Size != 4096 || o.Owner != id || o.OwnerPolicy != "producer" || o.Holders != 1 {
				t.Fatalf("inspect of the producer: ipc objects %v, want shm %s of 4096 bytes owned and held by %s", objs, name, id)
			}
			return id
		}
		if ins.Msg.App.State != "running" {
			logs := appLog(t, c, id)
			t.Fatalf("the producer is %s (exit %v) and created nothing; its log:\n%s", ins.Msg.App.State, ins.Msg.App.Exit, logs)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the producer created no object in 30s; its log:\n%s", appLog(t, c, id))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func appLog(t *testing.T, c *client.Client, id string) string {
	st, err := c.Apps.Logs(context.Background(), connect.NewRequest(&v1.LogsRequest{Id: id}))
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for st.Receive() {
		b.Write(st.Msg().Data)
	}
	return b.String()
}

// killAndWait kills a detached app and waits until it is cleaned.
func killAndWait(t *testing.T, c *client.Client, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.Apps.Kill(ctx, connect.NewRequest(&v1.KillRequest{Id: id})); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Apps.Wait(ctx, connect.NewRequest(&v1.WaitRequest{Id: id})); err != nil {
		t.Fatal(err)
	}
}

// allEvents replays the event ring.
func allEvents(t *testing.T, c *client.Client) []*v1.Event {
	t.Helper()
	st, err := c.Events.Watch(context.Background(), connect.NewRequest(&v1.WatchRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var out []*v1.Event
	for st.Receive() {
		out = append(out, st.Msg())
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func findEvent(evs []*v1.Event, kind, app, detailPrefix string) *v1.Event {
	for _, e := range evs {
		if e.Kind == kind && e.App == app && strings.HasPrefix(e.Detail, detailPrefix) {
			return e
		}
	}
	return nil
}

// scrape returns the daemon's metrics.
func scrape(t *testing.T, d *daemon.Daemon) map[string]*dto.MetricFamily {
	t.Helper()
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
	return fams
}

// metricValue is the value of the series of family name with exactly the
// given labels (a counter's, a gauge's, or a histogram's sample count);
// ok is false when there is no such series.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		for _, l := range m.Label {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestIPCEventsAndMetrics: two apps started through the API share
// shared memory through the daemon's broker. The producer creates it with
// the Python client; the consumer is refused read-write (its policy grants
// read) and then attaches it read-only. The event log shows the creation,
// the denial and the grant, each naming both apps, and the releases after
// they exit; the metrics count the calls; the broker ends up empty.
func TestIPCEventsAndMetrics(t *testing.T) {
	requireRoot(t)
	requirePython(t)
	e := newEnv(t)
	writePolicies(t, e)
	d, c := startDaemon(t, e)
	ctx := context.Background()

	producer := startProducer(t, c, "t/data")
	out, errOut, exit, consumerApp := runApp(t, c, python("consumer", `
import pinfold
c = pinfold.connect()
try:
    c.shm_attach("t/data", "readwrite")
    print("attached readwrite")
except PermissionError as e:
    print("denied", e.name)
fd, size = c.shm_attach("t/data", "read")
print("read", size)
`), "")
	if exit.Code != 0 || out != "denied EPERM\nread 4096\n" {
		t.Fatalf("consumer: exit %d, stdout %q, stderr %q; want it denied read-write (EPERM) and granted read", exit.Code, out, errOut)
	}
	consumer := consumerApp.Id

	// While the producer runs, its object is in the broker; the
	// consumer's hold was released when it exited.
	st := d.Supervisor().Broker().Stats()
	if st.Objects != 1 || st.Bytes != 4096 || st.Sessions != 1 {
		t.Errorf("broker while the producer runs: %+v, want 1 object of 4096 bytes and 1 session", st)
	}
	fams := scrape(t, d)
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pinfold_ipc_objects", []string{"kind", "shm"}, 1},
		{"pinfold_ipc_objects", []string{"kind", "pipe"}, 0},
		{"pinfold_ipc_bytes", []string{"kind", "shm"}, 4096},
		{"pinfold_ipc_sessions", nil, 1},
	} {
		if v, ok := metricValue(fams, m.name, m.labels...); !ok || v != m.want {
			t.Errorf("%s%v = %v (present %v), want %v", m.name, m.labels, v, ok, m.want)
		}
	}

	killAndWait(t, c, producer)
	ins, err := c.Apps.Inspect(ctx, connect.NewRequest(&v1.InspectRequest{Id: producer}))
	if err != nil || len(ins.Msg.App.IpcObjects) != 0 {
		t.Errorf("inspect of the exited producer: %v, %v; want no IPC objects (its shm was not persistent)", ins, err)
	}

	evs := allEvents(t, c)
	byID := map[uint64]*v1.Event{}
	for _, ev := range evs {
		byID[ev.Id] = ev
	}
	for _, w := range []struct {
		kind, app, other, detail string
		value                    int64
	}{
		{"ipc.created", producer, producer, "shm t/data: ", 4096},
		{"ipc.granted", producer, producer, "shm t/data readwrite: ", 0},
		{"ipc.denied", consumer, producer, "shm_attach shm t/data readwrite: not granted", int64(syscall.EPERM)},
		{"ipc.granted", consumer, producer, "shm t/data read: ", 0},
		{"ipc.released", consumer, "", "app exited: released 1 handle(s) on 1 object(s)", 1},
		{"ipc.removed", producer, producer, "shm t/data: its owner " + producer + " exited", 0},
		{"ipc.released", producer, "", "app exited: released 1 handle(s) on 1 object(s); removed 1 owned object(s)", 1},
	} {
		ev := findEvent(evs, w.kind, w.app, w.detail)
		if ev == nil {
			t.Errorf("no %s event of app %s with detail %q…", w.kind, w.app, w.detail)
			continue
		}
		if ev.OtherApp != w.other || ev.Value != w.value {
			t.Errorf("%s %q: other app %q, value %d; want %q, %d", w.kind, ev.Detail, ev.OtherApp, ev.Value, w.other, w.value)
		}
		// Each hangs off the latest lifecycle event of the acting app
		// (the release happens when its pid 1 is reaped, before the
		// daemon reports app.exited).
		p := byID[ev.Parent]
		if p == nil || p.App != w.app || !strings.HasPrefix(p.Kind, "app.") {
			t.Errorf("%s %q: parent %v, want a lifecycle event of app %s", w.kind, ev.Detail, p, w.app)
		}
	}

	fams = scrape(t, d)
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"pinfold_ipc_calls_total", []string{"sysno", "shm_create", "errno", "ok"}, 1},
		{"pinfold_ipc_calls_total", []string{"sysno", "shm_attach", "errno", "EPERM"}, 1},
		{"pinfold_ipc_calls_total", []string{"sysno", "shm_attach", "errno", "ok"}, 1},
		{"pinfold_ipc_call_seconds", []string{"sysno", "shm_attach"}, 2},
		{"pinfold_ipc_call_seconds", []string{"sysno", "shm_create"}, 1},
		{"pinfold_ipc_objects", []string{"kind", "shm"}, 0},
		{"pinfold_ipc_bytes", []string{"kind", "shm"}, 0},
		{"pinfold_ipc_broker_fds", nil, 0},
		{"pinfold_ipc_sessions", nil, 0},
	} {
		if v, ok := metricValue(fams, m.name, m.labels...); !ok || v != m.want {
			t.Errorf("%s%v = %v (present %v), want %v", m.name, m.labels, v, ok, m.want)
		}
	}
	if st := d.Supervisor().Broker().Stats(); st.Objects != 0 || st.Bytes != 0 || st.FDs != 0 || st.Sessions != 0 {
		t.Errorf("broker after both apps exited: %+v, want nothing", st)
	}
}

// TestIPCBrokerClosedAtShutdown: a persistent object outlives its creator
// (Inspect still lists it) until the daemon shuts down, which closes the
// broker once every app is cleaned.
func TestIPCBrokerClosedAtShutdown(t *testing.T) {
	requireRoot(t)
	requirePython(t)
	e := newEnv(t)
	writePolicies(t, e)
	d, err := daemon.New(e.config())
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(sctx) }()
	shut := false
	shutdown := func() {
		if shut {
			return
		}
		shut = true
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.Shutdown(ctx, true); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		stop()
		<-served
	}
	t.Cleanup(func() { shutdown(); assertClean(t, e) })
	waitSocket(t, e.socket)
	c, err := client.Dial("unix://" + e.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	producer := startProducer(t, c, "keep/data")
	killAndWait(t, c, producer)
	ins, err := c.Apps.Inspect(context.Background(), connect.NewRequest(&v1.InspectRequest{Id: producer}))
	if err != nil {
		t.Fatal(err)
	}
	if objs := ins.Msg.App.IpcObjects; len(objs) != 1 || !objs[0].Persistent || objs[0].Holders != 0 {
		t.Errorf("inspect of the exited producer: ipc objects %v, want its persistent shm, held by nobody", objs)
	}
	b := d.Supervisor().Broker()
	if st := b.Stats(); st.Objects != 1 || st.Sessions != 0 {
		t.Errorf("broker after the producer exited: %+v, want its persistent object and no session", st)
	}
	last := allEvents(t, c)
	shutdown()
	if st := b.Stats(); st.Objects != 0 || st.Bytes != 0 || st.FDs != 0 {
		t.Errorf("broker after Shutdown: %+v, want nothing", st)
	}
	// The removal at the close is an event too, attributed to the owner.
	removed := false
	after, _ := d.EventLog().Since(last[len(last)-1].Id, 1<<20)
	for _, ev := range after {
		if ev.Kind.String() == "ipc.removed" && ev.App == producer && ev.Other == producer && strings.Contains(ev.Detail, "keep/data") {
			removed = true
		}
	}
	if !removed {
		t.Error("no ipc.removed event for the persistent object at Shutdown")
	}
}

// TestIPCNotifyMetrics: an app of a posixMQ policy calls mq_open(3) and
// mq_unlink(3) of its libc; pinfold serves them through seccomp user
// notifications, and the metrics count each by syscall and result.
func TestIPCNotifyMetrics(t *testing.T) {
	requireRoot(t)
	requirePython(t)
	e := newEnv(t)
	pol := `apiVersion: pinfold/v1
kind: SandboxPolicy
metadata: {name: mqapp}
spec:
  ipc:
    posixMQ: true
    create:
      - {names: [q], kinds: [mq], maxSize: 1Mi}
`
	if err := os.WriteFile(filepath.Join(e.policies, "mqapp.yaml"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	d, c := startDaemon(t, e)
	out, errOut, exit, _ := runApp(t, c, python("mqapp", `
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.mq_open(b"/q", os.O_CREAT | os.O_RDWR, 0o600, None)
print("open", "ok" if fd >= 0 else os.strerror(ctypes.get_errno()))
print("unlink", "ok" if libc.mq_unlink(b"/q") == 0 else os.strerror(ctypes.get_errno()))
print("unlink other", "ok" if libc.mq_unlink(b"/other") == 0 else os.strerror(ctypes.get_errno()))
`), "")
	if exit.Code != 0 || out != "open ok\nunlink ok\nunlink other Permission denied\n" {
		t.Fatalf("mq app: exit %d, stdout %q, stderr %q", exit.Code, out, errOut)
	}
	fams := scrape(t, d)
	for _, m := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"syscall", "mq_open", "result", "injected"}, 1},
		{[]string{"syscall", "mq_unlink", "result", "value"}, 1},
		{[]string{"syscall", "mq_unlink", "result", "errno"}, 1},
	} {
		if v, ok := metricValue(fams, "pinfold_ipc_notifications_total", m.labels...); !ok || v != m.want {
			t.Errorf("pinfold_ipc_notifications_total%v = %v (present %v), want %v", m.labels, v, ok, m.want)
		}
	}
	if v, ok := metricValue(fams, "pinfold_ipc_notification_seconds"); !ok || v != 3 {
		t.Errorf("pinfold_ipc_notification_seconds count = %v (present %v), want 3", v, ok)
	}
}
