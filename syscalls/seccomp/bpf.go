package seccomp

import (
	"encoding/binary"
	"fmt"
)

// Classic BPF, as seccomp uses it (linux/filter.h, linux/bpf_common.h).
const (
	bpfInsnSize = 8    // sizeof(struct sock_filter)
	bpfMaxInsns = 4096 // BPF_MAXINSNS

	bpfClassMask = 0x07
	bpfJMP       = 0x05
	bpfRET       = 0x06
	bpfOpMask    = 0xf0
	bpfJA        = 0x00
)

// insn is one decoded struct sock_filter.
type insn struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

func decodeInsn(b []byte) insn {
	return insn{
		code: binary.NativeEndian.Uint16(b[0:2]),
		jt:   b[2],
		jf:   b[3],
		k:    binary.NativeEndian.Uint32(b[4:8]),
	}
}

// checkBPF checks the shape the kernel requires of a seccomp program (a
// subset of bpf_check_classic): a whole number of instructions, at most
// BPF_MAXINSNS, every jump landing inside the program, and a return as the
// last instruction. A program cut short (a torn cache file, a short write)
// fails it.
func checkBPF(prog []byte) error {
	if len(prog) == 0 || len(prog)%bpfInsnSize != 0 {
		return fmt.Errorf("program of %d bytes is not a whole number of %d-byte instructions", len(prog), bpfInsnSize)
	}
	n := len(prog) / bpfInsnSize
	if n > bpfMaxInsns {
		return fmt.Errorf("program of %d instructions exceeds the kernel's limit of %d", n, bpfMaxInsns)
	}
	for pc := 0; pc < n; pc++ {
		in := decodeInsn(prog[pc*bpfInsnSize:])
		if in.code&bpfClassMask != bpfJMP {
			continue
		}
		if in.code&bpfOpMask == bpfJA {
			if uint64(pc)+1+uint64(in.k) >= uint64(n) {
				return fmt.Errorf("instruction %d jumps past the end", pc)
			}
			continue
		}
		if pc+1+int(in.jt) >= n || pc+1+int(in.jf) >= n {
			return fmt.Errorf("instruction %d jumps past the end", pc)
		}
	}
	if last := decodeInsn(prog[(n-1)*bpfInsnSize:]); last.code&bpfClassMask != bpfRET {
		return fmt.Errorf("the last instruction is not a return")
	}
	return nil
}
