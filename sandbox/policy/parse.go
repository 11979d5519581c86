package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Limits on what Parse reads and reports.
const (
	// MaxFileSize is the largest policy file Parse and LoadFile accept.
	MaxFileSize = 1 << 20
	// MaxErrors is the number of problems Parse reports; one more line
	// says how many were left out.
	MaxErrors = 100
)

// LoadFile reads and parses the policy file at path. See Parse.
func LoadFile(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading policy: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a policy file. filename is used only in error
// messages. Fields absent from the file take their values from Default.
//
// On failure the error is an ErrorList holding every problem found in the
// file, each with its line and column, sorted by position.
func Parse(filename string, data []byte) (*Policy, error) {
	d := newDecoder(filename, policyDoc)
	p := Default()
	if root, ok := d.document(data); ok && d.policy(root, p) {
		d.place(p.validate())
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return p, nil
}

// docKind names the kind of file a decoder reads, for its messages.
type docKind struct {
	noun string // "policy": "a policy starts with apiVersion"
	file string // "policy file": "not supported in a policy file"
}

var policyDoc = docKind{"policy", "policy file"}

func newDecoder(filename string, kind docKind) *decoder {
	return &decoder{
		file:   filename,
		kind:   kind,
		values: map[string]pos{},
		keys:   map[string]pos{},
		parent: map[string]string{},
		failed: map[string]bool{}, failedUnder: map[string]bool{},
	}
}

// place gives the problems validation found their positions in the file and
// adds them, leaving out those at values the decoder already reported.
func (d *decoder) place(errs ErrorList) {
	for _, e := range errs {
		if d.failedNear(e.Path) {
			continue // the decoder already said what is wrong there
		}
		at := d.position(e.Path)
		e.File, e.Line, e.Column = d.file, at.line, at.col
		d.errs = append(d.errs, e)
	}
}

// finish returns every problem found, sorted by position and capped at
// MaxErrors, or nil.
func (d *decoder) finish() error {
	if len(d.errs) == 0 {
		return nil
	}
	sort.SliceStable(d.errs, func(i, j int) bool {
		a, b := d.errs[i], d.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Path < b.Path
	})
	if n := len(d.errs) - MaxErrors; n > 0 {
		// Nobody reads thousands of errors; the first ones say what is
		// wrong with the file.
		more := d.errs[MaxErrors]
		d.errs = append(d.errs[:MaxErrors:MaxErrors], &FieldError{
			File: more.File, Line: more.Line, Column: more.Column,
			Msg: fmt.Sprintf("too many errors: %d more not shown", n),
		})
	}
	return d.errs
}

// pos is a 1-based line and column in the file.
type pos struct{ line, col int }

// decoder walks the YAML AST of one policy file, filling a Policy and
// collecting every problem with its position.
type decoder struct {
	file   string
	kind   docKind
	errs   ErrorList
	values map[string]pos    // field path -> position of its value
	keys   map[string]pos    // field path -> position of its key
	parent map[string]string // field path -> path of the enclosing field
	// failed holds the paths the decoder reported a problem at, and
	// failedUnder their ancestors.
	failed, failedUnder map[string]bool
}

// fail reports a problem with the value at path. Validation then stays
// quiet about that value and what it contains.
func (d *decoder) fail(at pos, path string, kind error, format string, args ...any) {
	d.note(at, path, kind, format, args...)
	d.failed[path] = true
	for _, a := range d.ancestors(path) {
		d.failedUnder[a] = true
	}
}

// note reports a problem that leaves the value at path usable, such as a
// stray key in a mapping.
func (d *decoder) note(at pos, path string, kind error, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{
		File: d.file, Line: at.line, Column: at.col,
		Path: path, Msg: fmt.Sprintf(format, args...), Err: kind,
	})
}

// failedNear reports whether the decoder already reported a problem at path,
// inside it, or in one of its fields or items: a problem with a whole
// mapping or list (a pipe without a reader, more channels than the quota)
// may only be a consequence of an item the decoder could not read.
func (d *decoder) failedNear(path string) bool {
	if d.failed[path] || d.failedUnder[path] {
		return true
	}
	for _, a := range d.ancestors(path) {
		if d.failed[a] {
			return true
		}
	}
	return false
}

// ancestors lists the enclosing fields of path, innermost first.
func (d *decoder) ancestors(path string) []string {
	var out []string
	for i := 0; path != "" && i < maxDepth; i++ {
		if parent, ok := d.parent[path]; ok {
			path = parent
		} else {
			path = guessParent(path)
		}
		out = append(out, path)
	}
	return out
}

// maxDepth bounds walks up a field path; the schema is far shallower.
const maxDepth = 16

// position finds where to report a problem at path: its value, or else the
// key of the nearest enclosing field that the file has.
func (d *decoder) position(path string) pos {
	if at, ok := d.values[path]; ok {
		return at
	}
	for _, a := range d.ancestors(path) {
		if at, ok := d.keys[a]; ok {
			return at
		}
		if at, ok := d.values[a]; ok {
			return at
		}
	}
	if at, ok := d.values[""]; ok {
		return at
	}
	return pos{1, 1}
}

// guessParent strips the last element of a path the file does not have.
func guessParent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func (d *decoder) record(parent, path string, key, value pos) {
	d.parent[path] = parent
	d.keys[path] = key
	d.values[path] = value
}

// document parses the YAML and returns the body of its one document.
func (d *decoder) document(data []byte) (ast.Node, bool) {
	if len(data) > MaxFileSize {
		d.fail(pos{1, 1}, "", ErrInvalidValue, "file is larger than %s: a %s is small", Size(MaxFileSize), d.kind.file)
		return nil, false
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		d.fail(invalidUTF8(data), "", ErrSyntax, "not valid UTF-8 text")
		return nil, false
	}
	f, deep, err := parseYAML(data)
	if deep != nil {
		d.fail(*deep, "", ErrSyntax, "YAML collections nested more than %d deep: a %s needs far fewer", maxNesting, d.kind.noun)
		return nil, false
	}
	if err != nil {
		var yerr yaml.Error
		if errors.As(err, &yerr) && yerr.GetToken() != nil && yerr.GetToken().Position != nil {
			tp := yerr.GetToken().Position
			d.fail(pos{max(tp.Line, 1), max(tp.Column, 1)}, "", ErrSyntax, "invalid YAML: %s", yerr.GetMessage())
		} else {
			d.fail(pos{1, 1}, "", ErrSyntax, "invalid YAML: %v", err)
		}
		return nil, false
	}
	var bodies []ast.Node
	for _, doc := range f.Docs {
		if doc == nil || isNil(doc.Body) {
			continue
		}
		if _, ok := doc.Body.(*ast.DirectiveNode); !ok { // %YAML 1.2
			bodies = append(bodies, doc.Body)
		}
	}
	if len(bodies) == 0 {
		d.fail(pos{1, 1}, "", ErrMissingField, "the file is empty (a %s starts with apiVersion: %s)", d.kind.noun, APIVersion)
		return nil, false
	}
	for _, b := range bodies[1:] {
		d.fail(posOf(b), "", ErrUnsupported, "a second YAML document: a %s holds one %s", d.kind.file, d.kind.noun)
	}
	return bodies[0], true
}

// maxNesting bounds the nesting of flow collections ([...] and {...}). A
// policy written entirely in flow style nests 7 deep (spec, seccomp,
// syscalls, a rule, args, an arg); the YAML parser, on the other hand, slows
// down badly on input nested many thousands deep.
const maxNesting = 32

// parseYAML runs the YAML lexer and parser. Input nested too deep is refused
// before parsing, at the position returned. Duplicate keys are left to the
// decoder, which reports them all rather than the first.
func parseYAML(data []byte) (f *ast.File, deep *pos, err error) {
	defer func() {
		// The parser is third-party code fed with operator input; a bug
		// in it must not take down the process that validates a policy.
		if r := recover(); r != nil {
			f, deep, err = nil, nil, fmt.Errorf("the YAML parser failed: %v", r)
		}
	}()
	tokens := lexer.Tokenize(string(data))
	if at, ok := tooDeep(tokens); ok {
		return nil, &at, nil
	}
	f, err = parser.Parse(tokens, 0, parser.AllowDuplicateMapKey())
	return f, nil, err
}

// tooDeep finds the first flow collection nested more than maxNesting deep.
func tooDeep(tokens token.Tokens) (pos, bool) {
	depth := 0
	for _, tk := range tokens {
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			depth++
			if depth > maxNesting {
				if tk.Position == nil {
					return pos{1, 1}, true
				}
				return pos{max(tk.Position.Line, 1), max(tk.Position.Column, 1)}, true
			}
		case token.SequenceEndType, token.MappingEndType:
			depth = max(depth-1, 0)
		}
	}
	return pos{}, false
}

