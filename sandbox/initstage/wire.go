package initstage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/vfs"
)

// The config travels in a compact binary form rather than JSON: decoding it
// is on the critical path of every start, and encoding/json in a fresh
// process spends ~0.4 ms building its reflection caches before it decodes
// anything. Fields are written in a fixed order (the protocol version says
// which); every integer is little-endian; a string or byte slice is a u32
// length and its bytes; a list is a u32 count and its items.
//
//	u32 version
//	list<string> args | list<string> env | string cwd | string rootDir
//	bytes plan (vfs.Plan text form; empty = no plan)
//	string hostname | u8 joinNetNS | u8 cgroupNS
//	u32 uid | u32 gid | list<u32> additionalGids | list<u32> caps
//	list<{u32 resource, u64 soft, u64 hard}> rlimits
//	u32 numFds | u8 waitStart | u32 seccompFlags
//
// seccompFlags with SECCOMP_FILTER_FLAG_NEW_LISTENER is how the supervisor
// asks for the seccomp listener (Config.WantsListener); flags without a
// program after the config are refused (checkProgram).

var errMalformed = errors.New("malformed init config")

type encoder struct{ b []byte }

func (e *encoder) u8(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *encoder) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *encoder) bytes(v []byte) {
	e.u32(uint32(len(v)))
	e.b = append(e.b, v...)
}
func (e *encoder) str(v string) {
	e.u32(uint32(len(v)))
	e.b = append(e.b, v...)
}
func (e *encoder) strs(v []string) {
	e.u32(uint32(len(v)))
	for _, s := range v {
		e.str(s)
	}
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errMalformed
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
func (d *decoder) u8() bool {
	v := d.take(1)
	return v != nil && v[0] != 0
}
func (d *decoder) u32() uint32 {
	v := d.take(4)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(v)
}
func (d *decoder) u64() uint64 {
	v := d.take(8)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(v)
}
func (d *decoder) bytes() []byte { return d.take(uint64(d.u32())) }
func (d *decoder) str() string   { return string(d.bytes()) }

// count reads a list length and checks that at least min bytes per item
// remain, so a hostile length cannot make the decoder allocate.
func (d *decoder) count(min int) int {
	n := d.u32()
	if d.err == nil && uint64(n)*uint64(min) > uint64(len(d.b)) {
		d.err = errMalformed
	}
	if d.err != nil {
		return 0
	}
	return int(n)
}
func (d *decoder) strs() []string {
	n := d.count(4)
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = d.str()
	}
	return out
}
func (d *decoder) u32s() []uint32 {
	n := d.count(4)
	if n == 0 {
		return nil
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = d.u32()
	}
	return out
}

// MarshalBinary encodes the config in the wire form above.
func (c *Config) MarshalBinary() ([]byte, error) {
	e := encoder{b: make([]byte, 0, 4096)}
	e.u32(uint32(c.Version))
	e.strs(c.Args)
	e.strs(c.Env)
	e.str(c.Cwd)
	e.str(c.RootDir)
	if c.Plan != nil {
		plan, err := c.Plan.MarshalJSON()
		if err != nil {
			return nil, err
		}
		e.bytes(plan)
	} else {
		e.bytes(nil)
	}
	e.str(c.Hostname)
	e.u8(c.JoinNetNS)
	e.u8(c.CgroupNS)
	e.u32(c.UID)
	e.u32(c.GID)
	e.u32(uint32(len(c.AdditionalGIDs)))
	for _, g := range c.AdditionalGIDs {
		e.u32(g)
	}
	e.u32(uint32(len(c.Caps)))
	for _, cp := range c.Caps {
		e.u32(uint32(cp))
	}
	e.u32(uint32(len(c.Rlimits)))
	for _, r := range c.Rlimits {
		e.u32(uint32(r.Resource))
		e.u64(r.Soft)
		e.u64(r.Hard)
	}
	e.u32(uint32(c.NumFDs))
	e.u8(c.WaitStart)
	e.u32(uint32(c.SeccompFlags))
	return e.b, nil
}

// UnmarshalBinary decodes the wire form. It never panics on hostile input
// and never allocates more than the input could describe.
func (c *Config) UnmarshalBinary(b []byte) error {
	d := decoder{b: b}
	var out Config
	out.Version = int(d.u32())
	if d.err == nil && out.Version != ProtocolVersion {
		return fmt.Errorf("init stage speaks protocol %d, supervisor sent %d: pinfold and pinfold-init are from different builds", ProtocolVersion, out.Version)
	}
	out.Args = d.strs()
	out.Env = d.strs()
	out.Cwd = d.str()
	out.RootDir = d.str()
	if plan := d.bytes(); len(plan) > 0 && d.err == nil {
		out.Plan = new(vfs.Plan)
		if err := out.Plan.UnmarshalJSON(plan); err != nil {
			return fmt.Errorf("%w: %w", errMalformed, err)
		}
	}
	out.Hostname = d.str()
	out.JoinNetNS = d.u8()
	out.CgroupNS = d.u8()
	out.UID = d.u32()
	out.GID = d.u32()
	out.AdditionalGIDs = d.u32s()
	for _, cp := range d.u32s() {
		out.Caps = append(out.Caps, uint(cp))
	}
	n := d.count(20)
	for i := 0; i < n; i++ {
		out.Rlimits = append(out.Rlimits, syscalls.Rlimit{Resource: int(d.u32()), Soft: d.u64(), Hard: d.u64()})
	}
	out.NumFDs = int(d.u32())
	out.WaitStart = d.u8()
	out.SeccompFlags = uint(d.u32())
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errMalformed, len(d.b))
	}
	if len(out.Args) == 0 || out.Args[0] == "" {
		return fmt.Errorf("%w: no command", errMalformed)
	}
	*c = out
	return nil
}
