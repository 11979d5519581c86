package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/sandbox"
	"github.com/pinfold/pinfold/sandbox/initstage"
	"github.com/pinfold/pinfold/sandbox/policy"
	"github.com/pinfold/pinfold/syscalls"
)

// exitRunUsage is what docker run returns for bad flags too: pinfold
// itself failed to run anything.
const exitRunUsage = exitPinfoldFailed

const runUsage = `Usage: pinfold run [flags] -- CMD [ARGS...]

Runs CMD in a new sandbox and passes its stdin, stdout and stderr through.
Without --policy the default policy applies (pinfold policy default shows it).

Exit status: the app's own code; 128+N if signal N killed it (137 for
SIGKILL, e.g. OOM or timeout); 125 if pinfold failed; 126 if CMD cannot be
executed; 127 if CMD was not found in the sandbox.

Flags:
`

type runFlags struct {
	policyFile string
	name       string
	timeout    time.Duration
	env        []string
	binds      []string
	workdir    string
	stats      bool
	output     string
	stateDir   string
}

func parseRunFlags(args []string) (*runFlags, []string, error) {
	f := &runFlags{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.policyFile, "policy", "", "policy `FILE` (YAML); default: the built-in default policy")
	fs.StringVar(&f.name, "name", "", "`NAME` of the app (shown in stats and state records)")
	fs.DurationVar(&f.timeout, "timeout", 0, "kill the app after `DUR` (e.g. 30s); overrides the policy's wallTime")
	fs.Func("env", "set `K=V` in the app's environment (repeatable)", func(s string) error {
		f.env = append(f.env, s)
		return nil
	})
	fs.Func("bind", "bind-mount host `SRC:DST[:ro|rw]` (or just PATH; read-only unless :rw; repeatable)", func(s string) error {
		f.binds = append(f.binds, s)
		return nil
	})
	fs.StringVar(&f.workdir, "workdir", "", "working `DIR` inside the sandbox (absolute)")
	fs.BoolVar(&f.stats, "stats", false, "print a summary to stderr when the app exits")
	fs.StringVar(&f.output, "o", "", "summary `FORMAT`: json (implies --stats; one JSON object on stderr)")
	fs.StringVar(&f.stateDir, "state-dir", sandbox.DefaultStateDir, "state `DIR` (records, seccomp cache)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Print(runUsage)
			fs.PrintDefaults()
			return nil, nil, &exitError{code: 0}
		}
		return nil, nil, &exitError{code: exitRunUsage, msg: "run: " + err.Error() + " (see pinfold run -h)"}
	}
	if f.output != "" && f.output != "json" {
		return nil, nil, &exitError{code: exitRunUsage, msg: fmt.Sprintf("run: -o %q: the only output format is json", f.output)}
	}
	if fs.NArg() == 0 {
		return nil, nil, &exitError{code: exitRunUsage, msg: "run: no command given (usage: pinfold run [flags] -- CMD [ARGS...])"}
	}
	return f, fs.Args(), nil
}

