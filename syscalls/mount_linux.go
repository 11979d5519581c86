package syscalls

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount attributes for FSMount and SetMountAttr (the MOUNT_ATTR_* bits of
// fsmount(2) and mount_setattr(2)).
const (
	MountAttrReadOnly uint64 = unix.MOUNT_ATTR_RDONLY
	MountAttrNoSuid   uint64 = unix.MOUNT_ATTR_NOSUID
	MountAttrNoDev    uint64 = unix.MOUNT_ATTR_NODEV
	MountAttrNoExec   uint64 = unix.MOUNT_ATTR_NOEXEC
)

// AtFDCWD is AT_FDCWD: as a dirfd, relative paths start at the current
// working directory.
const AtFDCWD = unix.AT_FDCWD

// File types as returned in the mode of StatFD.
const (
	ModeTypeMask uint32 = unix.S_IFMT
	ModeDir      uint32 = unix.S_IFDIR
	ModeRegular  uint32 = unix.S_IFREG
	ModeSymlink  uint32 = unix.S_IFLNK
	ModeCharDev  uint32 = unix.S_IFCHR
)

// ErrSymlinkInPath is wrapped by OpenInRoot when noSymlinks is set and a
// component of the path is a symbolic link (openat2 returns ELOOP).
var ErrSymlinkInPath = errors.New("path contains a symbolic link")

// MakeRPrivate is mount("", path, "", MS_REC|MS_PRIVATE, ""): no mount or
// unmount event under path propagates to or from any other mount namespace.
func MakeRPrivate(path string) error {
	err := retry(func() error { return unix.Mount("", path, "", unix.MS_REC|unix.MS_PRIVATE, "") })
	if err != nil {
		return os.NewSyscallError("mount(MS_REC|MS_PRIVATE)", err)
	}
	return nil
}

// FSMount creates a new, detached mount of a fresh fstype superblock with
// fsopen(2), one fsconfig(2) per option ("key=value", or "flag" for a flag
// option), FSCONFIG_CMD_CREATE and fsmount(2) with the MOUNT_ATTR_* bits in
// attr. It returns the O_CLOEXEC mount fd; attach it with MoveMount. When the
// filesystem rejects an option, the error carries the kernel's message from
// the fs context log.
func FSMount(fstype string, options []string, attr uint64) (int, error) {
	fsfd, err := retryN(func() (int, error) { return unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC) })
	if err != nil {
		return -1, os.NewSyscallError("fsopen "+fstype, err)
	}
	defer unix.Close(fsfd)
	for _, opt := range options {
		k, v, isKV := strings.Cut(opt, "=")
		err := retry(func() error {
			if isKV {
				return unix.FsconfigSetString(fsfd, k, v)
			}
			return unix.FsconfigSetFlag(fsfd, k)
		})
		if err != nil {
			return -1, fsError(fsfd, "fsconfig "+opt, err)
		}
	}
	if err := retry(func() error { return unix.FsconfigCreate(fsfd) }); err != nil {
		return -1, fsError(fsfd, "fsconfig(FSCONFIG_CMD_CREATE)", err)
	}
	mfd, err := retryN(func() (int, error) { return unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, int(attr)) })
	if err != nil {
		return -1, fsError(fsfd, "fsmount", err)
	}
	return mfd, nil
}

// fsError wraps err as a syscall error and appends the messages the
// filesystem logged on its fs context fd ("e ..." lines), if any.
func fsError(fsfd int, name string, err error) error {
	var msgs []string
	buf := make([]byte, 256)
	for range 8 {
		n, rerr := unix.Read(fsfd, buf)
		if rerr != nil || n <= 0 {
			break
		}
		msgs = append(msgs, string(bytes.TrimSpace(buf[:n])))
	}
	if len(msgs) > 0 {
		name += " (" + strings.Join(msgs, "; ") + ")"
	}
	return os.NewSyscallError(name, err)
}

