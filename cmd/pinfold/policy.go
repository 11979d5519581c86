package main

import (
	"fmt"
	"os"

	"github.com/pinfold/pinfold/sandbox/policy"
)

const policyUsage = `Usage:
  pinfold policy validate FILE...   check policy files; exit 0, or 2 listing every error
  pinfold policy default            print the built-in default policy (YAML, defaults filled in)
  pinfold policy show FILE          print FILE with every default filled in

With a daemon (--host or PINFOLD_HOST), validate uses the daemon's validator,
and the daemon's policies are managed with:
  pinfold policy apply FILE...      validate and store policy files (exit 2 listing every error)
  pinfold policy list [-q]          the loaded policies
  pinfold policy get NAME           a loaded policy as YAML
  pinfold policy rm NAME...         delete policies
  pinfold policy reload             reread the daemon's policy directory
`

func policyCmd(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, policyUsage)
		return &exitError{code: exitUsage}
	}
	switch args[0] {
	case "validate":
		if len(args) < 2 {
			return &exitError{code: exitUsage, msg: "policy validate: no files given"}
		}
		bad := 0
		for _, file := range args[1:] {
			if _, err := policy.LoadFile(file); err != nil {
				fmt.Fprintln(os.Stderr, err)
				bad++
				continue
			}
			fmt.Printf("%s: ok\n", file)
		}
		if bad > 0 {
			return &exitError{code: exitUsage}
		}
		return nil
	case "default":
		return policy.Default().Encode(os.Stdout)
	case "show":
		if len(args) != 2 {
			return &exitError{code: exitUsage, msg: "policy show: give exactly one file"}
		}
		p, err := policy.LoadFile(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return &exitError{code: exitUsage}
		}
		return p.Encode(os.Stdout)
	case "-h", "--help", "help":
		fmt.Print(policyUsage)
		return nil
	}
	fmt.Fprint(os.Stderr, policyUsage)
	return &exitError{code: exitUsage, msg: fmt.Sprintf("policy: unknown subcommand %q", args[0])}
}