func runCmd(args []string) error {
	// The first signal.Notify starts the runtime's signal thread and waits
	// for it (~0.3 ms here): do it alongside the rest of the start. Until it
	// is in place a SIGINT/SIGTERM/SIGHUP kills pinfold itself, which kills
	// the app (parent-death signal) and leaves its cgroup and record to the
	// next run's recovery: nothing is lost either way.
	sigs := make(chan os.Signal, 8)
	subscribed := make(chan struct{})
	go func() {
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		close(subscribed)
	}()
	// No signal.Stop on the way out: it waits for the runtime's signal
	// loop to go idle (~2 ms measured here), and the process is exiting.
	f, cmdArgs, err := parseRunFlags(args)
	if err != nil {
		return err
	}
	// The supervisor (cgroup discovery, state dir) and the recovery of
	// earlier runs' leftovers are independent of the policy: they run on
	// the other CPU while the policy is loaded and turned into a spec.
	supReady := make(chan supervisorResult, 1)
	go func() { supReady <- newSupervisor("run", f.stateDir, nil) }()
	p, err := loadPolicy(f.policyFile)
	if err != nil {
		return err
	}
	extraEnv, err := applyRunFlags(p, f)
	if err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return &exitError{code: exitPinfoldFailed, msg: "invalid policy after applying flags:\n" + err.Error()}
	}
	spec, err := sandbox.FromPolicy(p, cmdArgs, extraEnv)
	if err != nil {
		return err
	}
	spec.Name = f.name
	spec.Stdin, spec.Stdout, spec.Stderr = os.Stdin, os.Stdout, os.Stderr

	sup, err := (<-supReady).get()
	if err != nil {
		return err
	}

	<-subscribed // long done by now: it ran alongside the preparation above
	app, err := sup.Start(spec)
	if err != nil {
		return startFailure(err, f)
	}
	defer app.Close() // on every path, including a panic below

	var stopTimer <-chan time.Time
	for waiting := true; waiting; {
		select {
		case sig := <-sigs:
			_ = app.Signal(sig.(syscall.Signal))
			if stopTimer == nil {
				stopTimer = time.After(spec.StopTimeout)
			}
		case <-stopTimer:
			fmt.Fprintf(os.Stderr, "pinfold: app did not exit within %s of the signal; killing everything in its sandbox\n", spec.StopTimeout)
			_ = app.Kill()
		case <-app.Done():
			waiting = false
		}
	}
	exit, err := app.Wait()
	if err != nil {
		return err
	}
	var use appUsage
	if f.stats || f.output == "json" {
		// Read before Close removes the cgroup.
		use.Stats, use.err = app.Usage()
	}
	report := app.Close()
	if exit.TimedOut {
		fmt.Fprintf(os.Stderr, "pinfold: timeout: killed %q after %s (wall-time limit)\n", strings.Join(cmdArgs, " "), spec.WallTime)
	}
	if f.stats || f.output == "json" {
		printSummary(os.Stderr, f.output == "json", app, exit, use, report)
	}
	if err := report.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "pinfold: warning: cleanup: %v\n", err)
	}
	if code := exit.ExitCode(); code != 0 {
		return &exitError{code: code}
	}
	return nil
}

type supervisorResult struct {
	sup *sandbox.Supervisor
	err error
}

func (r supervisorResult) get() (*sandbox.Supervisor, error) { return r.sup, r.err }

// newSupervisor builds the embedded supervisor and releases what runs that
// were SIGKILLed left behind.
func newSupervisor(cmd, stateDir string, broker *ipc.Broker) supervisorResult {
	sup, err := sandbox.NewSupervisor(sandbox.Options{StateDir: stateDir, CgroupSelfLeaf: "supervisor", Broker: broker})
	if errors.Is(err, cgroup.ErrNotSupported) {
		return supervisorResult{err: fmt.Errorf("%w\nhint: on a cgroup v2 host, run pinfold in a cgroup delegated to it, e.g. systemd-run --scope -p Delegate=yes pinfold %s ...", err, cmd)}
	}
	if err != nil {
		return supervisorResult{err: err}
	}
	if _, err := sup.Recover(); err != nil {
		fmt.Fprintf(os.Stderr, "pinfold %s: warning: releasing what an earlier run left behind: %v\n", cmd, err)
	}
	return supervisorResult{sup: sup}
}

// startFailure maps a failure to start to docker run's exit codes.
func startFailure(err error, f *runFlags) error {
	var ie *initstage.Error
	code := exitPinfoldFailed
	if errors.As(err, &ie) && ie.IsExecStep() {
		code = exitCannotExec
		if errors.Is(ie, syscall.ENOENT) {
			code = exitNotFound
		}
	}
	var se *sandbox.StartError
	if errors.As(err, &se) {
		if cerr := se.Cleanup.Err(); cerr != nil {
			fmt.Fprintf(os.Stderr, "pinfold: warning: cleanup after the failure: %v\n", cerr)
		}
		if f.stats || f.output == "json" {
			printFailure(os.Stderr, f.output == "json", err, se.Cleanup)
		}
	}
	return &exitError{code: code, msg: err.Error()}
}

