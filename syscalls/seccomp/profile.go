package seccomp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Limits of the kernel ABI that a profile is checked against.
const (
	maxSyscallArgs = 6    // seccomp_data.args
	maxErrno       = 4095 // MAX_ERRNO: the kernel caps SECCOMP_RET_ERRNO data here
)

// Flag names accepted in a profile's "flags", as the kernel spells them.
const (
	flagTsync            specs.LinuxSeccompFlag = "SECCOMP_FILTER_FLAG_TSYNC"
	flagLog                                     = specs.LinuxSeccompFlagLog
	flagSpecAllow                               = specs.LinuxSeccompFlagSpecAllow
	flagWaitKillableRecv                        = specs.LinuxSeccompFlagWaitKillableRecv
)

const archPrefix = "SCMP_ARCH_"

// Lists for error messages.
const (
	archExamples = "e.g. SCMP_ARCH_X86_64, SCMP_ARCH_AARCH64"
	actionNames  = "SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_KILL, SCMP_ACT_TRAP, SCMP_ACT_TRACE, SCMP_ACT_LOG or SCMP_ACT_NOTIFY"
	opNames      = "SCMP_CMP_EQ, SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_GT, SCMP_CMP_GE or SCMP_CMP_MASKED_EQ"
)

// LoadFile reads an OCI (runtime-spec linux.seccomp) seccomp profile, such as
// Docker's default profile in OCI form, and returns it as written. See Parse.
func LoadFile(path string) (*specs.LinuxSeccomp, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading seccomp profile: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// fileProfile mirrors specs.LinuxSeccomp for strict decoding: unknown fields
// are errors (a misspelt "args" would otherwise turn a conditional allow into
// an unconditional one), comments are tolerated, and Docker's own format is
// recognised so that it can be refused clearly.
type fileProfile struct {
	Comment          string                   `json:"_comment"`
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet"`
	Architectures    []specs.Arch             `json:"architectures"`
	ArchMap          json.RawMessage          `json:"archMap"` // Docker format
	Flags            []specs.LinuxSeccompFlag `json:"flags"`
	ListenerPath     string                   `json:"listenerPath"`
	ListenerMetadata string                   `json:"listenerMetadata"`
	Syscalls         []fileSyscall            `json:"syscalls"`
}

type fileSyscall struct {
	Names    []string                 `json:"names"`
	Action   specs.LinuxSeccompAction `json:"action"`
	ErrnoRet *uint                    `json:"errnoRet"`
	Args     []specs.LinuxSeccompArg  `json:"args"`
	Comment  string                   `json:"comment"`
	Includes json.RawMessage          `json:"includes"` // Docker format
	Excludes json.RawMessage          `json:"excludes"` // Docker format
}

// Parse decodes an OCI seccomp profile from JSON and validates it (see
// Validate). Unknown fields are errors; "_comment" and per-rule "comment"
// fields are ignored. A profile in Docker's own format (archMap,
// includes/excludes) is refused with an error wrapping ErrDockerFormat.
func Parse(data []byte) (*specs.LinuxSeccomp, error) {
	var fp fileProfile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fp); err != nil {
		return nil, fmt.Errorf("decoding seccomp profile: %w", jsonError(data, err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decoding seccomp profile: %s: unexpected data after the profile object", position(data, dec.InputOffset()))
	}
	if present(fp.ArchMap) {
		return nil, &ProfileError{Field: "archMap", Err: ErrDockerFormat,
			Msg: "archMap is Docker's profile format; pinfold reads the OCI form (the linux.seccomp object Docker passes to runc, with \"architectures\"), where Docker's capability and kernel conditions are already resolved"}
	}
	// Empty lists are stored as nil, as if absent: they mean the same, and
	// the profile then survives a JSON round trip unchanged.
	p := &specs.LinuxSeccomp{
		DefaultAction:    fp.DefaultAction,
		DefaultErrnoRet:  fp.DefaultErrnoRet,
		Architectures:    nilIfEmpty(fp.Architectures),
		Flags:            nilIfEmpty(fp.Flags),
		ListenerPath:     fp.ListenerPath,
		ListenerMetadata: fp.ListenerMetadata,
	}
	for i, s := range fp.Syscalls {
		for _, f := range []struct {
			name string
			raw  json.RawMessage
		}{{"includes", s.Includes}, {"excludes", s.Excludes}} {
			if present(f.raw) {
				return nil, &ProfileError{Field: fmt.Sprintf("syscalls[%d].%s", i, f.name), Syscall: first(s.Names), Err: ErrDockerFormat,
					Msg: f.name + " is Docker's profile format (conditions on capabilities, architecture and kernel); pinfold reads the OCI form, where Docker has already resolved them"}
			}
		}
		p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{Names: nilIfEmpty(s.Names), Action: s.Action, ErrnoRet: s.ErrnoRet, Args: nilIfEmpty(s.Args)})
	}
	if err := Validate(p); err != nil {
		return nil, err
	}
	return p, nil
}

func nilIfEmpty[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

// present reports whether a raw JSON field holds something other than null,
// {} or [].
func present(raw json.RawMessage) bool {
	s := string(bytes.Join(bytes.Fields(raw), nil))
	return s != "" && s != "null" && s != "{}" && s != "[]"
}

// jsonError adds a line:column position to decoding errors that carry an
// offset.
func jsonError(data []byte, err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("%s: %w", position(data, syn.Offset), err)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("%s: %s: cannot use JSON %s as %s", position(data, typ.Offset), typ.Field, typ.Value, typ.Type)
	}
	if errors.Is(err, io.EOF) {
		return errors.New("empty input: expected a JSON object with defaultAction and syscalls")
	}
	return err
}

// position turns a byte offset into "line L, column C" (both from 1).
func position(data []byte, off int64) string {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

func first(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// Validate checks a profile for everything that can be checked without
// libseccomp: known actions, operators, flags and architecture names,
// argument indexes, errno ranges, non-empty names. It returns every problem
// found, joined; each is a *ProfileError wrapping ErrInvalidProfile (or
// ErrNotSupported). Syscall names are resolved only by Compile.
func Validate(p *specs.LinuxSeccomp) error {
	if p == nil {
		return &ProfileError{Field: "(profile)", Msg: "no profile"}
	}
	var errs []error
	add := func(field, syscall string, class error, format string, args ...any) {
		errs = append(errs, &ProfileError{Field: field, Syscall: syscall, Msg: fmt.Sprintf(format, args...), Err: class})
	}
	switch {
	case p.DefaultAction == "":
		add("defaultAction", "", nil, "required (e.g. SCMP_ACT_ERRNO)")
	case !knownAction(p.DefaultAction):
		add("defaultAction", "", nil, "%q is not a seccomp action (use %s)", p.DefaultAction, actionNames)
	case p.DefaultAction == specs.ActNotify:
		add("defaultAction", "", nil, "SCMP_ACT_NOTIFY cannot be the default action: every syscall, including those that deliver the listener, would wait for it")
	}
	if p.DefaultErrnoRet != nil {
		checkErrno(add, "defaultErrnoRet", "", p.DefaultAction, *p.DefaultErrnoRet)
	}
	for i, a := range p.Architectures {
		if _, ok := archName(a); !ok {
			add(fmt.Sprintf("architectures[%d]", i), "", nil, "%q is not an architecture (%s)", a, archExamples)
		}
	}
	notify := false
	for _, s := range p.Syscalls {
		notify = notify || s.Action == specs.ActNotify
	}
	for i, f := range p.Flags {
		switch f {
		case flagTsync, flagLog, flagSpecAllow:
		case flagWaitKillableRecv:
			if !notify {
				add(fmt.Sprintf("flags[%d]", i), "", nil, "%s applies only to filters with a SCMP_ACT_NOTIFY rule", f)
			}
		default:
			add(fmt.Sprintf("flags[%d]", i), "", nil, "%q is not a seccomp filter flag (use %s, %s or %s)", f, flagLog, flagSpecAllow, flagWaitKillableRecv)
		}
	}
	if p.ListenerPath != "" {
		add("listenerPath", "", ErrNotSupported, "pinfold does not hand the notification listener to an external agent; remove listenerPath (SCMP_ACT_NOTIFY rules are served by the supervisor)")
	} else if p.ListenerMetadata != "" {
		add("listenerMetadata", "", nil, "applies only with listenerPath")
	}
	for i, s := range p.Syscalls {
		path := fmt.Sprintf("syscalls[%d]", i)
		name := first(s.Names)
		if len(s.Names) == 0 {
			add(path+".names", "", nil, "required: the syscalls the rule applies to (e.g. [\"ptrace\"])")
		}
		for j, n := range s.Names {
			if n == "" || strings.ContainsFunc(n, func(r rune) bool { return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') }) {
				add(fmt.Sprintf("%s.names[%d]", path, j), name, nil, "%q is not a syscall name (lowercase letters, digits and _, e.g. \"ptrace\")", n)
			}
		}
		switch {
		case s.Action == "":
			add(path+".action", name, nil, "required (e.g. SCMP_ACT_ALLOW)")
		case !knownAction(s.Action):
			add(path+".action", name, nil, "%q is not a seccomp action (use %s)", s.Action, actionNames)
		}
		if s.ErrnoRet != nil {
			checkErrno(add, path+".errnoRet", name, s.Action, *s.ErrnoRet)
		}
		for j, a := range s.Args {
			ap := fmt.Sprintf("%s.args[%d]", path, j)
			if a.Index >= maxSyscallArgs {
				add(ap+".index", name, nil, "%d is out of range: syscalls have arguments 0 to %d", a.Index, maxSyscallArgs-1)
			}
			switch {
			case a.Op == "":
				add(ap+".op", name, nil, "required (%s)", opNames)
			case !knownOp(a.Op):
				add(ap+".op", name, nil, "%q is not a comparison (use %s)", a.Op, opNames)
			case a.ValueTwo != 0 && a.Op != specs.OpMaskedEqual:
				add(ap+".valueTwo", name, nil, "applies only to SCMP_CMP_MASKED_EQ (value is the mask, valueTwo the expected result)")
			}
		}
		if n := ruleCount(s.Args); n > maxExpandedRules {
			add(path+".args", name, nil, "several conditions on the same argument expand to %d alternatives (limit %d); split the rule", n, maxExpandedRules)
		}
	}
	return errors.Join(errs...)
}

func checkErrno(add func(string, string, error, string, ...any), field, syscall string, action specs.LinuxSeccompAction, v uint) {
	switch {
	case action != specs.ActErrno && action != specs.ActTrace:
		add(field, syscall, nil, "applies only to SCMP_ACT_ERRNO and SCMP_ACT_TRACE")
	case v > maxErrno:
		add(field, syscall, nil, "%d is above %d, the largest errno", v, maxErrno)
	}
}

func knownAction(a specs.LinuxSeccompAction) bool {
	switch a {
	case specs.ActKill, specs.ActKillProcess, specs.ActKillThread, specs.ActTrap, specs.ActErrno,
		specs.ActTrace, specs.ActAllow, specs.ActLog, specs.ActNotify:
		return true
	}
	return false
}

func knownOp(op specs.LinuxSeccompOperator) bool {
	switch op {
	case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
		return true
	}
	return false
}

// archName returns libseccomp's name for an OCI architecture
// ("SCMP_ARCH_X86_64" -> "x86_64").
func archName(a specs.Arch) (string, bool) {
	s, ok := strings.CutPrefix(string(a), archPrefix)
	if !ok {
		return "", false
	}
	switch s = strings.ToLower(s); s {
	case "x86", "x86_64", "x32", "arm", "aarch64", "mips", "mips64", "mips64n32", "mipsel",
		"mipsel64", "mipsel64n32", "ppc", "ppc64", "ppc64le", "s390", "s390x", "parisc",
		"parisc64", "riscv64", "loongarch64", "m68k", "sh", "sheb":
		return s, true
	}
	return "", false
}

// maxExpandedRules bounds how many libseccomp rules one profile rule may
// expand to (see ruleCount).
const maxExpandedRules = 256

// ruleCount is the number of libseccomp rules a profile rule becomes.
// libseccomp can compare each argument only once per rule, so conditions on
// the same argument are read as alternatives (OR) while conditions on
// different arguments must all hold (AND): the rule expands to the cross
// product. This matches runc when all conditions are on distinct arguments
// (AND) or all on one argument (OR). runc differs only in the mixed case: as
// soon as one argument repeats it makes every condition its own rule, ORing
// conditions on different arguments too.
func ruleCount(args []specs.LinuxSeccompArg) int {
	var per [maxSyscallArgs]int
	for _, a := range args {
		if a.Index < maxSyscallArgs {
			per[a.Index]++
		}
	}
	n := 1
	for _, c := range per {
		if c > 0 {
			n *= c
			if n > maxExpandedRules {
				return n
			}
		}
	}
	return n
}
