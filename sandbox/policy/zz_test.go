package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestZZStress(t *testing.T) {
	size := 32 << 10
	h := "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: x\nspec:\n"
	fill := func(prefix, item string) string {
		var b strings.Builder
		b.WriteString(h + prefix)
		for b.Len() < size {
			b.WriteString(item)
		}
		return b.String()
	}
	cases := map[string]string{
		"caps long":   fill("  capabilities:\n    add:\n", "    - "+strings.Repeat("q", 60)+"\n"),
		"caps short":  fill("  capabilities:\n    add:\n", "    - qq\n"),
		"masked ints": fill("  filesystem:\n    masked: [", "1,"),
		"env":         fill("  env:\n", ""),
		"unknown":     fill("  resources:\n", ""),
		"readonly":    fill("  filesystem:\n    readOnly: [", "/nope,"),
		"syscalls":    fill("  seccomp:\n    syscalls:\n", "    - {names: [A], action: x, args: [{index: 9, op: q}]}\n"),
	}
	var env, unk strings.Builder
	env.WriteString(h + "  env:\n")
	unk.WriteString(h + "  resources:\n")
	for i := 0; env.Len() < size; i++ {
		fmt.Fprintf(&env, "    %d-%s: [x]\n", i, strings.Repeat("k", 40))
		fmt.Fprintf(&unk, "    memroy%d: 1\n", i)
	}
	cases["env"] = env.String()
	cases["unknown"] = unk.String()[:size]
	for name, data := range cases {
		start := time.Now()
		_, err := Parse("x", []byte(data))
		n := strings.Count(fmt.Sprint(err), "\n")
		fmt.Printf("%-12s %8v errors=%d\n", name, time.Since(start), n)
	}
}
