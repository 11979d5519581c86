package policy

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/syscalls/seccomp"
)

// SeccompProfile returns the seccomp profile the app runs under: the
// policy's seccomp section resolved (see Seccomp.Resolve) over pinfold's
// built-in profile for the capabilities the policy adds
// (seccomp.DefaultFor), which allows the syscalls those capabilities are for.
func (s *Spec) SeccompProfile() (*specs.LinuxSeccomp, error) {
	return s.Seccomp.Resolve(seccomp.DefaultFor(s.Capabilities.Add))
}
