package policy

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Encode writes the policy as a YAML policy file with every field spelt out,
// defaults included, in the order of docs/policy.md. Parse reads it back to an
// equal Policy.
func (p *Policy) Encode(w io.Writer) error {
	var b strings.Builder
	render(&b, p.tree(), 0)
	_, err := io.WriteString(w, b.String())
	return err
}

// The encoder builds a small tree of YAML values, then renders it in block
// style. A string node is a scalar already in YAML syntax.
type ymap struct {
	keys []string
	vals []any
}

func (m *ymap) set(key string, val any) *ymap {
	m.keys = append(m.keys, key)
	m.vals = append(m.vals, val)
	return m
}

type yseq []any

func render(b *strings.Builder, v any, indent int) {
	pad := strings.Repeat("  ", indent)
	switch t := v.(type) {
	case *ymap:
		for i, k := range t.keys {
			k = yamlString(k)
			switch c := t.vals[i].(type) {
			case string:
				fmt.Fprintf(b, "%s%s: %s\n", pad, k, c)
			case *ymap:
				if len(c.keys) == 0 {
					fmt.Fprintf(b, "%s%s: {}\n", pad, k)
					continue
				}
				fmt.Fprintf(b, "%s%s:\n", pad, k)
				render(b, c, indent+1)
			case yseq:
				if flow, ok := flowSeq(c); ok {
					fmt.Fprintf(b, "%s%s: %s\n", pad, k, flow)
					continue
				}
				fmt.Fprintf(b, "%s%s:\n", pad, k)
				render(b, c, indent+1)
			}
		}
	case yseq:
		for _, item := range t {
			if s, ok := item.(string); ok {
				fmt.Fprintf(b, "%s- %s\n", pad, s)
				continue
			}
			if flow, ok := flowMap(item); ok {
				fmt.Fprintf(b, "%s- %s\n", pad, flow)
				continue
			}
			// Render the item one level deeper, then turn the start of
			// its first line into the "- " marker.
			var ib strings.Builder
			render(&ib, item, indent+1)
			b.WriteString(pad + "- " + strings.TrimPrefix(ib.String(), pad+"  "))
		}
	}
}

// flowSeq writes a short sequence of scalars on one line: [a, b].
func flowSeq(s yseq) (string, bool) {
	items := make([]string, len(s))
	for i, v := range s {
		str, ok := v.(string)
		if !ok {
			return "", false
		}
		items[i] = str
	}
	flow := "[" + strings.Join(items, ", ") + "]"
	return flow, len(flow) <= 64
}

// flowMap writes a small mapping of scalars on one line: {a: 1, b: 2}.
func flowMap(v any) (string, bool) {
	m, ok := v.(*ymap)
	if !ok || len(m.keys) == 0 {
		return "", false
	}
	items := make([]string, len(m.keys))
	for i, k := range m.keys {
		s, ok := m.vals[i].(string)
		if !ok {
			return "", false
		}
		items[i] = yamlString(k) + ": " + s
	}
	flow := "{" + strings.Join(items, ", ") + "}"
	return flow, len(flow) <= 64
}

