package vfs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/syscalls"
)

// The test binary plays the init stage: run with helperEnv set, it reads a
// helperRequest on stdin, applies the plan (it is pid 1 of new namespaces),
// runs the probes from inside the new root and writes a helperReport as JSON
// on stdout.
const helperEnv = "PINFOLD_VFS_TEST_HELPER"

// newPlanEnv makes the test binary time one NewPlan (BenchmarkNewPlanFresh).
const newPlanEnv = "PINFOLD_VFS_TEST_NEWPLAN"

type helperRequest struct {
	Plan    *Plan   `json:"plan"`
	RootDir string  `json:"rootDir"`
	Probes  []probe `json:"probes"`
	// CgroupNS makes the helper unshare a cgroup namespace before Apply,
	// as the init stage does (after runHelper has placed it in
	// nsConfig.cgroups).
	CgroupNS bool `json:"cgroupNS,omitempty"`
}

// probe is one observation made inside the sandbox after Apply.
type probe struct {
	Op   string   `json:"op"` // create, read, write, readdir, lstat, exec
	Path string   `json:"path"`
	Args []string `json:"args,omitempty"`
}

type probeResult struct {
	Errno int    `json:"errno,omitempty"` // 0: success
	Err   string `json:"err,omitempty"`
	Data  string `json:"data,omitempty"`
}

type helperReport struct {
	ApplyStep  string        `json:"applyStep,omitempty"`
	ApplyErrno int           `json:"applyErrno,omitempty"`
	ApplyErr   string        `json:"applyErr,omitempty"`
	ApplyNS    int64         `json:"applyNs"`
	DecodeNS   int64         `json:"decodeNs"`
	Trace      []traceEntry  `json:"trace,omitempty"`
	Results    []probeResult `json:"results,omitempty"`
	Mountinfo  string        `json:"mountinfo,omitempty"`
	Pid        int           `json:"pid"`
	FDsBefore  string        `json:"fdsBefore"`
	FDsAfter   string        `json:"fdsAfter"`
}

