package policy

import (
	"io/fs"
	"os"
	"time"
)

// systemDirs are bound read-only into the default policy when the host has them.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// Default returns the built-in default policy, resolved for this host: its
// read-only binds are those of /usr, /bin, /sbin, /lib, /lib32, /lib64 and
// /libx32 that exist here. A symlink counts as present when its target exists
// (the vfs package recreates merged-/usr symlinks such as /bin -> usr/bin).
//
// Parse starts from Default: a field absent from a file keeps the default.
func Default() *Policy {
	var ro []Bind
	for _, d := range systemDirs {
		fi, err := os.Lstat(d)
		if err != nil {
			continue
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			if _, err := os.Stat(d); err != nil {
				continue // dangling: nothing to bind
			}
		}
		ro = append(ro, Bind{Source: d, Destination: d})
	}
	return &Policy{
		APIVersion: APIVersion,
		Kind:       Kind,
		Metadata:   Metadata{Name: "default"},
		Spec: Spec{
			Namespaces: Namespaces{UTS: true, IPC: true, Net: true, Cgroup: true},
			Hostname:   "sandbox",
			User:       User{UID: 65534, GID: 65534},
			Env:        map[string]string{"LANG": "C.UTF-8"},
			Filesystem: Filesystem{
				ReadOnly: ro,
				Tmpfs:    map[string]Size{"/tmp": 64 * MiB, "/dev/shm": 64 * MiB},
				Workdir:  "/tmp",
				Cgroupfs: true,
			},
			Resources: Resources{
				Memory:    512 * MiB,
				CPU:       1,
				CPUPeriod: 100 * time.Millisecond,
				Pids:      256,
			},
			Limits: Limits{
				StopTimeout: 10 * time.Second,
				OpenFiles:   1024,
			},
			Seccomp: Seccomp{Profile: ProfileDefault},
			Network: NetworkNone,
		},
	}
}
