package policy

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/syscalls/seccomp"
)

// Bounds that the kernel or the OCI runtime spec sets on policy values.
const (
	minMemory      = 4 * MiB
	maxCPU         = 65536 // cores
	minCPUPeriod   = time.Millisecond
	maxCPUPeriod   = time.Second
	minCPUQuota    = time.Millisecond // the kernel rejects shorter CFS quotas
	minCPUShares   = 2
	maxCPUShares   = 262144
	maxPids        = 4194304 // PID_MAX_LIMIT
	minIOWeight    = 10
	maxIOWeight    = 1000
	maxOpenFiles   = 2147483584 // the largest fs.nr_open the kernel accepts
	maxIDMappings  = 340        // per map since Linux 4.15
	maxErrno       = 4095
	maxSyscallArgs = 6
	invalidID      = math.MaxUint32 // (uid_t)-1
	maxProfileSize = 4 << 20
	eperm          = 1 // the errno of an errno action without errnoRet
)

// Name checks, written out rather than as regular expressions: every
// package-level regexp is compiled when the pinfold binary starts (~50 µs
// each), whether or not a policy file is read.

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// all reports whether s is non-empty and every byte satisfies ok.
func all(s string, ok func(byte) bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

// isDNSLabel: [a-z0-9]([-a-z0-9]*[a-z0-9])?, or with upper case too.
func isDNSLabel(s string, upper bool) bool {
	alnum := func(c byte) bool { return isLower(c) || isDigit(c) || (upper && isUpper(c)) }
	return all(s, func(c byte) bool { return alnum(c) || c == '-' }) && alnum(s[0]) && alnum(s[len(s)-1])
}

// isEnvName: [A-Za-z_][A-Za-z0-9_]*.
func isEnvName(s string) bool {
	return all(s, func(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) || c == '_' }) && !isDigit(s[0])
}

// isSyscallName: [a-z0-9_]+.
func isSyscallName(s string) bool {
	return all(s, func(c byte) bool { return isLower(c) || isDigit(c) || c == '_' })
}

// isIdent: [A-Za-z0-9_]+.
func isIdent(s string) bool {
	return all(s, func(c byte) bool { return isLower(c) || isUpper(c) || isDigit(c) || c == '_' })
}

// Validate checks a policy built or changed in code: every value in range,
// the sections consistent with each other, bind sources present on this
// host, a seccomp profile file loadable. It returns an ErrorList (without file
// positions) or nil. Parse runs the same checks.
func (p *Policy) Validate() error {
	return p.validate().err()
}

type validator struct {
	errs        ErrorList
	suggestions int // "did you mean" searches done
}

func (v *validator) add(path string, kind error, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...), Err: kind})
}

// fieldPath appends a map key to a path: spec.env.LANG, or
// spec.filesystem.tmpfs["/tmp"] for keys that are not identifiers.
func fieldPath(base, key string) string {
	if isIdent(key) {
		if base == "" {
			return key
		}
		return base + "." + key
	}
	return base + "[" + strconv.Quote(key) + "]"
}

func indexPath(base string, i int) string {
	return base + "[" + strconv.Itoa(i) + "]"
}

func (p *Policy) validate() ErrorList {
	v := &validator{}
	v.header(p.APIVersion, p.Kind, Kind, p.Metadata.Name, "python-tool")
	s := &p.Spec
	v.namespaces(&s.Namespaces)
	v.hostname(s)
	v.user(s)
	v.env(s.Env)
	v.filesystem(&s.Filesystem)
	v.cgroupfs(s)
	v.resources(&s.Resources)
	v.limits(&s.Limits)
	v.capabilities(&s.Capabilities)
	v.seccomp(&s.Seccomp)
	v.network(s)
	v.ipcGrants(&s.IPC)
	return v.errs
}

