package cgroup

import (
	"errors"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func p64(v int64) *int64    { return &v }
func pu64(v uint64) *uint64 { return &v }
func pu16(v uint16) *uint16 { return &v }

func TestCheckResources(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *specs.LinuxResources
		want error // nil, ErrInvalid or ErrNotSupported
	}{
		{"nil", nil, nil},
		{"empty", &specs.LinuxResources{}, nil},
		{"all supported", &specs.LinuxResources{
			Memory:  &specs.LinuxMemory{Limit: p64(1 << 30), Swap: p64(2 << 30), Reservation: p64(1 << 20)},
			CPU:     &specs.LinuxCPU{Shares: pu64(1024), Quota: p64(50000), Period: pu64(100000)},
			Pids:    &specs.LinuxPids{Limit: p64(100)},
			BlockIO: &specs.LinuxBlockIO{Weight: pu16(500)},
		}, nil},
		{"unlimited", &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: p64(-1), Swap: p64(-1)},
			CPU:    &specs.LinuxCPU{Quota: p64(-1)},
			Pids:   &specs.LinuxPids{Limit: p64(-1)},
		}, nil},
		{"devices", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}, ErrNotSupported},
		{"kernel memory", &specs.LinuxResources{Memory: &specs.LinuxMemory{Kernel: p64(1)}}, ErrNotSupported},
		{"swappiness", &specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: pu64(0)}}, ErrNotSupported},
		{"cpuset", &specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "0"}}, ErrNotSupported},
		{"realtime", &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: p64(1)}}, ErrNotSupported},
		{"unified map", &specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, ErrNotSupported},
		{"throttle", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{Rate: 1}}}}, ErrNotSupported},
		{"negative limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(-2)}}, ErrInvalid},
		{"swap without limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: p64(1 << 20)}}, ErrInvalid},
		{"swap below limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(2 << 20), Swap: p64(1 << 20)}}, ErrInvalid},
		{"tiny period", &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: pu64(10)}}, ErrInvalid},
		{"tiny quota", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: p64(10)}}, ErrInvalid},
		{"shares", &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: pu64(1)}}, ErrInvalid},
		{"pids", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: p64(-5)}}, ErrInvalid},
		{"weight", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: pu16(5000)}}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkResources(tc.r)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("checkResources = %v, want %v", err, tc.want)
			}
		})
	}
	// All problems are reported at once.
	err := checkResources(&specs.LinuxResources{Network: &specs.LinuxNetwork{}, Pids: &specs.LinuxPids{Limit: p64(-5)}})
	if !errors.Is(err, ErrNotSupported) || !errors.Is(err, ErrInvalid) {
		t.Errorf("two problems gave %v", err)
	}
}

func TestV2Values(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *specs.LinuxResources
		want []fileValue
	}{
		{"nil", nil, nil},
		{"memory and swap", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(64 << 20), Swap: p64(96 << 20)}},
			[]fileValue{{"memory.max", "67108864"}, {"memory.swap.max", "33554432"}}},
		{"no swap", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(64 << 20), Swap: p64(64 << 20)}},
			[]fileValue{{"memory.max", "67108864"}, {"memory.swap.max", "0"}}},
		{"unlimited", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: p64(-1), Swap: p64(-1)}, Pids: &specs.LinuxPids{Limit: p64(0)}},
			[]fileValue{{"memory.max", "max"}, {"memory.swap.max", "max"}, {"pids.max", "max"}}},
		{"reservation", &specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: p64(1 << 20)}},
			[]fileValue{{"memory.low", "1048576"}}},
		{"cpu", &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: pu64(1024), Quota: p64(25000), Period: pu64(50000)}},
			[]fileValue{{"cpu.weight", "100"}, {"cpu.max", "25000 50000"}}},
		{"quota default period", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: p64(150000)}},
			[]fileValue{{"cpu.max", "150000 100000"}}},
		{"period only", &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: pu64(20000)}},
			[]fileValue{{"cpu.max", "max 20000"}}},
		{"pids", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: p64(32)}}, []fileValue{{"pids.max", "32"}}},
		{"io", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: pu16(1000)}}, []fileValue{{"io.weight", "default 10000"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := v2Values(tc.r); !slices.Equal(got, tc.want) {
				t.Errorf("v2Values = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSharesToWeight(t *testing.T) {
	for _, tc := range []struct{ shares, weight uint64 }{
		{2, 1}, {1024, 100}, {262144, 10000}, {1, 1}, {1 << 20, 10000}, {512, 0}, {4096, 0},
	} {
		got := sharesToWeight(tc.shares)
		if tc.weight != 0 && got != tc.weight {
			t.Errorf("sharesToWeight(%d) = %d, want %d", tc.shares, got, tc.weight)
		}
		if got < 1 || got > 10000 {
			t.Errorf("sharesToWeight(%d) = %d, outside 1..10000", tc.shares, got)
		}
	}
	// Monotonic: more shares never means less weight.
	prev := uint64(0)
	for s := uint64(minShares); s <= maxShares; s += 97 {
		w := sharesToWeight(s)
		if w < prev {
			t.Fatalf("sharesToWeight(%d) = %d < %d", s, w, prev)
		}
		prev = w
	}
}

func TestBlkioToIOWeight(t *testing.T) {
	for _, tc := range []struct {
		in   uint16
		want uint64
	}{{10, 1}, {1000, 10000}, {505, 5000}, {1, 1}, {2000, 10000}} {
		if got := blkioToIOWeight(tc.in); got != tc.want {
			t.Errorf("blkioToIOWeight(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