// OpenTreeClone is open_tree(2) with OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC: it
// returns a detached copy of the mount at dirfd/path (path "" means dirfd
// itself, AT_EMPTY_PATH), with every submount when recursive (AT_RECURSIVE).
// Symbolic links in path are followed.
func OpenTreeClone(dirfd int, path string, recursive bool) (int, error) {
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	if path == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	fd, err := retryN(func() (int, error) { return unix.OpenTree(dirfd, path, flags) })
	if err != nil {
		return -1, os.NewSyscallError("open_tree", err)
	}
	return fd, nil
}

// SetMountAttr is mount_setattr(2) on the mount fd refers to (AT_EMPTY_PATH;
// fd must be the root of a mount), and on all mounts below it when recursive
// (AT_RECURSIVE). set and clear are MOUNT_ATTR_* bits.
func SetMountAttr(fd int, recursive bool, set, clear uint64) error {
	flags := uint(unix.AT_EMPTY_PATH)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Attr_set: set, Attr_clr: clear}
	if err := retry(func() error { return unix.MountSetattr(fd, "", flags, &attr) }); err != nil {
		return os.NewSyscallError("mount_setattr", err)
	}
	return nil
}

// MoveMount attaches the mount fd from (from FSMount or OpenTreeClone) on
// top of the file or directory that the O_PATH fd to refers to:
// move_mount(from, "", to, "", MOVE_MOUNT_F_EMPTY_PATH|MOVE_MOUNT_T_EMPTY_PATH).
// No path is resolved.
func MoveMount(from, to int) error {
	err := retry(func() error {
		return unix.MoveMount(from, "", to, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	})
	if err != nil {
		return os.NewSyscallError("move_mount", err)
	}
	return nil
}

// MoveMountToPath attaches the mount fd from on top of path, resolved from
// the current directory and root like any path.
func MoveMountToPath(from int, path string) error {
	err := retry(func() error {
		return unix.MoveMount(from, "", unix.AT_FDCWD, path, unix.MOVE_MOUNT_F_EMPTY_PATH)
	})
	if err != nil {
		return os.NewSyscallError("move_mount", err)
	}
	return nil
}

// OpenInRoot opens path as an O_PATH|O_CLOEXEC fd with openat2(2) and
// RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS: path and every symbolic link met
// on the way are resolved as if root were "/", so nothing outside the tree
// under root can be reached, and /proc magic links are refused. dir adds
// O_DIRECTORY. noSymlinks adds RESOLVE_NO_SYMLINKS; a symbolic link then
// fails with an error wrapping ErrSymlinkInPath and ELOOP.
func OpenInRoot(root int, path string, dir, noSymlinks bool) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	if dir {
		how.Flags |= unix.O_DIRECTORY
	}
	if noSymlinks {
		how.Resolve |= unix.RESOLVE_NO_SYMLINKS
	}
	if path == "" {
		path = "."
	}
	fd, err := retryN(func() (int, error) { return unix.Openat2(root, path, &how) })
	if err != nil {
		if noSymlinks && errors.Is(err, unix.ELOOP) {
			return -1, fmt.Errorf("%w: %w", ErrSymlinkInPath, os.NewSyscallError("openat2", err))
		}
		return -1, os.NewSyscallError("openat2", err)
	}
	return fd, nil
}

// Mkdirat creates directory name in dirfd with exactly mode (the umask is
// the caller's business; see Umask).
func Mkdirat(dirfd int, name string, mode uint32) error {
	if err := retry(func() error { return unix.Mkdirat(dirfd, name, mode) }); err != nil {
		return os.NewSyscallError("mkdirat", err)
	}
	return nil
}

// MknodChar creates character device name in dirfd with permission bits perm.
func MknodChar(dirfd int, name string, perm uint32, major, minor uint32) error {
	dev := int(unix.Mkdev(major, minor))
	if err := retry(func() error { return unix.Mknodat(dirfd, name, unix.S_IFCHR|perm, dev) }); err != nil {
		return os.NewSyscallError("mknodat", err)
	}
	return nil
}

// Symlinkat creates symbolic link name in dirfd pointing to target.
func Symlinkat(target string, dirfd int, name string) error {
	if err := retry(func() error { return unix.Symlinkat(target, dirfd, name) }); err != nil {
		return os.NewSyscallError("symlinkat", err)
	}
	return nil
}