// header checks the apiVersion, kind and metadata.name of a file of kind
// want; example is a name to suggest.
func (v *validator) header(apiVersion, kind, want, name, example string) {
	switch apiVersion {
	case APIVersion:
	case "":
		v.add("apiVersion", ErrMissingField, "required (write apiVersion: %s)", APIVersion)
	default:
		v.add("apiVersion", ErrUnsupported, "%s is not supported (use %s)", quote(apiVersion), APIVersion)
	}
	switch kind {
	case want:
	case "":
		v.add("kind", ErrMissingField, "required (write kind: %s)", want)
	default:
		v.add("kind", ErrUnsupported, "%s is not supported (use %s)", quote(kind), want)
	}
	v.metadataName(name, example)
}

func (v *validator) metadataName(name, example string) {
	switch {
	case name == "":
		v.add("metadata.name", ErrMissingField, "required (a name such as %s)", example)
	case !isPolicyName(name):
		v.add("metadata.name", ErrInvalidValue, "%s is not a valid name (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)", quote(name))
	}
}

func (v *validator) namespaces(ns *Namespaces) {
	if ns.User == nil {
		return
	}
	const base = "spec.namespaces.user"
	v.idMappings(base+".uidMappings", ns.User.UIDMappings)
	v.idMappings(base+".gidMappings", ns.User.GIDMappings)
	// pinfold's init stage runs as root of the new namespace before it
	// switches to spec.user.
	for _, m := range []struct {
		path string
		ms   []specs.LinuxIDMapping
	}{{base + ".uidMappings", ns.User.UIDMappings}, {base + ".gidMappings", ns.User.GIDMappings}} {
		if len(m.ms) > 0 && !mapped(0, m.ms) {
			v.add(m.path, ErrInvalidValue, "must map id 0 (pinfold's init stage runs as root inside the user namespace before switching to spec.user)")
		}
	}
}

func (v *validator) idMappings(path string, ms []specs.LinuxIDMapping) {
	if len(ms) == 0 {
		v.add(path, ErrMissingField, "required with a user namespace (e.g. [{containerID: 0, hostID: 100000, size: 65536}])")
		return
	}
	if len(ms) > maxIDMappings {
		v.add(path, ErrInvalidValue, "%d mappings is more than the kernel's limit of %d", len(ms), maxIDMappings)
	}
	for i, m := range ms {
		p := indexPath(path, i)
		if m.Size == 0 {
			v.add(p+".size", ErrInvalidValue, "must be greater than 0")
			continue
		}
		if uint64(m.ContainerID)+uint64(m.Size) > invalidID {
			v.add(p, ErrInvalidValue, "containerID %d + size %d goes past the largest id, %d", m.ContainerID, m.Size, invalidID-1)
			continue
		}
		if uint64(m.HostID)+uint64(m.Size) > invalidID {
			v.add(p, ErrInvalidValue, "hostID %d + size %d goes past the largest id, %d", m.HostID, m.Size, invalidID-1)
			continue
		}
		for j, o := range ms[:i] {
			if o.Size == 0 {
				continue
			}
			if overlap(m.ContainerID, m.Size, o.ContainerID, o.Size) {
				v.add(p, ErrInvalidValue, "container ids overlap those of %s", indexPath(path, j))
				break
			}
			if overlap(m.HostID, m.Size, o.HostID, o.Size) {
				v.add(p, ErrInvalidValue, "host ids overlap those of %s", indexPath(path, j))
				break
			}
		}
	}
}

func overlap(a, asize, b, bsize uint32) bool {
	return uint64(a) < uint64(b)+uint64(bsize) && uint64(b) < uint64(a)+uint64(asize)
}

func mapped(id uint32, ms []specs.LinuxIDMapping) bool {
	for _, m := range ms {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return true
		}
	}
	return false
}

