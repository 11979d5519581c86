// Command vminit is PID 1 of the throwaway VM that hack/vmtest.sh boots to
// run a test binary under a pure cgroup v2 kernel. It uses only the
// standard library and is built static.
//
// It reads from the initramfs:
//
//	/vmtest/bin/test   the program to run (cwd /vmtest/work)
//	/vmtest/args       its arguments, NUL-separated
//	/vmtest/env        its environment, NUL-separated K=V
//	/vmtest/timeout    seconds before everything is killed (exit 124)
//
// and then: makes / a bind mount so pivot_root(2) works below it (it fails
// with EINVAL on the bare initramfs root); mounts proc, sysfs, devtmpfs,
// devpts, tmpfs on /tmp, /run and /dev/shm, and cgroup2 (nsdelegate) on
// /sys/fs/cgroup; brings lo up; enables every controller in the root
// cgroup's subtree_control; runs the test in the root cgroup or, with
// VMTEST_CGROUP=/some/leaf in its environment, in that cgroup, created with
// the controllers available but not enabled in it (as systemd delegates a
// service); reaps every process; prints "VMTEST-EXIT: <status>" (the test's
// exit code, 128+N for signal N, 124 on timeout, 125 if the test could not
// run); and powers the machine off.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const marker = "VMTEST-EXIT:"

func main() {
	code := run()
	// Everything else is gone by now; make sure the marker line is whole.
	fmt.Printf("\n%s %d\n", marker, code)
	syscall.Sync()
	_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	// Power-off failed (no ACPI?): halting at least stops the guest; the
	// host side stops the VM after it has seen the marker.
	_ = syscall.Reboot(syscall.LINUX_REBOOT_CMD_HALT)
	for {
		time.Sleep(time.Hour)
	}
}

func run() int {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "vminit:", err)
		return 125
	}
	args, err := readList("/vmtest/args")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vminit:", err)
		return 125
	}
	env, err := readList("/vmtest/env")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vminit:", err)
		return 125
	}
	timeout := 10 * time.Minute
	if data, err := os.ReadFile("/vmtest/timeout"); err == nil {
		if s, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && s > 0 {
			timeout = time.Duration(s) * time.Second
		}
	}
	attr := &syscall.SysProcAttr{}
	for _, kv := range env {
		if leaf, ok := strings.CutPrefix(kv, "VMTEST_CGROUP="); ok && leaf != "" && leaf != "/" {
			fd, err := delegatedLeaf(leaf)
			if err != nil {
				fmt.Fprintln(os.Stderr, "vminit:", err)
				return 125
			}
			defer syscall.Close(fd)
			attr.UseCgroupFD, attr.CgroupFD = true, fd
		}
	}
	null, err := os.Open("/dev/null")
	if err != nil {
		fmt.Fprintln(os.Stderr, "vminit:", err)
		return 125
	}
	proc, err := os.StartProcess("/vmtest/bin/test", append([]string{"/vmtest/bin/test"}, args...), &os.ProcAttr{
		Dir:   "/vmtest/work",
		Env:   env,
		Files: []*os.File{null, os.Stdout, os.Stderr},
		Sys:   attr,
	})
	null.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vminit: starting the test:", err)
		return 125
	}
	return reap(proc.Pid, timeout)
}

// reap waits for the test, reaping orphans too, then kills and reaps
// whatever is left. It returns the test's status.
func reap(test int, timeout time.Duration) int {
	var timedOut atomic.Bool
	timer := time.AfterFunc(timeout, func() {
		timedOut.Store(true)
		fmt.Fprintf(os.Stderr, "\nvminit: test timed out after %v; killing everything\n", timeout)
		_ = syscall.Kill(-1, syscall.SIGKILL)
	})
	code := 125
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vminit: wait:", err)
			break
		}
		if pid != test {
			continue
		}
		switch {
		case ws.Exited():
			code = ws.ExitStatus()
		case ws.Signaled():
			code = 128 + int(ws.Signal())
		}
		break
	}
	timer.Stop()
	// Kill and reap the rest (daemons, leaked helpers) so power-off is clean.
	_ = syscall.Kill(-1, syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var ws syscall.WaitStatus
		_, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.ECHILD) {
			break
		}
	}
	if timedOut.Load() {
		return 124
	}
	return code
}

func readList(name string) ([]string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, f := range bytes.Split(data, []byte{0}) {
		if len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out, nil
}

func setup() error {
	// The switch_root trick: bind the initramfs root onto a directory of
	// itself and move that mount to /. Processes then live on a real mount,
	// so pivot_root works in their mount namespaces.
	if err := os.MkdirAll("/newroot", 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("/", "/newroot", "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting /: %w", err)
	}
	if err := syscall.Chdir("/newroot"); err != nil {
		return err
	}
	if err := syscall.Mount(".", "/", "", syscall.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving the root bind mount: %w", err)
	}
	if err := syscall.Chroot("."); err != nil {
		return err
	}
	if err := syscall.Chdir("/"); err != nil {
		return err
	}
	for _, m := range []struct {
		fstype, target, data string
		flags                uintptr
	}{
		{"proc", "/proc", "", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC},
		{"sysfs", "/sys", "", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC},
		{"devtmpfs", "/dev", "mode=0755", syscall.MS_NOSUID},
		{"devpts", "/dev/pts", "newinstance,ptmxmode=0666,mode=0620", syscall.MS_NOSUID | syscall.MS_NOEXEC},
		{"tmpfs", "/dev/shm", "mode=1777", syscall.MS_NOSUID | syscall.MS_NODEV},
		{"tmpfs", "/tmp", "mode=1777", syscall.MS_NOSUID | syscall.MS_NODEV},
		{"tmpfs", "/run", "mode=0755", syscall.MS_NOSUID | syscall.MS_NODEV},
		{"cgroup2", "/sys/fs/cgroup", "nsdelegate", syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(m.fstype, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.target, err)
		}
	}
	for _, d := range []string{"/vmtest/work", "/root"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := loUp(); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return enableAll("/sys/fs/cgroup")
}

// enableAll enables every controller available in dir for its children.
func enableAll(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return err
	}
	for _, c := range strings.Fields(string(data)) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0); err != nil {
			return fmt.Errorf("enabling %s in %s: %w", c, dir, err)
		}
	}
	return nil
}

// delegatedLeaf creates the cgroup leaf (e.g. /system.slice/x.service) with
// every controller enabled in its ancestors but not in itself, and returns
// a directory descriptor of it for CLONE_INTO_CGROUP.
func delegatedLeaf(leaf string) (int, error) {
	dir := "/sys/fs/cgroup"
	parts := strings.Split(strings.Trim(filepath.Clean(leaf), "/"), "/")
	for i, p := range parts {
		dir = filepath.Join(dir, p)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return -1, err
		}
		if i < len(parts)-1 {
			if err := enableAll(dir); err != nil {
				return -1, err
			}
		}
	}
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening %s: %w", dir, err)
	}
	return fd, nil
}

func loUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	// struct ifreq: 16-byte name, then a union whose first member here is
	// short ifr_flags.
	var ifr [40]byte
	copy(ifr[:], "lo")
	if err := ioctl(fd, syscall.SIOCGIFFLAGS, &ifr); err != nil {
		return err
	}
	flags := *(*uint16)(unsafe.Pointer(&ifr[16]))
	*(*uint16)(unsafe.Pointer(&ifr[16])) = flags | syscall.IFF_UP
	return ioctl(fd, syscall.SIOCSIFFLAGS, &ifr)
}

func ioctl(fd int, req uintptr, ifr *[40]byte) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(ifr))); e != 0 {
		return e
	}
	return nil
}
