package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/internal/client"
)

// daemonCommands are the commands that need a daemon, by name; each takes
// the host ("" when none is set: it says so) and its arguments.
var daemonCommands = map[string]func(host string, args []string) error{
	"ps":      psCmd,
	"inspect": inspectCmd,
	"logs":    logsCmd,
	"stats":   statsCmd,
	"stop":    stopCmd,
	"kill":    killCmd,
	"wait":    waitCmd,
	"rm":      rmCmd,
	"events":  eventsCmd,
}

const psUsage = `Usage: pinfold ps [-a] [-q] [-o json]

Lists the daemon's running apps; -a includes exited apps not yet removed.

Flags:
`

func psCmd(host string, args []string) error {
	fs := newFlags("ps")
	all := fs.Bool("a", false, "all apps, including exited ones")
	quiet := fs.Bool("q", false, "print the ids only")
	out := outputFlag(fs)
	pos, err := parseFlags(fs, psUsage, args)
	if err != nil {
		return err
	}
	if err := checkOutput("ps", *out); err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: exitUsage, msg: "ps: unexpected arguments: " + strings.Join(pos, " ")}
	}
	c, err := dial("ps", host)
	if err != nil {
		return err
	}
	defer c.Close()
	resp, err := c.Apps.List(context.Background(), connect.NewRequest(&v1.ListRequest{All: *all}))
	if err != nil {
		return apiError(host, err)
	}
	switch {
	case *out == "json":
		return printJSON(os.Stdout, resp.Msg)
	case *quiet:
		for _, a := range resp.Msg.GetApps() {
			fmt.Println(a.GetId())
		}
		return nil
	}
	return appsTable(resp.Msg.GetApps(), time.Now()).write(os.Stdout)
}

const inspectUsage = `Usage: pinfold inspect [-o json] ID

Shows everything the daemon knows of an app: its policy and the hash of
the policy content it started with, its command, owner, times, exit
status, start phases and cleanup steps. ID may be a unique prefix or name.

Flags:
`

func inspectCmd(host string, args []string) error {
	fs := newFlags("inspect")
	out := outputFlag(fs)
	c, id, err := oneApp(fs, inspectUsage, host, args)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := checkOutput("inspect", *out); err != nil {
		return err
	}
	resp, err := c.Apps.Inspect(context.Background(), connect.NewRequest(&v1.InspectRequest{Id: id}))
	if err != nil {
		return apiError(host, err)
	}
	if *out == "json" {
		return printJSON(os.Stdout, resp.Msg.GetApp())
	}
	printApp(os.Stdout, resp.Msg.GetApp())
	return nil
}

// printApp is inspect's human form.
func printApp(w io.Writer, a *v1.App) {
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-13s %s\n", k+":", cleanCell(v))
		}
	}
	field("ID", a.GetId())
	field("Name", a.GetName())
	field("State", a.GetState())
	pol := a.GetPolicy()
	if h := a.GetPolicyHash(); h != "" {
		pol += " (sha256 " + h + ")"
	}
	field("Policy", pol)
	field("Command", strings.Join(quoteArgs(a.GetArgs()), " "))
	if a.GetPid() > 0 {
		field("PID", fmt.Sprint(a.GetPid()))
	}
	field("Detached", yesNo(a.GetDetached()))
	if o := a.GetOwner(); o != nil {
		field("Owner", fmt.Sprintf("uid %d, gid %d (pid %d)", o.GetUid(), o.GetGid(), o.GetPid()))
	}
	field("Created", timestamp(a.GetCreated()))
	field("Started", timestamp(a.GetStarted()))
	field("Exited", timestamp(a.GetExited()))
	if x := a.GetExit(); x != nil {
		field("Exit", exitCell(x))
		if x.GetWall() != nil {
			field("Wall time", round(dur(x.GetWall())))
		}
		field("Exit error", x.GetError())
	}
	if ps := a.GetStartPhases(); len(ps) > 0 {
		field("Start", phasesHuman(phasesFromProto(ps)))
	}
	if steps := a.GetCleanup(); len(steps) > 0 {
		var total time.Duration
		for _, s := range steps {
			total += dur(s.GetDuration())
		}
		field("Cleanup", round(total)+" total")
		for _, s := range steps {
			status := "ok"
			if s.GetError() != "" {
				status = "FAILED: " + s.GetError()
			}
			fmt.Fprintf(w, "    %-13s %-10s %s %s\n", s.GetResource(), round(dur(s.GetDuration())), cleanCell(status), cleanCell(s.GetName()))
		}
	}
	if objs := a.GetIpcObjects(); len(objs) > 0 {
		field("IPC objects", fmt.Sprint(len(objs)))
		for _, o := range objs {
			var flags []string
			if o.GetPersistent() {
				flags = append(flags, "persistent")
			}
			if o.GetUnlinked() {
				flags = append(flags, "unlinked")
			}
			fmt.Fprintf(w, "    %-6s %-30s %10d bytes  %d holder(s) %s\n", o.GetKind(), cleanCell(o.GetName()), o.GetSize(), o.GetHolders(), strings.Join(flags, ","))
		}
	}
}

