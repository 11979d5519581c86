// Command pinfold-init is pinfold's init stage: the small binary that runs
// first inside a new sandbox's namespaces, builds its filesystem, drops every
// privilege, installs the seccomp filter and execs the app. It is started by
// the supervisor only, with its sync socket at fd 3; run by hand it reports
// that and exits.
//
// It is a separate, pure-Go static binary so that a sandbox start does not pay
// for a second start of the larger cgo pinfold binary. pinfold falls back to
// re-executing itself in this role when pinfold-init is not installed beside
// it.
//
//go:debug containermaxprocs=0
//go:debug updatemaxprocs=0
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/pinfold/pinfold/sandbox/initstage"
)

func init() {
	// Everything the init stage sets per thread must be set on the thread
	// that finally execs: keep main on the main OS thread from the start.
	runtime.LockOSThread()
}

func main() {
	if _, err := os.Stat(fmt.Sprintf("/proc/self/fd/%d", initstage.SyncFD)); err != nil {
		fmt.Fprintln(os.Stderr, "pinfold-init: this is pinfold's init stage; it is started by pinfold, not by hand")
		os.Exit(2)
	}
	initstage.Main()
}
