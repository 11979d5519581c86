package main

// The CLI as a client of a pinfold daemon: the global --host flag, the
// commands that need a daemon, and how the daemon's errors are shown.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/internal/client"
)

// exitFailed is the exit status of a client command (other than run) that
// failed: the daemon refused, or could not be reached.
const exitFailed = 1

// exampleHost is the daemon's default socket, as a host.
const exampleHost = "unix:///run/pinfold/pinfold.sock"

// parseGlobalFlags takes the flags given before the subcommand
// (--host HOST, --host=HOST, -H HOST) and falls back to $PINFOLD_HOST. An
// empty host means no daemon: run is embedded. --host "" overrides the
// environment.
func parseGlobalFlags(args []string, lookupEnv func(string) (string, bool)) (host string, rest []string, err error) {
	set := false
	for len(args) > 0 {
		a := args[0]
		name, value, hasValue := strings.Cut(a, "=")
		if name != "--host" && name != "-host" && name != "-H" {
			break
		}
		if !hasValue {
			if len(args) < 2 {
				return "", nil, &exitError{code: exitUsage, msg: fmt.Sprintf("%s needs a value, e.g. %s %s", name, name, exampleHost)}
			}
			value, args = args[1], args[2:]
		} else {
			args = args[1:]
		}
		host, set = value, true
	}
	source := "--host"
	if !set {
		host, _ = lookupEnv(client.EnvHost)
		source = client.EnvHost
	}
	if host != "" {
		if _, err := client.SocketPath(host); err != nil {
			return "", nil, &exitError{code: exitUsage, msg: fmt.Sprintf("%s: %v", source, err)}
		}
	}
	return host, args, nil
}

// noDaemon is the error of a command that needs a daemon when none is set.
func noDaemon(cmd string) error {
	fmt.Fprintf(os.Stderr, "pinfold %s: no daemon: set --host or %s (e.g. %s)\n", cmd, client.EnvHost, exampleHost)
	return &exitError{code: exitFailed}
}

// dial prepares a client of the daemon at host for command cmd.
func dial(cmd, host string) (*client.Client, error) {
	if host == "" {
		return nil, noDaemon(cmd)
	}
	c, err := client.Dial(host)
	if err != nil {
		return nil, &exitError{code: exitUsage, msg: err.Error()}
	}
	return c, nil
}

// daemonMessage is what the user sees of an API error: the daemon's own
// words (connect.Error's message, without the code), or, when the daemon
// could not be reached at all, which socket and why.
func daemonMessage(host string, err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		cause := oe.Err.Error()
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			cause = se.Err.Error()
		}
		return fmt.Sprintf("cannot reach the pinfold daemon at %s: %s (is pinfold daemon running and serving that socket?)", host, cause)
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		if msg := ce.Message(); msg != "" {
			return msg
		}
		return ce.Code().String()
	}
	return err.Error()
}

// apiError wraps an API error for main: the daemon's message, exit 1.
func apiError(host string, err error) error {
	return &exitError{code: exitFailed, msg: daemonMessage(host, err)}
}

// isCode reports whether err is an API error with code c.
func isCode(err error, c connect.Code) bool {
	var ce *connect.Error
	return errors.As(err, &ce) && ce.Code() == c
}

// newFlags makes a flag set for a client subcommand; parse it with
// parseFlags.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseFlags parses flags and positional arguments in any order, as
// docker does (`pinfold stop ID -t 5s`); after "--" everything is
// positional. -h prints usage and the flags, and ends with status 0.
func parseFlags(fs *flag.FlagSet, usage string, args []string) ([]string, error) {
	args = splitBoolFlags(fs, args)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Print(usage)
				fs.SetOutput(os.Stdout)
				fs.PrintDefaults()
				return nil, &exitError{code: 0}
			}
			return nil, &exitError{code: exitUsage, msg: fmt.Sprintf("%s: %v (see pinfold %s -h)", fs.Name(), err, fs.Name())}
		}
		// flag stops at the first non-flag argument, keeping it, or
		// at "--", dropping it.
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// splitBoolFlags expands grouped one-letter boolean flags, as in
// `pinfold ps -aq`, into separate ones, up to "--".
func splitBoolFlags(fs *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' && !strings.Contains(a, "=") && allBoolFlags(fs, a[1:]) {
			for _, c := range a[1:] {
				out = append(out, "-"+string(c))
			}
			continue
		}
		out = append(out, a)
	}
	return out
}

// allBoolFlags reports whether every letter of s is a boolean flag of fs.
func allBoolFlags(fs *flag.FlagSet, s string) bool {
	for _, c := range s {
		f := fs.Lookup(string(c))
		if f == nil {
			return false
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !b.IsBoolFlag() {
			return false
		}
	}
	return true
}

// outputFlag adds -o FORMAT to fs.
func outputFlag(fs *flag.FlagSet) *string {
	return fs.String("o", "", "output `FORMAT`: json (one JSON document) instead of the human form")
}

// checkOutput validates -o.
func checkOutput(cmd, o string) error {
	if o != "" && o != "json" {
		return &exitError{code: exitUsage, msg: fmt.Sprintf("%s: -o %q: the only output format is json", cmd, o)}
	}
	return nil
}

// jsonOptions render API messages for scripts: lowerCamel names, every
// field present (a zero exit code is 0, not missing).
var jsonOptions = protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: true}

// printJSON writes one API message as a JSON document.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// printJSONLine writes one API message as one line of JSON (for streams).
func printJSONLine(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// appIDLen is the length of the daemon's app ids (hex digits).
const appIDLen = 16

// isFullID reports whether s looks like a whole app id.
func isFullID(s string) bool {
	if len(s) != appIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// matchApp resolves what a user typed for an app: a whole id, a unique
// prefix of one, or a name only one app has.
func matchApp(arg string, apps []*v1.App) (string, error) {
	if arg == "" {
		return "", errors.New("an empty app id")
	}
	var byName, byPrefix []string
	for _, a := range apps {
		if a.GetId() == arg {
			return arg, nil
		}
		if a.GetName() == arg {
			byName = append(byName, a.GetId())
		}
		if strings.HasPrefix(a.GetId(), arg) {
			byPrefix = append(byPrefix, a.GetId())
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0], nil
	case len(byName) > 1:
		return "", fmt.Errorf("%d apps are named %q (%s): use an id", len(byName), arg, strings.Join(byName, ", "))
	case len(byPrefix) == 1:
		return byPrefix[0], nil
	case len(byPrefix) > 1:
		return "", fmt.Errorf("%q is the start of %d app ids (%s): give more of it", arg, len(byPrefix), strings.Join(byPrefix, ", "))
	}
	return "", fmt.Errorf("no app %s", arg)
}

// resolveIDs turns ids, id prefixes and names into app ids. Whole ids are
// used as given (no extra round trip); anything else costs one List.
func resolveIDs(ctx context.Context, host string, c *client.Client, args []string) ([]string, error) {
	out := make([]string, len(args))
	var apps []*v1.App
	listed := false
	for i, a := range args {
		if isFullID(a) {
			out[i] = a
			continue
		}
		if !listed {
			resp, err := c.Apps.List(ctx, connect.NewRequest(&v1.ListRequest{All: true}))
			if err != nil {
				return nil, apiError(host, err)
			}
			apps, listed = resp.Msg.GetApps(), true
		}
		id, err := matchApp(a, apps)
		if err != nil {
			return nil, &exitError{code: exitFailed, msg: err.Error()}
		}
		out[i] = id
	}
	return out, nil
}
