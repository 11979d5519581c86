package ipc

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest object name, in bytes.
const MaxNameLen = 200

// Object names are slash-separated paths of segments made of ASCII letters,
// digits, '.', '_' and '-': "results", "jobs/42/out.ring". A segment is never
// "." or "..", and a name has no leading, trailing or doubled '/'. The grammar
// keeps names safe to use anywhere pinfold puts them (event details, the
// PINFOLD_FDS list, error messages) without quoting.

// ValidName reports why name is not a valid object name, or returns nil.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty object name", ErrBadName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: object name of %d bytes is longer than %d", ErrNameTooLong, len(name), MaxNameLen)
	}
	return checkSegments(name, false)
}

// ValidPattern reports why pattern is not a valid name pattern, or returns
// nil. A pattern is a name whose segments may contain '*' (any run of
// characters within the segment) and '?' (any one character), or be exactly
// "**" (any number of segments, including none): "results/*",
// "jobs/**/out", "**".
func ValidPattern(pattern string) error {
	if pattern == "" {
		return fmt.Errorf("%w: empty name pattern", ErrBadName)
	}
	if len(pattern) > MaxNameLen {
		return fmt.Errorf("%w: name pattern of %d bytes is longer than %d", ErrNameTooLong, len(pattern), MaxNameLen)
	}
	return checkSegments(pattern, true)
}

func checkSegments(s string, pattern bool) error {
	what := "object name"
	if pattern {
		what = "name pattern"
	}
	for seg := range strings.SplitSeq(s, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: %s %q has an empty segment (a leading, trailing or doubled '/')", ErrBadName, what, s)
		case ".", "..":
			return fmt.Errorf("%w: %s %q has a %q segment", ErrBadName, what, s, seg)
		}
		if pattern && seg == "**" {
			continue
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
			case pattern && (c == '*' || c == '?'):
				if c == '*' && i+1 < len(seg) && seg[i+1] == '*' {
					return fmt.Errorf("%w: name pattern %q: \"**\" must be a whole segment (write \"a/**/b\", not \"a**b\")", ErrBadName, s)
				}
			default:
				return fmt.Errorf("%w: %s %q has the character %q; use letters, digits, '.', '_', '-' and '/' between segments", ErrBadName, what, s, c)
			}
		}
	}
	return nil
}

// Match reports whether the valid name matches the valid pattern.
func Match(pattern, name string) bool {
	return matchSegs(strings.Split(pattern, "/"), strings.Split(name, "/"))
}

func matchSegs(pat, name []string) bool {
	for len(pat) > 0 {
		if pat[0] == "**" {
			// Collapse runs of "**" and try every split.
			for len(pat) > 0 && pat[0] == "**" {
				pat = pat[1:]
			}
			if len(pat) == 0 {
				return true
			}
			for i := 0; i <= len(name); i++ {
				if matchSegs(pat, name[i:]) {
					return true
				}
			}
			return false
		}
		if len(name) == 0 || !matchSeg(pat[0], name[0]) {
			return false
		}
		pat, name = pat[1:], name[1:]
	}
	return len(name) == 0
}

// matchSeg matches one segment against a pattern of literal bytes, '?' and
// '*', iteratively with one backtrack point (linear in practice, never
// exponential).
func matchSeg(p, s string) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
