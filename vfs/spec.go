package vfs

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Sizes used when a Spec leaves them zero.
const (
	DefaultTmpfsSize = 64 << 20 // bytes, for Spec.Tmpfs entries with Size 0
	DefaultShmSize   = 64 << 20 // bytes, for /dev/shm when Spec.ShmSize is 0
)

// Spec is the filesystem part of a sandbox policy. It is plain data; NewPlan
// validates it.
type Spec struct {
	// ReadOnly and ReadWrite are host paths bound into the sandbox, with
	// every submount, nosuid and nodev; ReadOnly ones (and all their
	// submounts) are read-only. A source that is a symbolic link is
	// recreated as the same link at the target instead.
	ReadOnly  []Bind `json:"readOnly,omitempty"`
	ReadWrite []Bind `json:"readWrite,omitempty"`
	// Tmpfs are fresh, empty, writable tmpfs mounts (nosuid, nodev, mode 1777).
	Tmpfs []Tmpfs `json:"tmpfs,omitempty"`
	// Files are generated read-only files (pinfold's Python client module,
	// for one); their directories are created as needed.
	Files []File `json:"files,omitempty"`
	// Masked are extra paths hidden from the app, on top of the built-in
	// /proc and /sys masks: a directory is covered by an empty read-only
	// tmpfs, anything else by /dev/null. Paths that do not exist in the
	// sandbox are skipped.
	Masked []string `json:"masked,omitempty"`
	// Sysfs mounts a fresh, read-only sysfs on /sys (it shows the
	// sandbox's own network namespace). Without it /sys does not exist.
	Sysfs bool `json:"sysfs,omitempty"`
	// ShmSize is the size of /dev/shm in bytes (0: DefaultShmSize).
	ShmSize int64 `json:"shmSize,omitempty"`
	// Hostname goes into the generated /etc/hostname and /etc/hosts
	// ("localhost" when empty). Setting the UTS hostname is not vfs's job.
	Hostname string `json:"hostname,omitempty"`
	// UID and GID get "app" entries in the generated /etc/passwd and
	// /etc/group unless they are root's or nobody's.
	UID uint32 `json:"uid"`
	GID uint32 `json:"gid"`
	// UserNS says the init stage runs in a new user namespace, where
	// mknod is not allowed: device nodes are then bound from the host.
	UserNS bool `json:"userNS,omitempty"`
	// Cgroupfs shows the app its own cgroups, read-only, at
	// /sys/fs/cgroup, laid out as Cgroups says: what a container with a
	// private cgroup namespace sees, so that runtimes which size
	// themselves from cgroup limits (the JVM's heap, Go's GOMAXPROCS,
	// libuv's constrained memory) see the sandbox's limits. Apply must
	// run in a cgroup namespace of its own, rooted at the app's cgroups
	// (the init stage unshares one first); it refuses the initial one
	// (ErrHostCgroupNS). Without Sysfs, /sys holds only fs/cgroup.
	Cgroupfs bool `json:"cgroupfs,omitempty"`
	// Cgroups describes the host's cgroup layout and the hierarchies the
	// app has a cgroup of its own in. The supervisor fills it from its
	// cgroup manager at every start; it is used only with Cgroupfs.
	Cgroups CgroupView `json:"cgroups,omitempty"`
}

// Cgroup layouts of a host: the values of CgroupView.Mode, named as
// package cgroup names them (cgroup.Mode).
const (
	// CgroupLegacy is cgroup v1 only: one hierarchy per controller, or
	// per group of co-mounted controllers.
	CgroupLegacy = "legacy"
	// CgroupHybrid is cgroup v1 controllers plus a cgroup2 hierarchy
	// without resource controllers at /sys/fs/cgroup/unified.
	CgroupHybrid = "hybrid"
	// CgroupUnified is cgroup v2 only.
	CgroupUnified = "unified"
)