func invalidUTF8(data []byte) pos {
	at := pos{1, 1}
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size <= 1 {
			return at
		}
		if r == '\n' {
			at.line++
			at.col = 1
		} else {
			at.col++
		}
		data = data[size:]
	}
	return at
}

func isNil(n ast.Node) bool {
	if n == nil {
		return true
	}
	v := reflect.ValueOf(n)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// posOf returns where a node starts.
func posOf(n ast.Node) pos {
	if isNil(n) {
		return pos{1, 1}
	}
	switch m := n.(type) {
	case *ast.MappingNode:
		if !m.IsFlowStyle && len(m.Values) > 0 && m.Values[0] != nil && !isNil(m.Values[0].Key) {
			return posOf(m.Values[0].Key)
		}
	case *ast.MappingValueNode:
		if !isNil(m.Key) {
			return posOf(m.Key)
		}
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return pos{1, 1}
	}
	return pos{max(tk.Position.Line, 1), max(tk.Position.Column, 1)}
}

// at is where to report a problem with node n, the value of path.
func (d *decoder) at(n ast.Node, path string) pos {
	if !isNil(n) {
		return posOf(n)
	}
	return d.position(path)
}

// unwrap strips anchors, standard tags and explicit-key markers, and rejects
// what a policy does not use: aliases, merge keys and custom tags. A nil
// result stands for null.
func (d *decoder) unwrap(n ast.Node, path string) (ast.Node, bool) {
	for depth := 0; ; depth++ {
		if isNil(n) {
			return nil, true
		}
		if depth > 16 {
			d.fail(posOf(n), path, ErrUnsupported, "too many nested tags and anchors")
			return nil, false
		}
		switch t := n.(type) {
		case *ast.AnchorNode:
			n = t.Value
		case *ast.MappingKeyNode:
			n = t.Value
		case *ast.AliasNode:
			d.fail(posOf(n), path, ErrUnsupported, "YAML aliases are not supported in a %s (write the value out)", d.kind.file)
			return nil, false
		case *ast.MergeKeyNode:
			d.fail(posOf(n), path, ErrUnsupported, "YAML merge keys (<<) are not supported in a %s (write the fields out)", d.kind.file)
			return nil, false
		case *ast.TagNode:
			tag := ""
			if t.Start != nil {
				tag = t.Start.Value
			}
			switch tag {
			case "!!str", "tag:yaml.org,2002:str":
				inner, ok := d.unwrap(t.Value, path)
				if !ok {
					return nil, false
				}
				if s, ok := scalarText(inner); ok {
					return &ast.StringNode{BaseNode: &ast.BaseNode{}, Token: inner.GetToken(), Value: s}, true
				}
				if inner == nil {
					return &ast.StringNode{BaseNode: &ast.BaseNode{}, Token: t.Start, Value: ""}, true
				}
				return inner, true
			case "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq",
				"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
				"tag:yaml.org,2002:null", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq":
				n = t.Value
			default:
				d.fail(posOf(n), path, ErrUnsupported, "the YAML tag %s is not supported in a %s", quote(tag), d.kind.file)
				return nil, false
			}
		default:
			return n, true
		}
	}
}

// scalarText returns the text of a scalar node: a string's value, or the
// source text of a number or boolean.
func scalarText(n ast.Node) (string, bool) {
	switch t := n.(type) {
	case *ast.StringNode:
		return t.Value, true
	case *ast.LiteralNode:
		if t.Value == nil {
			return "", true
		}
		return t.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tk := n.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	return "", false
}

// describe names a node's value for an error message.
func describe(n ast.Node) string {
	switch t := n.(type) {
	case nil, *ast.NullNode:
		return "null"
	case *ast.StringNode:
		return quote(t.Value)
	case *ast.LiteralNode:
		s, _ := scalarText(t)
		return quote(s)
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a sequence"
	}
	if s, ok := scalarText(n); ok {
		return s
	}
	return "a " + n.Type().String()
}

// quote quotes a string for a message, shortening a long one.
func quote(s string) string {
	const max = 60
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		return strconv.Quote(string(r[:max])) + "..."
	}
	return strconv.Quote(s)
}

// field is one key of a mapping the decoder knows.
type field struct {
	name   string
	decode func(n ast.Node, path string)
}

// entry is one key: value pair of a mapping.
type entry struct {
	key    string
	keyPos pos
	value  ast.Node
	path   string
}

// entries returns the pairs of the mapping n, the value of path, reporting
// keys that are not scalars and duplicate keys. A null mapping is an error.
func (d *decoder) entries(n ast.Node, path string) ([]entry, bool) {
	n, ok := d.unwrap(n, path)
	if !ok {
		return nil, false
	}
	var mvs []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		mvs = m.Values
	case *ast.MappingValueNode:
		mvs = []*ast.MappingValueNode{m}
	default:
		d.typeError(n, path, "a mapping")
		return nil, false
	}
	var out []entry
	seen := map[string]pos{}
	for _, mv := range mvs {
		if mv == nil || isNil(mv.Key) {
			continue
		}
		kp := posOf(mv.Key)
		if mv.Key.IsMergeKey() {
			d.note(kp, path, ErrUnsupported, "YAML merge keys (<<) are not supported in a %s (write the fields out)", d.kind.file)
			continue
		}
		kn, ok := d.unwrap(mv.Key, path)
		if !ok {
			continue
		}
		key, ok := scalarText(kn)
		if !ok {
			d.note(kp, path, ErrWrongType, "a key must be a string, got %s", describe(kn))
			continue
		}
		kpath := fieldPath(path, key)
		if first, dup := seen[key]; dup {
			d.fail(kp, kpath, ErrDuplicateField, "duplicate key (first given at line %d)", first.line)
			continue
		}
		seen[key] = kp
		val := mv.Value
		if nn, ok := val.(*ast.NullNode); ok && nn.Token != nil && nn.Token.Type == token.ImplicitNullType {
			// "key:" with nothing after it: report problems at the key.
			val = nil
		}
		vp := kp
		if !isNil(val) {
			vp = posOf(val)
		}
		d.record(path, kpath, kp, vp)
		out = append(out, entry{key: key, keyPos: kp, value: val, path: kpath})
	}
	return out, true
}