type traceEntry struct {
	Label string `json:"label"`
	NS    int64  `json:"ns"`
}

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		runtime.LockOSThread()
		if err := helperMain(); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	if os.Getenv(newPlanEnv) != "" {
		if err := newPlanOnce(); err != nil {
			fmt.Fprintln(os.Stderr, "newplan:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	before := hostState()
	code := m.Run()
	if code == 0 {
		if after := hostState(); after != before {
			fmt.Fprintf(os.Stderr, "LEAK: host state changed during the tests:\n--- before\n%s\n--- after\n%s\n", before, after)
			code = 1
		}
	}
	os.Exit(code)
}

// hostState is what the tests must leave as they found it: the test
// process's mount table, its children and its open descriptors.
func hostState() string {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	var b strings.Builder
	b.Write(mi)
	fmt.Fprintf(&b, "children: %v\n", children(os.Getpid()))
	fds, _ := os.ReadDir("/proc/self/fd")
	fmt.Fprintf(&b, "open fds: %d\n", len(fds)-1) // minus the one ReadDir used
	return b.String()
}

// children lists the pids whose parent is pid.
func children(pid int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parens.
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

func helperMain() error {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	// The plan is decoded on its own, as the init stage does (inside its
	// binary configuration), and timed: decoding in a fresh process is
	// part of the cost of a plan.
	var wire struct {
		helperRequest
		Plan json.RawMessage `json:"plan"`
	}
	if err := json.Unmarshal(in, &wire); err != nil {
		return err
	}
	req := wire.helperRequest
	t0 := time.Now()
	req.Plan = new(Plan)
	if err := req.Plan.UnmarshalJSON(wire.Plan); err != nil {
		return err
	}
	rep := helperReport{Pid: os.Getpid(), DecodeNS: time.Since(t0).Nanoseconds()}
	if req.CgroupNS {
		if err := syscalls.UnshareCgroupNS(); err != nil {
			return err
		}
	}
	// Start the runtime's poller first (os.ReadFile may create it), so
	// that only Apply's descriptors can differ.
	if _, err := os.ReadFile("/proc/self/stat"); err != nil {
		return err
	}
	fdsBefore := fdList()
	var trace []traceEntry
	start := time.Now()
	err = req.Plan.apply(req.RootDir, func(label string, d time.Duration) {
		trace = append(trace, traceEntry{label, d.Nanoseconds()})
	})
	rep.ApplyNS = time.Since(start).Nanoseconds()
	rep.Trace = trace
	rep.FDsBefore, rep.FDsAfter = fdsBefore, fdList()
	if err != nil {
		var se *StepError
		if errors.As(err, &se) {
			rep.ApplyStep = se.Step
		}
		rep.ApplyErr = err.Error()
		var errno syscall.Errno
		if errors.As(err, &errno) {
			rep.ApplyErrno = int(errno)
		}
		return json.NewEncoder(os.Stdout).Encode(rep)
	}
	for _, p := range req.Probes {
		rep.Results = append(rep.Results, runProbe(p))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	rep.Mountinfo = string(mi)
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// fdList lists the open descriptors (numbers only: the paths of the Go
// runtime's own cgroup files change with the root).
func fdList() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var out []string
	for _, e := range ents {
		if _, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil {
			continue // the directory ReadDir opened, closed by now
		}
		out = append(out, e.Name())
	}
	return strings.Join(out, " ")
}

func runProbe(p probe) probeResult {
	var data string
	var err error
	switch p.Op {
	case "create":
		var f *os.File
		f, err = os.OpenFile(p.Path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.WriteString("x")
			f.Close()
		}
	case "openrw":
		var f *os.File
		f, err = os.OpenFile(p.Path, os.O_RDWR, 0)
		if err == nil {
			f.Close()
		}
	case "mkdir":
		err = os.Mkdir(p.Path, 0o755)
	case "read":
		var b []byte
		b, err = os.ReadFile(p.Path)
		data = string(b)
	case "write":
		var f *os.File
		f, err = os.OpenFile(p.Path, os.O_WRONLY, 0)
		if err == nil {
			_, err = f.WriteString(strings.Join(p.Args, " "))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	case "readdir":
		var ents []os.DirEntry
		ents, err = os.ReadDir(p.Path)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		sort.Strings(names)
		data = strings.Join(names, " ")
	case "lstat":
		var fi os.FileInfo
		fi, err = os.Lstat(p.Path)
		if err == nil {
			data = fi.Mode().String()
		}
	case "readlink":
		data, err = os.Readlink(p.Path)
	case "exec":
		cmd := exec.Command(p.Path, p.Args...)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/tmp"}
		var out []byte
		out, err = cmd.CombinedOutput()
		data = string(out)
	default:
		err = fmt.Errorf("unknown probe %q", p.Op)
	}
	r := probeResult{Data: data}
	if err != nil {
		r.Err = err.Error()
		var errno syscall.Errno
		if errors.As(err, &errno) {
			r.Errno = int(errno)
		} else {
			r.Errno = -1
		}
	}
	return r
}

// nsConfig says which namespaces the helper gets.
type nsConfig struct {
	userNS bool
	// cgroups are cgroup directories (any hierarchy) the helper is moved
	// into before it reads its request.
	cgroups []string
}

// runHelper starts the test binary as the init stage in new mount, pid,
// uts, ipc and net namespaces (plus a user namespace mapping 0-65535 to
// host 100000-165535 when userNS), sends req and returns its report.
func runHelper(t testing.TB, ns nsConfig, req helperRequest) helperReport {
	t.Helper()
	in, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	// /proc/self/exe: reachable by the mapped uid, unlike the go-build dir.
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	var stdin io.WriteCloser
	if len(ns.cgroups) == 0 {
		cmd.Stdin = bytes.NewReader(in)
	} else if stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS |
			syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
		Pdeathsig: syscall.SIGKILL,
	}
	if ns.userNS {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		// Become the namespace's root (host uid 100000): the host root
		// the child starts as is not mapped, so it would have no caps.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if stdin != nil {
		// The helper waits for its request: move it first.
		for _, dir := range ns.cgroups {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("moving the helper into cgroup %s: %v", dir, err)
			}
		}
		_, err := stdin.Write(in)
		if cerr := stdin.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("sending the helper its request: %v", err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v\nstderr:\n%s", err, stderr.String())
	}
	var rep helperReport
	if err := json.NewDecoder(&stdout).Decode(&rep); err != nil {
		t.Fatalf("helper report: %v\nstdout: %s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if _, err := io.Copy(io.Discard, &stdout); err != nil {
		t.Fatal(err)
	}
	return rep
}
