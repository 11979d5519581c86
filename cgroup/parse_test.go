package cgroup

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
)

func TestParseKeyValues(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]uint64
		err  bool
	}{
		{"", map[string]uint64{}, false},
		{"populated 1\nfrozen 0\n", map[string]uint64{"populated": 1, "frozen": 0}, false},
		{"oom_kill_disable 0\nunder_oom 0\noom_kill 3", map[string]uint64{"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}, false},
		{"usage_usec 18446744073709551615\n", map[string]uint64{"usage_usec": 1<<64 - 1}, false},
		{"novalue\n", nil, true},
		{"key -1\n", nil, true},
		{"key max\n", nil, true},
	} {
		got, err := parseKeyValues([]byte(tc.in))
		if (err != nil) != tc.err || !tc.err && !maps.Equal(got, tc.want) {
			t.Errorf("parseKeyValues(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  bool
	}{
		{"max\n", 0, false},
		{"67108864\n", 67108864, false},
		{"9223372036854771712\n", 0, false}, // v1 memory "unlimited"
		{"-1\n", 0, false},                  // v1 cfs_quota_us "unlimited"
		{"", 0, true},
		{"12x", 0, true},
		{"-x", 0, true},
	} {
		got, err := parseLimit([]byte(tc.in))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("parseLimit(%q) = %d, %v; want %d (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

const hybridMountInfo = `22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 /process_api /sys/fs/cgroup/memory rw,relatime shared:5 master:1 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 23 0:40 / /mnt/with\040space rw - cgroup cgroup rw,cpu,cpuacct
`

func TestParseMountInfo(t *testing.T) {
	mounts, err := parseMountInfo(strings.NewReader(hybridMountInfo))
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	for _, m := range mounts {
		points = append(points, m.Point)
	}
	want := []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/mnt/with space"}
	if !slices.Equal(points, want) {
		t.Errorf("mount points %q, want %q", points, want)
	}
	if m := mounts[2]; m.Root != "/process_api" || !m.has("memory") || m.V2 {
		t.Errorf("memory mount = %+v", m)
	}
	if !mounts[4].V2 || !mounts[3].has("name=systemd") || !mounts[5].has("cpuacct") {
		t.Errorf("mounts = %+v", mounts)
	}
	if m, ok := v1MountOf(mounts, "cpuacct"); !ok || m.Point != "/sys/fs/cgroup/cpuacct" {
		t.Errorf("v1MountOf(cpuacct) = %+v, %v", m, ok)
	}
	if _, err := parseMountInfo(strings.NewReader("1 2 3\n")); !errors.Is(err, ErrInvalid) {
		t.Errorf("short line: %v", err)
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"pinfold/app-1", true},
		{"pinfold/a_b.c:d@e", true},
		{"x", true},
		{"", false},
		{"/pinfold/x", false},
		{"pinfold/", false},
		{"pinfold//x", false},
		{"pinfold/../x", false},
		{"pinfold/.hidden", false},
		{"pinfold/a b", false},
		{"pinfold/a\nb", false},
		{strings.Repeat("a", 256), false},
		{strings.Repeat("a", 255), true},
	} {
		parts, err := checkName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("checkName(%q) = %v, %v; want ok %v", tc.name, parts, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("checkName(%q) error %v does not wrap ErrInvalid", tc.name, err)
		}
	}
}

func FuzzParseKeyValues(f *testing.F) {
	f.Add([]byte("populated 1\nfrozen 0\n"))
	f.Add([]byte("usage_usec 1\nuser_usec 2\nsystem_usec 3\nnr_periods 4\n"))
	f.Add([]byte("a  b\n\n c 1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kv, err := parseKeyValues(data)
		if err == nil {
			for k := range kv {
				if k == "" || strings.ContainsAny(k, " \n") {
					t.Errorf("bad key %q from %q", k, data)
				}
			}
		}
		_, _ = parseLimit(data)
	})
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add(hybridMountInfo)
	f.Add("1 2 0:1 / / rw - cgroup2 none rw\n")
	f.Add(`1 2 0:1 /\134 /a\ rw - cgroup x rw,memory`)
	f.Fuzz(func(t *testing.T, s string) {
		mounts, err := parseMountInfo(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, m := range mounts {
			_ = m.has("memory")
		}
	})
}

func FuzzCheckName(f *testing.F) {
	f.Add("pinfold/app")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, name string) {
		parts, err := checkName(name)
		if err != nil {
			return
		}
		for _, p := range parts {
			if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "/\x00\n") {
				t.Errorf("checkName(%q) accepted component %q", name, p)
			}
		}
	})
}