// mapping decodes the mapping n with the given fields and reports unknown
// keys, suggesting the closest field name.
func (d *decoder) mapping(n ast.Node, path string, fields ...field) bool {
	es, ok := d.entries(n, path)
	if !ok {
		return false
	}
	for _, e := range es {
		i := slices.IndexFunc(fields, func(f field) bool { return f.name == e.key })
		if i < 0 {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.name
			}
			if s := suggest(e.key, names); s != "" {
				d.note(e.keyPos, e.path, ErrUnknownField, "unknown field (did you mean %q?)", s)
			} else {
				d.note(e.keyPos, e.path, ErrUnknownField, "unknown field (known fields: %s)", strings.Join(names, ", "))
			}
			continue
		}
		fields[i].decode(e.value, e.path)
	}
	return true
}

// sequence calls each for the items of the sequence n.
func (d *decoder) sequence(n ast.Node, path string, each func(item ast.Node, path string)) bool {
	n, ok := d.unwrap(n, path)
	if !ok {
		return false
	}
	s, ok := n.(*ast.SequenceNode)
	if !ok {
		d.typeError(n, path, "a sequence")
		return false
	}
	for i, item := range s.Values {
		ip := indexPath(path, i)
		at := d.at(n, path)
		if !isNil(item) {
			at = posOf(item)
		}
		d.record(path, ip, at, at)
		each(item, ip)
	}
	return true
}