func (p *Policy) tree() *ymap {
	s := &p.Spec
	root := &ymap{}
	root.set("apiVersion", yamlString(p.APIVersion))
	root.set("kind", yamlString(p.Kind))
	root.set("metadata", (&ymap{}).set("name", yamlString(p.Metadata.Name)))

	spec := &ymap{}
	ns := &ymap{}
	ns.set("uts", yamlBool(s.Namespaces.UTS))
	ns.set("ipc", yamlBool(s.Namespaces.IPC))
	ns.set("net", yamlBool(s.Namespaces.Net))
	ns.set("cgroup", yamlBool(s.Namespaces.Cgroup))
	if u := s.Namespaces.User; u != nil {
		ns.set("user", (&ymap{}).
			set("uidMappings", idMappings(u.UIDMappings)).
			set("gidMappings", idMappings(u.GIDMappings)))
	}
	spec.set("namespaces", ns)
	if s.Hostname != "" || s.Namespaces.UTS {
		spec.set("hostname", yamlString(s.Hostname))
	}
	gids := yseq{}
	for _, g := range s.User.AdditionalGids {
		gids = append(gids, strconv.FormatUint(uint64(g), 10))
	}
	spec.set("user", (&ymap{}).
		set("uid", strconv.FormatUint(uint64(s.User.UID), 10)).
		set("gid", strconv.FormatUint(uint64(s.User.GID), 10)).
		set("additionalGids", gids))
	env := &ymap{}
	for _, k := range sortedKeys(s.Env) {
		env.set(k, yamlString(s.Env[k]))
	}
	spec.set("env", env)

	f := &s.Filesystem
	fsys := &ymap{}
	fsys.set("readOnly", binds(f.ReadOnly))
	fsys.set("readWrite", binds(f.ReadWrite))
	tmpfs := &ymap{}
	for _, k := range sortedKeys(f.Tmpfs) {
		tmpfs.set(k, f.Tmpfs[k].String())
	}
	fsys.set("tmpfs", tmpfs)
	masked := yseq{}
	for _, m := range f.Masked {
		masked = append(masked, yamlString(m))
	}
	fsys.set("masked", masked)
	fsys.set("workdir", yamlString(f.Workdir))
	fsys.set("sysfs", yamlBool(f.Sysfs))
	fsys.set("cgroupfs", yamlBool(f.Cgroupfs))
	spec.set("filesystem", fsys)

	r := &s.Resources
	res := &ymap{}
	res.set("memory", r.Memory.String())
	res.set("memorySwap", r.MemorySwap.String())
	res.set("cpu", formatFloat(r.CPU))
	res.set("cpuPeriod", formatDuration(r.CPUPeriod))
	if r.CPUShares != 0 {
		res.set("cpuShares", strconv.FormatUint(r.CPUShares, 10))
	}
	res.set("pids", strconv.FormatInt(r.Pids, 10))
	if r.IOWeight != 0 {
		res.set("ioWeight", strconv.FormatUint(uint64(r.IOWeight), 10))
	}
	spec.set("resources", res)

	l := &s.Limits
	lim := &ymap{}
	lim.set("wallTime", formatDuration(l.WallTime))
	lim.set("stopTimeout", formatDuration(l.StopTimeout))
	lim.set("openFiles", strconv.FormatUint(l.OpenFiles, 10))
	lim.set("coreSize", l.CoreSize.String())
	lim.set("logSize", l.LogSize.String())
	lim.set("removeAfter", formatDuration(l.RemoveAfter))
	rl := &ymap{}
	for _, x := range l.Rlimits {
		flow, _ := flowMap((&ymap{}).
			set("soft", formatRlimit(x.Type, x.Soft)).
			set("hard", formatRlimit(x.Type, x.Hard)))
		rl.set(x.Type, flow)
	}
	lim.set("rlimits", rl)
	spec.set("limits", lim)

	caps := yseq{}
	for _, c := range s.Capabilities.Add {
		caps = append(caps, yamlString(c))
	}
	spec.set("capabilities", (&ymap{}).set("add", caps))

	sc := &ymap{}
	sc.set("profile", yamlString(s.Seccomp.Profile))
	if s.Seccomp.DefaultAction != "" {
		sc.set("defaultAction", yamlString(shortSeccompAction(s.Seccomp.DefaultAction)))
	}
	rules := yseq{}
	for _, r := range s.Seccomp.Syscalls {
		rules = append(rules, syscallRule(r))
	}
	sc.set("syscalls", rules)
	spec.set("seccomp", sc)
	spec.set("network", yamlString(s.Network))
	spec.set("ipc", ipcTree(&s.IPC))
	root.set("spec", spec)
	return root
}

func idMappings(ms []specs.LinuxIDMapping) yseq {
	out := yseq{}
	for _, m := range ms {
		out = append(out, (&ymap{}).
			set("containerID", strconv.FormatUint(uint64(m.ContainerID), 10)).
			set("hostID", strconv.FormatUint(uint64(m.HostID), 10)).
			set("size", strconv.FormatUint(uint64(m.Size), 10)))
	}
	return out
}

func binds(bs []Bind) yseq {
	out := yseq{}
	for _, b := range bs {
		out = append(out, yamlString(b.String()))
	}
	return out
}

func syscallRule(r specs.LinuxSyscall) *ymap {
	m := &ymap{}
	names := yseq{}
	for _, n := range r.Names {
		names = append(names, yamlString(n))
	}
	m.set("names", names)
	m.set("action", yamlString(shortSeccompAction(r.Action)))
	if r.ErrnoRet != nil {
		m.set("errnoRet", strconv.FormatUint(uint64(*r.ErrnoRet), 10))
	}
	if len(r.Args) > 0 {
		args := yseq{}
		for _, a := range r.Args {
			am := (&ymap{}).
				set("index", strconv.FormatUint(uint64(a.Index), 10)).
				set("value", strconv.FormatUint(a.Value, 10))
			if a.ValueTwo != 0 {
				am.set("valueTwo", strconv.FormatUint(a.ValueTwo, 10))
			}
			am.set("op", yamlString(shortSeccompOp(a.Op)))
			args = append(args, am)
		}
		m.set("args", args)
	}
	return m
}

func yamlBool(b bool) string {
	return strconv.FormatBool(b)
}

// isPlain: [A-Za-z_/][A-Za-z0-9_./-]*, a string YAML reads back as itself.
func isPlain(s string) bool {
	ok := func(c byte) bool {
		return isLower(c) || isUpper(c) || isDigit(c) || c == '_' || c == '.' || c == '/' || c == '-'
	}
	return all(s, ok) && !isDigit(s[0]) && s[0] != '.' && s[0] != '-'
}

// Words that a YAML reader may take for something other than a string.
var reservedWords = map[string]bool{
	"true": true, "false": true, "yes": true, "no": true, "on": true, "off": true,
	"y": true, "n": true, "null": true, "inf": true, "nan": true, "infinity": true,
}

// yamlString writes s as a YAML scalar that reads back as the string s:
// plain when that is unambiguous, else double-quoted.
func yamlString(s string) string {
	if isPlain(s) && !reservedWords[strings.ToLower(s)] {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == ' ' || (r < unicode.MaxASCII && unicode.IsPrint(r)) || (r > unicode.MaxASCII && unicode.IsPrint(r) && r != unicode.ReplacementChar):
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
