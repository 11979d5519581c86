package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/sandbox/initstage"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/notify"
	"github.com/pinfold/pinfold/syscalls/seccomp"
	"github.com/pinfold/pinfold/syscalls/server"
)

// DefaultStateDir is where state records, the BPF cache and the rootfs
// mountpoint live unless Options.StateDir says otherwise.
const DefaultStateDir = "/run/pinfold"

// Options configure a Supervisor.
type Options struct {
	// StateDir holds apps/ (state records), seccomp/ (compiled filters)
	// and rootfs/ (the mountpoint every sandbox builds its root on, in its
	// own mount namespace). Default DefaultStateDir.
	StateDir string

	// InitPath is the init-stage binary, run as "InitPath InitArgs...".
	// Default: pinfold-init next to the running executable when present,
	// else the running executable itself with initstage.Arg (its main must
	// then call initstage.Main when it sees that argument).
	InitPath string
	InitArgs []string

	// CgroupParent is the cgroup (relative to the supervisor's own) under
	// which each app gets "<CgroupParent>/<id>". Default "pinfold".
	CgroupParent string

	// CgroupSelfLeaf matters on cgroup v2 hosts only, when the supervisor's
	// own cgroup is not the root and holds processes: the supervisor then
	// moves itself into <own cgroup>/<CgroupSelfLeaf> so that controllers
	// can be enabled for app cgroups, as a systemd service with
	// Delegate=yes does. Empty: fail with an explanation instead.
	CgroupSelfLeaf string

	// Broker is the IPC broker the apps of this supervisor share (the
	// daemon passes one with its event sink). Nil: NewSupervisor makes one.
	Broker *ipc.Broker
	// ServerHook, if set, is called after every call an app makes on its
	// control channel (for metrics); it must not block.
	ServerHook func(app string, sysno abi.Sysno, errno abi.Errno, took time.Duration)
	// NotifyHook, if set, is called after every seccomp notification an
	// app's filter sent the supervisor (Grants.POSIXMQ); it must not block.
	NotifyHook func(app string, o notify.Observation)
}

// Supervisor starts sandboxed apps and owns what they share: the state dir,
// the seccomp program cache and the spawner thread. Build one per process
// and pass it down; it is safe for concurrent use.
type Supervisor struct {
	opts     Options
	appsDir  string
	rootDir  string
	seccomp  *seccomp.Cache
	cgroups  *cgroup.Manager
	broker   *ipc.Broker
	spawnReq chan func()

	mu   sync.Mutex
	bpf  map[string]int // program hash -> apps using it
	self record         // supervisor identity stamped on records
}

// NewSupervisor prepares the state dir and starts the spawner thread.
func NewSupervisor(opts Options) (*Supervisor, error) {
	// The control channels' idle set lives as long as the process.
	if err := server.Init(); err != nil {
		return nil, err
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.CgroupParent == "" {
		opts.CgroupParent = "pinfold"
	}
	if opts.InitPath == "" {
		p, args, err := defaultInit()
		if err != nil {
			return nil, err
		}
		opts.InitPath, opts.InitArgs = p, args
	}
	s := &Supervisor{
		opts:    opts,
		appsDir: filepath.Join(opts.StateDir, "apps"),
		rootDir: filepath.Join(opts.StateDir, "rootfs"),
		seccomp: seccomp.NewCache(filepath.Join(opts.StateDir, "seccomp")),
		bpf:     make(map[string]int),
	}
	cgm, err := cgroup.NewManager(cgroup.ManagerConfig{SelfLeaf: opts.CgroupSelfLeaf})
	if err != nil {
		return nil, fmt.Errorf("setting up cgroups: %w", err)
	}
	s.cgroups = cgm
	s.broker = opts.Broker
	if s.broker == nil {
		b, err := ipc.New(ipc.Options{})
		if err != nil {
			return nil, fmt.Errorf("starting the IPC broker: %w", err)
		}
		s.broker = b
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{opts.StateDir, 0o711}, {s.appsDir, 0o700}, {s.rootDir, 0o755}} {
		if err := ensureDir(d.path, d.mode); err != nil {
			return nil, fmt.Errorf("preparing state dir: %w", err)
		}
	}
	start, err := syscalls.ProcStartTime(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("reading own start time: %w", err)
	}
	s.self = record{SupervisorPID: os.Getpid(), SupervisorStart: start}
	s.spawnReq = make(chan func())
	go s.spawner()
	return s, nil
}

func ensureDir(path string, mode os.FileMode) error {
	st, err := os.Stat(path)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", path)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(path, mode); err != nil {
		return err
	}
	return os.Chmod(path, mode)
}

// defaultInit finds the init-stage binary: pinfold-init beside the running
// executable, else the executable itself in its init role.
func defaultInit() (string, []string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, fmt.Errorf("locating pinfold's own executable: %w", err)
	}
	sibling := filepath.Join(filepath.Dir(exe), "pinfold-init")
	if st, err := os.Stat(sibling); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return sibling, nil, nil
	}
	return exe, []string{initstage.Arg}, nil
}

// spawner runs clone requests on one OS thread that never exits, because an
// app's parent-death signal fires when the thread that cloned it exits.
func (s *Supervisor) spawner() {
	runtime.LockOSThread()
	// Never unlocked and never returns: the thread lives as long as the
	// process.
	for fn := range s.spawnReq {
		fn()
	}
	select {}
}

// onSpawnThread runs fn on the thread that apps are cloned from.
func (s *Supervisor) onSpawnThread(fn func()) {
	done := make(chan struct{})
	s.spawnReq <- func() { fn(); close(done) }
	<-done
}

// Recover releases everything left behind by supervisors that died (were
// SIGKILLed, crashed, lost power) while their apps ran: processes, cgroups
// and state records. Records of live supervisors are left alone.
func (s *Supervisor) Recover() ([]Leftover, error) {
	return recoverDir(s.appsDir)
}

// StateDir returns the supervisor's state directory.
func (s *Supervisor) StateDir() string { return s.opts.StateDir }

// seccompProgram returns the compiled program for p and counts a reference.
func (s *Supervisor) seccompProgram(spec *Spec) (*seccomp.Program, func() error, error) {
	prog, err := s.seccomp.Program(spec.Seccomp)
	if err != nil {
		return nil, nil, err
	}
	hash := prog.Hash // the release must not keep the program alive
	s.mu.Lock()
	s.bpf[hash]++
	s.mu.Unlock()
	release := func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.bpf[hash] <= 0 {
			return fmt.Errorf("seccomp program %s released more often than acquired", hash)
		}
		s.bpf[hash]--
		if s.bpf[hash] == 0 {
			delete(s.bpf, hash)
		}
		return nil
	}
	return prog, release, nil
}

// SeccompRefs reports how many apps use each cached seccomp program.
func (s *Supervisor) SeccompRefs() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.bpf))
	for k, v := range s.bpf {
		out[k] = v
	}
	return out
}

func newID() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// Broker returns the IPC broker the supervisor's apps share.
func (s *Supervisor) Broker() *ipc.Broker { return s.broker }

// serverOptions configures the server of app a's control channel.
func (s *Supervisor) serverOptions(a *App) server.Options {
	var o server.Options
	if h := s.opts.ServerHook; h != nil {
		id := a.ID
		o.Observe = func(sysno abi.Sysno, errno abi.Errno, took time.Duration) { h(id, sysno, errno, took) }
	}
	return o
}
