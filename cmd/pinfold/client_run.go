package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/internal/client"
	"github.com/pinfold/pinfold/sandbox"
)

const clientRunUsage = `Usage: pinfold --host HOST run [flags] -- CMD [ARGS...]

Runs CMD in a new sandbox of the pinfold daemon at HOST (or $PINFOLD_HOST)
and passes its stdin, stdout and stderr through; with -d, starts it
detached and prints its id (its output goes to its log: pinfold logs ID).
--policy names a policy the daemon has loaded (pinfold policy list); without
a daemon, pinfold run is embedded and --policy takes a file.

Exit status: the app's own code; 128+N if signal N killed it (137 for
SIGKILL, e.g. OOM or timeout); 125 if pinfold or the daemon failed; 126 if
CMD cannot be executed; 127 if CMD was not found in the sandbox.
SIGINT, SIGTERM and SIGHUP sent to pinfold go to the app. If pinfold goes
away, the daemon kills the app.

Flags:
`

// stdinChunk is how much of stdin goes into one message.
const stdinChunk = 32 << 10

type clientRunFlags struct {
	runFlags
	detach bool
}

func parseClientRunFlags(args []string) (*clientRunFlags, []string, error) {
	f := &clientRunFlags{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.policyFile, "policy", "", "`NAME` of a policy the daemon has loaded; default: its default policy")
	fs.StringVar(&f.name, "name", "", "`NAME` of the app (shown by ps)")
	fs.DurationVar(&f.timeout, "timeout", 0, "kill the app after `DUR` (e.g. 30s); overrides the policy's wallTime")
	fs.Func("env", "set `K=V` in the app's environment (repeatable)", func(s string) error {
		f.env = append(f.env, s)
		return nil
	})
	fs.Func("bind", "bind-mount host `SRC:DST[:ro|rw]` (or just PATH; read-only unless :rw; repeatable; root only)", func(s string) error {
		f.binds = append(f.binds, s)
		return nil
	})
	fs.StringVar(&f.workdir, "workdir", "", "working `DIR` inside the sandbox (absolute)")
	fs.BoolVar(&f.stats, "stats", false, "print a summary to stderr when the app exits")
	fs.StringVar(&f.output, "o", "", "summary `FORMAT`: json (implies --stats; one JSON object on stderr; with -d, the app on stdout)")
	fs.StringVar(&f.stateDir, "state-dir", "", "not used with a daemon (it has its own)")
	fs.BoolVar(&f.detach, "d", false, "detach: start the app, print its id and return")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fmt.Print(clientRunUsage)
			fs.PrintDefaults()
			return nil, nil, &exitError{code: 0}
		}
		return nil, nil, &exitError{code: exitRunUsage, msg: "run: " + err.Error() + " (see pinfold run -h)"}
	}
	if f.output != "" && f.output != "json" {
		return nil, nil, &exitError{code: exitRunUsage, msg: fmt.Sprintf("run: -o %q: the only output format is json", f.output)}
	}
	if f.stateDir != "" {
		return nil, nil, &exitError{code: exitRunUsage, msg: "run: --state-dir is for embedded runs; a daemon uses its own (pinfold daemon --state-dir)"}
	}
	if f.detach && f.stats {
		return nil, nil, &exitError{code: exitRunUsage, msg: "run: --stats and -d: a detached app has no summary; see pinfold inspect ID and pinfold stats ID"}
	}
	if fs.NArg() == 0 {
		return nil, nil, &exitError{code: exitRunUsage, msg: "run: no command given (usage: pinfold run [flags] -- CMD [ARGS...])"}
	}
	return f, fs.Args(), nil
}

