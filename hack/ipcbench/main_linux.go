package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/sandbox/initstage"
)

func init() {
	// As in cmd/pinfold: main keeps the main thread, which the init stage
	// role needs and the supervisor role wants (the spawner has its own).
	runtime.LockOSThread()
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case initstage.Arg:
			initstage.Main() // never returns
		case workerArg:
			os.Exit(workerMain())
		}
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ipcbench: "+err.Error())
		os.Exit(1)
	}
}

type config struct {
	rounds     int
	shmSize    int64
	shmPasses  int
	pipeBytes  int64
	chunk      int
	mqN        int
	mqMaxMsg   int64
	mqMsgSize  int64
	rttN       int
	mqOpenN    int
	placements []placement
	only       map[string]bool
	warmScale  float64
	output     string
	jsonFile   string
	stateDir   string
	quiet      bool
	tweaks     map[string]bool
	rawCgroups string
	rawEcho    string
}

func (c *config) wants(test string) bool { return len(c.only) == 0 || c.only[test] }

const usageText = `usage: ipcbench [flags]

Measures pinfold's IPC channels and syscall round trips beside raw kernel
baselines, in one run of one binary, with the same CPU placement for both:

  shm      a memfd the broker made, written by one sandboxed app and read by
           another (descriptors from their pre-wired channels), vs a memfd
           shared by two plain processes
  pipe     a broker pipe between the two apps vs a pipe2() pipe
  mq       a broker message queue vs a queue from mq_open(), same attributes
  rtt-nop  a nop call app -> pinfold -> app (Go client) vs a SEQPACKET echo
  rtt-fd   shm_attach, which returns a descriptor, vs an echo that passes one
  mqopen   mq_open(2) brokered by seccomp user notification vs the kernel's

Every test runs on both sides back to back, several rounds; the table shows
medians, pinfold/raw, the target and pass/miss. Needs root.

Flags:
`

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("ipcbench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	cfg := &config{}
	var shmMiB, pipeMiB, chunkKiB int
	var placements, cpus, only string
	var quick bool
	var tweaks string
	fs.IntVar(&cfg.rounds, "rounds", 7, "timed rounds per placement (the median is reported)")
	fs.IntVar(&shmMiB, "shm-mib", 256, "shared memory size, MiB")
	fs.IntVar(&cfg.shmPasses, "shm-passes", 4, "fills and reads of the shared memory per round")
	fs.IntVar(&pipeMiB, "pipe-mib", 512, "bytes through the pipe per round, MiB")
	fs.IntVar(&chunkKiB, "chunk-kib", 64, "pipe write/read size, KiB")
	fs.IntVar(&cfg.mqN, "mq-n", 100000, "messages per round")
	fs.Int64Var(&cfg.mqMaxMsg, "mq-maxmsg", 10, "queue maxmsg (both queues)")
	fs.Int64Var(&cfg.mqMsgSize, "mq-msgsize", 1024, "queue msgsize, and the size of every message")
	fs.IntVar(&cfg.rttN, "rtt-n", 10000, "round trips per round")
	fs.IntVar(&cfg.mqOpenN, "mqopen-n", 2000, "mq_open calls per round")
	fs.StringVar(&placements, "placements", "same,cross,unpinned", "CPU placements to measure: same, cross, unpinned")
	fs.StringVar(&cpus, "cpus", "0,1", "the two CPUs: the app's, and the peer's for cross")
	fs.StringVar(&only, "tests", "", "comma-separated tests to run (default all): shm,pipe,mq,rtt-nop,rtt-fd,mqopen")
	fs.BoolVar(&quick, "quick", false, "3 rounds and a quarter of every size, for a fast look")
	fs.StringVar(&cfg.output, "o", "table", "output: table or json")
	fs.StringVar(&cfg.jsonFile, "json", "", "also write the JSON report to this file")
	fs.StringVar(&cfg.stateDir, "state-dir", "/run/pinfold-ipcbench", "the supervisor's state dir (what a killed run left is released at the next start)")
	fs.BoolVar(&cfg.quiet, "q", false, "no progress on stderr")
	fs.StringVar(&cfg.rawCgroups, "raw-cgroups", "", "diagnostics: put each raw worker in a cgroup of its own like an app's: bare (no limits) or limits (the default policy's)")
	fs.StringVar(&cfg.rawEcho, "raw-echo", "recvmsg", "diagnostics: how the raw echo waits for a request: recvmsg, epoll (epoll_wait, then recvmsg) or netpoll (Go's netpoller, as pinfold's server waits)")
	fs.StringVar(&tweaks, "app-tweaks", "", "diagnostics: run the apps off the default policy: nocpulimit (no CPU quota), noseccomp (no filter; not for mq_open)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if quick {
		cfg.rounds = 3
		pipeMiB /= 4
		cfg.mqN /= 4
		cfg.rttN /= 4
		cfg.mqOpenN /= 4
	}
	cfg.warmScale = 0.25
	cfg.shmSize = int64(shmMiB) << 20
	cfg.pipeBytes = int64(pipeMiB) << 20
	cfg.chunk = chunkKiB << 10
	switch {
	case cfg.rounds < 1:
		return nil, errors.New("-rounds must be at least 1")
	case shmMiB < 1 || cfg.shmPasses < 1 || pipeMiB < 1 || chunkKiB < 1 || cfg.mqN < 1 || cfg.rttN < 100 || cfg.mqOpenN < 100:
		return nil, errors.New("sizes and counts must be positive (-rtt-n and -mqopen-n at least 100)")
	case cfg.mqMaxMsg < 1 || cfg.mqMsgSize < 1:
		return nil, errors.New("-mq-maxmsg and -mq-msgsize must be positive")
	case cfg.output != "table" && cfg.output != "json":
		return nil, fmt.Errorf("-o %s: want table or json", cfg.output)
	}
	a, b, ok := strings.Cut(cpus, ",")
	cpuA, errA := strconv.Atoi(a)
	cpuB, errB := strconv.Atoi(b)
	n := onlineCPUs()
	if !ok || errA != nil || errB != nil || cpuA < 0 || cpuB < 0 || cpuA >= n || cpuB >= n || cpuA == cpuB {
		return nil, fmt.Errorf("-cpus %q: want two different online CPUs, like 0,1 (this machine has %d)", cpus, n)
	}
	for _, p := range strings.Split(placements, ",") {
		switch p {
		case "same":
			cfg.placements = append(cfg.placements, placement{Name: "same", App: cpuA, Peer: cpuA})
		case "cross":
			cfg.placements = append(cfg.placements, placement{Name: "cross", App: cpuA, Peer: cpuB})
		case "unpinned":
			cfg.placements = append(cfg.placements, placement{Name: "unpinned", App: -1, Peer: -1})
		default:
			return nil, fmt.Errorf("-placements: unknown placement %q (same, cross, unpinned)", p)
		}
	}
	if cfg.rawEcho != "recvmsg" && cfg.rawEcho != "epoll" && cfg.rawEcho != "netpoll" {
		return nil, fmt.Errorf("-raw-echo %q: want recvmsg, epoll or netpoll", cfg.rawEcho)
	}
	if cfg.rawCgroups != "" && cfg.rawCgroups != "bare" && cfg.rawCgroups != "limits" {
		return nil, fmt.Errorf("-raw-cgroups %q: want bare or limits", cfg.rawCgroups)
	}
	cfg.tweaks = map[string]bool{}
	for _, t := range strings.Split(tweaks, ",") {
		switch t {
		case "":
		case "nocpulimit", "noseccomp":
			cfg.tweaks[t] = true
		default:
			return nil, fmt.Errorf("-app-tweaks: unknown tweak %q (nocpulimit, noseccomp)", t)
		}
	}
	if only != "" {
		cfg.only = map[string]bool{}
		known := map[string]bool{}
		for _, t := range tests {
			known[t.name] = true
		}
		for _, t := range strings.Split(only, ",") {
			if !known[t] {
				return nil, fmt.Errorf("-tests: unknown test %q", t)
			}
			cfg.only[t] = true
		}
	}
	return cfg, nil
}

