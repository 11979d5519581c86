package sandbox

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/pinfold/pinfold/cgroup"
)

func sampleRecord(name string) *record {
	return &record{
		Version: recordVersion, ID: "0123456789abcdef", Name: name,
		SupervisorPID: 4242, SupervisorStart: 123456789,
		Created: time.Date(2026, 11, 26, 23, 0, 0, 123456789, time.UTC),
		Cgroup: &cgroup.Paths{
			Mode:    cgroup.ModeHybrid,
			V1:      map[string]string{"memory": "/sys/fs/cgroup/memory/x/pinfold/0123", "cpu": "/sys/fs/cgroup/cpu/pinfold/0123"},
			Unified: "/sys/fs/cgroup/unified/pinfold/0123",
			Depth:   2,
		},
	}
}

// TestRecordJSON checks the hand-written record encoder against
// encoding/json, which recovery uses to read records back.
func TestRecordJSON(t *testing.T) {
	for _, name := range []string{"", "hello-agent", "quote\" back\\slash", "ctl\x00\x01\n\t", "ünïcödé ✓", "bad\xffutf8"} {
		r := sampleRecord(name)
		var got record
		if err := json.Unmarshal(r.appendJSON(nil), &got); err != nil {
			t.Fatalf("name %q: %v\n%s", name, err, r.appendJSON(nil))
		}
		want := *r
		want.Name = string([]rune(name)) // invalid UTF-8 reads back as U+FFFD
		if !reflect.DeepEqual(&got, &want) || !got.Created.Equal(r.Created) {
			t.Errorf("name %q: round trip gave\n%+v\nwant\n%+v", name, got, want)
		}
	}
}

func FuzzRecordJSON(f *testing.F) {
	f.Add("hello", "/sys/fs/cgroup/memory/pinfold/x")
	f.Fuzz(func(t *testing.T, name, path string) {
		r := sampleRecord(name)
		r.Cgroup.V1["memory"] = path
		var got record
		if err := json.Unmarshal(r.appendJSON(nil), &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.appendJSON(nil))
		}
		if got.Name != string([]rune(name)) || got.Cgroup.V1["memory"] != string([]rune(path)) {
			t.Errorf("round trip: %q → %q, %q → %q", name, got.Name, path, got.Cgroup.V1["memory"])
		}
	})
}
