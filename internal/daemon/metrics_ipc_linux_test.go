package daemon

import (
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/notify"
)

// TestIPCCallLabels: whatever numbers a hostile app makes the server
// report, the labels come from fixed tables and the series stay bounded.
func TestIPCCallLabels(t *testing.T) {
	for _, tc := range []struct {
		sysno abi.Sysno
		errno abi.Errno
		want  [2]string
	}{
		{abi.SysShmAttach, 0, [2]string{"shm_attach", "ok"}},
		{abi.SysShmAttach, abi.EPERM, [2]string{"shm_attach", "EPERM"}},
		{abi.SysNop, abi.EBADMSG, [2]string{"nop", "EBADMSG"}},
		{abi.NumSyscalls, abi.ENOSYS, [2]string{"unknown", "ENOSYS"}},
		{65535, abi.MaxErrnoName, [2]string{"unknown", abi.MaxErrnoName.Name()}},
		{abi.SysMQOpen, abi.MaxErrnoName + 1, [2]string{"mq_open", "other"}},
		{abi.SysMQOpen, 65535, [2]string{"mq_open", "other"}},
	} {
		m := newIPCMetrics()
		m.call(tc.sysno, tc.errno, time.Microsecond)
		if got := counterValue(t, m.calls.WithLabelValues(tc.want[0], tc.want[1])); got != 1 {
			t.Errorf("call(%d, %d): series %v = %v, want 1", tc.sysno, tc.errno, tc.want, got)
		}
		if n := countSeries(t, m.calls); n != 1 {
			t.Errorf("call(%d, %d) made %d series, want 1", tc.sysno, tc.errno, n)
		}
	}

	// Once a series is known, counting a call allocates nothing.
	m := newIPCMetrics()
	m.call(abi.SysShmAttach, abi.EPERM, time.Microsecond)
	if n := testing.AllocsPerRun(100, func() { m.call(abi.SysShmAttach, abi.EPERM, time.Microsecond) }); n != 0 {
		t.Errorf("a call allocates %v times, want 0", n)
	}
	m.notification(notify.Observation{Nr: syscall.SYS_MQ_OPEN, Arch: nativeArch, Result: notify.ResultInjected})
	if n := testing.AllocsPerRun(100, func() {
		m.notification(notify.Observation{Nr: syscall.SYS_MQ_OPEN, Arch: nativeArch, Result: notify.ResultInjected})
	}); n != 0 {
		t.Errorf("a notification allocates %v times, want 0", n)
	}

	m = newIPCMetrics()
	for s := 0; s < 1<<16; s += 97 {
		for e := 0; e < 1<<16; e += 89 {
			m.call(abi.Sysno(s), abi.Errno(e), 0)
		}
	}
	if n, max := countSeries(t, m.calls), sysnoSlots*errnoSlots; n > max {
		t.Errorf("%d call series, more than the bound %d", n, max)
	}
	// Calls that were not executed (took 0) are counted, not timed.
	if n := countSeries(t, m.callLat); n != 0 {
		t.Errorf("%d latency series for calls that were never executed, want 0", n)
	}
}

func TestIPCNotificationLabels(t *testing.T) {
	for _, tc := range []struct {
		o    notify.Observation
		want [2]string
	}{
		{notify.Observation{Nr: syscall.SYS_MQ_OPEN, Arch: nativeArch, Result: notify.ResultInjected}, [2]string{"mq_open", "injected"}},
		{notify.Observation{Nr: syscall.SYS_MQ_UNLINK, Arch: nativeArch, Result: notify.ResultErrno, Errno: syscall.EACCES}, [2]string{"mq_unlink", "errno"}},
		{notify.Observation{Nr: syscall.SYS_MQ_OPEN, Arch: nativeArch ^ 1, Result: notify.ResultErrno}, [2]string{"other", "errno"}},
		{notify.Observation{Nr: 0, Arch: nativeArch, Result: notify.ResultGone}, [2]string{"other", "gone"}},
		{notify.Observation{Nr: syscall.SYS_MQ_OPEN, Arch: nativeArch, Result: 200}, [2]string{"mq_open", "other"}},
	} {
		m := newIPCMetrics()
		m.notification(tc.o)
		if got := counterValue(t, m.notifs.WithLabelValues(tc.want[0], tc.want[1])); got != 1 {
			t.Errorf("notification %+v: series %v = %v, want 1", tc.o, tc.want, got)
		}
	}
}

// TestBrokerCollector: every kind is reported, also at zero.
func TestBrokerCollector(t *testing.T) {
	b, err := ipc.New(ipc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	want := 2*len(ipc.AllKinds) + 2
	if n := countSeries(t, brokerCollector{b}); n != want {
		t.Errorf("%d series, want %d", n, want)
	}
}

// TestIPCDetail: the Detail of each IPC event kind.
func TestIPCDetail(t *testing.T) {
	for _, tc := range []struct {
		e    ipc.Event
		want string
	}{
		{ipc.Event{Kind: ipc.Granted, Op: "shm_attach", Object: "a/b", ObjKind: ipc.Shm, Access: ipc.Read, Reason: "why"}, "shm a/b read: why"},
		{ipc.Event{Kind: ipc.Denied, Op: "shm_attach", Object: "a/b", ObjKind: ipc.Shm, Access: ipc.ReadWrite, Reason: "not granted"}, "shm_attach shm a/b readwrite: not granted"},
		{ipc.Event{Kind: ipc.Denied, Op: "pipe_open", ObjKind: ipc.Pipe, Access: ipc.Read, Reason: "invalid name"}, "pipe_open pipe read: invalid name"},
		{ipc.Event{Kind: ipc.Created, Object: "q", ObjKind: ipc.MQ, Reason: "queue of 10 messages of 8192 bytes"}, "mq q: queue of 10 messages of 8192 bytes"},
		{ipc.Event{Kind: ipc.Removed, Object: "p", ObjKind: ipc.Pipe, Reason: "gone"}, "pipe p: gone"},
		{ipc.Event{Kind: ipc.Released, Op: "close", Reason: "app exited: released 0 handle(s)"}, "app exited: released 0 handle(s)"},
		{ipc.Event{Kind: ipc.Hostile, Op: "control", Reason: "control channel closed"}, "control channel closed"},
	} {
		if got := ipcDetail(&tc.e); got != tc.want {
			t.Errorf("ipcDetail(%v %+v) = %q, want %q", tc.e.Kind, tc.e, got, tc.want)
		}
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// countSeries gathers c through a pedantic registry (which also checks
// its descriptions) and counts its series.
func countSeries(t *testing.T, c prometheus.Collector) int {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range fams {
		n += len(f.GetMetric())
	}
	return n
}