func run(args []string) (err error) {
	cfg, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it starts sandboxes (namespaces, cgroups, seccomp)")
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	b := &bench{cfg: cfg, ctx: ctx, results: newResults(cfg.placements)}
	pressureBefore := cpuPressure()
	start := time.Now()
	raw, err := startRaw(cfg, exe)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, wrap("stopping the raw workers", raw.close())) }()
	env, err := newPinfoldEnv(exe, cfg.stateDir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, wrap("releasing the sandboxes", env.close())) }()
	pin, err := startPinfold(cfg, env)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, wrap("stopping the apps", pin.close())) }()
	b.sides = [2]*side{raw, pin}
	b.progress("started 3 raw workers and 3 sandboxed apps in %v", time.Since(start).Round(time.Millisecond))

	if err := b.run(); err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted (what it started is released)")
		}
		return err
	}
	rep := report{
		Machine:    machineFacts(),
		Method:     methodFacts(cfg),
		Placements: cfg.placements,
		Rows:       b.results.rows(metrics(cfg)),
	}
	rep.Machine["cpu pressure before"] = pressureBefore + " (PSI cpu some avg10: other work waiting for the CPUs; near 0% on a quiet machine)"
	rep.Method["duration"] = time.Since(start).Round(time.Second).String()
	if cfg.output == "json" {
		err = writeJSON(os.Stdout, rep)
	} else {
		writeTable(os.Stdout, rep, placement.describe)
	}
	if cfg.jsonFile != "" {
		err = errors.Join(err, writeJSONFile(cfg.jsonFile, rep))
	}
	if err == nil {
		for _, x := range rep.Rows {
			if x.Result == "fail" {
				err = errors.New("a test failed (see the table)")
				break
			}
		}
	}
	return err
}

