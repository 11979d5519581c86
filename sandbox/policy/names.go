package policy

import (
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// capabilityNames are the Linux capabilities, in number order (CAP_CHOWN is 0).
var capabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// canonicalCapability returns the CAP_X form of a capability name written with
// or without the CAP_ prefix, in any case, and whether it is known.
func canonicalCapability(s string) (string, bool) {
	u := strings.ToUpper(s)
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	return u, slices.Contains(capabilityNames, u)
}

// rlimitNames are the resource limits a policy may set in limits.rlimits.
// Byte-valued ones accept size suffixes.
var rlimitNames = map[string]bool{ // name -> counts bytes
	"RLIMIT_AS": true, "RLIMIT_CORE": true, "RLIMIT_CPU": false,
	"RLIMIT_DATA": true, "RLIMIT_FSIZE": true, "RLIMIT_LOCKS": false,
	"RLIMIT_MEMLOCK": true, "RLIMIT_MSGQUEUE": true, "RLIMIT_NICE": false,
	"RLIMIT_NOFILE": false, "RLIMIT_NPROC": false, "RLIMIT_RSS": true,
	"RLIMIT_RTPRIO": false, "RLIMIT_RTTIME": false, "RLIMIT_SIGPENDING": false,
	"RLIMIT_STACK": true,
}

// rlimitInfinity is RLIM_INFINITY; a file writes it "unlimited".
const rlimitInfinity = ^uint64(0)

func canonicalRlimit(s string) (string, bool) {
	u := strings.ToUpper(s)
	if !strings.HasPrefix(u, "RLIMIT_") {
		u = "RLIMIT_" + u
	}
	_, ok := rlimitNames[u]
	return u, ok
}

// seccompActions maps the short action names of a policy file to OCI actions.
var seccompActions = []struct {
	short string
	oci   specs.LinuxSeccompAction
}{
	{"allow", specs.ActAllow},
	{"errno", specs.ActErrno},
	{"kill", specs.ActKill},
	{"kill_process", specs.ActKillProcess},
	{"kill_thread", specs.ActKillThread},
	{"log", specs.ActLog},
	{"trap", specs.ActTrap},
	{"trace", specs.ActTrace},
	{"notify", specs.ActNotify},
}

// defaultActions are the actions allowed as seccomp.defaultAction.
var defaultActions = []specs.LinuxSeccompAction{
	specs.ActErrno, specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActLog,
}

// parseSeccompAction accepts a short ("errno") or OCI ("SCMP_ACT_ERRNO")
// action name in any case.
func parseSeccompAction(s string) (specs.LinuxSeccompAction, bool) {
	for _, a := range seccompActions {
		if strings.EqualFold(s, a.short) || strings.EqualFold(s, string(a.oci)) {
			return a.oci, true
		}
	}
	return "", false
}

func shortSeccompAction(a specs.LinuxSeccompAction) string {
	for _, x := range seccompActions {
		if x.oci == a {
			return x.short
		}
	}
	return string(a)
}

func knownSeccompAction(a specs.LinuxSeccompAction) bool {
	for _, x := range seccompActions {
		if x.oci == a {
			return true
		}
	}
	return false
}

var seccompOps = []struct {
	short string
	oci   specs.LinuxSeccompOperator
}{
	{"ne", specs.OpNotEqual},
	{"lt", specs.OpLessThan},
	{"le", specs.OpLessEqual},
	{"eq", specs.OpEqualTo},
	{"ge", specs.OpGreaterEqual},
	{"gt", specs.OpGreaterThan},
	{"masked_eq", specs.OpMaskedEqual},
}

func parseSeccompOp(s string) (specs.LinuxSeccompOperator, bool) {
	for _, o := range seccompOps {
		if strings.EqualFold(s, o.short) || strings.EqualFold(s, string(o.oci)) {
			return o.oci, true
		}
	}
	return "", false
}

func shortSeccompOp(op specs.LinuxSeccompOperator) string {
	for _, o := range seccompOps {
		if o.oci == op {
			return o.short
		}
	}
	return string(op)
}

func knownSeccompOp(op specs.LinuxSeccompOperator) bool {
	for _, o := range seccompOps {
		if o.oci == op {
			return true
		}
	}
	return false
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of adjacent characters.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j] is the distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// closest returns the candidate nearest to s (ignoring case), and its
// distance. Ties go to the earlier candidate.
func closest(s string, candidates []string) (string, int) {
	best, bestD := "", -1
	ls := strings.ToLower(s)
	for _, c := range candidates {
		d := editDistance(ls, strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best, bestD
}

// suggest returns a "did you mean" candidate for a misspelt field name, or ""
// when none is close enough to be a likely typo.
func suggest(s string, candidates []string) string {
	if len(s) > 64 {
		return ""
	}
	c, d := closest(s, candidates)
	if d < 0 || d > max(1, len(c)/3) {
		return ""
	}
	return c
}

// closestCapability always names the nearest capability: an operator who
// wrote an unknown one needs to see what exists.
func closestCapability(s string) string {
	u := strings.ToUpper(s)
	if len(u) > 32 {
		u = u[:32] // longer than any capability name
	}
	if !strings.HasPrefix(u, "CAP_") {
		u = "CAP_" + u
	}
	// A name that is a prefix of exactly one capability (CAP_NET_BIND)
	// is better matched by that than by edit distance.
	var prefixed []string
	for _, c := range capabilityNames {
		if strings.HasPrefix(c, u) {
			prefixed = append(prefixed, c)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	c, _ := closest(u, capabilityNames)
	return c
}
