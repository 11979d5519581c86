package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/pinfold/pinfold/api/pinfold/v1/pinfoldv1connect"
	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/events"
	"github.com/pinfold/pinfold/sandbox/monitor"
	"github.com/pinfold/pinfold/sandbox/policy"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/notify"
)

// Defaults of the daemon's flags.
const (
	DefaultSocket      = "/run/pinfold/pinfold.sock"
	DefaultPolicyDir   = "/etc/pinfold/policies.d"
	DefaultMetricsAddr = "127.0.0.1:9464"
	DefaultEvents      = 65536
)

// Config configures a Daemon.
type Config struct {
	// Socket is the unix socket the API is served on; it is created 0660,
	// group Group (root's group if Group is empty).
	Socket string
	// StateDir is the supervisor's state dir; the daemon keeps its pid
	// file, lock and app logs there too.
	StateDir string
	// PolicyDir holds the operators' policy files.
	PolicyDir string
	// MetricsAddr is the loopback address of the Prometheus endpoint; empty
	// disables it.
	MetricsAddr string
	// Group names the group whose members may use the API besides root.
	Group string
	// Events is the size of the event ring.
	Events int
	// Logger receives the daemon's own log.
	Logger *slog.Logger

	// IPCMaxObjects and IPCMaxBytes bound the IPC broker as a whole (every
	// app's objects together), on top of each policy's quota; 0 means the
	// broker's defaults (ipc.DefaultMaxObjects; no byte limit).
	IPCMaxObjects int
	IPCMaxBytes   int64

	// Supervisor options for tests (init stage, cgroup parent).
	InitPath     string
	InitArgs     []string
	CgroupParent string
}

// Daemon is the pinfold supervisor as a service: the API on a unix socket,
// the policy directory, the table of apps with their logs, events and
// metrics. Build one with New, run it with Serve.
type Daemon struct {
	cfg      Config
	log      *slog.Logger
	sup      *sandbox.Supervisor
	broker   *ipc.Broker // shared by every app; closed by Shutdown
	policies *policy.Store
	events   *events.Log
	baseline *monitor.Baseline
	pressure *monitor.Watcher
	metrics  *metrics
	lock     *os.File // flock on <state>/daemon.lock: one daemon per state dir

	groupSet bool
	groupID  uint32

	mu       sync.RWMutex // read-locked by lookups (API requests, the broker's event sink)
	apps     map[string]*appEntry
	stopping bool
	appsWG   sync.WaitGroup // one per app until it is cleaned

	listener net.Listener
	server   *http.Server
}