// quoteArgs quotes the arguments that a shell would split or expand.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`*?[]{}()<>|&;#~") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

const logsUsage = `Usage: pinfold logs [-f] ID

Prints a detached app's log (stdout and stderr, interleaved as written);
with -f, keeps printing until the app exits. The log is kept until the app
is removed (pinfold rm ID). ID may be a unique prefix or name.

Flags:
`

func logsCmd(host string, args []string) error {
	fs := newFlags("logs")
	follow := fs.Bool("f", false, "follow: keep printing until the app exits")
	c, id, err := oneApp(fs, logsUsage, host, args)
	if err != nil {
		return err
	}
	defer c.Close()
	stream, err := c.Apps.Logs(context.Background(), connect.NewRequest(&v1.LogsRequest{Id: id, Follow: *follow}))
	if err != nil {
		return apiError(host, err)
	}
	defer stream.Close()
	for stream.Receive() {
		m := stream.Msg()
		if n := m.GetDropped(); n > 0 {
			fmt.Fprintf(os.Stderr, "pinfold: logs: %d bytes of the log were dropped here (its size cap: the oldest output goes first)\n", n)
		}
		if _, err := os.Stdout.Write(m.GetData()); err != nil {
			return &exitError{code: exitFailed, msg: "logs: writing: " + err.Error()}
		}
	}
	if err := stream.Err(); err != nil {
		return apiError(host, err)
	}
	return nil
}

const statsUsage = `Usage: pinfold stats [-o json] ID

Shows what an app's cgroup accounted: cpu time, memory, pids (for an
exited app, what it used until its exit). ID may be a unique prefix or name.

Flags:
`

func statsCmd(host string, args []string) error {
	fs := newFlags("stats")
	out := outputFlag(fs)
	c, id, err := oneApp(fs, statsUsage, host, args)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := checkOutput("stats", *out); err != nil {
		return err
	}
	resp, err := c.Apps.Stats(context.Background(), connect.NewRequest(&v1.StatsRequest{Id: id}))
	if err != nil {
		return apiError(host, err)
	}
	if *out == "json" {
		return printJSON(os.Stdout, resp.Msg.GetUsage())
	}
	if resp.Msg.GetUsage() == nil {
		return &exitError{code: exitFailed, msg: fmt.Sprintf("stats: the daemon has no usage for app %s", id)}
	}
	return usageTable(id, resp.Msg.GetUsage()).write(os.Stdout)
}

const stopUsage = `Usage: pinfold stop [-t GRACE] ID...

Sends SIGTERM to each app, and kills everything in its sandbox if it has
not exited after GRACE (default: its policy's stopTimeout). Prints each id
once the app has exited.

Flags:
`

func stopCmd(host string, args []string) error {
	fs := newFlags("stop")
	var grace *time.Duration
	fs.Func("t", "grace period `GRACE`: a duration (10s, 500ms) or whole seconds", func(s string) error {
		d, err := parseGrace(s)
		if err != nil {
			return err
		}
		grace = &d
		return nil
	})
	return forEachApp(fs, stopUsage, host, args, func(ctx context.Context, c *client.Client, id string) (string, error) {
		req := &v1.StopRequest{Id: id}
		if grace != nil {
			req.Grace = durationpb.New(*grace)
		}
		if _, err := c.Apps.Stop(ctx, connect.NewRequest(req)); err != nil {
			return "", err
		}
		return id, nil
	})
}

// parseGrace reads stop -t: a Go duration, or whole seconds as docker
// takes them.
func parseGrace(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration (10s, 500ms) or a number of seconds", s)
	}
	return d, nil
}

const killUsage = `Usage: pinfold kill [-s SIGNAL] ID...

Kills every process of each app at once; with -s, sends SIGNAL to the app's
first process instead (a name such as TERM, SIGTERM, HUP, or a number).

Flags:
`

func killCmd(host string, args []string) error {
	fs := newFlags("kill")
	sig := syscall.SIGKILL
	fs.Func("s", "`SIGNAL` to send instead of killing everything (TERM, SIGHUP, 10, RTMIN+1, ...)", func(s string) error {
		n, err := parseSignal(s)
		if err != nil {
			return err
		}
		sig = n
		return nil
	})
	return forEachApp(fs, killUsage, host, args, func(ctx context.Context, c *client.Client, id string) (string, error) {
		var err error
		if sig == syscall.SIGKILL {
			_, err = c.Apps.Kill(ctx, connect.NewRequest(&v1.KillRequest{Id: id}))
		} else {
			_, err = c.Apps.Signal(ctx, connect.NewRequest(&v1.SignalRequest{Id: id, Signal: int32(sig)}))
		}
		if err != nil {
			return "", err
		}
		return id, nil
	})
}

// Real-time signals, as Linux numbers them for user space (glibc reserves
// 32 and 33).
const (
	sigRTMin = 34
	sigRTMax = 64
)

