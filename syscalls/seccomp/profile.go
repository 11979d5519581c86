package seccomp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// LoadFile reads an OCI (runtime-spec linux.seccomp) seccomp profile, such as
// Docker's default profile in OCI form, and returns it as-is.
func LoadFile(path string) (*specs.LinuxSeccomp, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading seccomp profile: %w", err)
	}
	return Parse(data)
}

// Parse decodes an OCI seccomp profile from JSON.
func Parse(data []byte) (*specs.LinuxSeccomp, error) {
	var p specs.LinuxSeccomp
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decoding seccomp profile: %w", err)
	}
	if p.DefaultAction == "" {
		return nil, fmt.Errorf("seccomp profile has no defaultAction")
	}
	return &p, nil
}
