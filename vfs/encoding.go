package vfs

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// A Plan travels to every init stage as JSON, and decoding it is part of
// every sandbox's start. encoding/json decodes a slice of Op structs at
// about 50 MB/s, and in a fresh process it first builds its reflection
// caches: the default plan cost ~280 µs. So a Plan is encoded as one short
// line per operation, which decodes several times faster and still reads
// well in a dump:
//
//	{"root":"size=339968,mode=0755","ops":[
//	  "dir /etc 755",
//	  "file /etc/hostname 644 c2FuZGJveAo=",       content in base64
//	  "symlink /bin usr/bin",
//	  "device /dev/null 666 1 3",                   mode major minor
//	  "bind /usr /usr ro,nosuid,nodev dir",          target source attr dir|file
//	  "mount /tmp tmpfs rw,nosuid,nodev size=67108864,mode=1777",
//	  "mask /proc/kcore", "readonly /proc/sys", "seal /dev"]}
//
// A field that is empty or holds a space, a double quote or a byte outside
// printable ASCII is written as a Go quoted string.

type planJSON struct {
	Root string   `json:"root"`
	Ops  []string `json:"ops"`
}

// MarshalJSON encodes p in the compact form described above.
func (p *Plan) MarshalJSON() ([]byte, error) {
	for _, o := range p.RootOptions {
		if strings.Contains(o, ",") {
			return nil, fmt.Errorf("%w: root option %q contains a comma", ErrInvalidPlan, o)
		}
	}
	j := planJSON{Root: strings.Join(p.RootOptions, ","), Ops: make([]string, len(p.Ops))}
	for i := range p.Ops {
		line, err := p.Ops[i].encode()
		if err != nil {
			return nil, err
		}
		j.Ops[i] = line
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the compact form. It checks syntax only; Apply
// calls Validate.
func (p *Plan) UnmarshalJSON(b []byte) error {
	var j planJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	q := Plan{Ops: make([]Op, len(j.Ops))}
	if j.Root != "" {
		q.RootOptions = strings.Split(j.Root, ",")
	}
	for i, line := range j.Ops {
		if err := q.Ops[i].decode(line); err != nil {
			return fmt.Errorf("%w: op %d %q: %w", ErrInvalidPlan, i, line, err)
		}
	}
	*p = q
	return nil
}

func (op *Op) encode() (string, error) {
	b := make([]byte, 0, 64)
	b = append(b, op.Kind...)
	b = appendField(b, op.Path)
	switch op.Kind {
	case KindDir:
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(op.Mode), 8)
	case KindFile:
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(op.Mode), 8)
		b = appendField(b, base64.StdEncoding.EncodeToString(op.Content))
	case KindSymlink:
		b = appendField(b, op.Source)
	case KindDevice:
		b = fmt.Appendf(b, " %o %d %d", op.Mode, op.Major, op.Minor)
	case KindBind:
		b = appendField(b, op.Source)
		b = append(b, ' ')
		b = append(b, op.Attr.String()...)
		if op.Dir {
			b = append(b, " dir"...)
		} else {
			b = append(b, " file"...)
		}
	case KindMount:
		b = appendField(b, op.FSType)
		b = append(b, ' ')
		b = append(b, op.Attr.String()...)
		if len(op.Options) > 0 {
			for _, o := range op.Options {
				if o == "" || strings.Contains(o, ",") {
					return "", fmt.Errorf("%w: %s %s: option %q is empty or contains a comma", ErrInvalidPlan, op.Kind, op.Path, o)
				}
			}
			b = appendField(b, strings.Join(op.Options, ","))
		}
	case KindMask, KindReadOnly, KindSeal:
	default:
		return "", fmt.Errorf("%w: unknown operation kind %q", ErrInvalidPlan, op.Kind)
	}
	return string(b), nil
}

func (op *Op) decode(line string) error {
	f, err := splitFields(line)
	if err != nil {
		return err
	}
	if len(f) < 2 {
		return fmt.Errorf("want a kind and a path")
	}
	*op = Op{Kind: Kind(f[0]), Path: f[1]}
	args := f[2:]
	want := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %d fields after the path, not %d", op.Kind, n, len(args))
		}
		return nil
	}
	switch op.Kind {
	case KindDir:
		if err := want(1); err != nil {
			return err
		}
		op.Mode, err = parseMode(args[0])
		return err
	case KindFile:
		if err := want(2); err != nil {
			return err
		}
		if op.Mode, err = parseMode(args[0]); err != nil {
			return err
		}
		if args[1] != "" {
			op.Content, err = base64.StdEncoding.DecodeString(args[1])
		}
		return err
	case KindSymlink:
		if err := want(1); err != nil {
			return err
		}
		op.Source = args[0]
	case KindDevice:
		if err := want(3); err != nil {
			return err
		}
		if op.Mode, err = parseMode(args[0]); err != nil {
			return err
		}
		if op.Major, err = parseUint32(args[1], 10); err != nil {
			return err
		}
		op.Minor, err = parseUint32(args[2], 10)
		return err
	case KindBind:
		if err := want(3); err != nil {
			return err
		}
		op.Source = args[0]
		if err := op.Attr.UnmarshalText([]byte(args[1])); err != nil {
			return err
		}
		switch args[2] {
		case "dir":
			op.Dir = true
		case "file":
		default:
			return fmt.Errorf("bind type %q is neither dir nor file", args[2])
		}
	case KindMount:
		if len(args) != 2 && len(args) != 3 {
			return fmt.Errorf("mount takes a type, attributes and options")
		}
		op.FSType = args[0]
		if err := op.Attr.UnmarshalText([]byte(args[1])); err != nil {
			return err
		}
		if len(args) == 3 {
			op.Options = strings.Split(args[2], ",")
		}
	case KindMask, KindReadOnly, KindSeal:
		return want(0)
	default:
		return fmt.Errorf("unknown operation kind %q", op.Kind)
	}
	return nil
}

func parseMode(s string) (uint32, error) {
	m, err := parseUint32(s, 8)
	if err == nil && m > 0o7777 {
		err = fmt.Errorf("mode %s has more than permission bits", s)
	}
	return m, err
}

func parseUint32(s string, base int) (uint32, error) {
	v, err := strconv.ParseUint(s, base, 32)
	return uint32(v), err
}

// plainField reports whether s can be written without quotes.
func plainField(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '"' || c >= 0x7f {
			return false
		}
	}
	return true
}

func appendField(b []byte, s string) []byte {
	b = append(b, ' ')
	if plainField(s) {
		return append(b, s...)
	}
	return strconv.AppendQuote(b, s)
}

// splitFields splits a line at single spaces, unquoting quoted fields.
func splitFields(line string) ([]string, error) {
	var f []string
	for {
		if line == "" {
			return nil, fmt.Errorf("empty field")
		}
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return nil, fmt.Errorf("bad quoted field: %w", err)
			}
			s, err := strconv.Unquote(q)
			if err != nil {
				return nil, fmt.Errorf("bad quoted field: %w", err)
			}
			f = append(f, s)
			line = line[len(q):]
		} else {
			n := strings.IndexByte(line, ' ')
			if n < 0 {
				n = len(line)
			}
			if strings.IndexByte(line[:n], '"') >= 0 {
				return nil, fmt.Errorf("stray double quote")
			}
			f = append(f, line[:n])
			line = line[n:]
		}
		if line == "" {
			return f, nil
		}
		if line[0] != ' ' {
			return nil, fmt.Errorf("fields must be separated by one space")
		}
		line = line[1:]
	}
}
