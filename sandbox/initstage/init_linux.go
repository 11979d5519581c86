package initstage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/vfs"
)

// Main runs the init stage and never returns: it either execs the app or
// reports the failing step to the supervisor and exits 255. The calling
// binary must have locked its main goroutine to the main OS thread in an
// init function (runtime.LockOSThread), so every per-thread attribute set
// here (capabilities, no_new_privs, seccomp, credentials) is the one the
// exec'd app inherits.
func Main() {
	runtime.LockOSThread()
	sync := SyncFD
	step, err := run(&sync)
	// Reaching here means a step failed (run only returns on failure).
	if errors.Is(err, errSupervisorGone) {
		os.Exit(255)
	}
	_ = syscalls.SendMsg(sync, encodeStepError(step, err), nil)
	os.Exit(255)
}

var errSupervisorGone = errors.New("supervisor closed the sync channel")

// stepError carries a message for the supervisor that is clearer than the
// bare errno (e.g. for a command that is not found).
type stepError struct {
	errno syscall.Errno
	msg   string
}

func (e *stepError) Error() string { return e.msg }
func (e *stepError) Unwrap() error { return e.errno }

func encodeStepError(step string, err error) []byte {
	var se *stepError
	if errors.As(err, &se) {
		js := wireError{Step: step, Errno: int(se.errno), Message: se.msg}
		return encodeWire(js)
	}
	var ve *vfs.StepError
	if errors.As(err, &ve) {
		step = ve.Step
		err = ve.Err
	}
	return encodeError(step, err)
}

func run(sync *int) (string, error) {
	var tr tracer
	tr.start()
	size, err := syscalls.PeekMsgSize(*sync)
	if err != nil {
		return StepReceive, err
	}
	if size == 0 {
		return StepReceive, errSupervisorGone
	}
	if size > maxMessage {
		return StepReceive, fmt.Errorf("go message of %d bytes is too large", size)
	}
	buf := make([]byte, size)
	n, fds, err := syscalls.RecvMsg(*sync, buf, 64)
	if err != nil {
		return StepReceive, err
	}
	if n == 0 {
		return StepReceive, errSupervisorGone
	}
	tr.mark("wait for config")
	cfg, bpf, err := decodeGo(buf[:n])
	if err != nil {
		return StepReceive, err
	}
	tr.mark("decode config")
	want := cfg.NumFDs
	if cfg.JoinNetNS {
		want++
	}
	if len(fds) != want {
		return StepReceive, fmt.Errorf("expected %d fds, received %d", want, len(fds))
	}
	if cfg.JoinNetNS {
		if err := syscalls.SetnsNet(fds[0]); err != nil {
			return StepJoinNetNS, err
		}
		_ = syscalls.Close(fds[0])
		fds = fds[1:]
	}

	if cfg.CgroupNS {
		if err := syscalls.UnshareCgroupNS(); err != nil {
			return StepCgroupNS, err
		}
	}
	if cfg.Plan != nil {
		// vfs.StepError names its own step.
		if err := cfg.Plan.Apply(cfg.RootDir); err != nil {
			return "rootfs", err
		}
		tr.mark("rootfs")
	}
	if cfg.Hostname != "" {
		if err := syscalls.Sethostname(cfg.Hostname); err != nil {
			return StepHostname, err
		}
	}
	for _, r := range cfg.Rlimits {
		if err := syscalls.SetRlimit(r); err != nil {
			return StepRlimit, err
		}
	}
	tr.mark("hostname, rlimits")
	if err := placeFDs(sync, fds); err != nil {
		return StepFDs, err
	}
	if err := dropBounding(cfg.Caps); err != nil {
		return StepBounding, err
	}
	if len(cfg.Caps) > 0 && cfg.UID != 0 {
		if err := syscalls.SetKeepCaps(true); err != nil {
			return StepCaps, err
		}
	}
	if err := syscalls.SetGroups(cfg.AdditionalGIDs); err != nil {
		return StepSetgroups, err
	}
	if err := syscalls.SetResGID(cfg.GID); err != nil {
		return StepSetgid, err
	}
	if err := syscalls.SetResUID(cfg.UID); err != nil {
		return StepSetuid, err
	}
	// setresuid cleared the parent-death signal; without it the app would
	// outlive a SIGKILLed supervisor until recovery ran.
	if err := syscalls.SetPdeathsig(syscall.SIGKILL); err != nil {
		return StepPdeathsig, err
	}
	if err := syscalls.SetCaps(cfg.Caps); err != nil {
		return StepCaps, err
	}
	if err := syscalls.ClearAmbientCaps(); err != nil {
		return StepCaps, err
	}
	if cfg.UID != 0 {
		for _, c := range cfg.Caps {
			if err := syscalls.RaiseAmbientCap(c); err != nil {
				return StepCaps, err
			}
		}
	}
	if err := syscalls.Chdir(cfg.Cwd); err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return StepChdir, &stepError{errno: errno, msg: fmt.Sprintf("working directory %s: %v (it must exist in the sandbox and be searchable by uid %d)", cfg.Cwd, errno, cfg.UID)}
		}
		return StepChdir, err
	}
	if err := syscalls.SetNoNewPrivs(); err != nil {
		return StepNoNewPrivs, err
	}
	tr.mark("credentials")
	path, err := lookPath(cfg.Args[0], cfg.Env)
	if err != nil {
		return StepExec, err
	}
	tr.mark("find command")
	// The supervisor may have died after the clone; pdeathsig is armed
	// again now, and a write to a closed peer fails with EPIPE, so the app
	// is never exec'd without a supervisor.
	if err := syscalls.SendMsg(*sync, tr.ready(), nil); err != nil {
		return StepReady, errSupervisorGone
	}
	if cfg.WaitStart {
		var b [1]byte
		n, _, err := syscalls.RecvMsg(*sync, b[:], 0)
		if err != nil {
			return StepStart, err
		}
		if n == 0 {
			return StepStart, errSupervisorGone
		}
		if b[0] != msgStart {
			return StepStart, fmt.Errorf("unexpected message %q while waiting for start", b[0])
		}
	}
	if len(bpf) > 0 {
		if step, err := loadSeccomp(*sync, cfg, bpf); err != nil {
			return step, err
		}
	}
	err = syscalls.Exec(path, cfg.Args, cfg.Env)
	return StepExec, execError(cfg.Args[0], err)
}

