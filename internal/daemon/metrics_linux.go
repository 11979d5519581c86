package daemon

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics is the daemon's Prometheus registry: counters and histograms
// updated as things happen, and per-app gauges read from the cgroups and
// the IPC broker's totals read at scrape time (nothing is polled between
// scrapes).
type metrics struct {
	d        *Daemon
	reg      *prometheus.Registry
	starts   *prometheus.CounterVec
	failures *prometheus.CounterVec
	ooms     *prometheus.CounterVec
	startLat prometheus.Histogram
	cleanup  prometheus.Histogram
	requests *prometheus.CounterVec
	ipc      *ipcMetrics
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{d: d, reg: prometheus.NewRegistry()}
	m.starts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pinfold_app_starts_total", Help: "Apps started, by policy.",
	}, []string{"policy"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pinfold_app_start_failures_total", Help: "Apps that failed to start, by policy.",
	}, []string{"policy"})
	m.ooms = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pinfold_app_oom_kills_total", Help: "Apps in which the kernel's OOM killer killed a process, by policy.",
	}, []string{"policy"})
	m.startLat = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pinfold_app_start_seconds",
		Help:    "Time from a start request to the app's command running.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	m.cleanup = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pinfold_app_cleanup_seconds",
		Help:    "Time to release everything an app held after it exited.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pinfold_api_requests_total", Help: "API requests, by method and result code.",
	}, []string{"method", "code"})
	m.ipc = newIPCMetrics()
	m.reg.MustRegister(m.starts, m.failures, m.ooms, m.startLat, m.cleanup, m.requests, (*appCollector)(m),
		brokerCollector{d.broker})
	m.reg.MustRegister(m.ipc.collectors()...)
	return m
}

func (m *metrics) started(policy string, took time.Duration) {
	m.starts.WithLabelValues(policy).Inc()
	m.startLat.Observe(took.Seconds())
}

func (m *metrics) startFailed(policy string) { m.failures.WithLabelValues(policy).Inc() }
func (m *metrics) oomKilled(policy string)   { m.ooms.WithLabelValues(policy).Inc() }
func (m *metrics) cleaned(took time.Duration) {
	m.cleanup.Observe(took.Seconds())
}

func (m *metrics) request(procedure string, err error) {
	code := "ok"
	if err != nil {
		code = connect.CodeOf(err).String()
	}
	m.requests.WithLabelValues(procedure, code).Inc()
}

// serve starts the Prometheus endpoint. It refuses addresses that are not
// loopback: the metrics name apps and policies.
func (m *metrics) serve(addr string) (*http.Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--metrics-addr %s: not a loopback address (metrics name apps and policies; expose them through a proxy if you must)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.d.log.Warn("metrics endpoint stopped", "err", err)
		}
	}()
	return srv, nil
}

// MetricsHandler serves the Prometheus exposition (what --metrics-addr
// serves).
func (d *Daemon) MetricsHandler() http.Handler { return d.metrics.handler() }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// appCollector reports apps by state, per-app usage read from the cgroups
// at scrape time, and the event log's drops.
type appCollector metrics

var (
	descApps = prometheus.NewDesc("pinfold_apps", "Apps by state.", []string{"state"}, nil)
	descCPU  = prometheus.NewDesc("pinfold_app_cpu_seconds_total", "CPU time of a running app's cgroup.",
		[]string{"app", "name", "policy"}, nil)
	descMem = prometheus.NewDesc("pinfold_app_memory_bytes", "Memory charged to a running app's cgroup.",
		[]string{"app", "name", "policy"}, nil)
	descPids = prometheus.NewDesc("pinfold_app_pids", "Tasks in a running app's cgroup.",
		[]string{"app", "name", "policy"}, nil)
	descDropped = prometheus.NewDesc("pinfold_events_dropped_total",
		"Events a subscriber missed because it fell more than the ring's size behind.", nil, nil)
	descEvents = prometheus.NewDesc("pinfold_events_total", "Events emitted.", nil, nil)
)

func (c *appCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descApps, descCPU, descMem, descPids, descDropped, descEvents} {
		ch <- d
	}
}

func (c *appCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	d.mu.Lock()
	apps := make([]*appEntry, 0, len(d.apps))
	for _, e := range d.apps {
		apps = append(apps, e)
	}
	d.mu.Unlock()
	byState := map[string]int{}
	for _, e := range apps {
		st := e.app.State().String()
		byState[st]++
		if e.isDone() || st != "running" {
			continue
		}
		u, err := e.app.Usage()
		if err != nil {
			continue
		}
		labels := []string{e.id, e.name, e.policy.Name}
		ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, (u.CPUUser + u.CPUSystem).Seconds(), labels...)
		ch <- prometheus.MustNewConstMetric(descMem, prometheus.GaugeValue, float64(u.MemoryCurrent), labels...)
		ch <- prometheus.MustNewConstMetric(descPids, prometheus.GaugeValue, float64(u.PidsCurrent), labels...)
	}
	for _, st := range []string{"creating", "initializing", "ready", "running", "exited", "cleaned"} {
		ch <- prometheus.MustNewConstMetric(descApps, prometheus.GaugeValue, float64(byState[st]), st)
	}
	es := d.events.Stats()
	ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(es.Dropped))
	ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(es.Emitted))
}
