package daemon

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
)

// Limits on what a request may carry. They are generous for real use and
// keep a hostile client from making the daemon allocate without bound.
const (
	maxArgs      = 4096
	maxArgBytes  = 1 << 20 // all args and env together
	maxEnv       = 1024
	maxBinds     = 64
	maxNameLen   = 128
	maxIDLen     = 64
	maxTimeout   = 7 * 24 * time.Hour
	maxPolicyLen = 1 << 20
)

var errInvalid = errors.New("invalid request")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalid, fmt.Sprintf(format, args...))
}

// validateAppSpec checks every field of an app spec a client sent. It
// never trusts the client: sizes, encodings, paths and durations are all
// checked, and the message says which field is wrong and why.
func validateAppSpec(s *v1.AppSpec) error {
	if s == nil {
		return invalidf("spec: missing")
	}
	if err := checkText("spec.name", s.GetName(), maxNameLen, true); err != nil {
		return err
	}
	if err := checkText("spec.policy", s.GetPolicy(), maxNameLen, true); err != nil {
		return err
	}
	args := s.GetArgs()
	if len(args) == 0 || args[0] == "" {
		return invalidf("spec.args: no command to run")
	}
	if len(args) > maxArgs {
		return invalidf("spec.args: %d arguments, more than %d", len(args), maxArgs)
	}
	total := 0
	for i, a := range args {
		total += len(a)
		if strings.IndexByte(a, 0) >= 0 {
			return invalidf("spec.args[%d]: contains a NUL byte", i)
		}
	}
	if len(s.GetEnv()) > maxEnv {
		return invalidf("spec.env: %d variables, more than %d", len(s.GetEnv()), maxEnv)
	}
	for k, v := range s.GetEnv() {
		total += len(k) + len(v)
		if !envName(k) {
			return invalidf("spec.env: %q is not a variable name (letters, digits and '_', not starting with a digit)", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return invalidf("spec.env[%s]: value contains a NUL byte", k)
		}
	}
	if total > maxArgBytes {
		return invalidf("spec: arguments and environment are %d bytes, more than %d", total, maxArgBytes)
	}
	if len(s.GetBinds()) > maxBinds {
		return invalidf("spec.binds: %d binds, more than %d", len(s.GetBinds()), maxBinds)
	}
	for i, b := range s.GetBinds() {
		if err := checkPath(fmt.Sprintf("spec.binds[%d].source", i), b.GetSource()); err != nil {
			return err
		}
		if err := checkPath(fmt.Sprintf("spec.binds[%d].destination", i), b.GetDestination()); err != nil {
			return err
		}
	}
	if w := s.GetWorkdir(); w != "" {
		if err := checkPath("spec.workdir", w); err != nil {
			return err
		}
	}
	if t := s.GetTimeout(); t != nil {
		if err := t.CheckValid(); err != nil {
			return invalidf("spec.timeout: %v", err)
		}
		if d := t.AsDuration(); d < 0 || d > maxTimeout {
			return invalidf("spec.timeout: %s is outside 0..%s", d, maxTimeout)
		}
	}
	return nil
}

// checkText checks a short printable UTF-8 string.
func checkText(field, s string, max int, empty bool) error {
	if s == "" {
		if empty {
			return nil
		}
		return invalidf("%s: missing", field)
	}
	if len(s) > max {
		return invalidf("%s: %d bytes, more than %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return invalidf("%s: not valid UTF-8", field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return invalidf("%s: contains a control character", field)
		}
	}
	return nil
}

func checkID(id string) error {
	if id == "" {
		return invalidf("id: missing")
	}
	if len(id) > maxIDLen {
		return invalidf("id: %d bytes, more than %d", len(id), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return invalidf("id: %q is not an app id (lowercase hex)", id)
		}
	}
	return nil
}

func checkPath(field, p string) error {
	if p == "" {
		return invalidf("%s: missing", field)
	}
	if len(p) > 4096 {
		return invalidf("%s: longer than PATH_MAX", field)
	}
	if strings.IndexByte(p, 0) >= 0 || strings.ContainsRune(p, ':') {
		return invalidf("%s: %q contains a NUL byte or ':'", field, p)
	}
	if !filepath.IsAbs(p) || filepath.Clean(p) != p {
		return invalidf("%s: %q is not an absolute, clean path", field, p)
	}
	return nil
}

func checkSignal(sig int32) error {
	if sig < 1 || sig > 64 {
		return invalidf("signal: %d is not a signal number (1..64)", sig)
	}
	return nil
}

func envName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