// loadSeccomp installs the filter, last before execve. A filter with
// notification rules comes with a listener, which goes to the supervisor
// at once: from here on, a notified syscall of this process waits for the
// supervisor's answer (or fails with ENOSYS once every copy of the listener
// is closed). The filter allows what is left to do here (sendmsg, close,
// execve) or the start fails visibly.
func loadSeccomp(sync int, cfg *Config, bpf []byte) (string, error) {
	if !cfg.WantsListener() {
		return StepSeccomp, syscalls.SetSeccompFilter(bpf, cfg.SeccompFlags)
	}
	l, err := syscalls.SetSeccompFilterListener(bpf, cfg.SeccompFlags)
	if err != nil {
		return StepSeccomp, err
	}
	err = syscalls.SendMsg(sync, []byte{msgListener}, []int{l})
	_ = syscalls.Close(l) // the supervisor has its own copy now
	if err != nil {
		if errors.Is(err, syscall.EPIPE) {
			return StepListener, errSupervisorGone
		}
		return StepListener, err
	}
	return "", nil
}

// placeFDs moves the sync socket out of the way and puts the received app
// descriptors at 3, 4, ...; every other descriptor above 2 is marked
// close-on-exec so nothing of the supervisor leaks into the app.
func placeFDs(sync *int, fds []int) error {
	n := len(fds)
	high := 3 + n
	if high < 10 {
		high = 10
	}
	s, err := syscalls.DupHigh(*sync, high)
	if err != nil {
		return err
	}
	*sync = s
	// Pass 1: move every received fd above the target range.
	moved := make([]int, n)
	for i, fd := range fds {
		m, err := syscalls.DupHigh(fd, high)
		if err != nil {
			return err
		}
		moved[i] = m
		if m != fd {
			_ = syscalls.Close(fd)
		}
	}
	// Pass 2: place them, inheritable.
	for i, fd := range moved {
		if err := syscalls.Dup3(fd, 3+i, false); err != nil {
			return err
		}
		_ = syscalls.Close(fd)
	}
	return syscalls.CloseOnExecFrom(3 + n)
}

func dropBounding(keep []uint) error {
	last, err := syscalls.LastCap()
	if err != nil {
		return err
	}
	kept := make(map[uint]bool, len(keep))
	for _, c := range keep {
		kept[c] = true
	}
	for c := uint(0); c <= last; c++ {
		if kept[c] {
			continue
		}
		if err := syscalls.DropBoundingCap(c); err != nil {
			return err
		}
	}
	return nil
}

// lookPath finds the app's command inside the new root, the way a shell
// would, using PATH from the app's environment.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, checkExecutable(file, file)
	}
	pathEnv := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	var firstErr error
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		err := checkExecutable(file, p)
		if err == nil {
			return p, nil
		}
		var se *stepError
		if errors.As(err, &se) && se.errno != syscall.ENOENT && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", &stepError{errno: syscall.ENOENT, msg: fmt.Sprintf("%s: command not found in the sandbox (PATH=%s)", file, pathEnv)}
}

func checkExecutable(name, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return &stepError{errno: syscall.ENOENT, msg: fmt.Sprintf("%s: no such file in the sandbox", name)}
	}
	if fi.IsDir() {
		return &stepError{errno: syscall.EACCES, msg: fmt.Sprintf("%s: is a directory", name)}
	}
	if err := syscalls.Access(path, syscalls.ExecOK); err != nil {
		return &stepError{errno: syscall.EACCES, msg: fmt.Sprintf("%s: permission denied (not executable by uid %d)", name, os.Geteuid())}
	}
	return nil
}

func execError(name string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return err
	}
	switch errno {
	case syscall.ENOENT:
		// The file exists (lookPath checked) so its interpreter or
		// dynamic loader does not.
		return &stepError{errno: errno, msg: fmt.Sprintf("%s: its interpreter or dynamic loader is missing in the sandbox", name)}
	case syscall.ENOEXEC:
		return &stepError{errno: syscall.EACCES, msg: fmt.Sprintf("%s: exec format error", name)}
	}
	return &stepError{errno: errno, msg: fmt.Sprintf("%s: %v", name, errno)}
}
