package vfs

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Plan is every operation that builds a sandbox's filesystem, computed on the
// host by NewPlan and performed by Apply in the sandbox's mount namespace.
// It is plain data and JSON-serialisable; one Plan serves every sandbox of a
// policy. Recompute it when the host's /etc or the bind sources change type.
type Plan struct {
	// RootOptions are the tmpfs options of the new root ("size=...",
	// "mode=0755"). The root is mounted nosuid,nodev,noexec and made
	// read-only once everything below it is in place.
	RootOptions []string `json:"rootOptions"`
	// Ops run in order after the root tmpfs is mounted.
	Ops []Op `json:"ops"`
}

// Kind names what an Op does.
type Kind string

// The operations of a Plan. Paths are absolute paths in the new root.
const (
	// KindDir creates directory Path with permissions Mode.
	KindDir Kind = "dir"
	// KindFile creates regular file Path with permissions Mode and Content.
	KindFile Kind = "file"
	// KindSymlink creates symbolic link Path pointing to Source.
	KindSymlink Kind = "symlink"
	// KindDevice creates character device Path (Major, Minor), permissions Mode.
	KindDevice Kind = "device"
	// KindBind clones host path Source with all its submounts, sets Attr on
	// every mount of the clone and attaches it on Path. Dir says the source
	// is a directory.
	KindBind Kind = "bind"
	// KindMount mounts a new FSType filesystem with Options on Path,
	// mount attributes Attr.
	KindMount Kind = "mount"
	// KindMask hides Path if it exists: a directory under an empty
	// read-only tmpfs, anything else under /dev/null.
	KindMask Kind = "mask"
	// KindReadOnly binds Path onto itself read-only (plus nosuid, nodev,
	// noexec) if it exists.
	KindReadOnly Kind = "readonly"
	// KindSeal makes the mount whose root is Path read-only (that mount
	// only, not its submounts).
	KindSeal Kind = "seal"
)

// Op is one operation of a Plan. Which fields matter depends on Kind.
type Op struct {
	Kind    Kind     `json:"kind"`
	Path    string   `json:"path"`
	Source  string   `json:"source,omitempty"`
	FSType  string   `json:"fstype,omitempty"`
	Options []string `json:"options,omitempty"`
	Attr    Attr     `json:"attr,omitempty"`
	Mode    uint32   `json:"mode,omitempty"`
	Major   uint32   `json:"major,omitempty"`
	Minor   uint32   `json:"minor,omitempty"`
	Content []byte   `json:"content,omitempty"`
	Dir     bool     `json:"dir,omitempty"`
}

// Attr is a set of per-mount attributes.
type Attr uint8

// Mount attributes.
const (
	ReadOnly Attr = 1 << iota // ro: no writes through this mount
	NoSuid                    // nosuid: set-id bits and file capabilities ignored
	NoDev                     // nodev: device nodes cannot be opened
	NoExec                    // noexec: nothing on it can be executed or mapped executable
)

var attrNames = []struct {
	a    Attr
	name string
}{{ReadOnly, "ro"}, {NoSuid, "nosuid"}, {NoDev, "nodev"}, {NoExec, "noexec"}}

// String lists the attributes as in mount(8) options, "rw" for none.
func (a Attr) String() string { return string(a.appendText(nil)) }

// appendText appends a as String does.
func (a Attr) appendText(b []byte) []byte {
	first := a&ReadOnly != 0
	if !first {
		b = append(b, "rw"...)
	}
	for _, n := range attrNames {
		if a&n.a != 0 {
			if !first {
				b = append(b, ',')
			}
			b = append(b, n.name...)
			first = false
		}
	}
	return b
}

// MarshalText encodes a as String does.
func (a Attr) MarshalText() ([]byte, error) { return a.appendText(nil), nil }