func (d *decoder) typeError(n ast.Node, path, want string) {
	if path == "" {
		want = "a mapping with apiVersion, kind, metadata and spec"
	}
	d.fail(d.at(n, path), path, ErrWrongType, "expected %s, got %s", want, describe(n))
}

func (d *decoder) str(n ast.Node, path string) (string, bool) {
	n, ok := d.unwrap(n, path)
	if !ok {
		return "", false
	}
	switch t := n.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		s, _ := scalarText(t)
		return s, true
	}
	d.typeError(n, path, "a string")
	return "", false
}

func (d *decoder) boolean(n ast.Node, path string) (bool, bool) {
	n, ok := d.unwrap(n, path)
	if !ok {
		return false, false
	}
	if b, ok := n.(*ast.BoolNode); ok {
		return b.Value, true
	}
	d.typeError(n, path, "true or false")
	return false, false
}

// integer returns an integer in [lo, hi].
func (d *decoder) integer(n ast.Node, path string, lo, hi uint64) (uint64, bool) {
	n, ok := d.unwrap(n, path)
	if !ok {
		return 0, false
	}
	rangeErr := func(got string) (uint64, bool) {
		d.fail(d.at(n, path), path, ErrInvalidValue, "must be between %d and %d, got %s", lo, hi, got)
		return 0, false
	}
	switch t := n.(type) {
	case *ast.IntegerNode:
		var u uint64
		switch v := t.Value.(type) {
		case int64:
			if v < 0 {
				return rangeErr(strconv.FormatInt(v, 10))
			}
			u = uint64(v)
		case uint64:
			u = v
		default:
			d.typeError(n, path, "an integer")
			return 0, false
		}
		if u < lo || u > hi {
			return rangeErr(strconv.FormatUint(u, 10))
		}
		return u, true
	case *ast.StringNode:
		// The YAML parser leaves integers too large for 64 bits as
		// plain strings.
		if t.Token != nil && t.Token.Type == token.StringType && isDigits(strings.TrimPrefix(t.Value, "-")) {
			return rangeErr(t.Value)
		}
	}
	d.typeError(n, path, "an integer")
	return 0, false
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// size returns a size in bytes: a non-negative integer, or a string such as
// 256Mi.
func (d *decoder) size(n ast.Node, path string) (uint64, bool) {
	n, ok := d.unwrap(n, path)
	if !ok {
		return 0, false
	}
	switch t := n.(type) {
	case *ast.IntegerNode:
		switch v := t.Value.(type) {
		case int64:
			if v >= 0 {
				return uint64(v), true
			}
		case uint64:
			return v, true
		}
	case *ast.StringNode:
		v, err := parseSize(t.Value)
		if err == nil {
			return v, true
		}
		if errors.Is(err, errSizeRange) {
			d.fail(d.at(n, path), path, ErrInvalidValue, "%s is too large", quote(t.Value))
			return 0, false
		}
	case *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode, *ast.LiteralNode:
	default:
		d.typeError(n, path, "a size such as 256Mi")
		return 0, false
	}
	d.fail(d.at(n, path), path, ErrInvalidValue, "%s is not a size (use e.g. 256Mi)", describe(n))
	return 0, false
}

// bytes returns a size that fits a Size.
func (d *decoder) bytes(n ast.Node, path string) (Size, bool) {
	v, ok := d.size(n, path)
	if !ok {
		return 0, false
	}
	if v > math.MaxInt64 {
		d.fail(d.at(n, path), path, ErrInvalidValue, "%s is too large", formatSize(v))
		return 0, false
	}
	return Size(v), true
}

func (d *decoder) duration(n ast.Node, path string) (time.Duration, bool) {
	n, ok := d.unwrap(n, path)
	if !ok {
		return 0, false
	}
	switch t := n.(type) {
	case *ast.StringNode:
		if v, err := time.ParseDuration(t.Value); err == nil {
			return v, true
		}
	case *ast.IntegerNode:
		if v, ok := t.Value.(int64); ok && v == 0 {
			return 0, true
		}
	case *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode, *ast.LiteralNode:
	default:
		d.typeError(n, path, "a duration such as 30s")
		return 0, false
	}
	d.fail(d.at(n, path), path, ErrInvalidValue, "%s is not a duration (use e.g. 30s or 1m30s)", describe(n))
	return 0, false
}

func (d *decoder) number(n ast.Node, path string) (float64, bool) {
	n, ok := d.unwrap(n, path)
	if !ok {
		return 0, false
	}
	switch t := n.(type) {
	case *ast.FloatNode:
		return t.Value, true
	case *ast.IntegerNode:
		switch v := t.Value.(type) {
		case int64:
			return float64(v), true
		case uint64:
			return float64(v), true
		}
	}
	d.typeError(n, path, "a number")
	return 0, false
}

// Field constructors for the common cases.

func (d *decoder) strField(name string, dst *string) field {
	return field{name, func(n ast.Node, path string) {
		if v, ok := d.str(n, path); ok {
			*dst = v
		}
	}}
}

func (d *decoder) boolField(name string, dst *bool) field {
	return field{name, func(n ast.Node, path string) {
		if v, ok := d.boolean(n, path); ok {
			*dst = v
		}
	}}
}

func (d *decoder) sizeField(name string, dst *Size) field {
	return field{name, func(n ast.Node, path string) {
		if v, ok := d.bytes(n, path); ok {
			*dst = v
		}
	}}
}

func (d *decoder) durationField(name string, dst *time.Duration) field {
	return field{name, func(n ast.Node, path string) {
		if v, ok := d.duration(n, path); ok {
			*dst = v
		}
	}}
}

func intField[T ~uint | ~uint16 | ~uint32 | ~uint64 | ~int | ~int64](d *decoder, name string, dst *T, lo, hi uint64) field {
	return field{name, func(n ast.Node, path string) {
		if v, ok := d.integer(n, path, lo, hi); ok {
			*dst = T(v)
		}
	}}
}

// The policy schema.

// policy decodes the document; it reports false when the document is not a
// mapping, which leaves nothing to validate.
func (d *decoder) policy(root ast.Node, p *Policy) bool {
	d.values[""] = posOf(root)
	// apiVersion, kind and the name are required: no defaults.
	p.APIVersion, p.Kind, p.Metadata.Name = "", "", ""
	return d.mapping(root, "",
		d.strField("apiVersion", &p.APIVersion),
		d.strField("kind", &p.Kind),
		field{"metadata", func(n ast.Node, path string) {
			d.mapping(n, path, d.strField("name", &p.Metadata.Name))
		}},
		field{"spec", func(n ast.Node, path string) { d.spec(n, path, &p.Spec) }},
	)
}

func (d *decoder) spec(n ast.Node, path string, s *Spec) {
	d.mapping(n, path,
		field{"namespaces", func(n ast.Node, path string) { d.namespaces(n, path, &s.Namespaces) }},
		d.strField("hostname", &s.Hostname),
		field{"user", func(n ast.Node, path string) { d.user(n, path, &s.User) }},
		field{"env", func(n ast.Node, path string) { s.Env = d.env(n, path) }},
		field{"filesystem", func(n ast.Node, path string) { d.filesystem(n, path, &s.Filesystem) }},
		field{"resources", func(n ast.Node, path string) { d.resources(n, path, &s.Resources) }},
		field{"limits", func(n ast.Node, path string) { d.limits(n, path, &s.Limits) }},
		field{"capabilities", func(n ast.Node, path string) { d.capabilities(n, path, &s.Capabilities) }},
		field{"seccomp", func(n ast.Node, path string) { d.seccomp(n, path, &s.Seccomp) }},
		d.strField("network", &s.Network),
		field{"ipc", func(n ast.Node, path string) { d.ipcGrants(n, path, &s.IPC) }},
	)
	// Without a UTS namespace there is no hostname to set, without a
	// network namespace the app has the host's network, and without a
	// cgroup namespace there is no cgroup view of its own to show: the
	// defaults follow unless the file says otherwise (and validation
	// objects).
	if _, ok := d.values[path+".hostname"]; !ok && !s.Namespaces.UTS {
		s.Hostname = ""
	}
	if _, ok := d.values[path+".filesystem.cgroupfs"]; !ok && !s.Namespaces.Cgroup {
		s.Filesystem.Cgroupfs = false
	}
	if _, ok := d.values[path+".network"]; !ok && !s.Namespaces.Net {
		s.Network = NetworkHost
	}
}

func (d *decoder) namespaces(n ast.Node, path string, ns *Namespaces) {
	always := func(name, why string) field {
		return field{name, func(n ast.Node, path string) {
			if v, ok := d.boolean(n, path); ok && !v {
				d.fail(d.at(n, path), path, ErrUnsupported, "the %s namespace cannot be disabled: %s", name, why)
			}
		}}
	}
	d.mapping(n, path,
		always("pid", "pinfold relies on it to contain and reap the app"),
		always("mount", "pinfold relies on it to build the app's filesystem"),
		d.boolField("uts", &ns.UTS),
		d.boolField("ipc", &ns.IPC),
		d.boolField("net", &ns.Net),
		d.boolField("cgroup", &ns.Cgroup),
		field{"user", func(n ast.Node, path string) {
			u := &UserNamespace{}
			d.mapping(n, path,
				field{"uidMappings", func(n ast.Node, path string) { u.UIDMappings = d.idMappings(n, path) }},
				field{"gidMappings", func(n ast.Node, path string) { u.GIDMappings = d.idMappings(n, path) }},
			)
			ns.User = u
		}},
	)
}

func (d *decoder) idMappings(n ast.Node, path string) []specs.LinuxIDMapping {
	var ms []specs.LinuxIDMapping
	d.sequence(n, path, func(n ast.Node, path string) {
		var m specs.LinuxIDMapping
		d.mapping(n, path,
			intField(d, "containerID", &m.ContainerID, 0, math.MaxUint32-1),
			intField(d, "hostID", &m.HostID, 0, math.MaxUint32-1),
			intField(d, "size", &m.Size, 1, math.MaxUint32),
		)
		ms = append(ms, m) // even if broken: keeps the indexes of later items
	})
	return ms
}

func (d *decoder) user(n ast.Node, path string, u *User) {
	d.mapping(n, path,
		intField(d, "uid", &u.UID, 0, math.MaxUint32-1),
		intField(d, "gid", &u.GID, 0, math.MaxUint32-1),
		field{"additionalGids", func(n ast.Node, path string) {
			u.AdditionalGids = nil
			d.sequence(n, path, func(n ast.Node, path string) {
				g, _ := d.integer(n, path, 0, math.MaxUint32-1)
				u.AdditionalGids = append(u.AdditionalGids, uint32(g))
			})
		}},
	)
}

func (d *decoder) env(n ast.Node, path string) map[string]string {
	es, _ := d.entries(n, path)
	var env map[string]string
	for _, e := range es {
		v, ok := d.unwrap(e.value, e.path)
		if !ok {
			continue
		}
		// Numbers and booleans are taken as written: PORT: 8080.
		s, ok := scalarText(v)
		if !ok {
			d.typeError(v, e.path, "a string")
			continue
		}
		if env == nil {
			env = map[string]string{}
		}
		env[e.key] = s
	}
	return env
}

func (d *decoder) filesystem(n ast.Node, path string, fsys *Filesystem) {
	binds := func(name string, dst *[]Bind) field {
		return field{name, func(n ast.Node, path string) {
			*dst = nil
			d.sequence(n, path, func(n ast.Node, path string) {
				var b Bind
				if s, ok := d.str(n, path); ok {
					b, ok = parseBind(s)
					if !ok {
						d.fail(d.at(n, path), path, ErrInvalidValue, "%s has more than one ':' (write PATH or SRC:DST)", quote(s))
						b = Bind{}
					}
				}
				*dst = append(*dst, b)
			})
		}}
	}
	d.mapping(n, path,
		binds("readOnly", &fsys.ReadOnly),
		binds("readWrite", &fsys.ReadWrite),
		field{"tmpfs", func(n ast.Node, path string) {
			fsys.Tmpfs = nil
			es, _ := d.entries(n, path)
			for _, e := range es {
				// Problems with the mount point are reported at the key.
				d.values[e.path] = e.keyPos
				size, ok := d.bytes(e.value, e.path)
				if ok && size == 0 {
					d.fail(d.at(e.value, e.path), e.path, ErrInvalidValue, "size 0 is too small (use e.g. 64Mi)")
				}
				if fsys.Tmpfs == nil {
					fsys.Tmpfs = map[string]Size{}
				}
				fsys.Tmpfs[e.key] = size
			}
		}},
		field{"masked", func(n ast.Node, path string) {
			fsys.Masked = nil
			d.sequence(n, path, func(n ast.Node, path string) {
				s, _ := d.str(n, path)
				fsys.Masked = append(fsys.Masked, s)
			})
		}},
		d.strField("workdir", &fsys.Workdir),
		d.boolField("sysfs", &fsys.Sysfs),
		d.boolField("cgroupfs", &fsys.Cgroupfs),
	)
}

// parseBind reads "PATH" or "SRC:DST".
func parseBind(s string) (Bind, bool) {
	src, dst, found := strings.Cut(s, ":")
	if !found {
		return Bind{Source: s, Destination: s}, true
	}
	if strings.Contains(dst, ":") {
		return Bind{}, false
	}
	return Bind{Source: src, Destination: dst}, true
}

func (d *decoder) resources(n ast.Node, path string, r *Resources) {
	d.mapping(n, path,
		d.sizeField("memory", &r.Memory),
		d.sizeField("memorySwap", &r.MemorySwap),
		field{"cpu", func(n ast.Node, path string) {
			if v, ok := d.number(n, path); ok {
				r.CPU = v
			}
		}},
		d.durationField("cpuPeriod", &r.CPUPeriod),
		intField(d, "cpuShares", &r.CPUShares, minCPUShares, maxCPUShares),
		intField(d, "pids", &r.Pids, 1, maxPids),
		intField(d, "ioWeight", &r.IOWeight, minIOWeight, maxIOWeight),
	)
}

func (d *decoder) limits(n ast.Node, path string, l *Limits) {
	d.mapping(n, path,
		d.durationField("wallTime", &l.WallTime),
		d.durationField("stopTimeout", &l.StopTimeout),
		intField(d, "openFiles", &l.OpenFiles, 1, maxOpenFiles),
		d.sizeField("coreSize", &l.CoreSize),
		d.sizeField("logSize", &l.LogSize),
		d.durationField("removeAfter", &l.RemoveAfter),
		field{"rlimits", func(n ast.Node, path string) { l.Rlimits = d.rlimits(n, path) }},
	)
}

func (d *decoder) rlimits(n ast.Node, path string) []specs.POSIXRlimit {
	es, _ := d.entries(n, path)
	var out []specs.POSIXRlimit
	seen := map[string]pos{}
	for _, e := range es {
		typ, known := canonicalRlimit(e.key)
		if !known {
			names := slices.Sorted(func(yield func(string) bool) {
				for k := range rlimitNames {
					if !yield(k) {
						return
					}
				}
			})
			hint := "e.g. RLIMIT_STACK"
			if s := suggest(typ, names); s != "" {
				hint = "did you mean " + s + "?"
			}
			d.fail(e.keyPos, e.path, ErrInvalidValue, "%s is not a resource limit (%s)", quote(e.key), hint)
			continue
		}
		if first, dup := seen[typ]; dup {
			d.fail(e.keyPos, e.path, ErrDuplicateField, "%s is given twice (first at line %d)", typ, first.line)
			continue
		}
		seen[typ] = e.keyPos
		rpath := fieldPath(path, typ)
		if rpath != e.path {
			d.record(path, rpath, e.keyPos, e.keyPos)
		}
		r := specs.POSIXRlimit{Type: typ}
		var soft, hard bool
		if d.mapping(e.value, rpath,
			field{"soft", func(n ast.Node, path string) { r.Soft, soft = d.rlimitValue(n, path, typ) }},
			field{"hard", func(n ast.Node, path string) { r.Hard, hard = d.rlimitValue(n, path, typ) }},
		) {
			if _, ok := d.values[rpath+".soft"]; !ok {
				d.fail(e.keyPos, rpath+".soft", ErrMissingField, "required (the soft limit, e.g. %s)", rlimitExample(typ))
			}
			if _, ok := d.values[rpath+".hard"]; !ok {
				d.fail(e.keyPos, rpath+".hard", ErrMissingField, "required (the hard limit, e.g. %s)", rlimitExample(typ))
			}
		}
		if !soft || !hard {
			// Keep validation quiet about a limit already reported.
			d.failed[rpath] = true
		}
		out = append(out, r)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Type < out[j].Type })
	return out
}

