package initstage

import (
	"errors"
	"reflect"
	"syscall"
	"testing"

	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/vfs"
)

func sampleConfig(t testing.TB) *Config {
	plan, err := vfs.NewPlan(vfs.Spec{Tmpfs: []vfs.Tmpfs{{Path: "/tmp"}}, Hostname: "h", UID: 65534, GID: 65534})
	if err != nil {
		t.Fatal(err)
	}
	return &Config{
		Version: ProtocolVersion,
		Args:    []string{"/bin/sh", "-c", "echo hi"},
		Env:     []string{"PATH=/usr/bin", "LANG=C.UTF-8", "EMPTY="},
		Cwd:     "/tmp", RootDir: "/run/pinfold/rootfs", Plan: plan,
		Hostname: "sandbox", JoinNetNS: true, CgroupNS: true,
		UID: 65534, GID: 65534, AdditionalGIDs: []uint32{5, 6},
		Caps:         []uint{10},
		Rlimits:      []syscalls.Rlimit{{Resource: 7, Soft: 1024, Hard: 1024}},
		NumFDs:       2,
		WaitStart:    true,
		SeccompFlags: 4,
	}
}

func TestConfigRoundTrip(t *testing.T) {
	in := sampleConfig(t)
	b, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out Config
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	ib, _ := in.Plan.MarshalJSON()
	ob, _ := out.Plan.MarshalJSON()
	if string(ib) != string(ob) {
		t.Errorf("plan changed in transit:\n%s\n%s", ib, ob)
	}
	in.Plan, out.Plan = nil, nil
	if !reflect.DeepEqual(in, &out) {
		t.Errorf("config changed in transit:\n%+v\n%+v", in, &out)
	}
}

func TestConfigRejects(t *testing.T) {
	good, err := sampleConfig(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	for n := 0; n < len(good); n++ {
		if err := c.UnmarshalBinary(good[:n]); err == nil {
			t.Fatalf("a config cut to %d of %d bytes was accepted", n, len(good))
		}
	}
	if err := c.UnmarshalBinary(append(append([]byte{}, good...), 0)); err == nil {
		t.Error("trailing bytes were accepted")
	}
	old := append([]byte{}, good...)
	old[0]++ // another protocol version
	if err := c.UnmarshalBinary(old); err == nil {
		t.Error("a config of another protocol version was accepted")
	}
}

func TestGoMessage(t *testing.T) {
	cfg := sampleConfig(t)
	bpf := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	msg, err := encodeGo(cfg, bpf)
	if err != nil {
		t.Fatal(err)
	}
	got, gotBPF, err := decodeGo(msg)
	if err != nil {
		t.Fatal(err)
	}
	if string(gotBPF) != string(bpf) || got.Cwd != cfg.Cwd {
		t.Errorf("go message changed in transit")
	}
	if _, _, err := decodeGo(msg[:4]); err == nil {
		t.Error("a truncated go message was accepted")
	}

	// A listener is asked for by the program's flags, and only with a
	// program.
	cfg.SeccompFlags = syscalls.SeccompFilterFlagNewListener | 0x20
	msg, err = encodeGo(cfg, bpf)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := decodeGo(msg); err != nil || !got.WantsListener() {
		t.Errorf("listener config decoded as %+v, %v", got, err)
	}
	if _, err := encodeGo(cfg, nil); err == nil {
		t.Error("seccomp flags without a program were encoded")
	}
	if _, _, err := decodeGo(msg[:len(msg)-len(bpf)]); err == nil {
		t.Error("a go message with seccomp flags and no program was accepted")
	}
	cfg.SeccompFlags = 0
	if (&Config{SeccompFlags: 4}).WantsListener() || cfg.WantsListener() {
		t.Error("WantsListener without FLAG_NEW_LISTENER")
	}
}

// FuzzGoMessage checks the init stage's decoding of the whole go message.
func FuzzGoMessage(f *testing.F) {
	cfg := sampleConfig(f)
	for _, bpf := range [][]byte{nil, {1, 2, 3, 4, 5, 6, 7, 8}} {
		cfg.SeccompFlags = 0
		if bpf != nil {
			cfg.SeccompFlags = syscalls.SeccompFilterFlagNewListener
		}
		msg, err := encodeGo(cfg, bpf)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msg)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		cfg, bpf, err := decodeGo(msg)
		if err != nil {
			return
		}
		if cfg.SeccompFlags != 0 && len(bpf) == 0 {
			t.Fatalf("accepted seccomp flags %#x without a program", cfg.SeccompFlags)
		}
		again, err := encodeGo(cfg, bpf)
		if err != nil {
			t.Fatalf("accepted go message does not encode: %v", err)
		}
		if _, _, err := decodeGo(again); err != nil {
			t.Fatalf("re-encoded go message does not decode: %v", err)
		}
	})
}

func TestErrorMessage(t *testing.T) {
	e := decodeError(encodeError(StepSetuid, &stepErrorForTest{}))
	if e.Step != StepSetuid || !errors.Is(e, syscall.EPERM) {
		t.Errorf("decoded %#v", e)
	}
	if got := e.Error(); got != "sandbox init: setresuid: operation not permitted" {
		t.Errorf("Error() = %q", got)
	}
	if e := decodeError([]byte("E\x01\x00\x00\x00garbage")); e.Step != "protocol" {
		t.Errorf("malformed error message decoded as %#v", e)
	}
}

type stepErrorForTest struct{}

func (*stepErrorForTest) Error() string { return "x" }
func (*stepErrorForTest) Unwrap() error { return syscall.EPERM }

func TestPhases(t *testing.T) {
	var tr tracer
	tr.start()
	tr.mark("a")
	tr.mark("b c")
	ph := parsePhases(tr.ready())
	if len(ph) != 2 || ph[0].Name != "a" || ph[1].Name != "b c" {
		t.Errorf("phases = %+v", ph)
	}
	if ph := parsePhases([]byte("Rx=;=5;y=-1;z=7;")); len(ph) != 2 {
		t.Errorf("malformed phases parsed as %+v", ph)
	}
}

// FuzzConfig checks that hostile bytes on the sync channel never crash the
// decoder, and that what it accepts encodes back to the same bytes.
func FuzzConfig(f *testing.F) {
	good, err := sampleConfig(f).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		if err := c.UnmarshalBinary(b); err != nil {
			return
		}
		again, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		var d Config
		if err := d.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoded config does not decode: %v", err)
		}
	})
}
