package probe

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/pinfold/pinfold/syscalls"
)

// DefaultPaths are the host paths Collect always looks for.
var DefaultPaths = []string{"/root", "/home", "/work", "/work/main", "/var", "/run", "/run/systemd", "/run/lock", "/run/pinfold/python/pinfold.py", "/boot", "/sys", "/srv", "/mnt", "/opt"}

// WritableDirs are the directories Collect tries to create a file in.
var WritableDirs = []string{"/", "/usr", "/etc", "/bin", "/tmp", "/dev", "/dev/shm", "/proc"}

// ProcMasked are the /proc paths a sandbox hides (runc's list); ProcReadOnly
// are those it makes read-only.
var (
	ProcMasked = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi",
		"/proc/timer_list", "/proc/timer_stats",
	}
	ProcReadOnly = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// Collect observes the process's surroundings. extraPaths are looked up in
// addition to DefaultPaths.
func Collect(extraPaths []string) *Report {
	r := &Report{
		Paths:    map[string]string{},
		Writable: map[string]string{},
		Checks:   map[string]string{},
		Status:   map[string]string{},
		Proc:     map[string]string{},
	}
	// First, before anything (the Go runtime's poller included) opens a
	// descriptor of its own.
	r.FDs = openFDs()

	r.Pid, r.PPid = os.Getpid(), os.Getppid()
	r.Pids = procPids()
	var uts syscall.Utsname
	if err := syscall.Uname(&uts); err == nil {
		r.Hostname = cstring(uts.Nodename[:])
	}
	r.UID, r.EUID, r.GID, r.EGID = os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid()
	r.Groups, _ = os.Getgroups()
	r.UIDMap = readMap("/proc/self/uid_map")
	r.GIDMap = readMap("/proc/self/gid_map")
	r.Status = procStatus("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")
	if soft, hard, err := syscalls.MsgQueueRlimit(); err == nil {
		r.MsgQueueLimit = [2]uint64{soft, hard}
	}
	r.Interfaces, r.InterfacesErr = interfaces()
	r.Cwd, _ = os.Getwd()
	r.Env = os.Environ()

	for _, p := range append(append([]string{}, DefaultPaths...), extraPaths...) {
		var st syscall.Stat_t
		r.Paths[p] = outcome(syscall.Lstat(p, &st))
	}
	for _, d := range WritableDirs {
		r.Writable[d] = tryCreate(d)
	}
	for _, p := range ProcMasked {
		r.Proc[p] = maskState(p)
	}
	for _, p := range ProcReadOnly {
		r.Proc[p] = mountRW(p)
	}
	for name, fn := range checks {
		r.Checks[name] = fn()
	}
	return r
}

// openFDs lists the open descriptors with raw system calls, so that the
// listing itself adds nothing but its own directory handle (left out).
func openFDs() []FD {
	dfd, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return []FD{{FD: -1, Target: "open /proc/self/fd: " + outcome(err)}}
	}
	defer syscall.Close(dfd)
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := syscall.ReadDirent(dfd, buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names = syscall.ParseDirent(buf[:n], -1, names)
	}
	var fds []FD
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd == dfd {
			continue
		}
		f := FD{FD: fd}
		lb := make([]byte, 4096)
		if n, err := syscall.Readlink("/proc/self/fd/"+name, lb); err == nil {
			f.Target = string(lb[:n])
		}
		var st syscall.Stat_t
		if syscall.Fstat(fd, &st) == nil {
			f.Dev, f.Ino = uint64(st.Dev), uint64(st.Ino)
		}
		if flags, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0); e == 0 {
			f.Cloexec = flags&syscall.FD_CLOEXEC != 0
		}
		fds = append(fds, f)
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i].FD < fds[j].FD })
	return fds
}

func procPids() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, n)
		}
	}
	sort.Ints(pids)
	return pids
}

func procStatus(keys ...string) map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && want[k] {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func readMap(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return outcome(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(lines, "\n")
}

func interfaces() ([]Interface, string) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err.Error()
	}
	out := make([]Interface, 0, len(ifs))
	for _, i := range ifs {
		out = append(out, Interface{Name: i.Name, Up: i.Flags&net.FlagUp != 0, Loopback: i.Flags&net.FlagLoopback != 0})
	}
	return out, ""
}

// tryCreate creates (and removes) a new file in dir.
func tryCreate(dir string) string {
	p := filepath.Join(dir, ".pinfold-probe-"+strconv.Itoa(os.Getpid()))
	fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return outcome(err)
	}
	syscall.Close(fd)
	syscall.Unlink(p)
	return OK
}

func cstring(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

// maskState tells whether p is hidden: a /dev/null node bound over a file,
// or an empty read-only tmpfs over a directory.
func maskState(p string) string {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return outcome(err)
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFCHR:
		if st.Rdev == 1<<8|3 { // /dev/null
			return Masked
		}
	case syscall.S_IFDIR:
		var fs syscall.Statfs_t
		const tmpfsMagic = 0x01021994
		if syscall.Statfs(p, &fs) == nil && fs.Type == tmpfsMagic && fs.Flags&stRdonly != 0 {
			if ents, err := os.ReadDir(p); err == nil && len(ents) == 0 {
				return Masked
			}
		}
	}
	return Visible
}

// stRdonly is ST_RDONLY in statfs flags.
const stRdonly = 1

// mountRW tells whether the mount p is on is read-only.
func mountRW(p string) string {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(p, &fs); err != nil {
		return outcome(err)
	}
	if fs.Flags&stRdonly != 0 {
		return ReadOnly
	}
	return ReadWrite
}
