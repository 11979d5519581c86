package ipc

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, c := range []struct {
		name string
		want error
	}{
		{"results", nil},
		{"jobs/42/out.ring", nil},
		{"A-b_c.d", nil},
		{strings.Repeat("x", MaxNameLen), nil},
		{"", ErrBadName},
		{"/abs", ErrBadName},
		{"trail/", ErrBadName},
		{"a//b", ErrBadName},
		{"a/./b", ErrBadName},
		{"a/../b", ErrBadName},
		{"..", ErrBadName},
		{"sp ace", ErrBadName},
		{"star*", ErrBadName},
		{"q?", ErrBadName},
		{"nul\x00", ErrBadName},
		{"é", ErrBadName},
		{strings.Repeat("x", MaxNameLen+1), ErrNameTooLong},
	} {
		err := ValidName(c.name)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("ValidName(%q) = %v, want %v", c.name, err, c.want)
		}
	}
	if !errors.Is(ValidName(""), syscall.EINVAL) || !errors.Is(ValidName(strings.Repeat("x", 300)), syscall.ENAMETOOLONG) {
		t.Error("name errors do not match their errnos")
	}
}

func TestValidPattern(t *testing.T) {
	for _, c := range []struct {
		pattern string
		ok      bool
	}{
		{"**", true},
		{"results/*", true},
		{"jobs/**/out", true},
		{"a?c/*.ring", true},
		{"**/**", true},
		{"a**", false},
		{"***", false},
		{"a/**b", false},
		{"", false},
		{"a//b", false},
		{"../x", false},
		{"a/$", false},
	} {
		if err := ValidPattern(c.pattern); (err == nil) != c.ok {
			t.Errorf("ValidPattern(%q) = %v, want ok %v", c.pattern, err, c.ok)
		}
	}
}

var matchCases = []struct {
	pattern, name string
	want          bool
}{
	{"results", "results", true},
	{"results", "result", false},
	{"results/*", "results/a", true},
	{"results/*", "results", false},
	{"results/*", "results/a/b", false},
	{"*", "a", true},
	{"*", "a/b", false},
	{"**", "a", true},
	{"**", "a/b/c", true},
	{"a/**", "a", true},
	{"a/**", "a/b/c", true},
	{"a/**", "b/c", false},
	{"**/out", "out", true},
	{"**/out", "x/y/out", true},
	{"**/out", "x/y/out2", false},
	{"a/**/b", "a/b", true},
	{"a/**/b", "a/x/y/b", true},
	{"a/**/b", "a/x/y/c", false},
	{"a/**/**/b", "a/b", true},
	{"j?b-*", "job-1", true},
	{"j?b-*", "jb-1", false},
	{"*.ring", ".ring", true},
	{"*a*b*", "xaybz", true},
	{"*a*b*", "xbya", false},
	{"**/a/**/a/**/a/**/a/**/a/**/a/**/a/**/a/**/z", strings.Repeat("a/", 90) + "b", false},
}

func TestMatch(t *testing.T) {
	for _, c := range matchCases {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
		if strings.Count(c.pattern, "*") > 6 {
			continue // too slow for the reference
		}
		if got := naiveMatch(strings.Split(c.pattern, "/"), strings.Split(c.name, "/")); got != c.want {
			t.Errorf("reference match(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

// naiveMatch is the obvious, exponential reference for Match.
func naiveMatch(pat, name []string) bool {
	if len(pat) == 0 {
		return len(name) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(name); i++ {
			if naiveMatch(pat[1:], name[i:]) {
				return true
			}
		}
		return false
	}
	return len(name) > 0 && naiveSeg(pat[0], name[0]) && naiveMatch(pat[1:], name[1:])
}

func naiveSeg(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if naiveSeg(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && naiveSeg(p[1:], s[1:])
	}
	return s != "" && s[0] == p[0] && naiveSeg(p[1:], s[1:])
}

// FuzzMatch: the validators never panic, and on valid input Match agrees
// with the reference.
func FuzzMatch(f *testing.F) {
	for _, c := range matchCases {
		f.Add(c.pattern, c.name)
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		perr, nerr := ValidPattern(pattern), ValidName(name)
		if perr != nil || nerr != nil {
			return
		}
		got := Match(pattern, name)
		// Keep the exponential reference affordable.
		if strings.Count(pattern, "*") > 4 || len(name) > 32 {
			return
		}
		if want := naiveMatch(strings.Split(pattern, "/"), strings.Split(name, "/")); got != want {
			t.Fatalf("Match(%q, %q) = %v, reference %v", pattern, name, got, want)
		}
	})
}

func BenchmarkMatchAdversarial(b *testing.B) {
	pattern := strings.TrimSuffix(strings.Repeat("**/a/", 33), "/")
	name := strings.Repeat("a/", 99) + "b"
	for b.Loop() {
		Match(pattern, name)
	}
}