func (v *validator) hostname(s *Spec) {
	const path = "spec.hostname"
	if !s.Namespaces.UTS {
		if s.Hostname != "" {
			v.add(path, ErrInvalidValue, "needs namespaces.uts: true (without a UTS namespace the app sees the host's hostname)")
		}
		return
	}
	if s.Hostname == "" {
		v.add(path, ErrMissingField, "required with a UTS namespace (e.g. sandbox)")
		return
	}
	if !validHostname(s.Hostname) {
		v.add(path, ErrInvalidValue, "%s is not a valid hostname (letters, digits and '-' in labels separated by '.', each label at most 63 characters, at most 64 in all)", quote(s.Hostname))
	}
}

func validHostname(h string) bool {
	if len(h) > 64 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if len(l) > 63 || !isDNSLabel(l, true) {
			return false
		}
	}
	return true
}

func (v *validator) user(s *Spec) {
	u, ns := &s.User, s.Namespaces.User
	check := func(path, what string, id uint32, ms []specs.LinuxIDMapping, mapName string) {
		if id == invalidID {
			v.add(path, ErrInvalidValue, "%d is not a valid %s", id, what)
			return
		}
		if ns != nil && !mapped(id, ms) {
			v.add(path, ErrInvalidValue, "%s %d is not mapped by spec.namespaces.user.%s", what, id, mapName)
		}
	}
	var uids, gids []specs.LinuxIDMapping
	if ns != nil {
		uids, gids = ns.UIDMappings, ns.GIDMappings
	}
	check("spec.user.uid", "uid", u.UID, uids, "uidMappings")
	check("spec.user.gid", "gid", u.GID, gids, "gidMappings")
	for i, g := range u.AdditionalGids {
		check(indexPath("spec.user.additionalGids", i), "gid", g, gids, "gidMappings")
	}
}

func (v *validator) env(env map[string]string) {
	v.envAt("spec.env", env)
}

// envAt checks environment variables at path.
func (v *validator) envAt(base string, env map[string]string) {
	for _, k := range sortedKeys(env) {
		path := fieldPath(base, k)
		val := env[k]
		if !isEnvName(k) {
			v.add(path, ErrInvalidValue, "%s is not a valid variable name (letters, digits and '_', not starting with a digit)", quote(k))
		}
		switch {
		case strings.IndexByte(val, 0) >= 0:
			v.add(path, ErrInvalidValue, "value contains a NUL byte")
		case !utf8.ValidString(val):
			v.add(path, ErrInvalidValue, "value is not valid UTF-8")
		}
	}
}

// pathProblem says what is wrong with a path that must be absolute and
// clean, or "" when nothing is.
func pathProblem(p string) string {
	switch {
	case p == "":
		return "empty path"
	case strings.IndexByte(p, 0) >= 0:
		return "path contains a NUL byte"
	case !utf8.ValidString(p):
		return "path is not valid UTF-8"
	case !strings.HasPrefix(p, "/"):
		return quote(p) + " is not an absolute path"
	case slices.Contains(strings.Split(p, "/"), ".."):
		return quote(p) + ` must not contain ".."`
	case cleanPath(p) != p:
		return fmt.Sprintf("%s is not a clean path (write %s)", quote(p), cleanPath(p))
	}
	return ""
}

// cleanPath is path.Clean for absolute paths without "..".
func cleanPath(p string) string {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			parts = append(parts, s)
		}
	}
	return "/" + strings.Join(parts, "/")
}

