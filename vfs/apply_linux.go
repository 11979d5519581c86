package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pinfold/pinfold/syscalls"
)

// Apply builds the filesystem p describes and makes it the caller's root.
// It must run inside a new mount namespace (of which the caller is the only
// user), with CAP_SYS_ADMIN there, before any other thread of the process
// depends on the root or working directory; the init stage calls it as pid 1
// of the sandbox's namespaces. rootDir is an existing directory on the host;
// the new root's tmpfs is mounted on it inside this mount namespace only.
//
// In order: the whole mount tree is made private, a tmpfs is mounted on
// rootDir, p.Ops run (every path resolved under the new root with openat2
// RESOLVE_IN_ROOT, never through a symbolic link), the process pivots into
// the new root and detaches the old one, and the root mount is made
// read-only. On return the working directory is "/". The process umask is
// 0 during Apply and restored after.
//
// Apply refuses (ErrHostMountNS) to run in its parent's mount namespace,
// unless it is pid 1 of a new pid namespace (see checkOwnMountNS). A plan
// with cgroup mounts (Spec.Cgroupfs) must be applied in a cgroup namespace
// unshared inside the app's cgroups: Apply refuses (ErrHostCgroupNS) the
// initial one and its parent's (see checkOwnCgroupNS). It is meant to run
// once per process. Errors are *StepError naming the failed step.
func (p *Plan) Apply(rootDir string) error { return p.apply(rootDir, nil) }

// tracer receives the duration of each step, labelled by its kind, for the
// benchmark that breaks down where Apply's time goes.
type tracer func(label string, d time.Duration)

func step(name string, err error) error { return &StepError{Step: name, Err: err} }

func (p *Plan) apply(rootDir string, trace tracer) error {
	if err := p.Validate(); err != nil {
		return step("validate plan", err)
	}
	t := time.Now()
	lap := func(label string) {
		if trace != nil {
			now := time.Now()
			trace(label, now.Sub(t))
			t = now
		}
	}
	if err := checkOwnMountNS(); err != nil {
		return step("check mount namespace", err)
	}
	lap("check mount namespace")
	old := syscalls.Umask(0)
	defer syscalls.Umask(old)

	// Private, not slave: no mount or unmount on the host reaches the
	// sandbox, and nothing done here reaches the host (see docs).
	if err := syscalls.MakeRPrivate("/"); err != nil {
		return step("make / private", err)
	}
	lap("make / private")
	root, err := syscalls.FSMount("tmpfs", p.RootOptions, attrBits(NoSuid|NoDev|NoExec))
	if err != nil {
		return step("mount root tmpfs", err)
	}
	a := &applier{root: root, dirFD: -1, maskDir: -1}
	defer a.close()
	if err := syscalls.MoveMountToPath(root, rootDir); err != nil {
		return step("mount root tmpfs on "+rootDir, err)
	}
	lap("mount tmpfs (root)")

	for i := range p.Ops {
		op := &p.Ops[i]
		label, err := a.do(op)
		if err != nil {
			return step(op.step(), err)
		}
		lap(label)
	}
	a.dropDir()

	// pivot_root(".", ".") stacks the old root on top of the new one at
	// "/"; detaching "." then removes it and everything below it.
	if err := syscalls.Fchdir(root); err != nil {
		return step("chdir to new root", err)
	}
	if err := syscalls.PivotRoot(".", "."); err != nil {
		return step("pivot_root", err)
	}
	lap("pivot_root")
	if err := syscalls.UnmountDetach("."); err != nil {
		return step("detach old root", err)
	}
	if err := syscalls.Chdir("/"); err != nil {
		return step("chdir /", err)
	}
	lap("detach old root")
	if err := syscalls.SetMountAttr(root, false, syscalls.MountAttrReadOnly, 0); err != nil {
		return step("make / read-only", err)
	}
	lap("seal")
	return nil
}

// checkOwnMountNS refuses to run in its parent's mount namespace (the
// supervisor's, that is the host's): pivot_root there would move the root
// of every process of the host. The init stage is pid 1 of a new pid
// namespace that the spawner always creates together with the mount
// namespace; there getppid is 0 and the check is skipped, because reading
// the parent's namespace through /proc costs 30-80 µs of every start.
// Anywhere else (no new pid namespace: tests, other callers) the parent's
// namespace is compared through /proc, which is still the parent's
// instance. When it cannot be read (from a user namespace), mounting in it
// would fail with EPERM anyway.
func checkOwnMountNS() error {
	if os.Getppid() == 0 {
		return nil
	}
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return err
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(f) < 2 || f[1] == "0" {
		return nil
	}
	parent, err := os.Readlink("/proc/" + f[1] + "/ns/mnt")
	if err == nil && parent == self {
		return fmt.Errorf("%w: %s is also the mount namespace of the parent, pid %s", ErrHostMountNS, self, f[1])
	}
	return nil
}

// initCgroupNS is the initial cgroup namespace as /proc/PID/ns/cgroup
// names it: its inode number is fixed (PROC_CGROUP_INIT_INO).
const initCgroupNS = "cgroup:[4026531835]"

