package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// checkUserNSReach makes sure that the root of a new user namespace (a host
// uid without privileges over the host's files) can reach what the init
// stage needs before it has built the sandbox: its own binary and the
// rootfs mountpoint in the state dir. Without this the start fails deep in
// the init stage with a bare EACCES.
func (s *Supervisor) checkUserNSReach(u *UserNamespace) error {
	uid, gid := hostID(u.UIDMappings), hostID(u.GIDMappings)
	if uid < 0 || gid < 0 {
		return fmt.Errorf("%w: the user namespace must map uid and gid 0 (the init stage runs as root inside it)", ErrInvalidSpec)
	}
	if err := reachable(s.opts.InitPath, uint32(uid), uint32(gid)); err != nil {
		return fmt.Errorf("%w: the init stage %s: %v", ErrInvalidSpec, s.opts.InitPath, err)
	}
	if err := reachable(s.rootDir, uint32(uid), uint32(gid)); err != nil {
		return fmt.Errorf("%w: the state dir: %v", ErrInvalidSpec, err)
	}
	return nil
}

// hostID returns the host id that id 0 of the namespace maps to, or -1.
func hostID(maps []specs.LinuxIDMapping) int64 {
	for _, m := range maps {
		if m.ContainerID == 0 && m.Size > 0 {
			return int64(m.HostID)
		}
	}
	return -1
}

// reachable checks that uid/gid may search every directory on the way to
// path, and execute (or, for a directory, search) path itself.
func reachable(path string, uid, gid uint32) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	check := func(p string, bit os.FileMode) error {
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		mode := st.Mode().Perm()
		var allowed bool
		switch {
		case sys.Uid == uid:
			allowed = mode&(bit<<6) != 0
		case sys.Gid == gid:
			allowed = mode&(bit<<3) != 0
		default:
			allowed = mode&bit != 0
		}
		if !allowed {
			what := "search"
			if bit == 0o1 && !st.IsDir() {
				what = "execute"
			}
			return fmt.Errorf("host uid %d (root of the sandbox's user namespace) cannot %s %s (mode %#o): make it and its parent directories world-searchable (o+x)", uid, what, p, mode)
		}
		return nil
	}
	dir := filepath.Dir(abs)
	var dirs []string
	for d := dir; ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if d == "/" {
			break
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := check(dirs[i], 0o1); err != nil {
			return err
		}
	}
	// The binary must be executable; the mountpoint directory searchable.
	return check(abs, 0o1)
}
