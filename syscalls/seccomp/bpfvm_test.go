package seccomp

import (
	"encoding/binary"
	"fmt"
)

// A classic BPF interpreter for seccomp programs, used to check the
// decisions of compiled programs without loading them into the kernel.

// seccompData is struct seccomp_data.
type seccompData struct {
	nr   int32
	arch uint32
	ip   uint64
	args [6]uint64
}

func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.NativeEndian.PutUint32(b[0:], uint32(d.nr))
	binary.NativeEndian.PutUint32(b[4:], d.arch)
	binary.NativeEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.NativeEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// Seccomp return values (linux/seccomp.h).
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retUserNotif   = 0x7fc00000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
	retActionFull  = 0xffff0000
	retData        = 0x0000ffff
)

const (
	auditArchX86_64 = 0xc000003e
	auditArchI386   = 0x40000003
)

// runBPF runs prog on d and returns the filter's verdict and the number of
// instructions executed.
func runBPF(prog []byte, d seccompData) (uint32, int, error) {
	data := d.bytes()
	n := len(prog) / bpfInsnSize
	var a, x uint32
	var mem [16]uint32
	steps := 0
	for pc := 0; pc < n; pc++ {
		steps++
		in := decodeInsn(prog[pc*bpfInsnSize:])
		class := in.code & 0x07
		switch class {
		case 0x00, 0x01: // LD, LDX
			var v uint32
			switch mode := in.code & 0xe0; mode {
			case 0x00: // IMM
				v = in.k
			case 0x20: // ABS
				if in.code&0x18 != 0x00 || in.k%4 != 0 || in.k+4 > 64 {
					return 0, steps, fmt.Errorf("pc %d: bad load %#x k=%d", pc, in.code, in.k)
				}
				v = binary.NativeEndian.Uint32(data[in.k:])
			case 0x60: // MEM
				v = mem[in.k%16]
			case 0x80: // LEN
				v = 64
			default:
				return 0, steps, fmt.Errorf("pc %d: unsupported load mode %#x", pc, mode)
			}
			if class == 0x00 {
				a = v
			} else {
				x = v
			}
		case 0x02: // ST
			mem[in.k%16] = a
		case 0x03: // STX
			mem[in.k%16] = x
		case 0x04: // ALU
			src := in.k
			if in.code&0x08 != 0 {
				src = x
			}
			switch in.code & 0xf0 {
			case 0x00:
				a += src
			case 0x10:
				a -= src
			case 0x20:
				a *= src
			case 0x30:
				if src == 0 {
					return 0, steps, fmt.Errorf("pc %d: division by zero", pc)
				}
				a /= src
			case 0x40:
				a |= src
			case 0x50:
				a &= src
			case 0x60:
				a <<= src
			case 0x70:
				a >>= src
			case 0x80:
				a = -a
			case 0x90:
				a %= src
			case 0xa0:
				a ^= src
			default:
				return 0, steps, fmt.Errorf("pc %d: unsupported alu %#x", pc, in.code)
			}
		case 0x05: // JMP
			src := in.k
			if in.code&0x08 != 0 {
				src = x
			}
			var cond bool
			switch in.code & 0xf0 {
			case 0x00:
				pc += int(in.k)
				continue
			case 0x10:
				cond = a == src
			case 0x20:
				cond = a > src
			case 0x30:
				cond = a >= src
			case 0x40:
				cond = a&src != 0
			default:
				return 0, steps, fmt.Errorf("pc %d: unsupported jump %#x", pc, in.code)
			}
			if cond {
				pc += int(in.jt)
			} else {
				pc += int(in.jf)
			}
		case 0x06: // RET
			if in.code&0x18 == 0x10 {
				return a, steps, nil
			}
			return in.k, steps, nil
		case 0x07: // MISC
			if in.code&0xf8 == 0x00 {
				x = a
			} else {
				a = x
			}
		}
	}
	return 0, steps, fmt.Errorf("fell off the end")
}
