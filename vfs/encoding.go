package vfs

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// A Plan travels to every init stage, and decoding it is part of every
// sandbox's start. encoding/json decodes a slice of Op structs at about
// 50 MB/s, and in a fresh process it first builds its reflection caches
// (0.2-0.4 ms). So a Plan is encoded as one short line per operation, in a
// JSON object that MarshalJSON and UnmarshalJSON write and read by hand,
// without encoding/json; it decodes in a few tens of µs and still reads
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
// printable ASCII is written as a Go quoted string. The object is standard
// JSON (any JSON encoder's output of the same strings decodes), but it has
// exactly the members "root" and "ops" (either may be null or missing).

// maxFields is the most fields an operation line has (mount: kind, path,
// type, attributes, options).
const maxFields = 5

// MarshalJSON encodes p in the compact form described above.
func (p *Plan) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 64+48*len(p.Ops))
	b = append(b, `{"root":"`...)
	for i, o := range p.RootOptions {
		if strings.Contains(o, ",") {
			return nil, fmt.Errorf("%w: root option %q contains a comma", ErrInvalidPlan, o)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONChars(b, o)
	}
	b = append(b, `","ops":[`...)
	var line []byte
	for i := range p.Ops {
		var err error
		if line, err = p.Ops[i].appendEncoded(line[:0]); err != nil {
			return nil, err
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = appendJSONChars(b, string(line))
		b = append(b, '"')
	}
	return append(b, "]}"...), nil
}

// UnmarshalJSON decodes the compact form. It checks syntax only; Apply
// calls Validate.
func (p *Plan) UnmarshalJSON(b []byte) error {
	// One copy of the input: the operations' fields are substrings of it.
	r := jsonReader{s: string(b)}
	q := Plan{}
	if !r.consume('{') {
		return r.syntax("want an object")
	}
	for first := true; !r.consume('}'); first = false {
		if !first && !r.consume(',') {
			return r.syntax("want ',' or '}'")
		}
		key, err := r.str()
		if err != nil {
			return err
		}
		if !r.consume(':') {
			return r.syntax("want ':'")
		}
		switch key {
		case "root":
			q.RootOptions = nil
			if r.null() {
				break
			}
			root, err := r.str()
			if err != nil {
				return err
			}
			if root != "" {
				if q.RootOptions, err = splitOptions(root); err != nil {
					return err
				}
			}
		case "ops":
			q.Ops = nil
			if r.null() {
				break
			}
			if !r.consume('[') {
				return r.syntax(`want an array of strings for "ops"`)
			}
			q.Ops = make([]Op, 0, strings.Count(r.s[r.i:], `","`)+1)
			for !r.consume(']') {
				if len(q.Ops) > 0 && !r.consume(',') {
					return r.syntax("want ',' or ']'")
				}
				line, err := r.str()
				if err != nil {
					return err
				}
				q.Ops = append(q.Ops, Op{})
				if err := q.Ops[len(q.Ops)-1].decode(line); err != nil {
					return fmt.Errorf("%w: op %d %q: %w", ErrInvalidPlan, len(q.Ops)-1, line, err)
				}
			}
		default:
			return fmt.Errorf("%w: unknown member %q (want root and ops)", ErrInvalidPlan, key)
		}
	}
	r.space()
	if r.i != len(r.s) {
		return r.syntax("data after the object")
	}
	*p = q
	return nil
}

// appendJSONChars appends s as the inside of a JSON string: '"', '\\' and
// control characters escaped, invalid UTF-8 replaced by U+FFFD (as
// encoding/json does).
func appendJSONChars(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return b
}

// jsonReader reads the few JSON forms a Plan uses from s.
type jsonReader struct {
	s string
	i int
}

var errJSON = errors.New("malformed JSON")

func (r *jsonReader) syntax(what string) error {
	return fmt.Errorf("%w: %w at offset %d: %s", ErrInvalidPlan, errJSON, r.i, what)
}

func (r *jsonReader) space() {
	for r.i < len(r.s) {
		switch r.s[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

// consume skips white space and c, if c is next.
func (r *jsonReader) consume(c byte) bool {
	r.space()
	if r.i < len(r.s) && r.s[r.i] == c {
		r.i++
		return true
	}
	return false
}

// null skips white space and a null, if one is next.
func (r *jsonReader) null() bool {
	r.space()
	if strings.HasPrefix(r.s[r.i:], "null") {
		r.i += 4
		return true
	}
	return false
}

// str reads a JSON string. One without escapes or non-ASCII bytes (every
// line NewPlan makes) is a substring of the input.
func (r *jsonReader) str() (string, error) {
	if !r.consume('"') {
		return "", r.syntax("want a string")
	}
	start := r.i
	for r.i < len(r.s) {
		c := r.s[r.i]
		switch {
		case c == '"':
			r.i++
			return r.s[start : r.i-1], nil
		case c == '\\' || c < 0x20 || c >= utf8.RuneSelf:
			return r.slowStr(start)
		}
		r.i++
	}
	return "", r.syntax("unterminated string")
}

// slowStr finishes reading a string that started at start and has escapes
// or non-ASCII bytes.
func (r *jsonReader) slowStr(start int) (string, error) {
	b := []byte(r.s[start:r.i])
	for r.i < len(r.s) {
		c := r.s[r.i]
		switch {
		case c == '"':
			r.i++
			return string(b), nil
		case c < 0x20:
			return "", r.syntax("control character in string")
		case c >= utf8.RuneSelf:
			ch, n := utf8.DecodeRuneInString(r.s[r.i:])
			b = utf8.AppendRune(b, ch) // invalid UTF-8 becomes U+FFFD
			r.i += n
			continue
		case c != '\\':
			b = append(b, c)
			r.i++
			continue
		}
		if r.i+1 >= len(r.s) {
			break
		}
		e := r.s[r.i+1]
		r.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			ch, ok := r.hex4()
			if !ok {
				return "", r.syntax(`bad \u escape`)
			}
			if utf16.IsSurrogate(ch) {
				// A pair makes one rune; a lone half is U+FFFD.
				ch2 := rune(-1)
				if strings.HasPrefix(r.s[r.i:], `\u`) {
					save := r.i
					r.i += 2
					if ch2, ok = r.hex4(); !ok {
						return "", r.syntax(`bad \u escape`)
					}
					if utf16.DecodeRune(ch, ch2) == utf8.RuneError {
						r.i, ch2 = save, -1
					}
				}
				ch = utf16.DecodeRune(ch, ch2)
			}
			b = utf8.AppendRune(b, ch)
		default:
			return "", r.syntax("bad escape")
		}
	}
	return "", r.syntax("unterminated string")
}

func (r *jsonReader) hex4() (rune, bool) {
	if r.i+4 > len(r.s) {
		return 0, false
	}
	v, err := strconv.ParseUint(r.s[r.i:r.i+4], 16, 16)
	if err != nil {
		return 0, false
	}
	r.i += 4
	return rune(v), true
}

// appendEncoded appends op's line to b.
func (op *Op) appendEncoded(b []byte) ([]byte, error) {
	b = append(b, op.Kind...)
	b = appendField(b, op.Path)
	switch op.Kind {
	case KindDir:
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(op.Mode), 8)
	case KindFile:
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(op.Mode), 8)
		if len(op.Content) == 0 {
			b = appendField(b, "")
		} else {
			b = append(b, ' ')
			b = base64.StdEncoding.AppendEncode(b, op.Content)
		}
	case KindSymlink:
		b = appendField(b, op.Source)
	case KindDevice:
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(op.Mode), 8)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(op.Major), 10)
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(op.Minor), 10)
	case KindBind:
		b = appendField(b, op.Source)
		b = append(b, ' ')
		b = op.Attr.appendText(b)
		if op.Dir {
			b = append(b, " dir"...)
		} else {
			b = append(b, " file"...)
		}
	case KindMount:
		b = appendField(b, op.FSType)
		b = append(b, ' ')
		b = op.Attr.appendText(b)
		if len(op.Options) > 0 {
			for _, o := range op.Options {
				if o == "" || strings.Contains(o, ",") {
					return nil, fmt.Errorf("%w: %s %s: option %q is empty or contains a comma", ErrInvalidPlan, op.Kind, op.Path, o)
				}
			}
			b = appendField(b, strings.Join(op.Options, ","))
		}
	case KindMask, KindReadOnly, KindSeal:
	default:
		return nil, fmt.Errorf("%w: unknown operation kind %q", ErrInvalidPlan, op.Kind)
	}
	return b, nil
}