// appSpec turns the flags into the API's spec; the same checks as an
// embedded run, made here so a mistake is reported before anything starts.
func (f *clientRunFlags) appSpec(args []string, lookupEnv func(string) (string, bool)) (*v1.AppSpec, error) {
	spec := &v1.AppSpec{Name: f.name, Policy: f.policyFile, Args: args, Workdir: f.workdir}
	for _, b := range f.binds {
		bind, rw, err := parseBind(b)
		if err != nil {
			return nil, &exitError{code: exitRunUsage, msg: fmt.Sprintf("--bind %s: %v", b, err)}
		}
		spec.Binds = append(spec.Binds, &v1.Bind{Source: bind.Source, Destination: bind.Destination, ReadWrite: rw})
	}
	if f.workdir != "" {
		if !filepath.IsAbs(f.workdir) {
			return nil, &exitError{code: exitRunUsage, msg: fmt.Sprintf("--workdir %s: not an absolute path", f.workdir)}
		}
		spec.Workdir = filepath.Clean(f.workdir)
	}
	if f.timeout < 0 {
		return nil, &exitError{code: exitRunUsage, msg: "--timeout: must not be negative"}
	}
	if f.timeout > 0 {
		spec.Timeout = durationpb.New(f.timeout)
	}
	env := map[string]string{}
	// The caller's TERM, as an embedded run passes it (--env wins).
	if t, ok := lookupEnv("TERM"); ok {
		env["TERM"] = t
	}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, &exitError{code: exitRunUsage, msg: fmt.Sprintf("--env %s: use K=V", kv)}
		}
		env[k] = v
	}
	if len(env) > 0 {
		spec.Env = env
	}
	return spec, nil
}

// clientRun is pinfold run through a daemon: one bidirectional Run stream
// carries the spec, stdin and signals one way and the app's output and exit
// status the other. No other call is made on the way (the start latency is
// the daemon's, plus one stream).
func clientRun(host string, args []string) error {
	sigs := make(chan os.Signal, 8)
	subscribed := make(chan struct{})
	go func() {
		signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		close(subscribed)
	}()
	f, cmdArgs, err := parseClientRunFlags(args)
	if err != nil {
		return err
	}
	spec, err := f.appSpec(cmdArgs, os.LookupEnv)
	if err != nil {
		return err
	}
	c, err := client.Dial(host)
	if err != nil {
		return &exitError{code: exitRunUsage, msg: err.Error()}
	}
	defer c.Close()
	if f.detach {
		return runDetached(host, c, f, spec)
	}
	return runAttached(host, c, f, spec, sigs, subscribed)
}

// runDetached is run -d: Create with start, print the id.
func runDetached(host string, c *client.Client, f *clientRunFlags, spec *v1.AppSpec) error {
	resp, err := c.Apps.Create(context.Background(), connect.NewRequest(&v1.CreateRequest{Spec: spec, Start: true}))
	if err != nil {
		return &exitError{code: startFailureCode(err), msg: daemonMessage(host, err)}
	}
	if f.output == "json" {
		return printJSON(os.Stdout, resp.Msg.GetApp())
	}
	fmt.Println(resp.Msg.GetApp().GetId())
	return nil
}

// runStream serialises sends on the Run stream (connect allows one sender
// at a time) and knows the app's id once the daemon said it started.
type runStream struct {
	host   string
	stream *connect.BidiStreamForClient[v1.RunRequest, v1.RunResponse]

	mu sync.Mutex // held during a Send

	// stdinOpen is set while stdin is being copied to the stream.
	stdinOpen atomic.Bool
	// started is closed when the daemon said the app started (id is
	// then set), or when the stream ended.
	started   chan struct{}
	startOnce sync.Once
	id        string
}

func newRunStream(host string, stream *connect.BidiStreamForClient[v1.RunRequest, v1.RunResponse]) *runStream {
	return &runStream{host: host, stream: stream, started: make(chan struct{})}
}

func (r *runStream) send(m *v1.RunRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stream.Send(m)
}

// setStarted records the app's id ("" when the stream ended without it).
func (r *runStream) setStarted(id string) {
	r.startOnce.Do(func() {
		r.id = id
		close(r.started)
	})
}

// signal forwards sig to the app: on the stream, unless stdin is still
// being copied to it. Stdin may then be stuck behind an app that does not
// read it (HTTP/2 flow control), and a signal must not wait for that: it
// goes by a Signal call once the app's id is known, on a connection of its
// own, since the flow-control window of this connection may be used up by
// the stuck stdin too.
func (r *runStream) signal(sig syscall.Signal) {
	if !r.stdinOpen.Load() {
		_ = r.send(&v1.RunRequest{Msg: &v1.RunRequest_Signal{Signal: int32(sig)}})
		return
	}
	go func() {
		<-r.started
		if r.id == "" {
			return
		}
		c, err := client.Dial(r.host)
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Apps.Signal(context.Background(), connect.NewRequest(&v1.SignalRequest{Id: r.id, Signal: int32(sig)}))
	}()
}

