package policy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error it reports has
// a position and the list is sorted, and that any policy it accepts encodes
// to YAML that parses back to an equal policy.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/*/*.yaml", "../../examples/policies/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %#v", err)
			}
			for _, e := range list {
				if e.File != "fuzz.yaml" || e.Line < 1 || e.Column < 1 || e.Msg == "" {
					t.Fatalf("error without position or message: %#v", e)
				}
			}
			if !sort.SliceIsSorted(list, func(i, j int) bool {
				return list[i].Line < list[j].Line || list[i].Line == list[j].Line && list[i].Column < list[j].Column
			}) {
				t.Fatalf("errors not sorted:\n%v", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("Parse accepted a policy that Validate rejects: %v", err)
		}
		var buf bytes.Buffer
		if err := p.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		q, err := Parse("encoded.yaml", buf.Bytes())
		if err != nil {
			t.Fatalf("encoded policy does not parse: %v\n%s", err, buf.String())
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the policy:\nbefore %#v\nafter  %#v\nencoded:\n%s", p, q, buf.String())
		}
	})
}

// FuzzEncode checks that Encode writes any valid strings so that Parse reads
// them back unchanged: the quoting of environment values, paths and keys.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "x", "true", "null", "~", "- a", "a: b", "#c", " lead", "trail ", "\t",
		"\n", "'", `"`, `\`, "0x10", "1e3", "&a", "*a", "!t", "%d", "@", "`", "[", "{", "é", "\u2028", "\ufeff", "\x7f"} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, value, path, key string) {
		p := Default()
		p.Spec.Env = map[string]string{"V": value}
		if key != "" && isEnvName(key) {
			p.Spec.Env[key] = value
		}
		p.Spec.Filesystem.Masked = []string{cleanPath("/" + path)}
		p.Spec.Filesystem.Tmpfs = map[string]Size{cleanPath("/tmp/" + path): MiB}
		p.Spec.Filesystem.Workdir = cleanPath("/" + path)
		if err := p.Validate(); err != nil {
			return // not a value a policy can hold, e.g. a NUL byte
		}
		var b bytes.Buffer
		if err := p.Encode(&b); err != nil {
			t.Fatal(err)
		}
		q, err := Parse("encoded.yaml", b.Bytes())
		if err != nil {
			t.Fatalf("encoded policy does not parse: %v\n%s", err, b.String())
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the policy:\nbefore %#v\nafter  %#v\nencoded:\n%s", p.Spec, q.Spec, b.String())
		}
	})
}