// parseSignal reads a signal: a number (1..64), a name with or without
// SIG, any case (TERM, SIGTERM, sigterm), or RTMIN+N / RTMAX-N.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > sigRTMax {
			return 0, fmt.Errorf("signal %d: not between 1 and %d", n, sigRTMax)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	name = strings.TrimPrefix(name, "SIG")
	for _, rt := range []struct {
		prefix string
		base   int
		sign   int
	}{{"RTMIN", sigRTMin, 1}, {"RTMAX", sigRTMax, -1}} {
		rest, ok := strings.CutPrefix(name, rt.prefix)
		if !ok {
			continue
		}
		off := 0
		if rest != "" {
			op := "+"
			if rt.sign < 0 {
				op = "-"
			}
			num, ok := strings.CutPrefix(rest, op)
			n, err := strconv.Atoi(num)
			if !ok || err != nil || n < 0 {
				return 0, fmt.Errorf("signal %q: use %s%sN", s, rt.prefix, op)
			}
			off = rt.sign * n
		}
		n := rt.base + off
		if n < sigRTMin || n > sigRTMax {
			return 0, fmt.Errorf("signal %q: outside RTMIN..RTMAX", s)
		}
		return syscall.Signal(n), nil
	}
	if name != "" {
		for n := syscall.Signal(1); n < sigRTMin; n++ {
			if signalName(n) == "SIG"+name {
				return n, nil
			}
		}
	}
	switch name { // aliases the kernel's table does not list
	case "IOT":
		return syscall.SIGABRT, nil
	case "POLL":
		return syscall.SIGIO, nil
	case "CLD":
		return syscall.SIGCHLD, nil
	}
	return 0, fmt.Errorf("%q is not a signal (names such as TERM or SIGHUP, or numbers)", s)
}

const waitUsage = `Usage: pinfold wait ID...

Waits until each app has exited and prints its exit status (the app's
code, or 128+N if signal N killed it), like docker wait; pinfold's own
status is 0.
`

func waitCmd(host string, args []string) error {
	return forEachApp(newFlags("wait"), waitUsage, host, args, func(ctx context.Context, c *client.Client, id string) (string, error) {
		resp, err := c.Apps.Wait(ctx, connect.NewRequest(&v1.WaitRequest{Id: id}))
		if err != nil {
			return "", err
		}
		return fmt.Sprint(resp.Msg.GetExit().GetCode()), nil
	})
}

const rmUsage = `Usage: pinfold rm [-f] ID...

Forgets exited apps and deletes their logs; with -f, kills running ones
first.

Flags:
`

func rmCmd(host string, args []string) error {
	fs := newFlags("rm")
	force := fs.Bool("f", false, "force: kill a running app first")
	return forEachApp(fs, rmUsage, host, args, func(ctx context.Context, c *client.Client, id string) (string, error) {
		if _, err := c.Apps.Remove(ctx, connect.NewRequest(&v1.RemoveRequest{Id: id, Force: *force})); err != nil {
			return "", err
		}
		return id, nil
	})
}

// oneApp parses the flags of a command that takes exactly one app and
// resolves it.
func oneApp(fs *flag.FlagSet, usage, host string, args []string) (*client.Client, string, error) {
	pos, err := parseFlags(fs, usage, args)
	if err != nil {
		return nil, "", err
	}
	name := fs.Name()
	if len(pos) != 1 {
		return nil, "", &exitError{code: exitUsage, msg: fmt.Sprintf("%s: give exactly one app id (see pinfold %s -h)", name, name)}
	}
	c, err := dial(name, host)
	if err != nil {
		return nil, "", err
	}
	ids, err := resolveIDs(context.Background(), host, c, pos)
	if err != nil {
		c.Close()
		return nil, "", err
	}
	return c, ids[0], nil
}

// forEachApp parses the flags of a command that takes app ids, runs do for
// every app at once (stop and wait may take a while each) and prints the
// results in the order given. Failures are printed as the daemon worded
// them; any failure makes the status 1.
func forEachApp(fs *flag.FlagSet, usage, host string, args []string, do func(context.Context, *client.Client, string) (string, error)) error {
	pos, err := parseFlags(fs, usage, args)
	if err != nil {
		return err
	}
	name := fs.Name()
	if len(pos) == 0 {
		return &exitError{code: exitUsage, msg: fmt.Sprintf("%s: no app id given (see pinfold %s -h)", name, name)}
	}
	c, err := dial(name, host)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := context.Background()
	ids, err := resolveIDs(ctx, host, c, pos)
	if err != nil {
		return err
	}
	type result struct {
		out string
		err error
	}
	results := make([]result, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := do(ctx, c, id)
			results[i] = result{out, err}
		}()
	}
	wg.Wait()
	failed := false
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(os.Stderr, "pinfold: %s\n", daemonMessage(host, r.err))
			failed = true
			continue
		}
		fmt.Println(r.out)
	}
	if failed {
		return &exitError{code: exitFailed}
	}
	return nil
}