// checkOwnCgroupNS refuses (ErrHostCgroupNS) to mount cgroup filesystems
// in the initial cgroup namespace or, when the caller is not pid 1 of a new
// pid namespace, in its parent's. A fresh cgroup mount shows the caller's
// cgroup namespace from its root; only in a namespace unshared by the init
// stage, inside the app's cgroups, is that root the app's own cgroup. It
// costs one readlink (two outside a new pid namespace) of the host's
// /proc, still the process's /proc while Apply runs.
func checkOwnCgroupNS() error {
	self, err := os.Readlink("/proc/self/ns/cgroup")
	if err != nil {
		return err
	}
	if self == initCgroupNS {
		return fmt.Errorf("%w: %s is the initial cgroup namespace (unshare a cgroup namespace inside the app's cgroups first)", ErrHostCgroupNS, self)
	}
	if ppid := os.Getppid(); ppid != 0 {
		parent, err := os.Readlink("/proc/" + strconv.Itoa(ppid) + "/ns/cgroup")
		if err == nil && parent == self {
			return fmt.Errorf("%w: %s is also the cgroup namespace of the parent, pid %d", ErrHostCgroupNS, self, ppid)
		}
	}
	return nil
}

// step names op in errors: "bind /srv/models", "mount tmpfs on /tmp", ...
func (op *Op) step() string {
	switch op.Kind {
	case KindDir:
		return "mkdir " + op.Path
	case KindFile:
		return "write " + op.Path
	case KindSymlink:
		return "symlink " + op.Path
	case KindDevice:
		return "mknod " + op.Path
	case KindBind:
		if op.Source == op.Path {
			return "bind " + op.Source
		}
		return "bind " + op.Source + " on " + op.Path
	case KindMount:
		return "mount " + op.FSType + " on " + op.Path
	case KindMask:
		return "mask " + op.Path
	case KindReadOnly:
		return "make " + op.Path + " read-only"
	case KindSeal:
		return "seal " + op.Path
	}
	return string(op.Kind) + " " + op.Path
}

func attrBits(a Attr) uint64 {
	var v uint64
	if a&ReadOnly != 0 {
		v |= syscalls.MountAttrReadOnly
	}
	if a&NoSuid != 0 {
		v |= syscalls.MountAttrNoSuid
	}
	if a&NoDev != 0 {
		v |= syscalls.MountAttrNoDev
	}
	if a&NoExec != 0 {
		v |= syscalls.MountAttrNoExec
	}
	return v
}

// applier holds Apply's descriptors.
type applier struct {
	root int // mount fd of the new root tmpfs
	// dirPath/dirFD cache the parent directory of the last created node;
	// a mount that covers that directory drops it.
	dirPath string
	dirFD   int
	// maskDir is the first directory mask (an empty read-only tmpfs, once
	// attached); later directory masks are clones of it.
	maskDir int
	// cgroupNSChecked: checkOwnCgroupNS passed (before the first cgroup
	// mount).
	cgroupNSChecked bool
}

func (a *applier) close() {
	a.dropDir()
	if a.maskDir >= 0 {
		syscalls.Close(a.maskDir)
	}
	syscalls.Close(a.root)
}

func (a *applier) dropDir() {
	if a.dirFD >= 0 {
		syscalls.Close(a.dirFD)
	}
	a.dirPath, a.dirFD = "", -1
}

// covered drops the cached parent directory if a mount on p covers it:
// creating through the old descriptor would go under the mount.
func (a *applier) covered(p string) {
	if a.dirFD >= 0 && within(a.dirPath, p) {
		a.dropDir()
	}
}

// rel turns an absolute sandbox path into one relative to the new root.
func rel(p string) string { return p[1:] }

// parent returns an fd for the directory that will hold p, and p's last
// element. The directory is resolved under the new root, refusing symbolic
// links: nodes are only ever created on a tmpfs the plan mounted.
func (a *applier) parent(p string) (int, string, error) {
	dir, name := filepath.Split(p)
	dir = filepath.Clean(dir)
	if dir == a.dirPath {
		return a.dirFD, name, nil
	}
	a.dropDir()
	fd, err := syscalls.OpenInRoot(a.root, rel(dir), true, true)
	if err != nil {
		return -1, "", fmt.Errorf("parent directory %s: %w", dir, err)
	}
	a.dirPath, a.dirFD = dir, fd
	return fd, name, nil
}

