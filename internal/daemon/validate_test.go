package daemon

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
)

func TestValidateAppSpec(t *testing.T) {
	good := func() *v1.AppSpec {
		return &v1.AppSpec{Name: "job", Policy: "python-tool", Args: []string{"/bin/true"}, Env: map[string]string{"A": "1"},
			Binds: []*v1.Bind{{Source: "/srv", Destination: "/data"}}, Workdir: "/tmp", Timeout: durationpb.New(time.Second)}
	}
	if err := validateAppSpec(good()); err != nil {
		t.Fatalf("good spec refused: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*v1.AppSpec)
		want   string
	}{
		{"nil args", func(s *v1.AppSpec) { s.Args = nil }, "spec.args: no command to run"},
		{"empty command", func(s *v1.AppSpec) { s.Args = []string{""} }, "spec.args: no command to run"},
		{"NUL in arg", func(s *v1.AppSpec) { s.Args = []string{"a", "b\x00c"} }, "spec.args[1]: contains a NUL byte"},
		{"too many args", func(s *v1.AppSpec) { s.Args = make([]string, maxArgs+1); s.Args[0] = "x" }, "arguments, more than"},
		{"env name", func(s *v1.AppSpec) { s.Env = map[string]string{"1X": "y"} }, `"1X" is not a variable name`},
		{"env NUL", func(s *v1.AppSpec) { s.Env = map[string]string{"X": "a\x00"} }, "spec.env[X]: value contains a NUL byte"},
		{"huge env", func(s *v1.AppSpec) { s.Env = map[string]string{"X": strings.Repeat("a", maxArgBytes)} }, "bytes, more than"},
		{"relative bind", func(s *v1.AppSpec) { s.Binds[0].Source = "srv" }, `spec.binds[0].source: "srv" is not an absolute, clean path`},
		{"unclean bind", func(s *v1.AppSpec) { s.Binds[0].Destination = "/a/../b" }, `spec.binds[0].destination: "/a/../b" is not an absolute, clean path`},
		{"colon bind", func(s *v1.AppSpec) { s.Binds[0].Source = "/a:b" }, "contains a NUL byte or ':'"},
		{"workdir", func(s *v1.AppSpec) { s.Workdir = "tmp" }, `spec.workdir: "tmp" is not an absolute, clean path`},
		{"negative timeout", func(s *v1.AppSpec) { s.Timeout = durationpb.New(-time.Second) }, "spec.timeout: -1s is outside"},
		{"bad timeout", func(s *v1.AppSpec) { s.Timeout = &durationpb.Duration{Seconds: 1, Nanos: -5} }, "spec.timeout:"},
		{"control in name", func(s *v1.AppSpec) { s.Name = "a\nb" }, "spec.name: contains a control character"},
		{"bad utf8 policy", func(s *v1.AppSpec) { s.Policy = "\xff" }, "spec.policy: not valid UTF-8"},
		{"long name", func(s *v1.AppSpec) { s.Name = strings.Repeat("n", maxNameLen+1) }, "spec.name: 129 bytes, more than 128"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.change(s)
			err := validateAppSpec(s)
			if err == nil || !errors.Is(err, errInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestCheckID(t *testing.T) {
	for _, id := range []string{"", "XYZ", "../x", strings.Repeat("a", 65), "0123456789abcdeg"} {
		if checkID(id) == nil {
			t.Errorf("id %q accepted", id)
		}
	}
	if err := checkID("0123456789abcdef"); err != nil {
		t.Error(err)
	}
}

// FuzzValidateAppSpec feeds arbitrary wire bytes as a spec: validation must
// never panic, and a spec it accepts must hold what the daemon relies on.
func FuzzValidateAppSpec(f *testing.F) {
	seed, _ := proto.Marshal(&v1.AppSpec{Name: "n", Args: []string{"/bin/true"}, Env: map[string]string{"A": "b"},
		Binds: []*v1.Bind{{Source: "/a", Destination: "/b", ReadWrite: true}}, Workdir: "/w", Timeout: durationpb.New(time.Minute)})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s v1.AppSpec
		if proto.Unmarshal(b, &s) != nil {
			return
		}
		if validateAppSpec(&s) != nil {
			return
		}
		if len(s.Args) == 0 || s.Args[0] == "" {
			t.Fatal("accepted a spec without a command")
		}
		for _, a := range s.Args {
			if strings.IndexByte(a, 0) >= 0 {
				t.Fatal("accepted a NUL in an argument")
			}
		}
		for _, bd := range s.Binds {
			if !strings.HasPrefix(bd.Source, "/") || !strings.HasPrefix(bd.Destination, "/") {
				t.Fatal("accepted a relative bind")
			}
		}
	})
}