// New prepares a daemon: it takes the state dir's lock, releases whatever
// an earlier daemon or pinfold run left behind (apps do not survive a
// daemon restart: see docs/operating.md), loads the policy directory and
// reports the kernel features it found.
func New(cfg Config) (*Daemon, error) {
	if cfg.Socket == "" {
		cfg.Socket = DefaultSocket
	}
	if cfg.StateDir == "" {
		cfg.StateDir = sandbox.DefaultStateDir
	}
	if cfg.PolicyDir == "" {
		cfg.PolicyDir = DefaultPolicyDir
	}
	if cfg.Events <= 0 {
		cfg.Events = DefaultEvents
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{
		cfg:      cfg,
		log:      cfg.Logger,
		events:   events.NewLog(cfg.Events),
		baseline: monitor.NewBaseline(),
		apps:     make(map[string]*appEntry),
	}
	if cfg.Group != "" {
		g, err := user.LookupGroup(cfg.Group)
		if err != nil {
			return nil, fmt.Errorf("--group %s: %w", cfg.Group, err)
		}
		gid, err := strconv.ParseUint(g.Gid, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("--group %s: gid %q: %w", cfg.Group, g.Gid, err)
		}
		d.groupSet, d.groupID = true, uint32(gid)
	}
	broker, err := ipc.New(ipc.Options{Events: d.ipcEvent, MaxObjects: cfg.IPCMaxObjects, MaxBytes: cfg.IPCMaxBytes})
	if err != nil {
		return nil, fmt.Errorf("starting the IPC broker: %w", err)
	}
	d.broker = broker
	ok := false
	defer func() {
		if !ok {
			broker.Close()
		}
	}()
	d.metrics = newMetrics(d)
	sup, err := sandbox.NewSupervisor(sandbox.Options{
		StateDir:       cfg.StateDir,
		InitPath:       cfg.InitPath,
		InitArgs:       cfg.InitArgs,
		CgroupParent:   cfg.CgroupParent,
		CgroupSelfLeaf: "supervisor",
		Broker:         broker,
		ServerHook: func(_ string, sysno abi.Sysno, errno abi.Errno, took time.Duration) {
			d.metrics.ipc.call(sysno, errno, took)
		},
		NotifyHook: func(_ string, o notify.Observation) { d.metrics.ipc.notification(o) },
	})
	if err != nil {
		return nil, err
	}
	d.sup = sup
	if err := d.takeLock(); err != nil {
		return nil, err
	}
	started := d.events.Emit(events.Event{Kind: events.DaemonStarted, Detail: "pinfold daemon"})
	leftovers, err := sup.Recover()
	for _, lo := range leftovers {
		d.events.Emit(events.Event{Kind: events.Recovered, App: lo.ID, Parent: started, Value: int64(lo.Report.Total)})
		d.log.Info("released an app left behind by an earlier run", "app", lo.ID, "name", lo.Name, "took", lo.Report.Total)
	}
	if err != nil {
		d.log.Warn("releasing what an earlier run left behind", "err", err)
	}
	if err := d.removeStaleLogs(); err != nil {
		d.log.Warn("removing logs of apps of an earlier run", "err", err)
	}
	d.policies = policy.NewStore(cfg.PolicyDir)
	d.reloadPolicies(started)
	d.pressure, err = monitor.NewWatcherWithOptions(monitor.WatcherOptions{
		PollPeak: true,
		OnError: func(app string, err error) {
			d.log.Debug("memory pressure watch", "app", app, "err", err)
		},
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

// Supervisor returns the daemon's sandbox supervisor.
func (d *Daemon) Supervisor() *sandbox.Supervisor { return d.sup }

// EventLog returns the daemon's event log (what the API's Watch serves; it
// stays readable after Shutdown).
func (d *Daemon) EventLog() *events.Log { return d.events }

// takeLock makes sure one daemon at a time uses the state dir.
func (d *Daemon) takeLock() error {
	f, err := os.OpenFile(filepath.Join(d.cfg.StateDir, "daemon.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("opening the daemon lock: %w", err)
	}
	if err := syscalls.Flock(int(f.Fd()), true, true); err != nil {
		f.Close()
		return fmt.Errorf("another pinfold daemon is using %s: %w", d.cfg.StateDir, err)
	}
	d.lock = f
	return nil
}

func (d *Daemon) logsDir() string { return filepath.Join(d.cfg.StateDir, "logs") }

// removeStaleLogs deletes the logs of apps of an earlier daemon: those apps
// died with it.
func (d *Daemon) removeStaleLogs() error {
	err := os.RemoveAll(d.logsDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.MkdirAll(d.logsDir(), 0o700)
}

// Handler returns the API as an http.Handler (for tests and for Serve).
func (d *Daemon) Handler() http.Handler {
	// Compression buys nothing over a unix socket and costs CPU on every
	// output chunk: only messages over 1 MiB would be compressed.
	opts := connect.WithHandlerOptions(connect.WithInterceptors(&interceptor{d: d}), connect.WithCompressMinBytes(1<<20))
	mux := http.NewServeMux()
	mux.Handle(pinfoldv1connect.NewAppServiceHandler(&appService{d}, opts))
	mux.Handle(pinfoldv1connect.NewPolicyServiceHandler(&policyService{d}, opts))
	mux.Handle(pinfoldv1connect.NewEventServiceHandler(&eventService{d}, opts))
	mux.Handle(pinfoldv1connect.NewSystemServiceHandler(&systemService{d}, opts))
	return mux
}

// Listen creates the API socket: 0660, owned by root and the --group.
func (d *Daemon) Listen() (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(d.cfg.Socket), 0o755); err != nil {
		return nil, fmt.Errorf("creating the socket's directory: %w", err)
	}
	// A socket file left by a dead daemon would make bind fail; we hold
	// the state dir's lock, so no live daemon of ours serves it.
	if err := os.Remove(d.cfg.Socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("removing a stale socket: %w", err)
	}
	l, err := net.Listen("unix", d.cfg.Socket)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", d.cfg.Socket, err)
	}
	gid := 0
	if d.groupSet {
		gid = int(d.groupID)
	}
	if err := os.Chown(d.cfg.Socket, 0, gid); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting the socket's group: %w", err)
	}
	if err := os.Chmod(d.cfg.Socket, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("setting the socket's mode: %w", err)
	}
	return l, nil
}

// Serve serves the API (and the metrics endpoint) until ctx ends or
// Shutdown is called, then returns nil after a clean shutdown.
func (d *Daemon) Serve(ctx context.Context) error {
	l, err := d.Listen()
	if err != nil {
		return err
	}
	d.listener = l
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true) // bidi streams (pinfold run) need HTTP/2
	d.server = &http.Server{
		Handler:     d.Handler(),
		ConnContext: d.connContext,
		Protocols:   protocols,
		// A stream whose data its app does not read (stdin) must not
		// stall the connection's other streams: give the connection
		// room for many streams' windows.
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerStream:     1 << 20,
			MaxReceiveBufferPerConnection: 64 << 20,
		},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() { errc <- d.server.Serve(l) }()
	if d.cfg.MetricsAddr != "" {
		ms, err := d.metrics.serve(d.cfg.MetricsAddr)
		if err != nil {
			d.server.Close()
			return err
		}
		defer ms.Close()
	}
	if err := writePidFile(filepath.Join(d.cfg.StateDir, "pinfold.pid")); err != nil {
		d.log.Warn("writing the pid file", "err", err)
	}
	d.log.Info("serving", "socket", d.cfg.Socket, "metrics", d.cfg.MetricsAddr, "policies", d.cfg.PolicyDir)
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}

func writePidFile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Shutdown stops accepting requests and ends every app: with its policy's
// grace period (SIGTERM, then kill), or at once when immediate. It returns
// when every app has been cleaned up, or when ctx ends.
func (d *Daemon) Shutdown(ctx context.Context, immediate bool) error {
	id := d.events.Emit(events.Event{Kind: events.DaemonStopping, Value: boolInt(immediate)})
	d.mu.Lock()
	d.stopping = true
	apps := make([]*appEntry, 0, len(d.apps))
	for _, a := range d.apps {
		apps = append(apps, a)
	}
	d.mu.Unlock()
	if d.listener != nil {
		d.listener.Close()
	}
	for _, a := range apps {
		go a.terminate(immediate, id)
	}
	done := make(chan struct{})
	go func() { d.appsWG.Wait(); close(done) }()
	var err error
	select {
	case <-done:
		// Every app is cleaned, so every broker session is closed:
		// this releases the persistent objects that outlived their
		// apps.
		if cerr := d.broker.Close(); cerr != nil {
			err = fmt.Errorf("closing the IPC broker: %w", cerr)
		}
	case <-ctx.Done():
		// Apps still hold sessions: the broker stays open for their
		// cleanups; its objects go with the process.
		err = fmt.Errorf("apps still stopping (the IPC broker is left open for them): %w", ctx.Err())
	}
	if d.server != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = d.server.Shutdown(sctx)
		cancel()
		d.server.Close()
	}
	for _, a := range apps {
		a.removeLog()
	}
	d.pressure.Close()
	os.Remove(d.cfg.Socket)
	os.Remove(filepath.Join(d.cfg.StateDir, "pinfold.pid"))
	d.lock.Close()
	return err
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// interceptor authorises every call, records it as an audit event, and
// counts it for the metrics.
type interceptor struct{ d *Daemon }

type callKey struct{}

// call is what the interceptor learned about a request.
type call struct {
	peer  Peer
	event uint64 // the api.call event: causal parent of what the call does
}

func callFrom(ctx context.Context) call {
	c, _ := ctx.Value(callKey{}).(call)
	return c
}

func (i *interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		proc := req.Spec().Procedure
		p, id, err := i.d.authorize(ctx, proc)
		if err != nil {
			i.d.metrics.request(proc, err)
			return nil, err
		}
		resp, err := next(context.WithValue(ctx, callKey{}, call{peer: p, event: id}), req)
		i.d.metrics.request(proc, err)
		return resp, err
	}
}

func (i *interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		proc := conn.Spec().Procedure
		p, id, err := i.d.authorize(ctx, proc)
		if err != nil {
			i.d.metrics.request(proc, err)
			return err
		}
		err = next(context.WithValue(ctx, callKey{}, call{peer: p, event: id}), conn)
		i.d.metrics.request(proc, err)
		return err
	}
}