// target opens the mount target p under the new root, never through a
// symbolic link, and checks its type.
func (a *applier) target(p string, dir bool) (int, error) {
	fd, err := syscalls.OpenInRoot(a.root, rel(p), dir, true)
	if err != nil {
		return -1, fmt.Errorf("target %s: %w", p, err)
	}
	if !dir {
		mode, _, err := syscalls.StatFD(fd)
		if err == nil && mode&syscalls.ModeTypeMask == syscalls.ModeDir {
			err = fmt.Errorf("target %s is a directory but the source is not", p)
		}
		if err != nil {
			syscalls.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// do performs op and returns the label its time is accounted under.
func (a *applier) do(op *Op) (string, error) {
	switch op.Kind {
	case KindDir, KindFile, KindSymlink, KindDevice:
		dir, name, err := a.parent(op.Path)
		if err != nil {
			return "", err
		}
		switch op.Kind {
		case KindDir:
			return "mkdir", syscalls.Mkdirat(dir, name, op.Mode)
		case KindFile:
			return "write file", syscalls.CreateFileAt(dir, name, op.Mode, op.Content)
		case KindSymlink:
			return "symlink", syscalls.Symlinkat(op.Source, dir, name)
		default:
			return "mknod", syscalls.MknodChar(dir, name, op.Mode, op.Major, op.Minor)
		}
	case KindBind:
		a.covered(op.Path)
		label := "bind file"
		if op.Dir {
			label = "bind dir (recursive)"
		}
		return label, a.bind(op)
	case KindMount:
		a.covered(op.Path)
		return "mount " + op.FSType, a.mount(op)
	case KindMask:
		a.dropDir() // it follows links: it may land anywhere
		return a.mask(op)
	case KindReadOnly:
		a.covered(op.Path)
		return a.readOnly(op)
	case KindSeal:
		fd, err := syscalls.OpenInRoot(a.root, rel(op.Path), true, true)
		if err != nil {
			return "", err
		}
		defer syscalls.Close(fd)
		return "seal", syscalls.SetMountAttr(fd, false, syscalls.MountAttrReadOnly, 0)
	}
	return "", fmt.Errorf("unknown operation kind %q", op.Kind)
}

// bind clones op.Source with all its submounts, sets op.Attr on every mount
// of the clone (so a read-only bind has no writable submount), and attaches
// it on op.Path.
func (a *applier) bind(op *Op) error {
	src, err := syscalls.OpenTreeClone(syscalls.AtFDCWD, op.Source, true)
	if err != nil {
		return err
	}
	defer syscalls.Close(src)
	if err := syscalls.SetMountAttr(src, true, attrBits(op.Attr), 0); err != nil {
		return err
	}
	dst, err := a.target(op.Path, op.Dir)
	if err != nil {
		return err
	}
	defer syscalls.Close(dst)
	return syscalls.MoveMount(src, dst)
}

// mount mounts a fresh filesystem on op.Path.
func (a *applier) mount(op *Op) error {
	if cgroupFS(op.FSType) && !a.cgroupNSChecked {
		if err := checkOwnCgroupNS(); err != nil {
			return err
		}
		a.cgroupNSChecked = true
	}
	mfd, err := syscalls.FSMount(op.FSType, op.Options, attrBits(op.Attr))
	if err != nil {
		return err
	}
	defer syscalls.Close(mfd)
	dst, err := a.target(op.Path, true)
	if err != nil {
		return err
	}
	defer syscalls.Close(dst)
	return syscalls.MoveMount(mfd, dst)
}

// mask covers op.Path, following symbolic links under the new root (it
// hides what the app would reach by that path), if it exists.
func (a *applier) mask(op *Op) (string, error) {
	fd, err := syscalls.OpenInRoot(a.root, rel(op.Path), false, false)
	if errors.Is(err, fs.ErrNotExist) {
		return "mask (absent, skipped)", nil
	}
	if err != nil {
		return "", err
	}
	defer syscalls.Close(fd)
	mode, _, err := syscalls.StatFD(fd)
	if err != nil {
		return "", err
	}
	if mode&syscalls.ModeTypeMask != syscalls.ModeDir {
		null, err := syscalls.OpenTreeClone(a.root, "dev/null", false)
		if err != nil {
			return "", fmt.Errorf("/dev/null: %w", err)
		}
		defer syscalls.Close(null)
		return "mask file (/dev/null)", syscalls.MoveMount(null, fd)
	}
	if a.maskDir < 0 {
		mfd, err := syscalls.FSMount("tmpfs", []string{"size=4096", "mode=0555"},
			attrBits(ReadOnly|NoSuid|NoDev|NoExec))
		if err != nil {
			return "", err
		}
		if err := syscalls.MoveMount(mfd, fd); err != nil {
			syscalls.Close(mfd)
			return "", err
		}
		a.maskDir = mfd
		return "mask dir (new tmpfs)", nil
	}
	c, err := syscalls.OpenTreeClone(a.maskDir, "", false)
	if err != nil {
		return "", err
	}
	defer syscalls.Close(c)
	return "mask dir (clone)", syscalls.MoveMount(c, fd)
}

// readOnly binds op.Path onto itself read-only, if it exists.
func (a *applier) readOnly(op *Op) (string, error) {
	fd, err := syscalls.OpenInRoot(a.root, rel(op.Path), false, true)
	if errors.Is(err, fs.ErrNotExist) {
		return "read-only (absent, skipped)", nil
	}
	if err != nil {
		return "", err
	}
	defer syscalls.Close(fd)
	c, err := syscalls.OpenTreeClone(fd, "", false)
	if err != nil {
		return "", err
	}
	defer syscalls.Close(c)
	if err := syscalls.SetMountAttr(c, false, attrBits(ReadOnly|NoSuid|NoDev|NoExec), 0); err != nil {
		return "", err
	}
	return "read-only bind", syscalls.MoveMount(c, fd)
}