// copyStdin sends stdin in chunks, then the end of it.
func (r *runStream) copyStdin(in io.Reader) {
	defer r.stdinOpen.Store(false)
	buf := make([]byte, stdinChunk)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			// Send has marshalled the message when it returns: buf
			// can be reused.
			if r.send(&v1.RunRequest{Msg: &v1.RunRequest_Stdin{Stdin: buf[:n]}}) != nil {
				return
			}
		}
		if err != nil {
			_ = r.send(&v1.RunRequest{Msg: &v1.RunRequest_CloseStdin{CloseStdin: true}})
			return
		}
	}
}

// stdinAttachable reports whether stdin is worth attaching: open, and not
// /dev/null (the daemon gives the app /dev/null then, with no pipe).
func stdinAttachable(stdin *os.File) bool {
	fi, err := stdin.Stat()
	if err != nil {
		return false
	}
	if fi.Mode()&os.ModeCharDevice != 0 {
		if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
			return false
		}
	}
	return true
}

func runAttached(host string, c *client.Client, f *clientRunFlags, spec *v1.AppSpec, sigs <-chan os.Signal, subscribed <-chan struct{}) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	attach := stdinAttachable(os.Stdin)
	r := newRunStream(host, c.Apps.Run(ctx))
	defer r.setStarted("")
	start := &v1.RunRequest{Msg: &v1.RunRequest_Start{Start: &v1.RunStart{Spec: spec, Stdin: attach}}}
	if err := r.send(start); err != nil && !errors.Is(err, io.EOF) {
		// io.EOF: the daemon answered already; Receive has its error.
		return &exitError{code: exitPinfoldFailed, msg: daemonMessage(host, err)}
	}
	if attach {
		r.stdinOpen.Store(true)
		go r.copyStdin(os.Stdin)
	}
	go func() {
		<-subscribed
		for sig := range sigs {
			r.signal(sig.(syscall.Signal))
		}
	}()

	var app *v1.App
	for {
		resp, err := r.stream.Receive()
		if err != nil {
			if app == nil {
				if f.output == "json" {
					printClientFailure(os.Stderr, err, host)
				}
				return &exitError{code: startFailureCode(err), msg: daemonMessage(host, err)}
			}
			return &exitError{code: exitPinfoldFailed, msg: fmt.Sprintf("lost the app's stream: %s (the daemon kills an attached app whose client is gone)", daemonMessage(host, err))}
		}
		switch m := resp.Msg.(type) {
		case *v1.RunResponse_Started:
			app = m.Started
			r.setStarted(app.GetId())
		case *v1.RunResponse_Stdout:
			_, _ = os.Stdout.Write(m.Stdout)
		case *v1.RunResponse_Stderr:
			_, _ = os.Stderr.Write(m.Stderr)
		case *v1.RunResponse_Exit:
			return finishRun(f, spec, app, m.Exit)
		}
	}
}

// finishRun reports how the app ended, as an embedded run does, and
// returns its exit status.
func finishRun(f *clientRunFlags, spec *v1.AppSpec, app *v1.App, x *v1.ExitStatus) error {
	if app == nil {
		app = &v1.App{}
	}
	if x.GetTimedOut() {
		limit := round(dur(x.GetWall()))
		if f.timeout > 0 {
			limit = f.timeout.String()
		}
		fmt.Fprintf(os.Stderr, "pinfold: timeout: killed %q after %s (wall-time limit)\n", strings.Join(spec.GetArgs(), " "), limit)
	}
	if f.stats || f.output == "json" {
		printClientSummary(os.Stderr, f.output == "json", app, x)
	}
	code := int(x.GetCode())
	if code < 0 {
		// The daemon could not tell how the app ended.
		msg := x.GetError()
		if msg == "" {
			msg = "the daemon reported no exit status"
		}
		return &exitError{code: exitPinfoldFailed, msg: msg}
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// startFailureCode maps a refused start to docker run's status: 127 when
// the command is not found in the sandbox, 126 when it cannot be executed,
// 125 for anything else (the daemon, the spec, the sandbox).
//
// The daemon reports a failed start as FailedPrecondition with the init
// stage's step message ("sandbox init: exec: CMD: command not found in the
// sandbox (PATH=...)"). An *v1.ExitStatus error detail, if the daemon
// sends one, is taken as is.
func startFailureCode(err error) int {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return exitPinfoldFailed
	}
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if x, ok := v.(*v1.ExitStatus); ok && x.GetCode() >= exitPinfoldFailed && x.GetCode() <= exitNotFound {
				return int(x.GetCode())
			}
		}
	}
	if ce.Code() != connect.CodeFailedPrecondition {
		return exitPinfoldFailed
	}
	return execFailureCode(ce.Message())
}

