package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"connectrpc.com/connect"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/sandbox"
)

const infoUsage = `Usage: pinfold info [-o json]

Prints the kernel features pinfold found and uses: cgroup mode and
controllers, seccomp user notification, the Landlock ABI, user namespaces,
pidfd. With a daemon (--host or PINFOLD_HOST), the daemon's report, with its
directories and how many apps run; without, this host's, probed here.

Flags:
`

func infoCmd(host string, args []string) error {
	fs := newFlags("info")
	out := outputFlag(fs)
	pos, err := parseFlags(fs, infoUsage, args)
	if err != nil {
		return err
	}
	if err := checkOutput("info", *out); err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: exitUsage, msg: "info: unexpected arguments: " + strings.Join(pos, " ")}
	}
	var info *v1.InfoResponse
	if host == "" {
		info = localInfo()
	} else {
		c, err := dial("info", host)
		if err != nil {
			return err
		}
		defer c.Close()
		resp, err := c.System.Info(context.Background(), connect.NewRequest(&v1.InfoRequest{}))
		if err != nil {
			return apiError(host, err)
		}
		info = resp.Msg
	}
	if *out == "json" {
		return printJSON(os.Stdout, info)
	}
	printInfo(os.Stdout, info, host)
	return nil
}

// localInfo probes this host as an embedded pinfold run would see it. The
// cgroup manager is only asked what it found: it moves nothing (no
// SelfLeaf), so on a cgroup v2 host where pinfold has no delegated cgroup
// the controllers are reported as unavailable, with why.
func localInfo() *v1.InfoResponse {
	f := sandbox.ProbeFeatures(nil)
	info := &v1.InfoResponse{
		Version:           version(),
		Kernel:            f.Kernel,
		SeccompUserNotify: f.SeccompUserNotify,
		LandlockAbi:       int32(f.LandlockABI),
		UserNamespaces:    f.UserNamespaces,
		Pidfd:             f.Pidfd,
	}
	m, err := cgroup.NewManager(cgroup.ManagerConfig{})
	if err != nil {
		info.CgroupMode = "unavailable: " + err.Error()
		return info
	}
	info.CgroupMode = string(m.Mode())
	info.CgroupControllers = m.Controllers()
	return info
}

func printInfo(w io.Writer, info *v1.InfoResponse, host string) {
	row := func(k, v string) { fmt.Fprintf(w, "%-20s %s\n", k+":", v) }
	if host != "" {
		row("Daemon", host)
		row("Daemon version", info.GetVersion())
	} else {
		row("Daemon", "none (embedded; set --host or PINFOLD_HOST to use one)")
		row("Version", info.GetVersion())
	}
	row("Kernel", info.GetKernel())
	cg := info.GetCgroupMode()
	if cs := info.GetCgroupControllers(); len(cs) > 0 {
		cg += " (" + strings.Join(cs, ", ") + ")"
	}
	row("Cgroups", cg)
	row("Seccomp user notify", yesNo(info.GetSeccompUserNotify()))
	if abi := info.GetLandlockAbi(); abi > 0 {
		row("Landlock", fmt.Sprintf("ABI %d", abi))
	} else {
		row("Landlock", "no")
	}
	row("User namespaces", yesNo(info.GetUserNamespaces()))
	row("pidfd", yesNo(info.GetPidfd()))
	if host != "" {
		row("State dir", info.GetStateDir())
		row("Policy dir", info.GetPolicyDir())
		row("Apps running", fmt.Sprint(info.GetAppsRunning()))
	}
}

const versionUsage = `Usage: pinfold version [-o json]

Prints pinfold's version and, with a daemon (--host or PINFOLD_HOST), the
daemon's.

Flags:
`

func versionCmd(host string, args []string) error {
	fs := newFlags("version")
	out := outputFlag(fs)
	pos, err := parseFlags(fs, versionUsage, args)
	if err != nil {
		return err
	}
	if err := checkOutput("version", *out); err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: exitUsage, msg: "version: unexpected arguments: " + strings.Join(pos, " ")}
	}
	v := struct {
		Client string `json:"client"`
		Daemon string `json:"daemon,omitempty"`
	}{Client: version()}
	var derr error
	if host != "" {
		c, err := dial("version", host)
		if err != nil {
			return err
		}
		defer c.Close()
		resp, err := c.System.Version(context.Background(), connect.NewRequest(&v1.VersionRequest{}))
		if err != nil {
			derr = apiError(host, err)
		} else {
			v.Daemon = resp.Msg.GetVersion()
		}
	}
	if *out == "json" {
		if err := json.NewEncoder(os.Stdout).Encode(v); err != nil {
			return err
		}
		return derr
	}
	fmt.Println("pinfold", v.Client)
	if v.Daemon != "" {
		fmt.Println("daemon", cleanCell(v.Daemon))
	}
	return derr
}
