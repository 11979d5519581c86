package daemon

import (
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/notify"
)

// IPC metrics: the calls apps make on their control channels (counted by
// sysno and errno, timed by sysno), the seccomp notifications pinfold
// serves for them (mq_open/mq_unlink of apps with posixMQ), and what the
// broker holds, read at scrape time.
//
// Labels are names from fixed tables, never app ids: sysno is a call's
// name in syscalls/abi ("shm_attach") or "unknown" for a number the table
// does not have; errno is "ok" or a Linux errno name ("EPERM"), numbers
// above the last named one counting as "other". Whatever an app sends,
// the series stay bounded (NumSyscalls+1 sysnos, MaxErrnoName+2 errnos).
//
// The hooks run on every call's path: the series a call lands in are
// looked up once (WithLabelValues) and then kept in fixed arrays indexed
// by number, so a call costs two atomic loads and the updates themselves,
// and allocates nothing.

const (
	sysnoSlots = abi.NumSyscalls + 1        // the table's calls, then "unknown"
	errnoSlots = int(abi.MaxErrnoName) + 2  // ok, the named errnos, then "other"
	nrSlots    = 3                          // mq_open, mq_unlink, other
	resSlots   = int(notify.ResultGone) + 2 // results by number, then "other"
	otherSlot  = "other"                    // label of a number past a table
	okErrno    = "ok"                       // errno label of a call that succeeded
	unknownNr  = "unknown"                  // sysno label of a number not in the table
	latencyMin = 1e-6                       // 1 µs: the fastest call in service
)

type ipcMetrics struct {
	calls   *prometheus.CounterVec
	callLat *prometheus.HistogramVec
	notifs  *prometheus.CounterVec
	notLat  prometheus.Histogram

	callSlot [sysnoSlots][errnoSlots]atomic.Pointer[prometheus.Counter]
	latSlot  [sysnoSlots]atomic.Pointer[prometheus.Observer]
	notSlot  [nrSlots][resSlots]atomic.Pointer[prometheus.Counter]
}

func newIPCMetrics() *ipcMetrics {
	m := &ipcMetrics{}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pinfold_ipc_calls_total",
		Help: "Calls apps made on their control channels, by call (sysno) and result (errno: ok or the errno the app got). " +
			"A message refused as a whole (malformed, too large, carrying descriptors) counts once, as sysno nop.",
	}, []string{"sysno", "errno"})
	m.callLat = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "pinfold_ipc_call_seconds",
		Help:    "Time pinfold spent serving a control-channel call, by call (calls refused before they ran are not timed).",
		Buckets: prometheus.ExponentialBuckets(latencyMin, 2, 18), // 1 µs .. 131 ms
	}, []string{"sysno"})
	m.notifs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pinfold_ipc_notifications_total",
		Help: "Seccomp notifications pinfold served for apps' own mq_open/mq_unlink (policies with posixMQ), by syscall and result " +
			"(value, errno, injected: a descriptor, continued, gone: the app no longer waited).",
	}, []string{"syscall", "result"})
	m.notLat = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pinfold_ipc_notification_seconds",
		Help:    "Time from receiving a seccomp notification to answering it.",
		Buckets: prometheus.ExponentialBuckets(latencyMin, 2, 18),
	})
	return m
}

func (m *ipcMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.calls, m.callLat, m.notifs, m.notLat}
}

// call is the supervisor's ServerHook: one reply entry of an app's
// control channel (took is 0 for entries that were not executed).
func (m *ipcMetrics) call(sysno abi.Sysno, errno abi.Errno, took time.Duration) {
	s := min(int(sysno), sysnoSlots-1)
	e := min(int(errno), errnoSlots-1)
	c := m.callSlot[s][e].Load()
	if c == nil {
		v := m.calls.WithLabelValues(sysnoLabel(s), errnoLabel(e))
		m.callSlot[s][e].Store(&v) // a racing store keeps the same series
		c = &v
	}
	(*c).Inc()
	if took <= 0 {
		return
	}
	o := m.latSlot[s].Load()
	if o == nil {
		v := m.callLat.WithLabelValues(sysnoLabel(s))
		m.latSlot[s].Store(&v)
		o = &v
	}
	(*o).Observe(took.Seconds())
}

// notification is the supervisor's NotifyHook.
func (m *ipcMetrics) notification(o notify.Observation) {
	n := nrSlots - 1
	if o.Arch == nativeArch {
		switch o.Nr {
		case syscall.SYS_MQ_OPEN:
			n = 0
		case syscall.SYS_MQ_UNLINK:
			n = 1
		}
	}
	r := min(int(o.Result), resSlots-1)
	c := m.notSlot[n][r].Load()
	if c == nil {
		v := m.notifs.WithLabelValues(nrLabel(n), resultLabel(r))
		m.notSlot[n][r].Store(&v)
		c = &v
	}
	(*c).Inc()
	m.notLat.Observe(o.Took.Seconds())
}

// nativeArch is the audit arch of native syscalls: only their numbers are
// this machine's syscall numbers.
var nativeArch = syscalls.NativeAuditArch()

func sysnoLabel(s int) string {
	if s >= abi.NumSyscalls {
		return unknownNr
	}
	return abi.Sysno(s).String()
}

func errnoLabel(e int) string {
	switch {
	case e == 0:
		return okErrno
	case e >= errnoSlots-1:
		return otherSlot
	}
	return abi.Errno(e).Name()
}

func nrLabel(n int) string {
	switch n {
	case 0:
		return "mq_open"
	case 1:
		return "mq_unlink"
	}
	return otherSlot
}

func resultLabel(r int) string {
	if r == 0 || r >= resSlots-1 {
		return otherSlot
	}
	return notify.Result(r).String()
}

// brokerCollector reports what the IPC broker holds at scrape time.
type brokerCollector struct{ b *ipc.Broker }

var (
	descIPCObjects = prometheus.NewDesc("pinfold_ipc_objects",
		"IPC objects the broker holds (named, or unlinked and still held by a running app), by kind.", []string{"kind"}, nil)
	descIPCBytes = prometheus.NewDesc("pinfold_ipc_bytes",
		"Size of the broker's IPC objects as charged to the apps' quotas, by kind.", []string{"kind"}, nil)
	descIPCFDs = prometheus.NewDesc("pinfold_ipc_broker_fds",
		"Descriptors the broker itself keeps open for its objects.", nil, nil)
	descIPCSessions = prometheus.NewDesc("pinfold_ipc_sessions",
		"Apps joined to the broker and not yet exited.", nil, nil)
)

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descIPCObjects, descIPCBytes, descIPCFDs, descIPCSessions} {
		ch <- d
	}
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.b.Stats()
	for _, k := range ipc.AllKinds {
		ks := st.ByKind[k]
		ch <- prometheus.MustNewConstMetric(descIPCObjects, prometheus.GaugeValue, float64(ks.Objects), k.String())
		ch <- prometheus.MustNewConstMetric(descIPCBytes, prometheus.GaugeValue, float64(ks.Bytes), k.String())
	}
	ch <- prometheus.MustNewConstMetric(descIPCFDs, prometheus.GaugeValue, float64(st.FDs))
	ch <- prometheus.MustNewConstMetric(descIPCSessions, prometheus.GaugeValue, float64(st.Sessions))
}
