package policy

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinels that classify a FieldError. Test for them with errors.Is on the
// error returned by Parse, LoadFile or Validate.
var (
	// ErrSyntax: the file is not well-formed YAML, or not one YAML mapping.
	ErrSyntax = errors.New("yaml syntax error")
	// ErrUnknownField: a key that the schema does not have.
	ErrUnknownField = errors.New("unknown field")
	// ErrDuplicateField: a key given twice in one mapping.
	ErrDuplicateField = errors.New("duplicate field")
	// ErrWrongType: a value of the wrong YAML type (a string where an
	// integer belongs, a sequence where a mapping belongs, ...).
	ErrWrongType = errors.New("wrong type")
	// ErrMissingField: a required field is absent.
	ErrMissingField = errors.New("missing field")
	// ErrInvalidValue: a value of the right type that is not allowed.
	ErrInvalidValue = errors.New("invalid value")
	// ErrUnsupported: a value that pinfold does not support (yet), or a YAML
	// feature (aliases, merge keys, custom tags) that policy files do not use.
	ErrUnsupported = errors.New("not supported")
	// ErrNoSeccompBase: Seccomp.Resolve needs the default profile and was
	// given none.
	ErrNoSeccompBase = errors.New("no default seccomp profile given")
)

// FieldError is one problem in a policy: where it is (file, 1-based line and
// column, when the policy came from a file), which field (a dotted path such
// as spec.resources.memory or spec.filesystem.readOnly[1]), and what is wrong.
type FieldError struct {
	File   string
	Line   int
	Column int
	Path   string
	Msg    string
	// Err classifies the problem: one of the sentinels above, or the
	// underlying error (for example a *fs.PathError from stat'ing a bind
	// source, which matches fs.ErrNotExist).
	Err error
}

// Error formats the problem as "FILE:LINE:COL: PATH: MSG", leaving out the
// parts that are unknown.
func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		file := e.File
		if file == "" {
			file = "<input>"
		}
		fmt.Fprintf(&b, "%s:%d:%d: ", file, e.Line, e.Column)
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the classifying error.
func (e *FieldError) Unwrap() error { return e.Err }

// ErrorList is every problem found in one policy, sorted by position.
type ErrorList []*FieldError

// Error joins the problems, one per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.Is and errors.As look at every FieldError.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// err returns the list as an error, or nil when it is empty (a nil ErrorList
// stored in an error interface would not compare equal to nil).
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}
