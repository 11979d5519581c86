package policy

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// dockerProfilePlaceholder is where examples/policies/docker-seccomp.yaml
// expects Docker's default profile in OCI form.
const dockerProfilePlaceholder = "/etc/pinfold/seccomp/docker-default.json"

// TestExamples checks that every example policy shipped with pinfold
// validates on this host, survives a round trip through Encode, and resolves
// to a seccomp profile.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob("../../examples/policies/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d example policies, want at least 3: %v", len(files), files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte(dockerProfilePlaceholder)) {
				if _, err := os.Stat(dockerProfilePlaceholder); errors.Is(err, fs.ErrNotExist) {
					profile := dockerProfile(t)
					t.Logf("%s is absent; using %s", dockerProfilePlaceholder, profile)
					data = bytes.ReplaceAll(data, []byte(dockerProfilePlaceholder), []byte(profile))
				}
			}
			p, err := Parse(f, data)
			if err != nil {
				t.Fatalf("example does not validate:\n%v", err)
			}
			var b bytes.Buffer
			if err := p.Encode(&b); err != nil {
				t.Fatal(err)
			}
			q, err := Parse("encoded.yaml", b.Bytes())
			if err != nil || !reflect.DeepEqual(p, q) {
				t.Fatalf("round trip failed: %v\n%s", err, b.String())
			}
			prof, err := p.Spec.SeccompProfile()
			if err != nil {
				t.Fatalf("resolving the seccomp profile: %v", err)
			}
			// The policy's own rules decide the syscalls they name.
			for _, own := range p.Spec.Seccomp.Syscalls {
				for _, name := range own.Names {
					for _, r := range prof.Syscalls {
						if slices.Contains(r.Names, name) && !slices.ContainsFunc(p.Spec.Seccomp.Syscalls, func(x specs.LinuxSyscall) bool {
							return reflect.DeepEqual(x, r)
						}) {
							t.Errorf("the resolved profile keeps a rule for %s that the policy overrides: %+v", name, r)
						}
					}
				}
			}
		})
	}
}

// dockerProfile returns the path of Docker's default profile in OCI form:
// the copy in the project's shared data when it is beside the repository,
// else a small stand-in written for the test.
func dockerProfile(t *testing.T) string {
	shared, err := filepath.Abs("../../../shared/data/docker-default-amd64.oci.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(shared); err == nil {
		return shared
	}
	return writeProfile(t, `{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
		"architectures": ["SCMP_ARCH_X86_64"],
		"syscalls": [{"names": ["read", "write", "exit_group", "personality"], "action": "SCMP_ACT_ALLOW"}]}`)
}