// UnmarshalText parses a comma-separated list of ro, rw, nosuid, nodev and
// noexec.
func (a *Attr) UnmarshalText(b []byte) error {
	v, err := parseAttr(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

func parseAttr(s string) (Attr, error) {
	var v Attr
	for f := range strings.SplitSeq(s, ",") {
		switch f {
		case "rw", "":
		case "ro":
			v |= ReadOnly
		case "nosuid":
			v |= NoSuid
		case "nodev":
			v |= NoDev
		case "noexec":
			v |= NoExec
		default:
			return 0, fmt.Errorf("%w: unknown mount attribute %q (want ro, rw, nosuid, nodev or noexec)", ErrInvalidPlan, f)
		}
	}
	return v, nil
}

// Validate checks that p is well formed: known kinds, clean absolute paths,
// and the fields each kind needs. Apply calls it first.
func (p *Plan) Validate() error {
	for i := range p.Ops {
		if err := p.Ops[i].validate(); err != nil {
			return fmt.Errorf("%w: op %d (%s %s): %w", ErrInvalidPlan, i, p.Ops[i].Kind, p.Ops[i].Path, err)
		}
	}
	return nil
}

func (op *Op) validate() error {
	if err := checkPath(op.Path); err != nil {
		return err
	}
	switch op.Kind {
	case KindDir, KindFile, KindDevice, KindMask, KindReadOnly, KindSeal:
	case KindSymlink:
		if op.Source == "" || strings.IndexByte(op.Source, 0) >= 0 {
			return fmt.Errorf("symbolic link target %q is empty or has a NUL byte", op.Source)
		}
	case KindBind:
		if !filepath.IsAbs(op.Source) || strings.IndexByte(op.Source, 0) >= 0 {
			return fmt.Errorf("bind source %q is not an absolute path", op.Source)
		}
	case KindMount:
		if op.FSType == "" {
			return fmt.Errorf("mount without a filesystem type")
		}
		if cgroupFS(op.FSType) && op.Attr&ReadOnly == 0 {
			return fmt.Errorf("a %s filesystem is only ever mounted read-only (attribute ro)", op.FSType)
		}
	default:
		return fmt.Errorf("unknown operation kind %q", op.Kind)
	}
	return nil
}

// cgroupFS reports whether fstype is a cgroup filesystem: mounting one
// shows the caller's cgroup namespace, so Apply checks that namespace is
// the sandbox's own.
func cgroupFS(fstype string) bool { return fstype == "cgroup" || fstype == "cgroup2" }

// String renders the plan one operation per line, for logs and docs.
func (p *Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-8s %-28s %s %s\n", "mount", "/", "tmpfs "+strings.Join(p.RootOptions, ","), Attr(NoSuid|NoDev|NoExec))
	for i := range p.Ops {
		b.WriteString(p.Ops[i].String())
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "%-8s %-28s %s\n", "pivot", "/", "pivot_root, old root detached")
	fmt.Fprintf(&b, "%-8s %-28s %s", "seal", "/", "read-only")
	return b.String()
}

// String renders one operation.
func (op *Op) String() string {
	var what string
	switch op.Kind {
	case KindDir:
		what = fmt.Sprintf("%04o", op.Mode)
	case KindFile:
		what = fmt.Sprintf("%04o, %d bytes copied", op.Mode, len(op.Content))
		if len(op.Content) == 0 {
			what = fmt.Sprintf("%04o, empty", op.Mode)
		}
	case KindSymlink:
		what = "-> " + op.Source
	case KindDevice:
		what = fmt.Sprintf("char %d:%d %04o", op.Major, op.Minor, op.Mode)
	case KindBind:
		what = fmt.Sprintf("<- %s %s", op.Source, op.Attr)
		if op.Dir {
			what = fmt.Sprintf("<- %s (recursive) %s", op.Source, op.Attr)
		}
	case KindMount:
		what = op.FSType
		if len(op.Options) > 0 {
			what += " " + strings.Join(op.Options, ",")
		}
		what += " " + op.Attr.String()
	case KindMask:
		what = "dir: empty ro tmpfs; else /dev/null (skipped if absent)"
	case KindReadOnly:
		what = "bind onto itself ro,nosuid,nodev,noexec (skipped if absent)"
	case KindSeal:
		what = "read-only"
	}
	return fmt.Sprintf("%-8s %-28s %s", op.Kind, op.Path, what)
}
