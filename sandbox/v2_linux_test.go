package sandbox_test

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/cgroups/v3"

	"github.com/pinfold/pinfold/sandbox/policy"
)

// TestCgroupV2EndToEnd runs whole sandboxes on a pure cgroup v2 host: the
// init stage is cloned straight into the app's cgroup (CLONE_INTO_CGROUP),
// limits are cgroup2 files, an OOM kill is read from memory.events, and the
// cgroup is killed and removed at the end. These machines are v1 hybrid, so
// make test-vm runs this test inside a v2 kernel under QEMU.
func TestCgroupV2EndToEnd(t *testing.T) {
	if cgroups.Mode() != cgroups.Unified {
		t.Skip("the host is not a pure cgroup v2 host; make test-vm runs this test in a cgroup v2 VM")
	}
	sup := newSupervisor(t)

	t.Run("isolation", func(t *testing.T) {
		rep := runProbe(t, sup, probeSpec(t))
		st := rep.Status
		if rep.Pid != 1 || st["Seccomp"] != "2" || st["NoNewPrivs"] != "1" || st["CapEff"] != "0000000000000000" || st["CapBnd"] != "0000000000000000" {
			t.Errorf("pid %d, status %v; want pid 1, seccomp 2, no_new_privs 1, no capabilities", rep.Pid, st)
		}
	})

	t.Run("starts inside its cgroup with its limits", func(t *testing.T) {
		p := policy.Default()
		p.Spec.Resources.Memory = 64 * policy.MiB
		p.Spec.Resources.Pids = 32
		app, lines := startWithPipe(t, sup, probeSpecFor(t, p, "sleep"))
		if l := lines.next(t); l != "ready" {
			t.Fatalf("probe said %q", l)
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(app.Pid()) + "/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		cg := strings.TrimSpace(strings.TrimPrefix(string(b), "0::"))
		if !strings.HasSuffix(cg, "/"+testCgroupParent+"/"+app.ID) {
			t.Fatalf("the app is in cgroup %q, want .../%s/%s", cg, testCgroupParent, app.ID)
		}
		dir := "/sys/fs/cgroup" + cg
		for file, want := range map[string]string{"memory.max": "67108864", "memory.swap.max": "0", "pids.max": "32", "cpu.max": "100000 100000"} {
			got, err := os.ReadFile(dir + "/" + file)
			if err != nil {
				t.Errorf("%s: %v", file, err)
				continue
			}
			if strings.TrimSpace(string(got)) != want {
				t.Errorf("%s = %q, want %q", file, strings.TrimSpace(string(got)), want)
			}
		}
		if err := app.Kill(); err != nil {
			t.Fatal(err)
		}
		waitExit(t, app)
		if rep := app.Close(); rep.Err() != nil {
			t.Fatal(rep.Err())
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("cgroup %s still exists after Close (stat: %v)", dir, err)
		}
	})

	t.Run("oom kill", func(t *testing.T) {
		p := policy.Default()
		p.Spec.Resources.Memory = 32 * policy.MiB
		r := runApp(t, sup, probeSpecFor(t, p, "alloc", "256"))
		if e := r.exit; e.Signal != syscall.SIGKILL || !e.OOMKilled || e.ExitCode() != 137 {
			t.Errorf("exit = signal %v, oomKilled %v, code %d; want SIGKILL, true, 137", e.Signal, e.OOMKilled, e.ExitCode())
		}
	})
}