func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func (v *validator) filesystem(fsys *Filesystem) {
	const base = "spec.filesystem"
	mounts := map[string]string{} // destination -> path of the entry that mounts it
	claim := func(path, dst string) {
		if first, ok := mounts[dst]; ok {
			v.add(path, ErrInvalidValue, "%s is already mounted by %s", dst, first)
			return
		}
		mounts[dst] = path
	}
	binds := func(name string, list []Bind) {
		for i, b := range list {
			path := indexPath(base+"."+name, i)
			if !v.bind(path, b) {
				continue
			}
			claim(path, b.Destination)
		}
	}
	binds("readOnly", fsys.ReadOnly)
	binds("readWrite", fsys.ReadWrite)
	for _, dst := range sortedKeys(fsys.Tmpfs) {
		path := fieldPath(base+".tmpfs", dst)
		if msg := pathProblem(dst); msg != "" {
			v.add(path, ErrInvalidValue, "%s", msg)
			continue
		}
		if !v.mountPoint(path, dst, true) {
			continue
		}
		if size := fsys.Tmpfs[dst]; size <= 0 {
			v.add(path, ErrInvalidValue, "size %s is too small (use e.g. 64Mi)", size)
		}
		claim(path, dst)
	}
	for i, m := range fsys.Masked {
		path := indexPath(base+".masked", i)
		if msg := pathProblem(m); msg != "" {
			v.add(path, ErrInvalidValue, "%s", msg)
		} else if m == "/" {
			v.add(path, ErrInvalidValue, "cannot mask /")
		}
	}
	if fsys.Workdir == "" {
		v.add(base+".workdir", ErrMissingField, "required (e.g. /tmp)")
	} else if msg := pathProblem(fsys.Workdir); msg != "" {
		v.add(base+".workdir", ErrInvalidValue, "%s", msg)
	}
}

func (v *validator) cgroupfs(s *Spec) {
	if s.Filesystem.Cgroupfs && !s.Namespaces.Cgroup {
		v.add("spec.filesystem.cgroupfs", ErrInvalidValue, "needs namespaces.cgroup: true (without a cgroup namespace the view would show the host's cgroup tree; write cgroupfs: false)")
	}
}

// bind checks one bind mount and reports whether its destination is usable.
func (v *validator) bind(path string, b Bind) bool {
	ok := true
	for _, p := range []string{b.Source, b.Destination} {
		if msg := pathProblem(p); msg != "" {
			v.add(path, ErrInvalidValue, "%s", msg)
			ok = false
		} else if strings.Contains(p, ":") {
			v.add(path, ErrInvalidValue, "%s: a bind path cannot contain ':'", quote(p))
			ok = false
		}
		if b.Source == b.Destination {
			break
		}
	}
	if !ok {
		return false
	}
	if !v.mountPoint(path, b.Destination, false) {
		return false
	}
	if _, err := os.Stat(b.Source); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			v.errs = append(v.errs, &FieldError{Path: path, Msg: b.Source + " does not exist on this host", Err: err})
		} else {
			v.errs = append(v.errs, &FieldError{Path: path, Msg: err.Error(), Err: err})
		}
	}
	return true
}

// mountPoint rejects destinations that pinfold mounts itself.
func (v *validator) mountPoint(path, dst string, tmpfs bool) bool {
	switch {
	case dst == "/":
		v.add(path, ErrInvalidValue, "cannot mount over /: pinfold builds the root filesystem")
	case under(dst, "/proc"):
		v.add(path, ErrInvalidValue, "cannot mount at %s: pinfold mounts /proc itself (hide paths with masked)", dst)
	case under(dst, "/sys"):
		v.add(path, ErrInvalidValue, "cannot mount at %s: pinfold mounts /sys itself (see sysfs)", dst)
	case dst == "/dev" || (!tmpfs && under(dst, "/dev")):
		v.add(path, ErrInvalidValue, "cannot mount at %s: pinfold builds /dev itself", dst)
	default:
		return true
	}
	return false
}

