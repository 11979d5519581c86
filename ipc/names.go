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
//
// It runs in time proportional to the product of the segment counts (at
// most 101 each) times the segment lengths, whatever the pattern: runs of
// "**" are matched by dynamic programming, not by trying every split, so a
// pattern like "**/a/**/a/**/a/..." cannot make it exponential.
func Match(pattern, name string) bool {
	pat := strings.Split(pattern, "/")
	segs := strings.Split(name, "/")
	// ok[j] reports whether pat[i:] matches segs[j:], for the current i,
	// computed from i = len(pat) down to 0.
	ok := make([]bool, len(segs)+1)
	ok[len(segs)] = true
	for i := len(pat) - 1; i >= 0; i-- {
		if pat[i] == "**" {
			// "**" then pat[i+1:] matches segs[j:] when pat[i+1:] matches
			// some suffix segs[k:], k >= j.
			for j := len(segs) - 1; j >= 0; j-- {
				ok[j] = ok[j] || ok[j+1]
			}
			continue
		}
		for j := 0; j < len(segs); j++ {
			ok[j] = ok[j+1] && matchSeg(pat[i], segs[j])
		}
		ok[len(segs)] = false
	}
	return ok[0]
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