// CreateFileAt creates regular file name in dirfd (O_CREAT|O_EXCL|O_NOFOLLOW:
// an existing name, symbolic link or not, is an error), writes content and
// closes it. An empty file is made with one mknodat(S_IFREG) instead.
func CreateFileAt(dirfd int, name string, perm uint32, content []byte) error {
	if len(content) == 0 {
		if err := retry(func() error { return unix.Mknodat(dirfd, name, unix.S_IFREG|perm, 0) }); err != nil {
			return os.NewSyscallError("mknodat", err)
		}
		return nil
	}
	fd, err := retryN(func() (int, error) {
		return unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	})
	if err != nil {
		return os.NewSyscallError("openat", err)
	}
	for len(content) > 0 {
		n, err := retryN(func() (int, error) { return unix.Write(fd, content) })
		if err != nil {
			unix.Close(fd)
			return os.NewSyscallError("write", err)
		}
		content = content[n:]
	}
	if err := unix.Close(fd); err != nil {
		return os.NewSyscallError("close", err)
	}
	return nil
}

// StatFD returns the mode (file type and permission bits) and device of
// the file fd refers to; fd may be an O_PATH fd.
func StatFD(fd int) (mode uint32, dev uint64, err error) {
	var st unix.Stat_t
	if err := retry(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return 0, 0, os.NewSyscallError("fstat", err)
	}
	return st.Mode, st.Dev, nil
}

// Fchdir changes the working directory to the directory fd refers to.
func Fchdir(fd int) error {
	if err := retry(func() error { return unix.Fchdir(fd) }); err != nil {
		return os.NewSyscallError("fchdir", err)
	}
	return nil
}

// PivotRoot is pivot_root(2).
func PivotRoot(newRoot, putOld string) error {
	if err := retry(func() error { return unix.PivotRoot(newRoot, putOld) }); err != nil {
		return os.NewSyscallError("pivot_root", err)
	}
	return nil
}

// UnmountDetach is umount2(path, MNT_DETACH): path's mount and everything
// below it are detached now and freed when no longer busy.
func UnmountDetach(path string) error {
	if err := retry(func() error { return unix.Unmount(path, unix.MNT_DETACH) }); err != nil {
		return os.NewSyscallError("umount2(MNT_DETACH)", err)
	}
	return nil
}

// Umask sets the process's file mode creation mask and returns the old one.
func Umask(mask int) int { return unix.Umask(mask) }

// Reading the host for a mount plan. vfs.NewPlan runs on the start path of
// every sandbox and reads a dozen small host files; os.Open would register
// each with the runtime's poller (four more system calls per file, and the
// poller's set-up in a fresh process), so these are plain system calls.
// Failures are *os.PathError, as from package os.

// FileStat is the part of a stat(2) result that mount planning uses.
type FileStat struct {
	Mode uint32 // file type (ModeTypeMask bits) and permission bits
	Size int64
}

// Lstat is fstatat(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW).
func Lstat(path string) (FileStat, error) {
	var st unix.Stat_t
	if err := retry(func() error { return unix.Fstatat(unix.AT_FDCWD, path, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return FileStat{}, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return FileStat{Mode: st.Mode, Size: st.Size}, nil
}

// OpenReadNoFollow opens path read-only with O_CLOEXEC|O_NOFOLLOW|O_NOCTTY:
// a symbolic link at its end fails with ELOOP.
func OpenReadNoFollow(path string) (int, error) {
	fd, err := retryN(func() (int, error) {
		return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NOCTTY, 0)
	})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
}

// ReadFD is read(2) on fd; 0 bytes and no error mean end of file.
func ReadFD(fd int, buf []byte) (int, error) {
	n, err := retryN(func() (int, error) { return unix.Read(fd, buf) })
	if err != nil {
		return 0, os.NewSyscallError("read", err)
	}
	return n, nil
}

// Readlink returns the target of symbolic link path; anything else fails
// with EINVAL.
func Readlink(path string) (string, error) {
	var small [256]byte
	buf := small[:]
	for {
		n, err := retryN(func() (int, error) { return unix.Readlink(path, buf) })
		if err != nil {
			return "", &os.PathError{Op: "readlink", Path: path, Err: err}
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}