func loadPolicy(file string) (*policy.Policy, error) {
	if file == "" {
		return policy.Default(), nil
	}
	p, err := policy.LoadFile(file)
	if err != nil {
		return nil, &exitError{code: exitPinfoldFailed, msg: "policy:\n" + err.Error()}
	}
	return p, nil
}

// applyRunFlags merges the command-line flags into the policy and returns
// the environment additions (flags win over the policy).
func applyRunFlags(p *policy.Policy, f *runFlags) (map[string]string, error) {
	for _, b := range f.binds {
		bind, rw, err := parseBind(b)
		if err != nil {
			return nil, &exitError{code: exitRunUsage, msg: fmt.Sprintf("--bind %s: %v", b, err)}
		}
		if rw {
			p.Spec.Filesystem.ReadWrite = append(p.Spec.Filesystem.ReadWrite, bind)
		} else {
			p.Spec.Filesystem.ReadOnly = append(p.Spec.Filesystem.ReadOnly, bind)
		}
	}
	if f.workdir != "" {
		if !filepath.IsAbs(f.workdir) {
			return nil, &exitError{code: exitRunUsage, msg: fmt.Sprintf("--workdir %s: not an absolute path", f.workdir)}
		}
		p.Spec.Filesystem.Workdir = filepath.Clean(f.workdir)
	}
	if f.timeout < 0 {
		return nil, &exitError{code: exitRunUsage, msg: "--timeout: must not be negative"}
	}
	if f.timeout > 0 {
		p.Spec.Limits.WallTime = f.timeout
	}
	env := map[string]string{}
	if t, ok := os.LookupEnv("TERM"); ok {
		env["TERM"] = t
	}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, &exitError{code: exitRunUsage, msg: fmt.Sprintf("--env %s: use K=V", kv)}
		}
		if p.Spec.Env == nil {
			p.Spec.Env = map[string]string{}
		}
		p.Spec.Env[k] = v
	}
	return env, nil
}

// parseBind parses SRC:DST[:ro|rw] or PATH[:ro|rw].
func parseBind(s string) (policy.Bind, bool, error) {
	parts := strings.Split(s, ":")
	rw := false
	if n := len(parts); n >= 2 && (parts[n-1] == "ro" || parts[n-1] == "rw") {
		rw = parts[n-1] == "rw"
		parts = parts[:n-1]
	}
	var src, dst string
	switch len(parts) {
	case 1:
		src, dst = parts[0], parts[0]
	case 2:
		src, dst = parts[0], parts[1]
	default:
		return policy.Bind{}, false, errors.New("use SRC:DST[:ro|rw]")
	}
	if !filepath.IsAbs(src) || !filepath.IsAbs(dst) {
		return policy.Bind{}, false, errors.New("both paths must be absolute")
	}
	if _, err := os.Stat(src); err != nil {
		return policy.Bind{}, false, fmt.Errorf("%s does not exist on this host", src)
	}
	return policy.Bind{Source: filepath.Clean(src), Destination: filepath.Clean(dst)}, rw, nil
}

// appUsage is what the app's cgroup accounted, as the summary shows it.
type appUsage struct {
	*cgroup.Stats
	err error
}

// usageJSON is the summary's "usage" object, with units in the names.
type usageJSON struct {
	CPUUserNs       int64  `json:"cpuUserNs"`
	CPUSystemNs     int64  `json:"cpuSystemNs"`
	CPUThrottledNs  int64  `json:"cpuThrottledNs"`
	MemoryPeakBytes uint64 `json:"memoryPeakBytes"`
	MemoryLimit     uint64 `json:"memoryLimitBytes"`
	OOMKills        uint64 `json:"oomKills"`
	PidsPeak        uint64 `json:"pidsPeak"`
	PidsLimit       uint64 `json:"pidsLimit"`
	PidsLimitHits   uint64 `json:"pidsLimitHits"`
	Error           string `json:"error,omitempty"`
}

