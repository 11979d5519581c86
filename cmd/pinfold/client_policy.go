package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/internal/client"
	"github.com/pinfold/pinfold/sandbox/policy"
)

const clientPolicyUsage = `Usage (with a daemon: --host or PINFOLD_HOST):
  pinfold policy apply FILE...      validate and store policy files in the daemon's policy directory
  pinfold policy list [-q]          the policies the daemon has loaded
  pinfold policy get NAME           a policy as YAML, every default filled in
  pinfold policy rm NAME...         delete policies (their files too)
  pinfold policy validate FILE...   check policy files with the daemon's validator
  pinfold policy reload             reread the policy directory (as SIGHUP does)
apply, validate and reload list every error as FILE:LINE:COL: field: problem
and exit 2 if a file is bad; the previous version of its policy stays active.
list and get take -o json.
`

// daemonPolicyCommands need a daemon; validate uses one when it is set.
var daemonPolicyCommands = map[string]func(host string, c *client.Client, args []string) error{
	"apply":    policyApplyCmd,
	"list":     policyListCmd,
	"get":      policyGetCmd,
	"rm":       policyRmCmd,
	"validate": policyValidateCmd,
	"reload":   policyReloadCmd,
}

// clientPolicy runs a policy subcommand through the daemon when it is one
// that needs a daemon, or validate with a daemon set. It reports false
// for what the local policy command does (validate without a daemon,
// default, show, help).
func clientPolicy(host string, args []string) (bool, error) {
	if len(args) == 0 {
		return false, nil
	}
	sub := args[0]
	cmd, ok := daemonPolicyCommands[sub]
	if !ok || sub == "validate" && host == "" {
		return false, nil
	}
	if len(args) > 1 && (args[1] == "-h" || args[1] == "--help" || args[1] == "-help") {
		fmt.Print(clientPolicyUsage)
		return true, nil
	}
	c, err := dial("policy "+sub, host)
	if err != nil {
		return true, err
	}
	defer c.Close()
	return true, cmd(host, c, args[1:])
}

// policyErrorLine formats one error as the local validator does:
// FILE:LINE:COL: field: problem.
func policyErrorLine(pe *v1.PolicyError) string {
	fe := &policy.FieldError{File: pe.GetFile(), Line: int(pe.GetLine()), Column: int(pe.GetColumn()), Path: pe.GetPath(), Msg: pe.GetMessage()}
	s := fe.Error()
	if fe.Line == 0 && fe.File != "" && !strings.HasPrefix(s, fe.File) {
		s = fe.File + ": " + s
	}
	return cleanMessage(s)
}

// cleanMessage keeps a multi-line message but drops terminal control
// characters.
func cleanMessage(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r >= ' ' && r != 0x7f && (r < 0x80 || r > 0x9f) {
			return r
		}
		return '?'
	}, s)
}

// policyDetails are the PolicyError details of an API error.
func policyDetails(err error) []*v1.PolicyError {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return nil
	}
	var out []*v1.PolicyError
	for _, d := range ce.Details() {
		if v, derr := d.Value(); derr == nil {
			if pe, ok := v.(*v1.PolicyError); ok {
				out = append(out, pe)
			}
		}
	}
	return out
}

// policyFilename is the name sent with a file's content: the path as
// given, which the daemon uses in error positions (shortened to its base
// name if the daemon would find it too long).
func policyFilename(path string) string {
	if len(path) > 255 {
		return filepath.Base(path)
	}
	return path
}

// fileOutcome collects the status of commands over files: 2 if a file is
// bad, else 1 if the daemon failed, else 0.
type fileOutcome struct{ bad, failed bool }

func (o fileOutcome) err() error {
	switch {
	case o.bad:
		return &exitError{code: exitUsage}
	case o.failed:
		return &exitError{code: exitFailed}
	}
	return nil
}

func policyApplyCmd(host string, c *client.Client, args []string) error {
	if len(args) == 0 {
		return &exitError{code: exitUsage, msg: "policy apply: no files given"}
	}
	var o fileOutcome
	for _, file := range args {
		content, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			o.bad = true
			continue
		}
		resp, err := c.Policies.Apply(context.Background(), connect.NewRequest(&v1.ApplyPolicyRequest{Filename: policyFilename(file), Content: string(content)}))
		if err != nil {
			if isCode(err, connect.CodeInvalidArgument) {
				o.bad = true
				if pes := policyDetails(err); len(pes) > 0 {
					for _, pe := range pes {
						fmt.Fprintln(os.Stderr, policyErrorLine(pe))
					}
					continue
				}
			} else {
				o.failed = true
			}
			fmt.Fprintf(os.Stderr, "pinfold: %s: %s\n", file, daemonMessage(host, err))
			continue
		}
		p := resp.Msg.GetPolicy()
		fmt.Printf("%s: applied policy %s (sha256 %s)\n", file, cleanCell(p.GetName()), shortHash(p.GetHash()))
	}
	return o.err()
}

