package seccomp

import (
	"crypto/sha256"
	"encoding/binary"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// programFormat names how pinfold turns a profile into BPF (rule
// translation, libseccomp attributes such as the binary tree and the
// bad-architecture action) and how the cache stores it. Change it whenever
// either changes, so that no cached program of the old kind is used.
const programFormat = "pinfold-seccomp-bpf/1 opt=2 badarch=kill_process"

// profileKey is the SHA-256 of everything that decides the compiled program:
// programFormat, the native architecture, the libseccomp version and API
// level, and a canonical encoding of the profile. The encoding writes every
// field the compiler reads, in a fixed order, with every variable-length item
// prefixed by its length and every optional one by a presence marker, so
// two different profiles never encode alike. (Two profiles that differ only
// in rule order get different keys: a cache miss, never a wrong hit.)
func profileKey(p *specs.LinuxSeccomp, env libEnv) [sha256.Size]byte {
	k := keyWriter{buf: make([]byte, 0, 16<<10)}
	k.str(programFormat)
	k.str(env.arch)
	k.u64(uint64(env.major))
	k.u64(uint64(env.minor))
	k.u64(uint64(env.micro))
	k.u64(uint64(env.api))

	k.str(string(p.DefaultAction))
	k.optUint(p.DefaultErrnoRet)
	k.u64(uint64(len(p.Architectures)))
	for _, a := range p.Architectures {
		k.str(string(a))
	}
	k.u64(uint64(len(p.Flags)))
	for _, f := range p.Flags {
		k.str(string(f))
	}
	k.str(p.ListenerPath)
	k.str(p.ListenerMetadata)
	k.u64(uint64(len(p.Syscalls)))
	for _, s := range p.Syscalls {
		k.u64(uint64(len(s.Names)))
		for _, n := range s.Names {
			k.str(n)
		}
		k.str(string(s.Action))
		k.optUint(s.ErrnoRet)
		k.u64(uint64(len(s.Args)))
		for _, a := range s.Args {
			k.u64(uint64(a.Index))
			k.u64(a.Value)
			k.u64(a.ValueTwo)
			k.str(string(a.Op))
		}
	}
	return sha256.Sum256(k.buf)
}

// keyWriter builds the canonical encoding in memory (hashing it in one go
// is several times faster than feeding a hash field by field).
type keyWriter struct{ buf []byte }

func (k *keyWriter) u64(v uint64) { k.buf = binary.LittleEndian.AppendUint64(k.buf, v) }

func (k *keyWriter) str(s string) {
	k.u64(uint64(len(s)))
	k.buf = append(k.buf, s...)
}

func (k *keyWriter) optUint(v *uint) {
	if v == nil {
		k.u64(0)
		return
	}
	k.u64(1)
	k.u64(uint64(*v))
}