func rlimitExample(typ string) string {
	if rlimitNames[typ] {
		return "8Mi"
	}
	return "1024"
}

// rlimitValue reads a limit: "unlimited", an integer, or for limits counted
// in bytes a size.
func (d *decoder) rlimitValue(n ast.Node, path, typ string) (uint64, bool) {
	n, ok := d.unwrap(n, path)
	if !ok {
		return 0, false
	}
	if s, ok := n.(*ast.StringNode); ok {
		switch {
		case s.Value == "unlimited" || s.Value == "infinity":
			return rlimitInfinity, true
		case !rlimitNames[typ] && !isDigits(s.Value):
			d.fail(d.at(n, path), path, ErrInvalidValue, "%s: %s is a count, not a size (write an integer or unlimited)", quote(s.Value), typ)
			return 0, false
		}
	}
	return d.size(n, path)
}

func (d *decoder) capabilities(n ast.Node, path string, c *Capabilities) {
	d.mapping(n, path, field{"add", func(n ast.Node, path string) {
		c.Add = nil
		d.sequence(n, path, func(n ast.Node, path string) {
			s, _ := d.str(n, path)
			if canon, ok := canonicalCapability(s); ok {
				s = canon
			}
			c.Add = append(c.Add, s)
		})
	}})
}

func (d *decoder) seccomp(n ast.Node, path string, s *Seccomp) {
	d.mapping(n, path,
		d.strField("profile", &s.Profile),
		field{"defaultAction", func(n ast.Node, path string) {
			if a, ok := d.action(n, path); ok {
				s.DefaultAction = a
			}
		}},
		field{"syscalls", func(n ast.Node, path string) {
			s.Syscalls = nil
			d.sequence(n, path, func(n ast.Node, path string) {
				s.Syscalls = append(s.Syscalls, d.syscallRule(n, path))
			})
		}},
	)
}

