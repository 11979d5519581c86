package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinels of the policy store; test with errors.Is.
var (
	// ErrDuplicateName: two files in the policy directory declare the
	// same metadata.name.
	ErrDuplicateName = errors.New("duplicate policy name")
	// ErrNotFound: no policy of that name is active.
	ErrNotFound = errors.New("no such policy")
	// ErrBuiltin: the built-in default policy cannot be deleted.
	ErrBuiltin = errors.New("built-in policy")
	// ErrConflict: Apply would overwrite or duplicate another policy's
	// file.
	ErrConflict = errors.New("conflicting policy file")
)

// Entry is one published version of a policy. Entries are immutable: a new
// version of a policy is a new Entry, so an app keeps the Entry it started
// with whatever happens to the store afterwards. Do not modify Policy (nor
// what it points to); PolicyCopy returns a copy to change.
type Entry struct {
	// Name is the policy's metadata.name.
	Name string
	// Hash is the SHA-256, in hex, of YAML: two files that differ only in
	// comments, layout, quoting, key order or in spelling out defaults
	// have the same hash.
	Hash string
	// YAML is the policy in canonical form: Policy.Encode's output, with
	// every default filled in.
	YAML string
	// Policy is the parsed policy.
	Policy *Policy
	// File is the file the policy was read from (the directory joined with
	// the file's name), or "" for the built-in default policy.
	File string
	// Loaded is when this version was published.
	Loaded time.Time
}

// newEntry computes the canonical form and hash of p.
func newEntry(p *Policy, file string, loaded time.Time) (*Entry, error) {
	var b bytes.Buffer
	if err := p.Encode(&b); err != nil {
		return nil, fmt.Errorf("encoding policy %q: %w", p.Metadata.Name, err)
	}
	sum := sha256.Sum256(b.Bytes())
	return &Entry{
		Name:   p.Metadata.Name,
		Hash:   hex.EncodeToString(sum[:]),
		YAML:   b.String(),
		Policy: p,
		File:   file,
		Loaded: loaded,
	}, nil
}

// PolicyCopy returns a deep copy of the entry's policy, for a caller that
// changes it (for example to merge command-line options into it).
func (e *Entry) PolicyCopy() *Policy {
	c := reflect.New(reflect.TypeFor[Policy]()).Elem()
	deepCopy(c, reflect.ValueOf(e.Policy).Elem())
	p := c.Addr().Interface().(*Policy)
	return p
}

