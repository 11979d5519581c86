package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, that every error it reports has
// a position and the list is sorted, and that any policy it accepts encodes
// to YAML that parses back to an equal policy.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/*/*.yaml", "testdata/fuzz-seeds/*", "../../examples/policies/*.yaml"} {
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
		tm := time.AfterFunc(3*time.Second, func() {
			os.WriteFile(fmt.Sprintf("/tmp/policy-hang-%d", time.Now().UnixNano()), data, 0o644)
			panic("HANG")
		})
		defer tm.Stop()
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