// execFailureCode reads the init stage's exec step message: the errno is
// not on the wire, its wording is (sandbox/initstage: lookPath,
// checkExecutable, execError).
func execFailureCode(msg string) int {
	const execStep = "sandbox init: exec: "
	i := strings.Index(msg, execStep)
	if i < 0 {
		return exitPinfoldFailed
	}
	rest := msg[i+len(execStep):]
	for _, notFound := range []string{"command not found", "no such file", "interpreter or dynamic loader is missing"} {
		if strings.Contains(rest, notFound) {
			return exitNotFound
		}
	}
	return exitCannotExec
}

// printClientSummary prints what the daemon reported of an attached run, in
// the embedded run's format (--stats, -o json): the same JSON fields, so
// scripts read both.
func printClientSummary(w io.Writer, asJSON bool, app *v1.App, x *v1.ExitStatus) {
	exit := exitFromProto(x)
	phases := phasesFromProto(app.GetStartPhases())
	if asJSON {
		s := summary{ID: app.GetId(), Name: app.GetName(), ExitCode: exit.ExitCode(), Exit: exit, Start: phases}
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
	fmt.Fprintf(w, "pinfold: app %s %s\n", app.GetId(), how)
	fmt.Fprintf(w, "  oom killed:   %s\n", yesNo(exit.OOMKilled))
	fmt.Fprintf(w, "  timed out:    %s\n", yesNo(exit.TimedOut))
	fmt.Fprintf(w, "  start:        %s\n", phasesHuman(phases))
	fmt.Fprintf(w, "  wall time:    %s\n", round(exit.Wall))
	if exit.Err != "" {
		fmt.Fprintf(w, "  exit error:   %s\n", exit.Err)
	}
}

// printClientFailure is the -o json summary of a run the daemon refused.
func printClientFailure(w io.Writer, err error, host string) {
	_ = json.NewEncoder(w).Encode(summary{ExitCode: -1, Error: daemonMessage(host, err)})
}

func exitFromProto(x *v1.ExitStatus) *sandbox.Exit {
	e := &sandbox.Exit{
		Code:      int(x.GetCode()),
		Signal:    sysSignal(x.GetSignal()),
		OOMKilled: x.GetOomKilled(),
		TimedOut:  x.GetTimedOut(),
		Wall:      dur(x.GetWall()),
		Err:       x.GetError(),
	}
	if e.Signal != 0 {
		// ExitStatus.code is docker-style (128+N); Exit.Code is the
		// process's own code, -1 when a signal killed it.
		e.Code = -1
	}
	return e
}

func phasesFromProto(ps []*v1.Phase) []sandbox.Phase {
	out := make([]sandbox.Phase, 0, len(ps))
	for _, p := range ps {
		out = append(out, sandbox.Phase{Name: p.GetName(), Duration: dur(p.GetDuration())})
	}
	return out
}

// phasesHuman is "1.2ms (clone 300µs, ...)".
func phasesHuman(ps []sandbox.Phase) string {
	var total time.Duration
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		total += p.Duration
		parts = append(parts, p.Name+" "+round(p.Duration))
	}
	return fmt.Sprintf("%s (%s)", round(total), strings.Join(parts, ", "))
}

func sysSignal(n int32) syscall.Signal { return syscall.Signal(n) }