// deepCopy copies src into dst (both of the same type), duplicating every
// pointer, slice and map so that the copy shares no memory with src. It
// walks the type by reflection so that it keeps working when fields are
// added to Policy or to the runtime-spec types it holds.
func deepCopy(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Type().Elem())
		deepCopy(p.Elem(), src.Elem())
		dst.Set(p)
	case reflect.Slice:
		if src.IsNil() {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			deepCopy(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map:
		if src.IsNil() {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		for it := src.MapRange(); it.Next(); {
			v := reflect.New(src.Type().Elem()).Elem()
			deepCopy(v, it.Value())
			m.SetMapIndex(it.Key(), v) // keys are strings: values, not references
		}
		dst.Set(m)
	case reflect.Struct:
		dst.Set(src) // unexported fields, if a type ever gets some
		for i := range src.NumField() {
			if dst.Field(i).CanSet() {
				deepCopy(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Array:
		for i := range src.Len() {
			deepCopy(dst.Index(i), src.Index(i))
		}
	case reflect.Interface, reflect.Chan, reflect.Func, reflect.UnsafePointer:
		// A policy holds none of these; copying one would share it.
		panic(fmt.Sprintf("policy: cannot copy a %s", src.Type()))
	default:
		dst.Set(src)
	}
}

// Rejection is a file of the policy directory that Load did not take: it
// failed validation (Err is the ErrorList Parse returns), could not be read,
// or declares a name that another file declares too (Err wraps
// ErrDuplicateName). The previous version of its policy, if any, stays
// active.
type Rejection struct {
	File string
	Err  error
}

// Report says what a Load changed. Each list is sorted (by name or file).
type Report struct {
	// Loaded are the versions published: new policies, changed ones, the
	// built-in default when it becomes active again.
	Loaded []*Entry
	// Unchanged are the policies whose files hold the same policy (the
	// same hash) as before; their entries stay as they were.
	Unchanged []*Entry
	// Rejected are the files not taken.
	Rejected []Rejection
	// Removed are the names of policies that are no longer active because
	// their file was removed from the directory or now declares another
	// name.
	Removed []string
}

// Store is the daemon's set of active policies: the files of a policy
// directory plus the built-in default policy.
//
// Every *.yaml or *.yml file in the directory (not its subdirectories; not
// files whose names start with '.', such as editors' and Apply's temporary
// files; symbolic links are followed) holds one policy, active under its
// metadata.name. The built-in default policy (Default) is active as
// "default" unless a file declares a policy named "default", which then
// replaces it; removing that file brings the built-in back.
//
// A file that fails validation never removes or replaces anything: the
// version of its policy that was active before stays active. Load, Apply and
// Delete are serialized; Get and List never wait for them: they read an
// immutable snapshot that each change replaces.
type Store struct {
	dir     string
	builtin *Entry

	mu  sync.Mutex // serializes changes; readers use cur
	cur atomic.Pointer[snapshot]
}

// snapshot is one immutable state of the store.
type snapshot struct {
	byName map[string]*Entry // includes the active default
	list   []*Entry          // byName's values sorted by name
}

// NewStore returns a store for the policy directory dir holding only the
// built-in default policy. Call Load to read the directory; a directory that
// does not exist holds no policies, and Apply creates it.
func NewStore(dir string) *Store {
	s := &Store{dir: dir}
	builtin, err := newEntry(Default(), "", time.Now())
	if err != nil {
		// Encode writes to memory; it cannot fail.
		panic(err)
	}
	s.builtin = builtin
	s.publish(map[string]*Entry{})
	return s
}

// Dir returns the policy directory.
func (s *Store) Dir() string { return s.dir }

// publish makes the policies read from the directory, plus the built-in
// default unless they define "default", the active set. The caller holds
// s.mu (or is NewStore) and gives up files.
func (s *Store) publish(files map[string]*Entry) {
	byName := files
	if _, ok := byName[s.builtin.Name]; !ok {
		byName[s.builtin.Name] = s.builtin
	}
	list := make([]*Entry, 0, len(byName))
	for _, e := range byName {
		list = append(list, e)
	}
	slices.SortFunc(list, func(a, b *Entry) int { return strings.Compare(a.Name, b.Name) })
	s.cur.Store(&snapshot{byName: byName, list: list})
}

// fromFiles returns a copy of the active entries that come from files.
func (snap *snapshot) fromFiles() map[string]*Entry {
	m := make(map[string]*Entry, len(snap.byName))
	for name, e := range snap.byName {
		if e.File != "" {
			m[name] = e
		}
	}
	return m
}

// Get returns the active version of the named policy.
func (s *Store) Get(name string) (*Entry, bool) {
	e, ok := s.cur.Load().byName[name]
	return e, ok
}

// List returns every active policy, sorted by name. The slice is the
// caller's.
func (s *Store) List() []*Entry {
	return slices.Clone(s.cur.Load().list)
}

// isPolicyFile says whether a directory entry's name is one Load reads.
func isPolicyFile(name string) bool {
	return !strings.HasPrefix(name, ".") &&
		(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml"))
}

// Load reads every policy file in the directory and publishes the result:
// each valid file becomes (or stays) the active version of the policy it
// names; each policy whose file is gone is removed. A file that fails is
// rejected and the version of its policy active before stays active: its
// policy is the one previously read from the same file, since a file that
// cannot be read or parsed has no name to go by. When several files declare
// the same name, all of them are rejected, each naming the others, and the
// version active before (from whichever file) stays.
//
// If the directory cannot be read (other than not existing) nothing changes
// and the report holds one rejection, for the directory.
func (s *Store) Load() Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Load()

	dirents, err := os.ReadDir(s.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Report{Rejected: []Rejection{{File: s.dir, Err: fmt.Errorf("reading the policy directory: %w", err)}}}
	}
	var rep Report
	rejected := map[string]bool{}     // files
	declared := map[string][]string{} // name -> files declaring it
	parsed := map[string]*Policy{}    // file -> policy
	reject := func(file string, err error) {
		rejected[file] = true
		rep.Rejected = append(rep.Rejected, Rejection{File: file, Err: err})
	}
	for _, de := range dirents {
		if !isPolicyFile(de.Name()) {
			continue
		}
		file := filepath.Join(s.dir, de.Name())
		fi, err := os.Stat(file) // follows symbolic links
		if err != nil {
			reject(file, fmt.Errorf("reading policy: %w", err))
			continue
		}
		if !fi.Mode().IsRegular() {
			reject(file, fmt.Errorf("reading policy %s: not a regular file (a policy file holds one YAML document)", file))
			continue
		}
		p, err := LoadFile(file)
		if err != nil {
			reject(file, err)
			continue
		}
		parsed[file] = p
		declared[p.Metadata.Name] = append(declared[p.Metadata.Name], file)
	}

	next := map[string]*Entry{}
	now := time.Now()
	for name, files := range declared {
		if len(files) > 1 {
			for _, f := range files {
				others := slices.DeleteFunc(slices.Clone(files), func(o string) bool { return o == f })
				reject(f, fmt.Errorf("%s: metadata.name: %w: %q is also declared in %s (keep one file per policy: delete or rename the others; the version active before stays)",
					f, ErrDuplicateName, name, strings.Join(others, ", ")))
			}
			continue
		}
		file := files[0]
		e, err := newEntry(parsed[file], file, now)
		if err != nil {
			reject(file, err)
			continue
		}
		if prev, ok := old.byName[name]; ok && prev.File == file && prev.Hash == e.Hash {
			next[name] = prev
			rep.Unchanged = append(rep.Unchanged, prev)
			continue
		}
		next[name] = e
		rep.Loaded = append(rep.Loaded, e)
	}
	for name, prev := range old.byName {
		if prev.File == "" {
			continue // the built-in: publish decides
		}
		if _, ok := next[name]; ok {
			continue // replaced or unchanged
		}
		if rejected[prev.File] || len(declared[name]) > 1 {
			next[name] = prev // what failed keeps its previous version
			continue
		}
		rep.Removed = append(rep.Removed, name)
	}
	if _, defined := next[s.builtin.Name]; !defined && old.byName[s.builtin.Name] != s.builtin {
		rep.Loaded = append(rep.Loaded, s.builtin)
	}
	s.publish(next)

	byName := func(a, b *Entry) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(rep.Loaded, byName)
	slices.SortFunc(rep.Unchanged, byName)
	slices.SortStableFunc(rep.Rejected, func(a, b Rejection) int { return strings.Compare(a.File, b.File) })
	slices.Sort(rep.Removed)
	return rep
}

// Validate parses and validates content exactly as Parse does (errors carry
// filename and positions) and returns the entry it would become, without
// storing anything; the entry's File is empty.
func (s *Store) Validate(filename string, content []byte) (*Entry, error) {
	p, err := Parse(filename, content)
	if err != nil {
		return nil, err
	}
	return newEntry(p, "", time.Time{})
}

// Apply validates content as Parse does, using filename in error positions,
// then writes it, as given, to <metadata.name>.yaml in the policy directory
// (creating the directory if needed) and publishes it as the active version
// of its policy. The file is written to a temporary file in the directory,
// synced and renamed into place, mode 0644.
//
// On a validation error, it returns the ErrorList and changes nothing. It
// refuses (ErrConflict) to apply a policy that another file in the directory
// defines, and to replace a file that holds another policy, since either
// would make a policy change or disappear unasked; the error says which file.
// Applying the same policy again (the same hash, from the same file) keeps the
// active entry.
func (s *Store) Apply(filename string, content []byte) (*Entry, error) {
	p, err := Parse(filename, content)
	if err != nil {
		return nil, err
	}
	name := p.Metadata.Name
	target := filepath.Join(s.dir, name+".yaml")

	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	if prev, ok := cur.byName[name]; ok && prev.File != "" && prev.File != target {
		if _, err := os.Stat(prev.File); err == nil {
			return nil, fmt.Errorf("applying policy %q: %w: it is defined in %s; change that file, or delete the policy first, then apply", name, ErrConflict, prev.File)
		}
	}
	for _, e := range cur.list {
		if e.File == target && e.Name != name {
			return nil, fmt.Errorf("applying policy %q: %w: %s holds policy %q; rename that file first", name, ErrConflict, target, e.Name)
		}
	}
	if other, err := LoadFile(target); err == nil && other.Metadata.Name != name {
		return nil, fmt.Errorf("applying policy %q: %w: %s holds policy %q; rename that file first", name, ErrConflict, target, other.Metadata.Name)
	}

	e, err := newEntry(p, target, time.Now())
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(target, content); err != nil {
		return nil, fmt.Errorf("applying policy %q: %w", name, err)
	}
	if prev, ok := cur.byName[name]; ok && prev.File == target && prev.Hash == e.Hash {
		return prev, nil
	}
	next := cur.fromFiles()
	next[name] = e
	s.publish(next)
	return e, nil
}

// Delete removes the named policy's file from the directory and the policy
// from the store. Deleting a policy named "default" read from the directory
// brings back the built-in default; the built-in itself cannot be deleted
// (ErrBuiltin). Other files that declare the same name (which Load reports as
// duplicates) are left alone.
func (s *Store) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	e, ok := cur.byName[name]
	if !ok {
		return fmt.Errorf("deleting policy %q: %w", name, ErrNotFound)
	}
	if e.File == "" {
		return fmt.Errorf("deleting policy %q: %w: it is compiled into pinfold (a file declaring %q replaces it)", name, ErrBuiltin, name)
	}
	if err := os.Remove(e.File); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting policy %q: %w", name, err)
	}
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("deleting policy %q: %w", name, err)
	}
	next := cur.fromFiles()
	delete(next, name)
	s.publish(next)
	return nil
}

// writeFileAtomic replaces path with content: a temporary file beside it,
// written and synced, renamed over path, and the directory synced, so that
// after a crash path holds either the old content or the new.
func writeFileAtomic(path string, content []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the policy directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing policy: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(content); err != nil {
		return fmt.Errorf("writing policy: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("writing policy: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing policy: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing policy: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("writing policy: %w", err)
	}
	ok = true
	return syncDir(dir)
}

// syncDir makes a rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing the policy directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing the policy directory: %w", err)
	}
	return nil
}