func policyValidateCmd(host string, c *client.Client, args []string) error {
	if len(args) == 0 {
		return &exitError{code: exitUsage, msg: "policy validate: no files given"}
	}
	var o fileOutcome
	for _, file := range args {
		content, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			o.bad = true
			continue
		}
		resp, err := c.Policies.Validate(context.Background(), connect.NewRequest(&v1.ValidatePolicyRequest{Filename: policyFilename(file), Content: string(content)}))
		if err != nil {
			if isCode(err, connect.CodeInvalidArgument) {
				o.bad = true
			} else {
				o.failed = true
			}
			fmt.Fprintf(os.Stderr, "pinfold: %s: %s\n", file, daemonMessage(host, err))
			continue
		}
		if errs := resp.Msg.GetErrors(); len(errs) > 0 {
			for _, pe := range errs {
				fmt.Fprintln(os.Stderr, policyErrorLine(pe))
			}
			o.bad = true
			continue
		}
		fmt.Printf("%s: ok\n", file)
	}
	return o.err()
}

func policyListCmd(host string, c *client.Client, args []string) error {
	fs := newFlags("policy list")
	quiet := fs.Bool("q", false, "print the names only")
	out := outputFlag(fs)
	pos, err := parseFlags(fs, clientPolicyUsage, args)
	if err != nil {
		return err
	}
	if err := checkOutput("policy list", *out); err != nil {
		return err
	}
	if len(pos) > 0 {
		return &exitError{code: exitUsage, msg: "policy list: unexpected arguments: " + strings.Join(pos, " ")}
	}
	resp, err := c.Policies.List(context.Background(), connect.NewRequest(&v1.ListPoliciesRequest{}))
	if err != nil {
		return apiError(host, err)
	}
	switch {
	case *out == "json":
		return printJSON(os.Stdout, resp.Msg)
	case *quiet:
		for _, p := range resp.Msg.GetPolicies() {
			fmt.Println(p.GetName())
		}
		return nil
	}
	return policiesTable(resp.Msg.GetPolicies(), time.Now()).write(os.Stdout)
}

func policyGetCmd(host string, c *client.Client, args []string) error {
	fs := newFlags("policy get")
	out := outputFlag(fs)
	pos, err := parseFlags(fs, clientPolicyUsage, args)
	if err != nil {
		return err
	}
	if err := checkOutput("policy get", *out); err != nil {
		return err
	}
	if len(pos) != 1 {
		return &exitError{code: exitUsage, msg: "policy get: give exactly one policy name"}
	}
	resp, err := c.Policies.Get(context.Background(), connect.NewRequest(&v1.GetPolicyRequest{Name: pos[0]}))
	if err != nil {
		return apiError(host, err)
	}
	if *out == "json" {
		return printJSON(os.Stdout, resp.Msg.GetPolicy())
	}
	_, err = fmt.Print(resp.Msg.GetPolicy().GetYaml())
	return err
}

func policyRmCmd(host string, c *client.Client, args []string) error {
	if len(args) == 0 {
		return &exitError{code: exitUsage, msg: "policy rm: no policy names given"}
	}
	failed := false
	for _, name := range args {
		if _, err := c.Policies.Delete(context.Background(), connect.NewRequest(&v1.DeletePolicyRequest{Name: name})); err != nil {
			fmt.Fprintf(os.Stderr, "pinfold: %s\n", daemonMessage(host, err))
			failed = true
			continue
		}
		fmt.Println(name)
	}
	if failed {
		return &exitError{code: exitFailed}
	}
	return nil
}

func policyReloadCmd(host string, c *client.Client, args []string) error {
	if len(args) > 0 {
		return &exitError{code: exitUsage, msg: "policy reload: takes no arguments"}
	}
	resp, err := c.Policies.Reload(context.Background(), connect.NewRequest(&v1.ReloadPoliciesRequest{}))
	if err != nil {
		return apiError(host, err)
	}
	for _, p := range resp.Msg.GetLoaded() {
		fmt.Printf("loaded %s (sha256 %s)\n", cleanCell(p.GetName()), shortHash(p.GetHash()))
	}
	if rej := resp.Msg.GetRejected(); len(rej) > 0 {
		for _, pe := range rej {
			fmt.Fprintln(os.Stderr, policyErrorLine(pe))
		}
		return &exitError{code: exitUsage, msg: "policy reload: rejected files keep their policy's previous version"}
	}
	return nil
}