func writeJSONFile(path string, rep report) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := writeJSON(f, rep); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// cpuPressure is the "some avg10" of /proc/pressure/cpu: the share of the
// last 10 s in which some runnable task waited for a CPU.
func cpuPressure() string {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return "unknown"
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "avg10="); ok {
			return v + "%"
		}
	}
	return "unknown"
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

func machineFacts() map[string]string {
	m := map[string]string{
		"go":   runtime.Version(),
		"cpus": strconv.Itoa(onlineCPUs()),
		"date": time.Now().UTC().Format(time.RFC3339),
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m["kernel"] = utsString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu model"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/shmem_enabled"); err == nil {
		m["shmem THP"] = strings.TrimSpace(string(b))
	}
	return m
}

func utsString(b []int8) string {
	var out bytes.Buffer
	for _, c := range b {
		if c == 0 {
			break
		}
		out.WriteByte(byte(c))
	}
	return out.String()
}

func methodFacts(cfg *config) map[string]any {
	m := methodBase(cfg)
	if cfg.rawCgroups != "" {
		m["DIAGNOSTIC raw cgroups"] = "raw workers each in a cgroup like an app's: " + cfg.rawCgroups
	}
	if cfg.rawEcho != "recvmsg" {
		m["DIAGNOSTIC raw echo"] = "waits in " + cfg.rawEcho
	}
	if len(cfg.tweaks) > 0 {
		var t []string
		for k := range cfg.tweaks {
			t = append(t, k)
		}
		m["DIAGNOSTIC app tweaks"] = strings.Join(t, ",") + " (not the default policy)"
	}
	return m
}

func methodBase(cfg *config) map[string]any {
	return map[string]any{
		"rounds":            cfg.rounds,
		"GOMAXPROCS":        fmt.Sprintf("supervisor %d (as pinfold: all CPUs), workers 1", runtime.GOMAXPROCS(0)),
		"raw workers":       "plain child processes of the supervisor process, same cgroups",
		"pinfold workers":   "sandboxed apps, default policy (seccomp, cgroup limits, namespaces, uid 65534)",
		"shm":               fmt.Sprintf("%s, %d handoffs per round", size(cfg.shmSize), cfg.shmPasses),
		"pipe":              fmt.Sprintf("%s per round in %s chunks", size(cfg.pipeBytes), size(int64(cfg.chunk))),
		"mq":                fmt.Sprintf("%d messages of %d B per round, maxmsg %d", cfg.mqN, cfg.mqMsgSize, cfg.mqMaxMsg),
		"round trips":       fmt.Sprintf("%d per round; mq_open %d per round", cfg.rttN, cfg.mqOpenN),
		"warm-up per place": fmt.Sprintf("every test once at %.0f%% size (shm: whole buffer)", cfg.warmScale*100),
	}
}