func (d *decoder) action(n ast.Node, path string) (specs.LinuxSeccompAction, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return "", false
	}
	a, ok := parseSeccompAction(s)
	if !ok {
		d.fail(d.at(n, path), path, ErrInvalidValue, "%s is not a seccomp action (%s)", quote(s), actionList())
		return "", false
	}
	return a, true
}

func (d *decoder) syscallRule(n ast.Node, path string) specs.LinuxSyscall {
	var r specs.LinuxSyscall
	d.mapping(n, path,
		field{"names", func(n ast.Node, path string) {
			d.sequence(n, path, func(n ast.Node, path string) {
				name, _ := d.str(n, path)
				r.Names = append(r.Names, name)
			})
		}},
		field{"action", func(n ast.Node, path string) {
			if a, ok := d.action(n, path); ok {
				r.Action = a
			}
		}},
		field{"errnoRet", func(n ast.Node, path string) {
			if v, ok := d.integer(n, path, 0, maxErrno); ok {
				e := uint(v)
				r.ErrnoRet = &e
			}
		}},
		field{"args", func(n ast.Node, path string) {
			d.sequence(n, path, func(n ast.Node, path string) {
				var a specs.LinuxSeccompArg
				d.mapping(n, path,
					intField(d, "index", &a.Index, 0, maxSyscallArgs-1),
					intField(d, "value", &a.Value, 0, math.MaxUint64),
					intField(d, "valueTwo", &a.ValueTwo, 0, math.MaxUint64),
					field{"op", func(n ast.Node, path string) {
						s, ok := d.str(n, path)
						if !ok {
							return
						}
						op, ok := parseSeccompOp(s)
						if !ok {
							d.fail(d.at(n, path), path, ErrInvalidValue, "%s is not a comparison (use eq, ne, lt, le, gt, ge or masked_eq)", quote(s))
							return
						}
						a.Op = op
					}},
				)
				r.Args = append(r.Args, a)
			})
		}},
	)
	// Required fields absent from the file are reported by validation,
	// at the rule.
	return r
}
