//go:build !linux

package vfs

import (
	"io"
	"io/fs"
	"os"
)

// Reading the host for NewPlan through package os, where host_linux.go's
// system calls do not exist (unit tests of NewPlan run anywhere).

type hostStat struct {
	mode fs.FileMode
	size int64
}

func hostLstat(path string) (hostStat, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return hostStat{}, err
	}
	return hostStat{mode: fi.Mode(), size: fi.Size()}, nil
}

func hostReadlink(path string) (string, error) { return os.Readlink(path) }

type hostFile struct{ f *os.File }

func hostOpen(path string) (hostFile, error) {
	f, err := os.Open(path)
	return hostFile{f}, err
}

func (f hostFile) read(b []byte) (int, error) {
	n, err := f.f.Read(b)
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (f hostFile) close() { f.f.Close() }
