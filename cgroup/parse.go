package cgroup

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// parseKeyValues parses a flat-keyed cgroup file ("key value" per line), such
// as cpu.stat, memory.events, pids.events, cgroup.events or v1's
// memory.oom_control.
func parseKeyValues(data []byte) (map[string]uint64, error) {
	out := make(map[string]uint64)
	for line := range bytes.Lines(data) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		key, value, ok := bytes.Cut(line, []byte(" "))
		if !ok || len(key) == 0 {
			return nil, fmt.Errorf("line %q is not \"key value\": %w", line, ErrInvalid)
		}
		v, err := strconv.ParseUint(string(bytes.TrimSpace(value)), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		out[string(key)] = v
	}
	return out, nil
}

// unlimitedV1 is where v1 limits start to mean "no limit": memory's
// unlimited value is PAGE_COUNTER_MAX pages (about 2^63 bytes), and no
// real limit comes near 2^62.
const unlimitedV1 = 1 << 62

// parseLimit parses a single-value limit or counter file: a decimal number,
// or "max" (v2's "no limit"), which reads as 0 like v1's huge "unlimited"
// values do.
func parseLimit(data []byte) (uint64, error) {
	s := string(bytes.TrimSpace(data))
	if s == "max" {
		return 0, nil
	}
	if strings.HasPrefix(s, "-") { // v1 reports -1 for "no limit" in some files
		if _, err := strconv.ParseInt(s, 10, 64); err != nil {
			return 0, err
		}
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if v >= unlimitedV1 {
		return 0, nil
	}
	return v, nil
}

// mount is one cgroup filesystem from /proc/self/mountinfo.
type mount struct {
	Point   string   // where it is mounted, e.g. /sys/fs/cgroup/memory
	Root    string   // the cgroup shown at Point, "/" unless bind-mounted from below
	V2      bool     // cgroup2 rather than cgroup (v1)
	Options []string // v1 super options: controllers, name=..., rw, ...
}

// parseMountInfo returns the cgroup and cgroup2 mounts listed in a
// /proc/<pid>/mountinfo stream, in order.
//
// Each line is: id parent major:minor root mountpoint options [optional...]
// - fstype source superoptions; root and mountpoint escape space, tab,
// newline and backslash as \ooo octal.
func parseMountInfo(r io.Reader) ([]mount, error) {
	var out []mount
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 6 || sep < 0 || sep+3 > len(fields) {
			return nil, fmt.Errorf("mountinfo line %q: malformed: %w", s.Text(), ErrInvalid)
		}
		fstype := fields[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		m := mount{
			Root:  unescapeMountPath(fields[3]),
			Point: unescapeMountPath(fields[4]),
			V2:    fstype == "cgroup2",
		}
		if sep+3 < len(fields) {
			m.Options = strings.Split(fields[sep+3], ",")
		}
		out = append(out, m)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMountPath undoes mountinfo's \ooo octal escapes.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// has reports whether a v1 mount carries option (a controller name such as
// "memory", or "name=systemd").
func (m mount) has(option string) bool {
	for _, o := range m.Options {
		if o == option {
			return true
		}
	}
	return false
}

// maxNameComponent is the longest directory name Linux allows.
const maxNameComponent = 255

// checkName validates a Config.Name and returns its components.
func checkName(name string) ([]string, error) {
	if name == "" {
		return nil, fmt.Errorf("cgroup name is empty: %w", ErrInvalid)
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if err := checkComponent(p); err != nil {
			return nil, fmt.Errorf("cgroup name %q: %w", name, err)
		}
	}
	return parts, nil
}

func checkComponent(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path component (no leading, trailing or double slashes): %w", ErrInvalid)
	case len(p) > maxNameComponent:
		return fmt.Errorf("component %.20q... is longer than %d bytes: %w", p, maxNameComponent, ErrInvalid)
	case p[0] == '.':
		return fmt.Errorf("component %q starts with a dot: %w", p, ErrInvalid)
	}
	for _, c := range []byte(p) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == '.' || c == ':' || c == '@') {
			return fmt.Errorf("component %q has %q; use letters, digits and _.:@-: %w", p, c, ErrInvalid)
		}
	}
	return nil
}
