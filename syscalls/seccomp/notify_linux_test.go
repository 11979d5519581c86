package seccomp

import (
	"reflect"
	"slices"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var userNotif = verdict{retUserNotif, 0}

func TestWithNotifyDecisions(t *testing.T) {
	docker, err := LoadFile(dockerProfile)
	if err != nil {
		t.Fatal(err)
	}
	bases := []struct {
		name string
		p    *specs.LinuxSeccomp
		// what the base says about a syscall the notify rules leave alone
		mount verdict
	}{
		{"default", Default(), errno(syscall.EPERM)},
		{"docker", docker, errno(syscall.EPERM)},
		{"none (allow-all)", nil, allow},
	}
	for _, b := range bases {
		t.Run(b.name, func(t *testing.T) {
			var before []byte
			if b.p != nil {
				before = mustCompile(t, b.p).Insns
			}
			p := WithNotify(b.p, "mq_open", "mq_unlink")
			prog := mustCompile(t, p)
			if !prog.NeedsListener() {
				t.Errorf("Flags = %#x: no FilterFlagNewListener", prog.Flags)
			}
			if prog.Flags&FilterFlagWaitKillableRecv == 0 {
				t.Errorf("Flags = %#x: no FilterFlagWaitKillableRecv", prog.Flags)
			}
			for _, name := range []string{"mq_open", "mq_unlink"} {
				if got := decide(t, prog, name); got != userNotif {
					t.Errorf("%s = %v, want USER_NOTIF", name, got)
				}
			}
			for _, name := range []string{"read", "write", "mq_timedsend", "mq_timedreceive", "mq_getsetattr", "openat", "sendmsg", "execve"} {
				if got := decide(t, prog, name); got != allow {
					t.Errorf("%s = %v, want ALLOW", name, got)
				}
			}
			if got := decide(t, prog, "mount"); got != b.mount {
				t.Errorf("mount = %v, want %v", got, b.mount)
			}
			if b.name == "docker" {
				// Docker's profile adds i386: its mq_open (277) is
				// notified too, with the foreign architecture, which
				// the handler must refuse rather than decode.
				if got := decideNr(t, prog, auditArchI386, 277); got != userNotif {
					t.Errorf("i386 mq_open = %v, want USER_NOTIF", got)
				}
			}
			if b.p != nil {
				// The base profile is untouched and still allows mq_open.
				if got := decide(t, &Program{Insns: before}, "mq_open"); got != allow {
					t.Errorf("base mq_open = %v, want ALLOW", got)
				}
			}
		})
	}
}

func TestWithNotifyProfile(t *testing.T) {
	base := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno, DefaultErrnoRet: u(38),
		Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "mq_open", "write"}, Action: specs.ActAllow},
			{Names: []string{"mq_unlink"}, Action: specs.ActErrno, ErrnoRet: u(1)},
			{Names: []string{"mq_open"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 1, Op: specs.OpEqualTo}}},
		},
	}
	orig := cloneProfile(base)
	got := WithNotify(base, "mq_open", "mq_unlink")
	want := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno, DefaultErrnoRet: u(38),
		Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, flagWaitKillableRecv},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write"}, Action: specs.ActAllow},
			{Names: []string{"mq_open", "mq_unlink"}, Action: specs.ActNotify},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("WithNotify =\n%+v\nwant\n%+v", got, want)
	}
	if !reflect.DeepEqual(base, orig) {
		t.Errorf("WithNotify modified its input:\n%+v", base)
	}
	got.Syscalls[0].Names[0] = "changed"
	*got.DefaultErrnoRet = 1
	if base.Syscalls[0].Names[0] != "read" || *base.DefaultErrnoRet != 38 {
		t.Error("the result shares memory with the input")
	}
	if err := Validate(got); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// Applying it twice changes nothing more.
	if again := WithNotify(want, "mq_open", "mq_unlink"); !reflect.DeepEqual(again, want) {
		t.Errorf("WithNotify twice =\n%+v\nwant\n%+v", again, want)
	}
	if p := WithNotify(nil); p.DefaultAction != specs.ActAllow || len(p.Syscalls) != 0 || slices.Contains(p.Flags, flagWaitKillableRecv) {
		t.Errorf("WithNotify(nil) with no names = %+v", p)
	}
}

// TestWithNotifyCacheKey checks that the notify rules are part of the cache
// key: a cached program of the base profile is never used for it.
func TestWithNotifyCacheKey(t *testing.T) {
	env, err := environment()
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	withMQ := WithNotify(def, "mq_open", "mq_unlink")
	withOpen := WithNotify(def, "mq_open")
	keys := map[[32]byte]string{}
	for name, p := range map[string]*specs.LinuxSeccomp{"default": def, "mq_open+mq_unlink": withMQ, "mq_open": withOpen} {
		k := profileKey(p, env)
		if prev, ok := keys[k]; ok {
			t.Errorf("%s and %s have the same cache key", name, prev)
		}
		keys[k] = name
	}
	c := NewCache("")
	a, err := c.Program(def)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Program(withMQ)
	if err != nil {
		t.Fatal(err)
	}
	if a.Hash == b.Hash || a.NeedsListener() || !b.NeedsListener() {
		t.Errorf("default %s (listener %v), with notify %s (listener %v)", a.Hash, a.NeedsListener(), b.Hash, b.NeedsListener())
	}
}
