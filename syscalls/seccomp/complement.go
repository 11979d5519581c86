package seccomp

import (
	"cmp"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// libseccomp has no "otherwise" per syscall: rules for one syscall form a
// union, an unconditional rule silently absorbs every conditional rule for
// that syscall whatever their actions, and overlapping conditions with
// different actions have no defined precedence. So "allow these argument
// values, answer every other value with errno E" has to be written as two
// sets of rules with disjoint conditions. complement32 builds the second set.

// block is a masked-equality test on the low 32 bits of an argument: it
// matches v when uint32(v)&mask == value.
type block struct{ mask, value uint32 }

func (b block) matches(v uint32) bool { return v&b.mask == b.value }

// complement32 returns masked-equality blocks that together match exactly
// the 32-bit values not in excl: every value outside excl matches at least one
// block, and no value in excl matches any.
//
// It walks the binary trie of excl from bit 31 down; every branch that holds
// no excluded value becomes a block (these partition the complement
// exactly). Each block is then widened by dropping mask bits, high to low,
// for as long as it still excludes every value of excl; widened blocks may
// overlap each other (they share one action, so that is harmless), and
// duplicates and blocks contained in others are removed. For the five
// personality values Docker allows this gives 62 blocks instead of 82.
func complement32(excl []uint32) []block {
	excl = slices.Clone(excl)
	slices.Sort(excl)
	excl = slices.Compact(excl)
	var out []block
	var walk func(mask, value uint32, set []uint32, bit int)
	walk = func(mask, value uint32, set []uint32, bit int) {
		if len(set) == 0 {
			out = append(out, block{mask, value})
			return
		}
		if bit < 0 {
			return // this branch is exactly one excluded value
		}
		b := uint32(1) << bit
		i, _ := slices.BinarySearchFunc(set, value|b, func(x, t uint32) int { return cmp.Compare(x&(mask|b), t) })
		walk(mask|b, value, set[:i], bit-1)
		walk(mask|b, value|b, set[i:], bit-1)
	}
	walk(0, 0, excl, 31)

	disjoint := func(bl block) bool {
		for _, x := range excl {
			if bl.matches(x) {
				return false
			}
		}
		return true
	}
	for i := range out {
		for bit := 31; bit >= 0; bit-- {
			b := uint32(1) << bit
			if out[i].mask&b == 0 {
				continue
			}
			w := block{out[i].mask &^ b, out[i].value &^ b}
			if disjoint(w) {
				out[i] = w
			}
		}
	}
	slices.SortFunc(out, func(a, b block) int {
		return cmp.Or(cmp.Compare(a.mask, b.mask), cmp.Compare(a.value, b.value))
	})
	out = slices.Compact(out)
	// Drop blocks contained in another: a contains b when a's mask bits are
	// a subset of b's and b agrees with a on them.
	kept := out[:0]
	for i, b := range out {
		contained := false
		for j, a := range out {
			if i != j && a.mask&b.mask == a.mask && b.value&a.mask == a.value && (a.mask != b.mask || j < i) {
				contained = true
				break
			}
		}
		if !contained {
			kept = append(kept, b)
		}
	}
	return kept
}

// valueRules returns one rule per value, matching argument arg when its low
// 32 bits equal the value (the kernel reads these arguments as 32-bit ints,
// so the upper half is ignored, as the kernel ignores it).
func valueRules(name string, action specs.LinuxSeccompAction, errno *uint, arg uint, values []uint32) []specs.LinuxSyscall {
	var rules []specs.LinuxSyscall
	for _, v := range values {
		rules = append(rules, specs.LinuxSyscall{
			Names: []string{name}, Action: action, ErrnoRet: clonePtr(errno),
			Args: []specs.LinuxSeccompArg{{Index: arg, Op: specs.OpMaskedEqual, Value: 0xffffffff, ValueTwo: uint64(v)}},
		})
	}
	return rules
}

// otherwiseRules returns rules giving action to every value of argument arg
// matched by blocks, the complement32 of some values: with valueRules for
// those values it expresses "these values get one action, all others
// another".
func otherwiseRules(name string, action specs.LinuxSeccompAction, errno *uint, arg uint, blocks []block) []specs.LinuxSyscall {
	var rules []specs.LinuxSyscall
	for _, b := range blocks {
		rules = append(rules, specs.LinuxSyscall{
			Names: []string{name}, Action: action, ErrnoRet: clonePtr(errno),
			Args: []specs.LinuxSeccompArg{{Index: arg, Op: specs.OpMaskedEqual, Value: uint64(b.mask), ValueTwo: uint64(b.value)}},
		})
	}
	return rules
}

// clonePtr returns a copy of *p (nil for nil), so that no two rules of a
// profile share an ErrnoRet.
func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