func (v *validator) resources(r *Resources) {
	const base = "spec.resources."
	if r.Memory < minMemory {
		v.add(base+"memory", ErrInvalidValue, "%s is below the minimum of %s", r.Memory, minMemory)
	}
	switch {
	case r.MemorySwap < 0:
		v.add(base+"memorySwap", ErrInvalidValue, "must not be negative")
	case r.Memory > 0 && r.MemorySwap > math.MaxInt64-r.Memory:
		v.add(base+"memorySwap", ErrInvalidValue, "memory + memorySwap is too large")
	}
	periodOK := true
	switch {
	case r.CPUPeriod < minCPUPeriod || r.CPUPeriod > maxCPUPeriod:
		v.add(base+"cpuPeriod", ErrInvalidValue, "must be between %s and %s, got %s", minCPUPeriod, maxCPUPeriod, r.CPUPeriod)
		periodOK = false
	case r.CPUPeriod%time.Microsecond != 0:
		v.add(base+"cpuPeriod", ErrInvalidValue, "%s is not a whole number of microseconds", r.CPUPeriod)
		periodOK = false
	}
	switch {
	case math.IsNaN(r.CPU) || math.IsInf(r.CPU, 0):
		v.add(base+"cpu", ErrInvalidValue, "must be a number of cores such as 1 or 0.5")
	case r.CPU < 0:
		v.add(base+"cpu", ErrInvalidValue, "must not be negative (0 is no limit)")
	case r.CPU > maxCPU:
		v.add(base+"cpu", ErrInvalidValue, "%s cores is more than the maximum of %d", formatFloat(r.CPU), maxCPU)
	case r.CPU > 0 && periodOK:
		if q := r.cpuQuota(); q < minCPUQuota {
			v.add(base+"cpu", ErrInvalidValue, "%s cores over a %s period is a quota of %s, below the kernel's minimum of %s (raise cpu or cpuPeriod)", formatFloat(r.CPU), r.CPUPeriod, q, minCPUQuota)
		}
	}
	if r.CPUShares != 0 && (r.CPUShares < minCPUShares || r.CPUShares > maxCPUShares) {
		v.add(base+"cpuShares", ErrInvalidValue, "must be between %d and %d, got %d", minCPUShares, maxCPUShares, r.CPUShares)
	}
	if r.Pids < 1 || r.Pids > maxPids {
		v.add(base+"pids", ErrInvalidValue, "must be between 1 and %d, got %d", maxPids, r.Pids)
	}
	if r.IOWeight != 0 && (r.IOWeight < minIOWeight || r.IOWeight > maxIOWeight) {
		v.add(base+"ioWeight", ErrInvalidValue, "must be between %d and %d, got %d", minIOWeight, maxIOWeight, r.IOWeight)
	}
}

// cpuQuota is the CFS quota for CPU cores over CPUPeriod, to the microsecond.
func (r *Resources) cpuQuota() time.Duration {
	us := math.Round(r.CPU * float64(r.CPUPeriod/time.Microsecond))
	return time.Duration(us) * time.Microsecond
}

func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func (v *validator) limits(l *Limits) {
	const base = "spec.limits."
	if l.WallTime < 0 {
		v.add(base+"wallTime", ErrInvalidValue, "must not be negative (0 is no limit)")
	}
	if l.StopTimeout < 0 {
		v.add(base+"stopTimeout", ErrInvalidValue, "must not be negative")
	}
	if l.OpenFiles < 1 || l.OpenFiles > maxOpenFiles {
		v.add(base+"openFiles", ErrInvalidValue, "must be between 1 and %d, got %d", maxOpenFiles, l.OpenFiles)
	}
	if l.CoreSize < 0 {
		v.add(base+"coreSize", ErrInvalidValue, "must not be negative")
	}
	if l.RemoveAfter < 0 {
		v.add(base+"removeAfter", ErrInvalidValue, "must not be negative (0 keeps exited apps until removed)")
	}
	if l.LogSize < 0 || (l.LogSize > 0 && l.LogSize < 64*KiB) || l.LogSize > 1*GiB {
		v.add(base+"logSize", ErrInvalidValue, "must be between 64Ki and 1Gi, got %s", l.LogSize)
	}
	seen := map[string]bool{}
	for _, r := range l.Rlimits {
		path := fieldPath(base+"rlimits", r.Type)
		canon, known := canonicalRlimit(r.Type)
		switch {
		case !known:
			v.add(path, ErrInvalidValue, "%s is not a resource limit (use e.g. RLIMIT_STACK)", quote(r.Type))
			continue
		case canon != r.Type:
			v.add(path, ErrInvalidValue, "write %s", canon)
			continue
		case r.Type == "RLIMIT_NPROC":
			v.add(path, ErrUnsupported, "RLIMIT_NPROC is not supported: it counts all processes of a uid, which sandboxes share; the number of tasks is limited by resources.pids (a cgroup limit)")
			continue
		case r.Type == "RLIMIT_NOFILE":
			v.add(path, ErrInvalidValue, "set RLIMIT_NOFILE with limits.openFiles")
			continue
		case r.Type == "RLIMIT_CORE":
			v.add(path, ErrInvalidValue, "set RLIMIT_CORE with limits.coreSize")
			continue
		case seen[r.Type]:
			v.add(path, ErrDuplicateField, "given twice")
			continue
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			v.add(path+".soft", ErrInvalidValue, "soft limit %s is above the hard limit %s", formatRlimit(r.Type, r.Soft), formatRlimit(r.Type, r.Hard))
		}
	}
}

