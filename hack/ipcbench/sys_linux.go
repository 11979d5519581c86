package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// The few system calls this benchmark needs that package syscalls has no
// wrapper for (it has no use for them): CPU affinity, getcpu, mmap and a
// plain mq_open of an existing queue. They use the standard library's
// syscall package, not golang.org/x/sys/unix, which only package syscalls
// may import.

// cpuMask is a cpu_set_t big enough for this benchmark's CPUs.
type cpuMask [16]uint64

func (m *cpuMask) set(cpu int) { m[cpu/64] |= 1 << (uint(cpu) % 64) }

// allCPUs returns the mask of every CPU whose number is below n.
func allCPUs(n int) cpuMask {
	var m cpuMask
	for c := range n {
		m.set(c)
	}
	return m
}

// pinProcess sets the CPU affinity of every thread of this process: to cpu,
// or to every CPU when cpu < 0. Threads the Go runtime starts later inherit
// the mask of the thread that starts them, which is set by then. It walks
// /proc/self/task until a pass finds no thread it has not set (a thread
// may be starting during the walk).
func pinProcess(cpu int) error {
	m := allCPUs(onlineCPUs())
	if cpu >= 0 {
		m = cpuMask{}
		m.set(cpu)
	}
	done := map[int]bool{}
	for pass := 0; pass < 10; pass++ {
		ents, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return err
		}
		fresh := 0
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil || done[tid] {
				continue
			}
			_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(m), uintptr(unsafe.Pointer(&m)))
			if errno == syscall.ESRCH {
				continue // the thread exited meanwhile
			}
			if errno != 0 {
				return os.NewSyscallError("sched_setaffinity", errno)
			}
			done[tid] = true
			fresh++
		}
		if fresh == 0 {
			return nil
		}
	}
	return errors.New("sched_setaffinity: threads kept appearing")
}

// onlineCPUs is the number of CPUs the kernel has online (0..n-1 assumed,
// as on this benchmark's machines).
func onlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 1
	}
	// "0-1", "0", "0-3,5": the highest number + 1.
	hi := 0
	num := 0
	for _, c := range string(b) {
		if c >= '0' && c <= '9' {
			num = num*10 + int(c-'0')
			continue
		}
		hi = max(hi, num)
		num = 0
	}
	return max(hi, num) + 1
}

// getcpu returns the CPU the calling thread last ran on: field 39 of
// /proc/thread-self/stat (getcpu(2) has no name in package syscall).
func getcpu() int {
	b, err := os.ReadFile("/proc/thread-self/stat")
	if err != nil {
		return -1
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	const field = 39 - 3 // fields counted after the name: state is 3
	if len(f) <= field {
		return -1
	}
	cpu, err := strconv.Atoi(f[field])
	if err != nil {
		return -1
	}
	return cpu
}

// mapShared maps size bytes of f with MAP_SHARED, read-write or read-only.
func mapShared(f *os.File, size int, write bool) ([]byte, error) {
	prot := syscall.PROT_READ
	if write {
		prot |= syscall.PROT_WRITE
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, size, prot, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap %s: %w", f.Name(), os.NewSyscallError("mmap", err))
	}
	return b, nil
}

// mqOpen is mq_open(name, oflag) of an existing queue (raw-syscall name: no
// leading '/'), as an app calls it.
func mqOpen(name string, oflag int) (int, error) {
	p, err := syscall.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	for {
		r, _, errno := syscall.Syscall6(syscall.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(oflag|syscall.O_CLOEXEC), 0, 0, 0, 0)
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return -1, os.NewSyscallError("mq_open", errno)
		}
		return int(r), nil
	}
}
