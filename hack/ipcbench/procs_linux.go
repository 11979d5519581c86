package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/policy"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/vfs"
)

// proc is one worker as the benchmark drives it: commands go to its stdin,
// replies come from its stdout.
type proc struct {
	name    string
	in      *os.File
	enc     *json.Encoder
	replies chan reply
	readErr chan error
	stop    func() error // ends the worker and waits for it
	kill    func()       // kills the worker (it is stopped afterwards)
}

func newProc(name string, in, out *os.File) *proc {
	p := &proc{
		name: name, in: in, enc: json.NewEncoder(in),
		replies: make(chan reply, 1), readErr: make(chan error, 1),
	}
	go func() {
		defer out.Close()
		dec := json.NewDecoder(bufio.NewReader(out))
		for {
			var r reply
			if err := dec.Decode(&r); err != nil {
				if errors.Is(err, io.EOF) {
					err = errors.New("worker exited (see its errors above)")
				}
				p.readErr <- err
				return
			}
			p.replies <- r
		}
	}()
	return p
}

func (p *proc) send(c command) error {
	if err := p.enc.Encode(c); err != nil {
		return fmt.Errorf("%s: sending %s: %w", p.name, c.Op, err)
	}
	return nil
}

// result waits for the reply to the command sent last.
func (p *proc) result(ctx context.Context, op string, timeout time.Duration) (reply, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-p.replies:
		if r.Err != "" {
			return r, fmt.Errorf("%s: %s", p.name, r.Err)
		}
		return r, nil
	case err := <-p.readErr:
		return reply{}, fmt.Errorf("%s: %s: %w", p.name, op, err)
	case <-t.C:
		return reply{}, fmt.Errorf("%s: no answer to %s after %v", p.name, op, timeout)
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// side is one variant's set of workers. w writes, r reads (and is the app
// of the round trips); raw has e, the plain process answering r's round
// trips; pinfold has n, the app whose mq_open pinfold brokers (raw runs
// its mq_open test in r, which has an ipc namespace of its own).
type side struct {
	mode       string
	w, r, e, n *proc
	cgroups    []cgroup.Cgroup // raw with -raw-cgroups: removed after the workers exit
}

func (s *side) procs() []*proc {
	var out []*proc
	for _, p := range []*proc{s.w, s.r, s.e, s.n} {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// close ends every worker: end of its commands, then its exit.
func (s *side) close() error {
	var errs []error
	for _, p := range s.procs() {
		_ = p.send(command{Op: "exit"})
		p.in.Close()
	}
	for _, p := range s.procs() {
		if err := p.stop(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
		}
	}
	for _, cg := range s.cgroups {
		if err := cg.Delete(); err != nil {
			errs = append(errs, err)
		}
		cg.Close()
	}
	return errors.Join(errs...)
}

// stdioPipes makes the worker's command and reply pipes: the worker gets
// cin and cout, the benchmark keeps in and out.
func stdioPipes() (cin, in, out, cout *os.File, err error) {
	cin, in, err = os.Pipe()
	if err != nil {
		return
	}
	out, cout, err = os.Pipe()
	if err != nil {
		cin.Close()
		in.Close()
	}
	return
}

// rawObjects are the kernel objects of the raw variant, made the way two
// plain processes would share them: a memfd, pipes, a message queue and a
// socketpair, passed to the workers by inheritance.
type rawObjects struct {
	files []*os.File
	byFor map[string][]namedFile // worker -> its descriptors
}

type namedFile struct {
	name string
	f    *os.File
}

func (o *rawObjects) add(worker, name string, fd int) {
	f := os.NewFile(uintptr(fd), name)
	o.files = append(o.files, f)
	o.byFor[worker] = append(o.byFor[worker], namedFile{name, f})
}

func (o *rawObjects) close() {
	for _, f := range o.files {
		f.Close()
	}
}

func makeRawObjects(cfg *config) (_ *rawObjects, err error) {
	o := &rawObjects{byFor: map[string][]namedFile{}}
	defer func() {
		if err != nil {
			o.close()
		}
	}()
	fdDir, err := syscalls.OpenFDDir()
	if err != nil {
		return nil, err
	}
	defer syscalls.Close(fdDir)

	memfd, err := syscalls.MemfdCreate("ipcbench-raw")
	if err != nil {
		return nil, err
	}
	o.add("w", chShm, memfd)
	if err := syscalls.Ftruncate(memfd, cfg.shmSize); err != nil {
		return nil, err
	}
	ro, err := syscalls.ReopenFD(fdDir, memfd, syscalls.OpenReadOnly)
	if err != nil {
		return nil, err
	}
	o.add("r", chShm, ro)

	for _, p := range []struct{ name, writer, reader string }{
		{chNote, "w", "r"}, {chAck, "r", "w"}, {chPipe, "w", "r"},
	} {
		rd, wr, err := syscalls.Pipe2()
		if err != nil {
			return nil, err
		}
		o.add(p.reader, p.name, rd)
		o.add(p.writer, p.name, wr)
	}

	q, err := privateQueue(cfg.mqMaxMsg, cfg.mqMsgSize)
	if err != nil {
		return nil, err
	}
	defer syscalls.Close(q)
	for _, e := range []struct {
		worker string
		flags  int
	}{{"w", syscalls.OpenWriteOnly}, {"r", syscalls.OpenReadOnly}} {
		fd, err := syscalls.ReopenFD(fdDir, q, e.flags)
		if err != nil {
			return nil, err
		}
		o.add(e.worker, chMQ, fd)
	}

	a, b, err := syscalls.SeqpacketPair()
	if err != nil {
		return nil, err
	}
	o.files = append(o.files, a, b)
	o.byFor["r"] = append(o.byFor["r"], namedFile{chCtl, a})
	o.byFor["e"] = append(o.byFor["e"], namedFile{chCtl, b})
	small, err := syscalls.MemfdCreate("ipcbench-echo")
	if err != nil {
		return nil, err
	}
	o.add("e", chMemfd, small)
	if err := syscalls.Ftruncate(small, 4096); err != nil {
		return nil, err
	}
	return o, nil
}

// privateQueue creates a message queue in an ipc namespace of its own, on
// a thread that is thrown away afterwards, and unlinks it: like the
// broker's queues, it never has a name in the host's namespace, and it
// lives as long as its descriptors.
func privateQueue(maxMsg, msgSize int64) (int, error) {
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread, now in another ipc namespace, ends
		// with this goroutine.
		runtime.LockOSThread()
		if err := syscalls.UnshareIPCNS(); err != nil {
			done <- result{-1, err}
			return
		}
		fd, err := syscalls.MQOpenExclusive("ipcbench", maxMsg, msgSize)
		if err == nil {
			err = syscalls.MQUnlink("ipcbench")
		}
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

// workerEnv is the environment of every worker, raw or sandboxed.
func workerEnv() map[string]string {
	return map[string]string{"GOMAXPROCS": "1"}
}

// startRaw starts the raw variant's workers as plain child processes of
// this one (same cgroups, no namespaces but r's ipc namespace).
func startRaw(cfg *config, exe string) (_ *side, err error) {
	objs, err := makeRawObjects(cfg)
	if err != nil {
		return nil, fmt.Errorf("making the raw objects: %w", err)
	}
	defer objs.close() // the children have their copies
	s := &side{mode: "raw"}
	defer func() {
		if err != nil {
			_ = s.close()
		}
	}()
	var cgm *cgroup.Manager
	if cfg.rawCgroups != "" {
		if cgm, err = cgroup.NewManager(cgroup.ManagerConfig{}); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"w", "r", "e"} {
		p, pid, err := startRawWorker(exe, name, objs.byFor[name], name == "r")
		if err != nil {
			return nil, err
		}
		if cgm != nil {
			// Diagnostics: the worker in a cgroup of its own like an
			// app's (every hierarchy, same depth), bare or with the
			// default policy's limits.
			var res *specs.LinuxResources
			if cfg.rawCgroups == "limits" {
				pol := policy.Default()
				if name == "w" {
					pol.Spec.Resources.Memory = max(pol.Spec.Resources.Memory, policy.Size(cfg.shmSize+256<<20))
				}
				res = pol.Spec.Resources.OCI()
			}
			cg, err := cgm.New(cgroup.Config{Name: fmt.Sprintf("pinfold-ipcbench-raw-%d/%s", os.Getpid(), name), Resources: res})
			if err != nil {
				p.kill()
				return nil, err
			}
			s.cgroups = append(s.cgroups, cg)
			if err := cg.AddProc(pid); err != nil {
				p.kill()
				return nil, err
			}
		}
		switch name {
		case "w":
			s.w = p
		case "r":
			s.r = p
		case "e":
			s.e = p
		}
	}
	return s, nil
}

func startRawWorker(exe, name string, files []namedFile, ipcNS bool) (*proc, int, error) {
	cin, in, out, cout, err := stdioPipes()
	if err != nil {
		return nil, 0, err
	}
	defer cin.Close()
	defer cout.Close()
	var list []string
	cmd := exec.Command(exe, workerArg)
	for i, nf := range files {
		cmd.ExtraFiles = append(cmd.ExtraFiles, nf.f)
		list = append(list, nf.name+":"+strconv.Itoa(3+i))
	}
	cmd.Env = []string{envMode + "=raw", envFDs + "=" + strings.Join(list, ",")}
	for k, v := range workerEnv() {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = cin, cout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if ipcNS {
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWIPC
	}
	if err := cmd.Start(); err != nil {
		in.Close()
		out.Close()
		return nil, 0, fmt.Errorf("starting raw worker %s: %w", name, err)
	}
	p := newProc("raw "+name, in, out)
	p.kill = func() { _ = cmd.Process.Kill() }
	p.stop = func() error {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			return fmt.Errorf("killed: no exit 10s after its last command: %w", <-done)
		}
	}
	return p, cmd.Process.Pid, nil
}

// The pinfold variant's policies: W creates the objects through its
// pre-wired channels, R attaches them through its own (granted by W's
// policy name), N attaches the queue through its own mq_open, brokered by
// seccomp user notification.
const (
	policyW = "ipcbench-w"
	policyR = "ipcbench-r"
	policyN = "ipcbench-n"
)

func grantsW(cfg *config) ipc.Grants {
	mqBytes := cfg.mqMaxMsg * cfg.mqMsgSize
	return ipc.Grants{
		Create: []ipc.CreateGrant{{
			Names: []string{"bench/**"},
			Kinds: []ipc.Kind{ipc.Pipe, ipc.Shm, ipc.MQ},
		}},
		MaxObjects: 16,
		MaxBytes:   cfg.shmSize + mqBytes + 16<<20,
		Channels: []ipc.Channel{
			{Name: chShm, Kind: ipc.Shm, Access: ipc.ReadWrite, Size: cfg.shmSize},
			{Name: chNote, Kind: ipc.Pipe, Access: ipc.Write},
			{Name: chAck, Kind: ipc.Pipe, Access: ipc.Read},
			{Name: chPipe, Kind: ipc.Pipe, Access: ipc.Write},
			{Name: chMQ, Kind: ipc.MQ, Access: ipc.Write, MaxMsg: cfg.mqMaxMsg, MsgSize: cfg.mqMsgSize},
		},
	}
}

func grantsR() ipc.Grants {
	return ipc.Grants{
		Attach: []ipc.AttachGrant{{
			Names:  []string{"bench/**"},
			Kinds:  []ipc.Kind{ipc.Pipe, ipc.Shm, ipc.MQ},
			Access: ipc.ReadWrite,
			Owners: []string{policyW},
		}},
		Channels: []ipc.Channel{
			{Name: chShm, Kind: ipc.Shm, Access: ipc.Read},
			{Name: chNote, Kind: ipc.Pipe, Access: ipc.Read},
			{Name: chAck, Kind: ipc.Pipe, Access: ipc.Write},
			{Name: chPipe, Kind: ipc.Pipe, Access: ipc.Read},
			{Name: chMQ, Kind: ipc.MQ, Access: ipc.Read},
		},
	}
}

func grantsN() ipc.Grants {
	return ipc.Grants{
		Attach: []ipc.AttachGrant{{
			Names:  []string{chMQ},
			Kinds:  []ipc.Kind{ipc.MQ},
			Access: ipc.ReadWrite,
			Owners: []string{policyW},
		}},
		POSIXMQ: true,
	}
}

// pinfoldEnv is the supervisor, its broker and the apps' binary.
type pinfoldEnv struct {
	sup      *sandbox.Supervisor
	broker   *ipc.Broker
	stateDir string
	dir      string // the dir of the apps' copy of this binary
	bin      string
	apps     []*sandbox.App
	tweaks   map[string]bool // diagnostics: departures from the default policy
}

// newPinfoldEnv starts a supervisor on stateDir, first releasing what a
// run that was killed left behind there (its apps' cgroups and records,
// the copy of its binary).
func newPinfoldEnv(exe, stateDir string) (_ *pinfoldEnv, err error) {
	if err := os.MkdirAll(stateDir, 0o711); err != nil {
		return nil, err
	}
	removeStaleBins(stateDir)
	// The apps run as uid 65534: their copy of the binary must be
	// reachable and readable by anyone.
	dir := filepath.Join(stateDir, fmt.Sprintf("bin-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	env := &pinfoldEnv{dir: dir, stateDir: stateDir}
	defer func() {
		if err != nil {
			_ = env.close()
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	env.bin = filepath.Join(dir, "ipcbench")
	if err := copyFile(exe, env.bin, 0o755); err != nil {
		return nil, fmt.Errorf("copying %s for the apps: %w", exe, err)
	}
	b, err := ipc.New(ipc.Options{})
	if err != nil {
		return nil, fmt.Errorf("starting the IPC broker: %w", err)
	}
	env.broker = b
	sup, err := sandbox.NewSupervisor(sandbox.Options{
		StateDir:     stateDir,
		CgroupParent: fmt.Sprintf("pinfold-ipcbench-%d", os.Getpid()),
		Broker:       b,
	})
	if err != nil {
		return nil, fmt.Errorf("starting the supervisor: %w", err)
	}
	env.sup = sup
	left, err := sup.Recover()
	if err != nil {
		return nil, fmt.Errorf("releasing what an earlier run left in %s: %w", stateDir, err)
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "ipcbench: released %d apps of an earlier run that was killed\n", len(left))
	}
	return env, nil
}

// close releases the apps, the broker and the binary's copy, and removes
// the state dir unless another run's apps are recorded there.
func (env *pinfoldEnv) close() error {
	var errs []error
	for _, a := range env.apps {
		if err := a.Close().Err(); err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", a.Name, err))
		}
	}
	if env.broker != nil {
		if err := env.broker.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing the broker: %w", err))
		}
	}
	if err := os.RemoveAll(env.dir); err != nil {
		errs = append(errs, err)
	}
	if env.sup != nil && len(errs) == 0 && stateDirIdle(env.stateDir) {
		if err := os.RemoveAll(env.stateDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// stateDirIdle reports whether no run uses the state dir: no app records,
// no binary copy of a live run.
func stateDirIdle(stateDir string) bool {
	if ents, err := os.ReadDir(filepath.Join(stateDir, "apps")); err != nil || len(ents) > 0 {
		return false
	}
	bins, _ := filepath.Glob(filepath.Join(stateDir, "bin-*"))
	return len(bins) == 0
}

// removeStaleBins removes the binary copies of runs that are gone.
func removeStaleBins(stateDir string) {
	bins, _ := filepath.Glob(filepath.Join(stateDir, "bin-*"))
	for _, b := range bins {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(b), "bin-"))
		if err != nil {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, fs.ErrNotExist) {
			_ = os.RemoveAll(b)
		}
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// startPinfold starts the pinfold variant's workers as sandboxed apps of
// the default policy, each with the grants above.
func startPinfold(cfg *config, env *pinfoldEnv) (_ *side, err error) {
	env.tweaks = cfg.tweaks
	s := &side{mode: "pinfold"}
	defer func() {
		if err != nil {
			_ = s.close()
		}
	}()
	for _, a := range []struct {
		policy string
		grants ipc.Grants
		dst    **proc
	}{
		{policyW, grantsW(cfg), &s.w}, // first: it creates the objects
		{policyR, grantsR(), &s.r},
		{policyN, grantsN(), &s.n},
	} {
		// The writer touches the shared memory first, so its pages are
		// charged to the writer's memory cgroup: the default limit must
		// hold them (with room for the Go runtime).
		var memory int64
		if a.policy == policyW {
			memory = cfg.shmSize + 256<<20
		}
		p, err := env.startApp(a.policy, a.grants, memory)
		if err != nil {
			return nil, err
		}
		*a.dst = p
	}
	return s, nil
}

// startApp starts one app of the default policy with grants, its memory
// limit raised to at least memory bytes.
func (env *pinfoldEnv) startApp(name string, grants ipc.Grants, memory int64) (*proc, error) {
	pol := policy.Default()
	pol.Metadata.Name = name
	if policy.Size(memory) > pol.Spec.Resources.Memory {
		pol.Spec.Resources.Memory = policy.Size(memory)
	}
	if env.tweaks["nocpulimit"] {
		pol.Spec.Resources.CPU = 0
	}
	extra := workerEnv()
	extra[envMode] = "pinfold"
	spec, err := sandbox.FromPolicy(pol, []string{"/ipcbench", workerArg}, extra)
	if err != nil {
		return nil, err
	}
	spec.Filesystem.ReadOnly = append(spec.Filesystem.ReadOnly, vfs.Bind{Source: env.bin, Target: "/ipcbench"})
	spec.Policy = name
	spec.IPC = grants
	if env.tweaks["noseccomp"] && !grants.POSIXMQ {
		spec.Seccomp = nil
	}
	cin, in, out, cout, err := stdioPipes()
	if err != nil {
		return nil, err
	}
	spec.Stdin, spec.Stdout, spec.Stderr = cin, cout, os.Stderr
	app, err := env.sup.Start(spec)
	cin.Close()
	cout.Close()
	if err != nil {
		in.Close()
		out.Close()
		return nil, fmt.Errorf("starting app %s: %w", name, err)
	}
	env.apps = append(env.apps, app)
	p := newProc("pinfold "+name, in, out)
	killed := false
	p.kill = func() {
		killed = true
		_ = app.Kill()
	}
	p.stop = func() error {
		select {
		case <-app.Done():
		case <-time.After(10 * time.Second):
			_ = app.Kill()
		}
		ex, err := app.Wait()
		if err != nil {
			return err
		}
		if ex.ExitCode() != 0 && !killed {
			return fmt.Errorf("exited with status %d", ex.ExitCode())
		}
		return nil
	}
	return p, nil
}
