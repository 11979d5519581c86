package cgroup

import (
	"fmt"
	"os"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// benchManager is the host's Manager; on hybrid hosts
// PINFOLD_CGROUP_BENCH_LEGACY=1 selects the legacy view (v1 hierarchies only).
func benchManager(b *testing.B) *Manager {
	b.Helper()
	ms := managers(b)
	if os.Getenv("PINFOLD_CGROUP_BENCH_LEGACY") != "" {
		if len(ms) < 2 {
			b.Skip("PINFOLD_CGROUP_BENCH_LEGACY needs a hybrid host")
		}
		return ms[1]
	}
	return ms[0]
}

// benchResources are typical app limits: memory (+swap), cpu quota, pids.
func benchResources() *specs.LinuxResources {
	return &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr[int64](256 << 20), Swap: ptr[int64](256 << 20)},
		CPU:    &specs.LinuxCPU{Quota: ptr[int64](50000), Period: ptr[uint64](100000)},
		Pids:   &specs.LinuxPids{Limit: ptr[int64](256)},
	}
}

// BenchmarkNewDelete is the cgroup cost of an app that never runs: create
// every directory with limits, remove it again.
func BenchmarkNewDelete(b *testing.B) {
	m := benchManager(b)
	res := benchResources()
	i := 0
	for b.Loop() {
		cg, err := m.New(Config{Name: fmt.Sprintf("%s/bench/app%d", testPrefix, i), Resources: res})
		if err != nil {
			b.Fatal(err)
		}
		if err := cg.Delete(); err != nil {
			b.Fatal(err)
		}
		cg.Close()
		i++
	}
}

// BenchmarkNewAddProcDelete is the per-app cgroup cost of a start and a stop:
// New with limits, AddProc of a running process (on hybrid hosts the cgroup2
// directory and every v1 hierarchy), Delete. Moving the process back out
// before Delete is not timed.
func BenchmarkNewAddProcDelete(b *testing.B) {
	m := benchManager(b)
	hold, err := m.New(Config{Name: testPrefix + "/bench/hold"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := hold.Delete(); err != nil {
			b.Error(err)
		}
		hold.Close()
	})
	h := startHelper(b, hold, "sleep")
	pid := h.cmd.Process.Pid
	res := benchResources()
	i := 0
	for b.Loop() {
		cg, err := m.New(Config{Name: fmt.Sprintf("%s/bench/app%d", testPrefix, i), Resources: res})
		if err != nil {
			b.Fatal(err)
		}
		if err := cg.AddProc(pid); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := hold.AddProc(pid); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := cg.Delete(); err != nil {
			b.Fatal(err)
		}
		cg.Close()
		i++
	}
}

// BenchmarkAddProc moves a running process between two app cgroups (on
// hybrid hosts: the cgroup2 directory and every v1 hierarchy).
func BenchmarkAddProc(b *testing.B) {
	m := benchManager(b)
	var cgs [2]Cgroup
	for i := range cgs {
		cg, err := m.New(Config{Name: fmt.Sprintf("%s/bench/move%d", testPrefix, i)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := cg.Delete(); err != nil {
				b.Error(err)
			}
			cg.Close()
		})
		cgs[i] = cg
	}
	h := startHelper(b, cgs[0], "sleep")
	pid := h.cmd.Process.Pid
	i := 0
	for b.Loop() {
		i++
		if err := cgs[i%2].AddProc(pid); err != nil {
			b.Fatal(err)
		}
	}
}