func (op *Op) decode(line string) error {
	var fields [maxFields]string
	n, err := splitFields(line, &fields)
	if err != nil {
		return err
	}
	if n < 2 {
		return fmt.Errorf("want a kind and a path")
	}
	*op = Op{Kind: Kind(fields[0]), Path: fields[1]}
	args := fields[2:n]
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
		if op.Attr, err = parseAttr(args[1]); err != nil {
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
		if op.Attr, err = parseAttr(args[1]); err != nil {
			return err
		}
		if len(args) == 3 {
			if op.Options, err = splitOptions(args[2]); err != nil {
				return err
			}
		}
	case KindMask, KindReadOnly, KindSeal:
		return want(0)
	default:
		return fmt.Errorf("unknown operation kind %q", op.Kind)
	}
	return nil
}

// splitOptions splits a comma-separated option list, refusing empty
// options as the encoder does, so that whatever decodes also encodes.
func splitOptions(s string) ([]string, error) {
	opts := strings.Split(s, ",")
	for _, o := range opts {
		if o == "" {
			return nil, fmt.Errorf("empty mount option in %q", s)
		}
	}
	return opts, nil
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

// splitFields splits a line at single spaces into f, unquoting quoted
// fields, and returns how many there are.
func splitFields(line string, f *[maxFields]string) (int, error) {
	n := 0
	for {
		if line == "" {
			return 0, fmt.Errorf("empty field")
		}
		if n == len(f) {
			return 0, fmt.Errorf("more than %d fields", len(f))
		}
		if line[0] == '"' {
			q, err := strconv.QuotedPrefix(line)
			if err != nil {
				return 0, fmt.Errorf("bad quoted field: %w", err)
			}
			s, err := strconv.Unquote(q)
			if err != nil {
				return 0, fmt.Errorf("bad quoted field: %w", err)
			}
			f[n] = s
			line = line[len(q):]
		} else {
			i := strings.IndexByte(line, ' ')
			if i < 0 {
				i = len(line)
			}
			if strings.IndexByte(line[:i], '"') >= 0 {
				return 0, fmt.Errorf("stray double quote")
			}
			f[n] = line[:i]
			line = line[i:]
		}
		n++
		if line == "" {
			return n, nil
		}
		if line[0] != ' ' {
			return 0, fmt.Errorf("fields must be separated by one space")
		}
		line = line[1:]
	}
}