// CgroupView is what Spec.Cgroupfs shows. Each hierarchy is a fresh,
// read-only cgroup mount made inside the app's cgroup namespace, so its
// root is the app's own cgroup and nothing above or beside it is
// visible:
//
//   - unified: cgroup2 on /sys/fs/cgroup;
//   - legacy: a directory /sys/fs/cgroup holding one cgroup mount per V1
//     hierarchy, named by its controllers joined with ',' ("memory",
//     "cpu,cpuacct"), and, for co-mounted controllers, a symbolic link
//     per controller ("cpu" -> "cpu,cpuacct"), as systemd lays them out;
//   - hybrid: the same, plus cgroup2 on /sys/fs/cgroup/unified.
type CgroupView struct {
	// Mode is CgroupLegacy, CgroupHybrid or CgroupUnified.
	Mode string `json:"mode,omitempty"`
	// V1 lists the cgroup v1 hierarchies to show (legacy and hybrid
	// hosts), each as all the controllers bound to it, in the order the
	// host's mount options list them: {"memory"}, {"cpu", "cpuacct"}.
	// List only hierarchies in which the app has a cgroup of its own: in
	// any other, its cgroup namespace is rooted at the supervisor's
	// cgroup, and the mount would show that cgroup and every cgroup below
	// it (the whole host's hierarchy when the supervisor runs in the
	// root cgroup).
	V1 [][]string `json:"v1,omitempty"`
}

// Bind is one host path made visible in the sandbox.
type Bind struct {
	Source string `json:"source"` // absolute host path
	Target string `json:"target"` // absolute path in the sandbox
}

// Tmpfs is one fresh tmpfs mount.
type Tmpfs struct {
	Path string `json:"path"`           // absolute path in the sandbox
	Size int64  `json:"size,omitempty"` // bytes; 0 means DefaultTmpfsSize
}

// File is one generated file.
type File struct {
	Path    string `json:"path"` // absolute path in the sandbox
	Mode    uint32 `json:"mode"` // permission bits
	Content []byte `json:"content,omitempty"`
}

// DefaultSpec is the filesystem of the default policy: the host's /usr
// read-only (plus the merged-/usr links and the /etc files that pinfold
// carries), a 64 MiB /tmp, no /sys, and an app running as uid/gid 1000.
func DefaultSpec() Spec {
	return Spec{
		ReadOnly: []Bind{{Source: "/usr", Target: "/usr"}},
		Tmpfs:    []Tmpfs{{Path: "/tmp", Size: DefaultTmpfsSize}},
		Hostname: "sandbox",
		UID:      1000,
		GID:      1000,
	}
}

// reserved are the sandbox paths whose contents pinfold alone decides; no
// bind, tmpfs or symbolic link may be placed at or below them.
var reserved = []string{"/dev", "/proc", "/sys"}

// checkPath reports why p is not an absolute, clean path other than "/".
func checkPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case strings.IndexByte(p, 0) >= 0:
		return fmt.Errorf("path %q contains a NUL byte", p)
	case !filepath.IsAbs(p):
		return fmt.Errorf("path %q is not absolute", p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("path %q is not clean (write %q)", p, filepath.Clean(p))
	case p == "/":
		return fmt.Errorf("path %q is the root, which pinfold builds itself", p)
	}
	return nil
}

// checkTarget is checkPath plus the reserved trees and /etc itself.
func checkTarget(p string) error {
	if err := checkPath(p); err != nil {
		return err
	}
	for _, r := range reserved {
		if within(p, r) {
			return fmt.Errorf("target %s is inside %s, which pinfold builds itself", p, r)
		}
	}
	if p == "/etc" {
		return fmt.Errorf("target /etc would hide the generated passwd, hosts and resolv.conf (bind files or directories below /etc instead)")
	}
	return nil
}

// checkHostname accepts what sethostname and /etc/hosts can carry: up to 64
// letters, digits, '-' and '.', not starting or ending with '-' or '.'.
func checkHostname(h string) error {
	if len(h) > 64 {
		return fmt.Errorf("hostname %q is longer than 64 bytes", h)
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.'
		if !ok {
			return fmt.Errorf("hostname %q: byte %q is not a letter, digit, '-' or '.'", h, c)
		}
	}
	if h != "" && strings.ContainsAny(h[:1]+h[len(h)-1:], "-.") {
		return fmt.Errorf("hostname %q starts or ends with '-' or '.'", h)
	}
	return nil
}

// within reports whether p is base or below it (both clean and absolute).
func within(p, base string) bool {
	return p == base || strings.HasPrefix(p, base+"/") || base == "/"
}