func formatRlimit(typ string, n uint64) string {
	if n == rlimitInfinity {
		return "unlimited"
	}
	if rlimitNames[typ] && n <= math.MaxInt64 {
		return formatSize(n)
	}
	return strconv.FormatUint(n, 10)
}

func (v *validator) capabilities(c *Capabilities) {
	seen := map[string]bool{}
	for i, name := range c.Add {
		path := indexPath("spec.capabilities.add", i)
		canon, known := canonicalCapability(name)
		switch {
		case !known && v.suggestions < MaxErrors:
			v.suggestions++
			v.add(path, ErrInvalidValue, "%s is not a capability (did you mean %s?)", quote(name), closestCapability(name))
		case !known:
			// Past the errors anyone will read: spare the search.
			v.add(path, ErrInvalidValue, "%s is not a capability", quote(name))
		case canon != name:
			v.add(path, ErrInvalidValue, "write %s", canon)
		case seen[name]:
			v.add(path, ErrDuplicateField, "%s is listed twice", name)
		}
		seen[canon] = true
	}
}

func (v *validator) seccomp(s *Seccomp) {
	const base = "spec.seccomp."
	switch s.Profile {
	case ProfileDefault, ProfileNone:
	case "":
		v.add(base+"profile", ErrMissingField, "required (default, none, or the absolute path of an OCI seccomp profile)")
	default:
		if msg := pathProblem(s.Profile); msg != "" {
			v.add(base+"profile", ErrInvalidValue, "%s (use default, none, or the absolute path of an OCI seccomp profile)", msg)
		} else if _, err := loadProfile(s.Profile); err != nil {
			v.errs = append(v.errs, &FieldError{Path: base + "profile", Msg: err.Error(), Err: err})
		}
	}
	if s.Profile == ProfileNone {
		switch {
		case s.DefaultAction == "":
			v.add(base+"defaultAction", ErrMissingField, "required with profile: none (errno, kill_process or log)")
		case !slices.Contains(defaultActions, s.DefaultAction):
			v.add(base+"defaultAction", ErrInvalidValue, "%s cannot be the default action (use errno, kill, kill_process, kill_thread or log)", quote(shortSeccompAction(s.DefaultAction)))
		}
	} else if s.DefaultAction != "" {
		v.add(base+"defaultAction", ErrInvalidValue, "applies only with profile: none (a profile has its own default action)")
	}
	for i, r := range s.Syscalls {
		path := indexPath(base+"syscalls", i)
		if len(r.Names) == 0 {
			v.add(path+".names", ErrMissingField, "required (syscall names, e.g. [ptrace])")
		}
		for j, n := range r.Names {
			if len(n) > 64 || !isSyscallName(n) {
				v.add(indexPath(path+".names", j), ErrInvalidValue, "%s is not a syscall name (lowercase, e.g. ptrace)", quote(n))
			}
		}
		switch {
		case r.Action == "":
			v.add(path+".action", ErrMissingField, "required (e.g. allow or errno)")
		case !knownSeccompAction(r.Action):
			v.add(path+".action", ErrInvalidValue, "%s is not a seccomp action (%s)", quote(string(r.Action)), actionList())
		case s.Profile == ProfileNone && r.Action == s.DefaultAction && (r.Action != specs.ActErrno || r.ErrnoRet == nil || *r.ErrnoRet == eperm):
			v.add(path+".action", ErrInvalidValue, "%s is the default action: the rule has no effect", shortSeccompAction(r.Action))
		}
		if r.ErrnoRet != nil {
			if r.Action != specs.ActErrno && r.Action != specs.ActTrace {
				v.add(path+".errnoRet", ErrInvalidValue, "applies only to action errno or trace")
			} else if *r.ErrnoRet > maxErrno {
				v.add(path+".errnoRet", ErrInvalidValue, "must be between 0 and %d, got %d", maxErrno, *r.ErrnoRet)
			}
		}
		if len(r.Args) > maxSyscallArgs {
			v.add(path+".args", ErrInvalidValue, "%d conditions is more than the %d a syscall has arguments", len(r.Args), maxSyscallArgs)
		}
		for j, a := range r.Args {
			ap := indexPath(path+".args", j)
			if a.Index >= maxSyscallArgs {
				v.add(ap+".index", ErrInvalidValue, "must be between 0 and %d, got %d", maxSyscallArgs-1, a.Index)
			}
			switch {
			case a.Op == "":
				v.add(ap+".op", ErrMissingField, "required (eq, ne, lt, le, gt, ge or masked_eq)")
			case !knownSeccompOp(a.Op):
				v.add(ap+".op", ErrInvalidValue, "%s is not a comparison (use eq, ne, lt, le, gt, ge or masked_eq)", quote(string(a.Op)))
			case a.ValueTwo != 0 && a.Op != specs.OpMaskedEqual:
				v.add(ap+".valueTwo", ErrInvalidValue, "applies only to op masked_eq")
			}
		}
	}
}

