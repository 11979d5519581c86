// Command pinfold runs AI-generated apps as sandboxed Linux processes.
//
//	pinfold run [flags] -- CMD [ARGS...]   run CMD in a sandbox (no daemon needed)
//	pinfold up [flags] FILE                run a group of apps and their channels (no daemon)
//	pinfold daemon [flags]                 the supervisor as a service
//	pinfold --host HOST ps|inspect|logs|stats|stop|kill|wait|rm|events ...
//	pinfold policy validate FILE...        check policy files
//	pinfold policy default                 print the default policy
//	pinfold info | version | completion bash|zsh
//
// With --host (or PINFOLD_HOST) pinfold is a client of a daemon: run goes
// through it, and the app commands work on its apps.
//
// Exit status of run is like docker run: the app's own code, 128+N if signal
// N killed it, 125 if pinfold failed, 126 if the command cannot be executed,
// 127 if it was not found.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/pinfold/pinfold/sandbox/initstage"
)

func init() {
	// Keep the main thread to main: a goroutine that switches namespaces
	// on a locked thread and exits would otherwise be able to wedge it.
	// (Apps are cloned from the supervisor's own spawner thread.)
	runtime.LockOSThread()
}

// Exit codes of pinfold itself, as docker run uses them.
const (
	exitPinfoldFailed = 125
	exitCannotExec    = 126
	exitNotFound      = 127
	exitUsage         = 2
)

// exitError ends the process with a code; msg, when set, is printed first.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	if len(os.Args) > 1 && os.Args[1] == initstage.Arg {
		initstage.Main() // never returns
	}
	err := run(os.Args[1:])
	if err == nil {
		os.Exit(0)
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "pinfold: "+ee.msg)
		}
		os.Exit(ee.code)
	}
	fmt.Fprintln(os.Stderr, "pinfold: "+err.Error())
	os.Exit(exitPinfoldFailed)
}

const usage = `pinfold runs AI-generated apps as sandboxed Linux processes.

Usage:
  pinfold [--host HOST] COMMAND [ARGS...]

  pinfold run [flags] -- CMD [ARGS...]   run CMD in a sandbox (see: pinfold run -h)
  pinfold up [flags] FILE                run the apps of a group file together, wired by
                                         IPC channels, output prefixed (see: pinfold up -h)
  pinfold daemon [flags]                 run the supervisor as a service (see: pinfold daemon -h)
  pinfold policy validate FILE...        check policy files; exit 2 listing every error
  pinfold policy default                 print the built-in default policy as YAML
  pinfold policy show FILE               print FILE with every default filled in
  pinfold info                           the kernel features pinfold found and uses
  pinfold version                        print the version (and the daemon's)
  pinfold completion bash|zsh            print a shell completion script

With a daemon (--host unix:///run/pinfold/pinfold.sock before the command, or
PINFOLD_HOST), run, info and policy validate go through it (run --policy then
names a policy the daemon has loaded; -d detaches), and these work too:
  pinfold ps [-a] [-q]                   list apps
  pinfold inspect ID                     everything about an app
  pinfold logs [-f] ID                   a detached app's output
  pinfold stats ID                       an app's cpu, memory and pids usage
  pinfold stop [-t GRACE] ID...          SIGTERM, then kill after GRACE
  pinfold kill [-s SIGNAL] ID...         kill everything in the sandbox, or send SIGNAL
  pinfold wait ID...                     wait for exit; print the exit status
  pinfold rm [-f] ID...                  forget exited apps (-f: kill running ones)
  pinfold events [--since ID] [-f]       the daemon's events (--app ID: one app's)
  pinfold policy apply|list|get|rm|reload   manage the daemon's policies
Most take -o json (one JSON document) instead of the human form. Exit status:
run as docker run (see pinfold run -h); up the first failing app's status, or
125 if pinfold failed (see pinfold up -h); others 0, 1 if they failed, 2 for a
usage error or a bad policy file.

Docs: docs/ in the source tree (policy.md, filesystem.md, seccomp.md, up.md).
`

func run(args []string) error {
	host, args, err := parseGlobalFlags(args, os.LookupEnv)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return &exitError{code: exitUsage}
	}
	switch args[0] {
	case "run":
		if host != "" {
			return clientRun(host, args[1:])
		}
		return runCmd(args[1:])
	case "up":
		return upCmd(host, args[1:])
	case "policy":
		if done, err := clientPolicy(host, args[1:]); done {
			return err
		}
		return policyCmd(args[1:])
	case "daemon":
		return daemonCmd(args[1:])
	case "info":
		return infoCmd(host, args[1:])
	case "version":
		return versionCmd(host, args[1:])
	case "--version":
		fmt.Println("pinfold", version())
		return nil
	case "completion":
		return completionCmd(args[1:])
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	if cmd, ok := daemonCommands[args[0]]; ok {
		return cmd(host, args[1:])
	}
	fmt.Fprint(os.Stderr, usage)
	return &exitError{code: exitUsage, msg: fmt.Sprintf("unknown command %q", args[0])}
}
