package cgroup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The test binary doubles as the processes the tests put in cgroups, like
// os/exec's tests: TestMain runs a helper role instead of the tests when
// roleEnv is set.
const (
	roleEnv   = "PINFOLD_CGROUP_TEST_ROLE"
	noWaitEnv = "PINFOLD_CGROUP_TEST_NOWAIT" // start at once instead of waiting for "go" on stdin
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role, os.Args[1:]))
	}
	os.Exit(m.Run())
}

func runRole(role string, args []string) int {
	if os.Getenv(noWaitEnv) == "" {
		// Wait until the test has placed us in every hierarchy.
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, "waiting for go:", err)
			return 3
		}
	}
	arg := func(i int) int {
		n, err := strconv.Atoi(args[i])
		if err != nil {
			panic(err)
		}
		return n
	}
	switch role {
	case "sleep":
		for {
			time.Sleep(time.Hour)
		}
	case "alloc": // alloc MiB: touch MiB mebibytes, then exit 0
		var keep [][]byte
		for range arg(0) {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep), "MiB")
		return 0
	case "spawn": // spawn N: start up to N sleeping children; report the first failure
		for i := range arg(0) {
			if err := startChild("sleep"); err != nil {
				fmt.Printf("spawned %d: %v\n", i, err)
				if errors.Is(err, syscall.EAGAIN) {
					fmt.Println("EAGAIN")
				}
				return 0
			}
		}
		fmt.Println("spawned all")
		return 0
	case "storm": // every process starts children as fast as it can, for ever
		signal.Ignore(syscall.SIGCHLD) // the kernel reaps them
		for {
			if err := startChild("storm"); err != nil {
				time.Sleep(time.Millisecond)
			}
		}
	case "burn": // burn N: spin N threads
		n := arg(0)
		runtime.GOMAXPROCS(n)
		for range n - 1 {
			go spin()
		}
		spin()
	case "recover": // recover JSON: what a restarted supervisor does with a persisted record
		var p Paths
		if err := json.Unmarshal([]byte(args[0]), &p); err != nil {
			fmt.Println(err)
			return 1
		}
		cg, err := Load(p)
		if err != nil {
			fmt.Println(err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := errors.Join(cg.Kill(ctx), cg.Delete(), cg.Close()); err != nil {
			fmt.Println(err)
			return 1
		}
		fmt.Println("recovered")
		return 0
	case "delegated":
		if err := delegatedRole(); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("delegated ok")
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown role", role)
	return 2
}

func spin() {
	for x := 0; ; x++ {
		if x == -1 {
			fmt.Println()
		}
	}
}

func startChild(role string) error {
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, noWaitEnv+"=1", "GOMAXPROCS=1")
	return cmd.Start()
}

// delegatedRole runs as a systemd service with Delegate=yes would: in a
// non-root cgroup that has controllers available but holds the process
// itself.
func delegatedRole() error {
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	if _, err := NewManager(ManagerConfig{}); !errors.Is(err, ErrNotSupported) {
		return fmt.Errorf("NewManager without SelfLeaf in %s: got %v, want ErrNotSupported", own, err)
	}
	m, err := NewManager(ManagerConfig{SelfLeaf: "supervisor"})
	if err != nil {
		return fmt.Errorf("NewManager with SelfLeaf: %w", err)
	}
	now, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return err
	}
	if want := strings.TrimSpace(string(own)) + "/supervisor"; strings.TrimSpace(string(now)) != want {
		return fmt.Errorf("after NewManager the process is in %q, want %q", now, want)
	}
	limit := int64(16)
	cg, err := m.New(Config{Name: "pinfold/app", Resources: &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: &limit}}})
	if err != nil {
		return err
	}
	defer cg.Close()
	fd, ok := cg.CgroupFD()
	if !ok {
		return errors.New("no cgroup fd on a unified host")
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), roleEnv+"=sleep", noWaitEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting into the app cgroup: %w", err)
	}
	in, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	if err != nil {
		return err
	}
	if want := strings.TrimSpace(string(own)) + "/pinfold/app"; strings.TrimSpace(string(in)) != want {
		return fmt.Errorf("child is in %q, want %q", in, want)
	}
	if got, _ := os.ReadFile(filepath.Join(cg.Paths().Unified, "pids.max")); strings.TrimSpace(string(got)) != "16" {
		return fmt.Errorf("pids.max = %q, want 16", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cg.Kill(ctx); err != nil {
		return err
	}
	_ = cmd.Wait()
	if err := cg.Delete(); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Dir(cg.Paths().Unified)); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("shared parent %s left behind: %v", filepath.Dir(cg.Paths().Unified), err)
	}
	return nil
}