func actionList() string {
	var names []string
	for _, a := range seccompActions {
		names = append(names, a.short)
	}
	return "use " + strings.Join(names, ", ")
}

func (v *validator) network(s *Spec) {
	const path = "spec.network"
	if s.Namespaces.Net {
		switch s.Network {
		case NetworkNone:
		case "":
			v.add(path, ErrMissingField, "required (none)")
		case NetworkHost:
			v.add(path, ErrInvalidValue, "host means no network namespace: set namespaces.net: false")
		default:
			v.add(path, ErrUnsupported, "%s is not supported (only none, a network namespace with loopback only, is supported)", quote(s.Network))
		}
		return
	}
	if s.Network != NetworkHost {
		v.add(path, ErrInvalidValue, "%s needs namespaces.net: true (without a network namespace the app shares the host's network; write network: host)", quote(s.Network))
	}
}

// loadProfile loads an OCI seccomp profile named by a policy, refusing
// anything but a regular file of sane size (a policy naming /dev/zero must not
// make pinfold read forever).
func loadProfile(path string) (*specs.LinuxSeccomp, error) {
	for _, dir := range []string{"/proc", "/sys", "/dev"} {
		if under(path, dir) {
			return nil, fmt.Errorf("seccomp profile %s: not a regular file", path)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &msgError{"seccomp profile " + path + " does not exist on this host", err}
		}
		return nil, fmt.Errorf("seccomp profile: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seccomp profile %s: not a regular file", path)
	}
	if fi.Size() > maxProfileSize {
		return nil, fmt.Errorf("seccomp profile %s: larger than %s", path, Size(maxProfileSize))
	}
	return seccomp.LoadFile(path)
}

// msgError carries its own message and keeps the error it stands for
// available to errors.Is.
type msgError struct {
	msg string
	err error
}

func (e *msgError) Error() string { return e.msg }
func (e *msgError) Unwrap() error { return e.err }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
