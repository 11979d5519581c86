package vfs

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkApply applies the plan of `pinfold run`'s default policy b.N
// times, each in a fresh sandbox (new namespaces, like the init stage), and
// reports the median time spent inside Apply ("apply-ns", the number to
// read; ns/op also counts spawning the helper), the median time to decode
// the plan there ("decode-ns") and, per kind of step, the median cost of
// one step and how many the plan has. Run with -benchtime=200x for stable
// medians. The cgroupfs=true variants add the view of the app's cgroups
// (Spec.Cgroupfs, on in the default policy): each sandbox then runs in
// test cgroups, in a cgroup namespace of its own.
func BenchmarkApply(b *testing.B) {
	for _, userNS := range []bool{false, true} {
		for _, cgroupfs := range []bool{false, true} {
			b.Run(fmt.Sprintf("userns=%v/cgroupfs=%v", userNS, cgroupfs), func(b *testing.B) {
				benchmarkApply(b, userNS, cgroupfs)
			})
		}
	}
}

func benchmarkApply(b *testing.B, userNS, cgroupfs bool) {
	if testing.Short() {
		b.Skip("spawns sandboxes")
	}
	requireSandboxB(b)
	spec := runSpec()
	spec.UserNS = userNS
	ns := nsConfig{userNS: userNS}
	if cgroupfs {
		tc := newTestCgroups(b)
		spec.Cgroupfs, spec.Cgroups = true, tc.view
		ns.cgroups = tc.app
	}
	plan, err := NewPlan(spec)
	if err != nil {
		b.Fatal(err)
	}
	root := mkdirPublic(b)
	var total, decode []time.Duration
	per := map[string][]time.Duration{} // label -> every step's duration
	count := map[string]int{}           // label -> steps per apply
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep := runHelper(b, ns, helperRequest{Plan: plan, RootDir: root, CgroupNS: cgroupfs})
		if rep.ApplyErr != "" {
			b.Fatalf("Apply: %s", rep.ApplyErr)
		}
		total = append(total, time.Duration(rep.ApplyNS))
		decode = append(decode, time.Duration(rep.DecodeNS))
		n := map[string]int{}
		for _, e := range rep.Trace {
			per[e.Label] = append(per[e.Label], time.Duration(e.NS))
			n[e.Label]++
		}
		for l, c := range n {
			count[l] = c
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(median(total).Nanoseconds()), "apply-ns")
	b.ReportMetric(float64(median(decode).Nanoseconds()), "decode-ns")
	var labels []string
	for l := range per {
		labels = append(labels, l)
	}
	sort.Slice(labels, func(i, j int) bool {
		return median(per[labels[i]])*time.Duration(count[labels[i]]) > median(per[labels[j]])*time.Duration(count[labels[j]])
	})
	var sb strings.Builder
	fmt.Fprintf(&sb, "median Apply %v over %d sandboxes (plus %v to decode the plan's JSON in the fresh process)\n", median(total), len(total), median(decode))
	fmt.Fprintf(&sb, "per step kind: median of one step x steps per Apply = share\n")
	for _, l := range labels {
		m := median(per[l])
		fmt.Fprintf(&sb, "  %-30s %8v x %2d = %8v\n", l, m, count[l], m*time.Duration(count[l]))
	}
	if b.N > 1 {
		// b.Log output is cut at a few lines; this is the report.
		fmt.Fprint(os.Stderr, sb.String())
	}
}

func requireSandboxB(b *testing.B) {
	b.Helper()
	if reason := sandboxUnavailable(); reason != "" {
		b.Skip(reason)
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// BenchmarkNewPlan is the host-side cost for DefaultSpec, paid by every
// start.
func BenchmarkNewPlan(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := NewPlan(DefaultSpec()); err != nil {
			b.Fatal(err)
		}
	}
}

// runSpec is the filesystem part of `pinfold run`'s default policy, the
// spec whose NewPlan sits on the start path of every sandbox.
func runSpec() Spec {
	return Spec{
		ReadOnly: []Bind{{"/usr", "/usr"}, {"/bin", "/bin"}, {"/sbin", "/sbin"}, {"/lib", "/lib"}, {"/lib64", "/lib64"}},
		Tmpfs:    []Tmpfs{{Path: "/tmp", Size: 64 << 20}},
		ShmSize:  64 << 20,
		Hostname: "sandbox",
		UID:      65534,
		GID:      65534,
	}
}

// BenchmarkNewPlanDefault is NewPlan for runSpec, warm (in one process).
func BenchmarkNewPlanDefault(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := NewPlan(runSpec()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNewPlanFresh runs NewPlan for runSpec once in each of b.N fresh
// processes, as `pinfold run` does, and reports the median time of that one
// call ("newplan-ns": first-use costs included, process start excluded).
// Run with -benchtime=50x or more.
func BenchmarkNewPlanFresh(b *testing.B) {
	var d []time.Duration
	for i := 0; i < b.N; i++ {
		cmd := exec.Command("/proc/self/exe", "-test.run=^$")
		cmd.Env = append(os.Environ(), newPlanEnv+"=1")
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("helper: %v", err)
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
		if err != nil {
			b.Fatalf("helper said %q: %v", out, err)
		}
		d = append(d, time.Duration(ns))
	}
	b.ReportMetric(float64(median(d).Nanoseconds()), "newplan-ns")
}

// newPlanOnce is the fresh process of BenchmarkNewPlanFresh: it times one
// NewPlan and prints the nanoseconds.
func newPlanOnce() error {
	t := time.Now()
	_, err := NewPlan(runSpec())
	d := time.Since(t)
	if err != nil {
		return err
	}
	_, err = fmt.Println(d.Nanoseconds())
	return err
}

// BenchmarkPlanDecode is what the init stage pays to decode the default
// plan (Plan.UnmarshalJSON, warm) before Apply; BenchmarkApply reports the
// cost in a fresh process.
func BenchmarkPlanDecode(b *testing.B) {
	plan, err := NewPlan(runSpec())
	if err != nil {
		b.Fatal(err)
	}
	js, err := plan.MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(js)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var p Plan
		if err := p.UnmarshalJSON(js); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlanEncode is what `pinfold run` pays to encode the plan for
// the init stage.
func BenchmarkPlanEncode(b *testing.B) {
	plan, err := NewPlan(runSpec())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := plan.MarshalJSON(); err != nil {
			b.Fatal(err)
		}
	}
}
