package vfs

import (
	"io/fs"

	"github.com/pinfold/pinfold/syscalls"
)

// Reading the host for NewPlan, which runs on the start path of every
// sandbox. Plain system calls: os.Open would register every file with the
// runtime's poller (four more system calls each, and the poller's set-up
// in a fresh process).

// hostStat is what NewPlan uses of an lstat.
type hostStat struct {
	mode fs.FileMode // type and permission bits
	size int64
}

func hostLstat(path string) (hostStat, error) {
	st, err := syscalls.Lstat(path)
	if err != nil {
		return hostStat{}, err
	}
	return hostStat{mode: fileMode(st.Mode), size: st.Size}, nil
}

// fileMode converts stat's st_mode to an fs.FileMode: the type and the
// permission bits.
func fileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & syscalls.ModeTypeMask {
	case syscalls.ModeRegular:
	case syscalls.ModeDir:
		mode |= fs.ModeDir
	case syscalls.ModeSymlink:
		mode |= fs.ModeSymlink
	case syscalls.ModeCharDev:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	default: // block devices, fifos, sockets: never carried
		mode |= fs.ModeIrregular
	}
	return mode
}

func hostReadlink(path string) (string, error) { return syscalls.Readlink(path) }

// hostFile is a host file open for reading.
type hostFile int

// hostOpen opens regular file path for reading, not through a symbolic
// link at its end.
func hostOpen(path string) (hostFile, error) {
	fd, err := syscalls.OpenReadNoFollow(path)
	return hostFile(fd), err
}

// read reads into b; 0 and no error mean end of file.
func (f hostFile) read(b []byte) (int, error) { return syscalls.ReadFD(int(f), b) }

func (f hostFile) close() { syscalls.Close(int(f)) }
