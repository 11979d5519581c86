// Command pinfold runs AI-generated apps as sandboxed Linux processes.
//
//	pinfold run [flags] -- CMD [ARGS...]   run CMD in a sandbox (no daemon needed)
//	pinfold policy validate FILE...        check policy files
//	pinfold policy default                 print the default policy
//	pinfold version
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
  pinfold run [flags] -- CMD [ARGS...]   run CMD in a sandbox (see: pinfold run -h)
  pinfold policy validate FILE...        check policy files; exit 2 listing every error
  pinfold policy default                 print the built-in default policy as YAML
  pinfold version                        print the version

Docs: docs/ in the source tree (policy.md, filesystem.md, seccomp.md).
`

func run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return &exitError{code: exitUsage}
	}
	switch args[0] {
	case "run":
		return runCmd(args[1:])
	case "policy":
		return policyCmd(args[1:])
	case "version", "--version":
		fmt.Println("pinfold", version())
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return &exitError{code: exitUsage, msg: fmt.Sprintf("unknown command %q", args[0])}
}
