package policy

import (
	"slices"
	"testing"

	"github.com/pinfold/pinfold/syscalls"
)

// TestNamesMatchKernel keeps the policy's portable name lists in step with
// the numbers the init stage uses (package syscalls, from x/sys).
func TestNamesMatchKernel(t *testing.T) {
	got := slices.Clone(capabilityNames)
	slices.Sort(got)
	if want := syscalls.CapabilityNames(); !slices.Equal(got, want) {
		t.Errorf("policy capabilities %v\nsyscalls capabilities %v", got, want)
	}
	for name := range rlimitNames {
		if _, ok := syscalls.RlimitNumber(name); !ok {
			t.Errorf("policy accepts %s, which the init stage cannot set", name)
		}
	}
}
