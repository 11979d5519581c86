package seccomp

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		json  string
		class error  // nil: must parse
		msg   string // a fragment the error must contain
	}{
		{"minimal", `{"defaultAction":"SCMP_ACT_ERRNO"}`, nil, ""},
		{"comments", `{"_comment":"x","defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","comment":"y"}]}`, nil, ""},
		{"empty input", ``, nil, "empty input"},
		{"syntax error with position", "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [}\n", nil, "line 3, column"},
		{"wrong type", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":"read","action":"SCMP_ACT_ALLOW"}]}`, nil, "line 1, column"},
		{"unknown field", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW","arg":[]}]}`, nil, `unknown field "arg"`},
		{"trailing data", `{"defaultAction":"SCMP_ACT_ERRNO"} {}`, nil, "unexpected data after"},
		{"no default action", `{"syscalls":[]}`, ErrInvalidProfile, "defaultAction: required"},
		{"unknown action", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"ALLOW"}]}`, ErrInvalidProfile, `syscalls[0].action ("read")`},
		{"empty names", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":[],"action":"SCMP_ACT_ALLOW"}]}`, ErrInvalidProfile, "syscalls[0].names: required"},
		{"empty name", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read",""],"action":"SCMP_ACT_ALLOW"}]}`, ErrInvalidProfile, "syscalls[0].names[1]"},
		{"bad op", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["kill"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"EQ"}]}]}`, ErrInvalidProfile, "args[0].op"},
		{"arg index", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["kill"],"action":"SCMP_ACT_ALLOW","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}`, ErrInvalidProfile, "args[0].index"},
		{"valueTwo without masked op", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["kill"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"valueTwo":2,"op":"SCMP_CMP_EQ"}]}]}`, ErrInvalidProfile, "valueTwo"},
		{"errnoRet on allow", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","errnoRet":1}]}`, ErrInvalidProfile, "errnoRet"},
		{"errnoRet too large", `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":70000}`, ErrInvalidProfile, "above 4095"},
		{"notify as default", `{"defaultAction":"SCMP_ACT_NOTIFY"}`, ErrInvalidProfile, "cannot be the default"},
		{"bad architecture", `{"defaultAction":"SCMP_ACT_ERRNO","architectures":["x86_64"]}`, ErrInvalidProfile, "architectures[0]"},
		{"bad flag", `{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_FAST"]}`, ErrInvalidProfile, "flags[0]"},
		{"wait killable without notify", `{"defaultAction":"SCMP_ACT_ERRNO","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}`, ErrInvalidProfile, "SCMP_ACT_NOTIFY"},
		{"listener path", `{"defaultAction":"SCMP_ACT_ERRNO","listenerPath":"/run/a.sock"}`, ErrNotSupported, "listenerPath"},
		{"docker archMap", `{"defaultAction":"SCMP_ACT_ERRNO","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}]}`, ErrDockerFormat, "archMap"},
		{"docker includes", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`, ErrDockerFormat, `syscalls[0].includes ("mount")`},
		{"docker empty includes", `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","includes":{},"excludes":{}}]}`, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.json))
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if p == nil {
					t.Fatal("Parse returned no profile")
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tt.msg)
			}
			if tt.class != nil && !errors.Is(err, tt.class) {
				t.Errorf("Parse: %v does not wrap %v", err, tt.class)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Parse: %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestParseValidateReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
		{"names":["read"],"action":"SCMP_ACT_NOPE"},
		{"names":["kill"],"action":"SCMP_ACT_ALLOW","args":[{"index":9,"value":0,"op":"SCMP_CMP_EQ"}]}]}`))
	var pe *ProfileError
	if !errors.As(err, &pe) {
		t.Fatalf("Parse: %v, want *ProfileError", err)
	}
	for _, want := range []string{"syscalls[0].action", "syscalls[1].args[0].index"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestLoadFileDocker(t *testing.T) {
	p, err := LoadFile(dockerProfile)
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultAction != specs.ActErrno || len(p.Architectures) != 3 || len(p.Syscalls) == 0 {
		t.Fatalf("unexpected profile: default %s, %d architectures, %d rules", p.DefaultAction, len(p.Architectures), len(p.Syscalls))
	}
	_, err = LoadFile("testdata/no-such-file.json")
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadFile of a missing file: %v", err)
	}
}

// TestDefaultRoundTrip checks that the default profile survives JSON: what
// pinfold prints, it reads back.
func TestDefaultRoundTrip(t *testing.T) {
	for _, p := range []*specs.LinuxSeccomp{Default(), DefaultFor([]string{"CAP_SYS_PTRACE", "CAP_NET_RAW"})} {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(Default()): %v", err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatal("the default profile changed through JSON")
		}
	}
}

func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile(dockerProfile)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"syscalls":[{"names":["kill"],"action":"SCMP_ACT_ALLOW","args":[{"index":1,"value":15,"op":"SCMP_CMP_EQ"}]}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"],"syscalls":[{"names":["openat"],"action":"SCMP_ACT_NOTIFY"}]}`))
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ERRNO","archMap":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data)
		if err != nil {
			if p != nil {
				t.Fatal("Parse returned a profile and an error")
			}
			return
		}
		if err := Validate(p); err != nil {
			t.Fatalf("Parse accepted a profile Validate rejects: %v", err)
		}
		// What Parse accepts, it accepts again after a round trip.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(b)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", b, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the profile:\n%+v\n%+v", p, q)
		}
	})
}