func (u appUsage) json() *usageJSON {
	if u.err != nil {
		return &usageJSON{Error: u.err.Error()}
	}
	if u.Stats == nil {
		return nil
	}
	return &usageJSON{
		CPUUserNs: int64(u.CPUUser), CPUSystemNs: int64(u.CPUSystem), CPUThrottledNs: int64(u.CPUThrottled),
		MemoryPeakBytes: u.MemoryPeak, MemoryLimit: u.MemoryLimit, OOMKills: u.OOMKills,
		PidsPeak: u.PidsPeak, PidsLimit: u.PidsLimit, PidsLimitHits: u.PidsLimitHits,
	}
}

type summary struct {
	ID        string          `json:"id"`
	Name      string          `json:"name,omitempty"`
	ExitCode  int             `json:"exitCode"`
	Exit      *sandbox.Exit   `json:"exit,omitempty"`
	Usage     *usageJSON      `json:"usage,omitempty"`
	SignalStr string          `json:"signalName,omitempty"`
	Error     string          `json:"error,omitempty"`
	Start     []sandbox.Phase `json:"start,omitempty"`
	Cleanup   *sandbox.Report `json:"cleanup"`
}

func printSummary(w io.Writer, asJSON bool, app *sandbox.App, exit *sandbox.Exit, use appUsage, rep sandbox.Report) {
	if asJSON {
		s := summary{ID: app.ID, Name: app.Name, ExitCode: exit.ExitCode(), Exit: exit, Usage: use.json(), Start: app.StartPhases(), Cleanup: &rep}
		if exit.Signal != 0 {
			s.SignalStr = signalName(exit.Signal)
		}
		_ = json.NewEncoder(w).Encode(s)
		return
	}
	how := fmt.Sprintf("exit code %d", exit.Code)
	if exit.Signal != 0 {
		how = fmt.Sprintf("killed by %s (exit status %d)", signalName(exit.Signal), exit.ExitCode())
	}
	fmt.Fprintf(w, "pinfold: app %s %s\n", app.ID, how)
	fmt.Fprintf(w, "  oom killed:   %s\n", yesNo(exit.OOMKilled))
	fmt.Fprintf(w, "  timed out:    %s\n", yesNo(exit.TimedOut))
	var total time.Duration
	var parts []string
	for _, p := range app.StartPhases() {
		total += p.Duration
		parts = append(parts, p.Name+" "+round(p.Duration))
	}
	fmt.Fprintf(w, "  start:        %s (%s)\n", round(total), strings.Join(parts, ", "))
	fmt.Fprintf(w, "  wall time:    %s\n", round(exit.Wall))
	if use.err != nil {
		fmt.Fprintf(w, "  usage:        unavailable: %v\n", use.err)
	} else if use.Stats != nil {
		fmt.Fprintf(w, "  cpu time:     %s user, %s system (throttled %s)\n", round(use.CPUUser), round(use.CPUSystem), round(use.CPUThrottled))
		fmt.Fprintf(w, "  memory peak:  %s of %s\n", bytesHuman(use.MemoryPeak), bytesHuman(use.MemoryLimit))
		fmt.Fprintf(w, "  pids peak:    %d of %d\n", use.PidsPeak, use.PidsLimit)
	}
	if exit.Err != "" {
		fmt.Fprintf(w, "  exit error:   %s\n", exit.Err)
	}
	printReport(w, rep)
}

func printFailure(w io.Writer, asJSON bool, err error, rep sandbox.Report) {
	if asJSON {
		_ = json.NewEncoder(w).Encode(summary{ExitCode: -1, Error: err.Error(), Cleanup: &rep})
		return
	}
	printReport(w, rep)
}

func printReport(w io.Writer, rep sandbox.Report) {
	fmt.Fprintf(w, "  cleanup:      %s total\n", round(rep.Total))
	for _, s := range rep.Steps {
		status := "ok"
		if s.Err != "" {
			status = "FAILED: " + s.Err
		}
		fmt.Fprintf(w, "    %-13s %-10s %s %s\n", s.Resource, round(s.Duration), status, s.Name)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func bytesHuman(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func signalName(s syscall.Signal) string {
	if n := syscalls.SignalName(s); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}
