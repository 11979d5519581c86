package policy

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func ptr[T any](v T) *T { return &v }

func TestResourcesOCI(t *testing.T) {
	tests := []struct {
		name string
		in   Resources
		want *specs.LinuxResources
	}{
		{"default", Default().Spec.Resources, &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr[int64](512 << 20), Swap: ptr[int64](512 << 20)},
			CPU:    &specs.LinuxCPU{Quota: ptr[int64](100000), Period: ptr[uint64](100000)},
			Pids:   &specs.LinuxPids{Limit: ptr[int64](256)},
		}},
		{"everything", Resources{
			Memory: GiB, MemorySwap: 256 * MiB, CPU: 1.5, CPUPeriod: 50 * time.Millisecond,
			CPUShares: 2048, Pids: 10, IOWeight: 500,
		}, &specs.LinuxResources{
			Memory:  &specs.LinuxMemory{Limit: ptr[int64](1 << 30), Swap: ptr[int64](1<<30 + 256<<20)},
			CPU:     &specs.LinuxCPU{Quota: ptr[int64](75000), Period: ptr[uint64](50000), Shares: ptr[uint64](2048)},
			Pids:    &specs.LinuxPids{Limit: ptr[int64](10)},
			BlockIO: &specs.LinuxBlockIO{Weight: ptr[uint16](500)},
		}},
		{"no cpu limit", Resources{Memory: 64 * MiB, CPU: 0, CPUPeriod: 100 * time.Millisecond, Pids: 1}, &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr[int64](64 << 20), Swap: ptr[int64](64 << 20)},
			Pids:   &specs.LinuxPids{Limit: ptr[int64](1)},
		}},
		{"shares only", Resources{Memory: 64 * MiB, CPUPeriod: 100 * time.Millisecond, CPUShares: 2, Pids: 1}, &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr[int64](64 << 20), Swap: ptr[int64](64 << 20)},
			CPU:    &specs.LinuxCPU{Shares: ptr[uint64](2)},
			Pids:   &specs.LinuxPids{Limit: ptr[int64](1)},
		}},
		{"quota rounds to the microsecond", Resources{Memory: 64 * MiB, CPU: 1.0 / 3, CPUPeriod: 100 * time.Millisecond, Pids: 1}, &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: ptr[int64](64 << 20), Swap: ptr[int64](64 << 20)},
			CPU:    &specs.LinuxCPU{Quota: ptr[int64](33333), Period: ptr[uint64](100000)},
			Pids:   &specs.LinuxPids{Limit: ptr[int64](1)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.OCI(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("OCI() =\n%s\nwant\n%s", dumpResources(got), dumpResources(tt.want))
			}
		})
	}
}

func dumpResources(r *specs.LinuxResources) string {
	b, err := json.Marshal(r)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestSeccompResolve(t *testing.T) {
	base := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: ptr[uint](1),
		Architectures:   []specs.Arch{specs.ArchX86_64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "ptrace"}, Action: specs.ActAllow},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0, Op: specs.OpEqualTo}}},
			{Names: []string{"ptrace"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
		},
	}
	baseCopy := cloneSeccomp(base)
	kill := specs.LinuxSyscall{Names: []string{"ptrace", "mount"}, Action: specs.ActKillProcess}

	tests := []struct {
		name string
		in   Seccomp
		want *specs.LinuxSeccomp
	}{
		{"default profile as is", Seccomp{Profile: ProfileDefault}, base},
		{"rules override the profile", Seccomp{Profile: ProfileDefault, Syscalls: []specs.LinuxSyscall{kill}}, &specs.LinuxSeccomp{
			DefaultAction: specs.ActErrno, DefaultErrnoRet: ptr[uint](1), Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read", "write"}, Action: specs.ActAllow},
				base.Syscalls[1],
				kill,
			},
		}},
		{"no profile", Seccomp{Profile: ProfileNone, DefaultAction: specs.ActKillProcess, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActAllow},
		}}, &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActAllow},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Resolve(base)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Resolve =\n%+v\nwant\n%+v", got, tt.want)
			}
			if !reflect.DeepEqual(base, baseCopy) {
				t.Fatalf("Resolve modified the default profile: %+v", base)
			}
			got.Syscalls[0].Names[0] = "changed"
			if base.Syscalls[0].Names[0] != "read" || tt.in.Syscalls != nil && tt.in.Syscalls[0].Names[0] == "changed" {
				t.Fatal("the resolved profile shares memory with its inputs")
			}
		})
	}
}

func TestSeccompResolveFile(t *testing.T) {
	path := writeProfile(t, `{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read", "getpid"], "action": "SCMP_ACT_ALLOW"}]}`)
	got, err := Seccomp{Profile: path, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActErrno}}}.Resolve(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"read"}, Action: specs.ActAllow},
		{Names: []string{"getpid"}, Action: specs.ActErrno},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Resolve =\n%+v\nwant\n%+v", got, want)
	}
}

func TestSeccompResolveErrors(t *testing.T) {
	if _, err := (Seccomp{Profile: ProfileDefault}).Resolve(nil); !errors.Is(err, ErrNoSeccompBase) {
		t.Errorf("Resolve(nil) with the default profile: %v, want ErrNoSeccompBase", err)
	}
	if _, err := (Seccomp{Profile: ProfileNone}).Resolve(nil); !errors.Is(err, ErrMissingField) {
		t.Errorf("Resolve with profile none and no default action: %v, want ErrMissingField", err)
	}
	if _, err := (Seccomp{Profile: "/nonexistent.json"}).Resolve(nil); err == nil {
		t.Error("Resolve of a missing profile file succeeded")
	}
}

// TestSpecSeccompProfile checks the wiring to the seccomp package's default
// profile: the capabilities a policy adds select the default's variant.
func TestSpecSeccompProfile(t *testing.T) {
	p := Default()
	p.Spec.Capabilities.Add = []string{"CAP_SYS_PTRACE"}
	got, err := p.Spec.SeccompProfile()
	if err != nil {
		t.Fatal(err)
	}
	if got.DefaultAction == "" || len(got.Syscalls) == 0 {
		t.Fatalf("the resolved default profile is empty: %+v", got)
	}
	allowed := func(prof *specs.LinuxSeccomp, name string) bool {
		for _, r := range prof.Syscalls {
			if r.Action == specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, name) {
				return true
			}
		}
		return false
	}
	plain, err := Default().Spec.SeccompProfile()
	if err != nil {
		t.Fatal(err)
	}
	if allowed(plain, "ptrace") || !allowed(got, "ptrace") {
		t.Errorf("ptrace allowed without CAP_SYS_PTRACE: %v, with it: %v; want false, true", allowed(plain, "ptrace"), allowed(got, "ptrace"))
	}
}
