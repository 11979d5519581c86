package policy

import (
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
	"testing"
)

// policyFile returns a small valid policy file naming name with the given
// memory limit.
func policyFile(name, memory string) string {
	return fmt.Sprintf("apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: %s\nspec:\n  resources:\n    memory: %s\n", name, memory)
}

// A policy file with a typo at line 7, column 5.
const badFile = "apiVersion: pinfold/v1\nkind: SandboxPolicy\nmetadata:\n  name: web\nspec:\n  resources:\n    memroy: 1Gi\n"

// storeStep changes the directory, runs Load and checks the result.
type storeStep struct {
	name   string
	write  map[string]string // file -> content
	remove []string          // files
	setup  func(t *testing.T, dir string)

	active    map[string]string // name -> file it comes from ("" built-in)
	memory    map[string]Size   // name -> spec.resources.memory
	same      []string          // names whose *Entry must be the one active before
	loaded    []string
	unchanged []string
	removed   []string
	rejected  map[string]error // file -> sentinel errors.Is must find
	// rejectedText: file -> substrings of its error.
	rejectedText map[string][]string
}

func TestStoreLoad(t *testing.T) {
	dir := t.TempDir()
	elsewhere := t.TempDir()
	steps := []storeStep{
		{
			name: "first load: good and bad files, files that are not policies",
			write: map[string]string{
				"a.yaml":       policyFile("web", "256Mi"),
				"b.yml":        policyFile("db", "1Gi"),
				"c.yaml":       badFile,
				"notes.txt":    "not a policy",
				".hidden.yaml": policyFile("hidden", "1Gi"),
				"a.yaml~":      policyFile("backup", "1Gi"),
			},
			setup: func(t *testing.T, dir string) {
				// A symbolic link to a file elsewhere is followed (as
				// in a Kubernetes ConfigMap volume); a directory with a
				// policy's name is rejected.
				target := filepath.Join(elsewhere, "linked.yaml")
				if err := os.WriteFile(target, []byte(policyFile("linked", "64Mi")), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(dir, "link.yaml")); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "sub.yaml", "inner.yaml"), []byte(policyFile("inner", "1Gi")), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			active:   map[string]string{"default": "", "web": "a.yaml", "db": "b.yml", "linked": "link.yaml"},
			memory:   map[string]Size{"web": 256 * MiB, "db": GiB, "linked": 64 * MiB, "default": 512 * MiB},
			loaded:   []string{"db", "linked", "web"},
			rejected: map[string]error{"c.yaml": ErrUnknownField, "sub.yaml": nil},
			rejectedText: map[string][]string{
				"c.yaml":   {filepath.Join(dir, "c.yaml") + `:7:5: spec.resources.memroy: unknown field (did you mean "memory"?)`},
				"sub.yaml": {"not a regular file"},
			},
		},
		{
			name:      "a file breaks: the previous version stays",
			write:     map[string]string{"a.yaml": badFile},
			active:    map[string]string{"default": "", "web": "a.yaml", "db": "b.yml", "linked": "link.yaml"},
			memory:    map[string]Size{"web": 256 * MiB},
			same:      []string{"web", "db", "linked", "default"},
			unchanged: []string{"db", "linked"},
			rejected:  map[string]error{"a.yaml": ErrUnknownField, "c.yaml": ErrUnknownField, "sub.yaml": nil},
		},
		{
			name:      "the file is fixed with new content",
			write:     map[string]string{"a.yaml": policyFile("web", "512Mi")},
			remove:    []string{"c.yaml", "sub.yaml/inner.yaml", "sub.yaml"},
			active:    map[string]string{"default": "", "web": "a.yaml", "db": "b.yml", "linked": "link.yaml"},
			memory:    map[string]Size{"web": 512 * MiB},
			same:      []string{"db", "linked"},
			loaded:    []string{"web"},
			unchanged: []string{"db", "linked"},
		},
		{
			name: "a cosmetic reformat changes nothing",
			write: map[string]string{"b.yml": `# the database
kind: "SandboxPolicy"
apiVersion: 'pinfold/v1'
metadata: {name: db}
spec:
  resources: {memory: 1024Mi, pids: 256}   # pids as the default
  network: none
`},
			active:    map[string]string{"default": "", "web": "a.yaml", "db": "b.yml", "linked": "link.yaml"},
			same:      []string{"web", "db", "linked", "default"},
			unchanged: []string{"db", "linked", "web"},
		},
		{
			name:      "a file is removed",
			remove:    []string{"b.yml", "link.yaml"},
			active:    map[string]string{"default": "", "web": "a.yaml"},
			same:      []string{"web"},
			unchanged: []string{"web"},
			removed:   []string{"db", "linked"},
		},
		{
			name:     "two files declare the same name: both rejected, the previous version stays",
			write:    map[string]string{"d.yaml": policyFile("web", "2Gi")},
			active:   map[string]string{"default": "", "web": "a.yaml"},
			memory:   map[string]Size{"web": 512 * MiB},
			same:     []string{"web"},
			rejected: map[string]error{"a.yaml": ErrDuplicateName, "d.yaml": ErrDuplicateName},
			rejectedText: map[string][]string{
				"a.yaml": {filepath.Join(dir, "a.yaml") + `: metadata.name: duplicate policy name: "web" is also declared in ` + filepath.Join(dir, "d.yaml")},
				"d.yaml": {filepath.Join(dir, "d.yaml") + `: metadata.name: duplicate policy name: "web" is also declared in ` + filepath.Join(dir, "a.yaml")},
			},
		},
		{
			name:      "the duplicate is removed",
			remove:    []string{"d.yaml"},
			active:    map[string]string{"default": "", "web": "a.yaml"},
			same:      []string{"web"},
			unchanged: []string{"web"},
		},
		{
			name: "a new name declared twice is not loaded",
			write: map[string]string{
				"e.yaml": policyFile("cache", "1Gi"),
				"f.yaml": policyFile("cache", "1Gi"),
			},
			active:    map[string]string{"default": "", "web": "a.yaml"},
			same:      []string{"web"},
			unchanged: []string{"web"},
			rejected:  map[string]error{"e.yaml": ErrDuplicateName, "f.yaml": ErrDuplicateName},
		},
		{
			name:      "a file named default replaces the built-in",
			remove:    []string{"e.yaml", "f.yaml"},
			write:     map[string]string{"local-default.yaml": policyFile("default", "128Mi")},
			active:    map[string]string{"default": "local-default.yaml", "web": "a.yaml"},
			memory:    map[string]Size{"default": 128 * MiB},
			loaded:    []string{"default"},
			unchanged: []string{"web"},
		},
		{
			name:      "a broken default keeps the directory's version",
			write:     map[string]string{"local-default.yaml": "apiVersion: [\n"},
			active:    map[string]string{"default": "local-default.yaml", "web": "a.yaml"},
			memory:    map[string]Size{"default": 128 * MiB},
			same:      []string{"default", "web"},
			unchanged: []string{"web"},
			rejected:  map[string]error{"local-default.yaml": ErrSyntax},
		},
		{
			name:      "removing it brings the built-in back",
			remove:    []string{"local-default.yaml"},
			active:    map[string]string{"default": "", "web": "a.yaml"},
			memory:    map[string]Size{"default": 512 * MiB},
			loaded:    []string{"default"},
			unchanged: []string{"web"},
			removed:   []string{"default"},
		},
		{
			name:    "a file now declares another name",
			write:   map[string]string{"a.yaml": policyFile("web2", "512Mi")},
			active:  map[string]string{"default": "", "web2": "a.yaml"},
			loaded:  []string{"web2"},
			removed: []string{"web"},
		},
		{
			name: "an unreadable directory changes nothing",
			setup: func(t *testing.T, dir string) {
				if err := os.Rename(dir, dir+".moved"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dir, nil, 0o644); err != nil { // not a directory
					t.Fatal(err)
				}
			},
			active:   map[string]string{"default": "", "web2": "a.yaml"},
			same:     []string{"default", "web2"},
			rejected: map[string]error{".": nil},
		},
		{
			name: "a missing directory holds no policies",
			setup: func(t *testing.T, dir string) {
				if err := os.Remove(dir); err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(dir + ".moved"); err != nil {
					t.Fatal(err)
				}
			},
			active:  map[string]string{"default": ""},
			same:    []string{"default"},
			removed: []string{"web2"},
		},
	}

	s := NewStore(dir)
	if got := names(s.List()); !slices.Equal(got, []string{"default"}) {
		t.Fatalf("a new store holds %v, want the built-in default only", got)
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := map[string]*Entry{}
			for _, e := range s.List() {
				before[e.Name] = e
			}
			for _, f := range st.remove {
				if err := os.Remove(filepath.Join(dir, f)); err != nil {
					t.Fatal(err)
				}
			}
			for f, content := range st.write {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if st.setup != nil {
				st.setup(t, dir)
			}
			rep := s.Load()
			checkActive(t, s, dir, st.active)
			for name, mem := range st.memory {
				if e, ok := s.Get(name); !ok || e.Policy.Spec.Resources.Memory != mem {
					t.Errorf("policy %s: memory %v, want %v", name, e.Policy.Spec.Resources.Memory, mem)
				}
			}
			for _, name := range st.same {
				if e, _ := s.Get(name); e != before[name] {
					t.Errorf("policy %s: a new entry was published, want the one active before", name)
				}
			}
			if got := names(rep.Loaded); !slices.Equal(got, sorted(st.loaded)) {
				t.Errorf("Loaded %v, want %v", got, sorted(st.loaded))
			}
			if got := names(rep.Unchanged); !slices.Equal(got, sorted(st.unchanged)) {
				t.Errorf("Unchanged %v, want %v", got, sorted(st.unchanged))
			}
			if !slices.Equal(rep.Removed, sorted(st.removed)) {
				t.Errorf("Removed %v, want %v", rep.Removed, sorted(st.removed))
			}
			var rejected []string
			for _, r := range rep.Rejected {
				rel, _ := filepath.Rel(dir, r.File)
				rejected = append(rejected, rel)
				is, ok := st.rejected[rel]
				if !ok {
					t.Errorf("rejected %s: %v", rel, r.Err)
					continue
				}
				if is != nil && !errors.Is(r.Err, is) {
					t.Errorf("rejected %s with %v, want %v", rel, r.Err, is)
				}
				for _, text := range st.rejectedText[rel] {
					if !strings.Contains(r.Err.Error(), text) {
						t.Errorf("rejected %s with\n%v\nwant it to contain\n%s", rel, r.Err, text)
					}
				}
			}
			if want := sorted(keys(st.rejected)); !slices.Equal(rejected, want) {
				t.Errorf("rejected %v, want %v", rejected, want)
			}
		})
	}
}

// checkActive compares the store's policies with want (name -> file relative
// to dir, "" for the built-in) and checks every entry's hash and canonical
// form.
func checkActive(t *testing.T, s *Store, dir string, want map[string]string) {
	t.Helper()
	list := s.List()
	if got, w := names(list), sorted(keys(want)); !slices.Equal(got, w) {
		t.Errorf("active policies %v, want %v", got, w)
	}
	for _, e := range list {
		file := ""
		if e.File != "" {
			file, _ = filepath.Rel(dir, e.File)
		}
		if f, ok := want[e.Name]; ok && f != file {
			t.Errorf("policy %s comes from %q, want %q", e.Name, file, f)
		}
		if g, ok := s.Get(e.Name); !ok || g != e {
			t.Errorf("Get(%q) does not return List's entry", e.Name)
		}
		checkEntry(t, e)
	}
}

// checkEntry checks that an entry is consistent: its name, canonical form and
// hash match its policy.
func checkEntry(t *testing.T, e *Entry) {
	t.Helper()
	var b strings.Builder
	if err := e.Policy.Encode(&b); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(b.String()))
	if e.Name != e.Policy.Metadata.Name || e.YAML != b.String() || e.Hash != hex.EncodeToString(sum[:]) {
		t.Errorf("entry %s is inconsistent: policy %s, hash %s", e.Name, e.Policy.Metadata.Name, e.Hash)
	}
}

func names(es []*Entry) []string {
	s := []string{}
	for _, e := range es {
		s = append(s, e.Name)
	}
	return s
}

func keys[V any](m map[string]V) []string {
	s := []string{}
	for k := range m {
		s = append(s, k)
	}
	return s
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	if s == nil {
		s = []string{}
	}
	slices.Sort(s)
	return s
}

func TestStoreApply(t *testing.T) {
	tests := []struct {
		name    string
		setup   map[string]string // files in the directory before
		file    string            // Apply's filename argument
		content string
		want    error  // errors.Is; nil for success
		text    string // the whole error text, when given
		// after: name -> memory of the active version; files: what the
		// directory holds afterwards.
		after map[string]Size
		files []string
	}{
		{
			name:    "new policy",
			file:    "web.yaml",
			content: policyFile("web", "256Mi"),
			after:   map[string]Size{"web": 256 * MiB},
			files:   []string{"web.yaml"},
		},
		{
			name:    "new version, written under the policy's name",
			setup:   map[string]string{"web.yaml": policyFile("web", "256Mi")},
			file:    "/home/op/my-web-policy.yml",
			content: "# new\n" + policyFile("web", "1Gi"),
			after:   map[string]Size{"web": GiB},
			files:   []string{"web.yaml"},
		},
		{
			name:    "invalid: exact errors with the given filename, nothing written",
			setup:   map[string]string{"web.yaml": policyFile("web", "256Mi")},
			file:    "upload.yaml",
			content: badFile + "  network: outside\n",
			want:    ErrUnknownField,
			text: "upload.yaml:7:5: spec.resources.memroy: unknown field (did you mean \"memory\"?)\n" +
				"upload.yaml:8:12: spec.network: \"outside\" is not supported (only none, a network namespace with loopback only, is supported)",
			after: map[string]Size{"web": 256 * MiB},
			files: []string{"web.yaml"},
		},
		{
			name:    "syntax error",
			file:    "upload.yaml",
			content: "apiVersion: pinfold/v1\nkind: [\n",
			want:    ErrSyntax,
			files:   []string{},
		},
		{
			name:    "defined in another file",
			setup:   map[string]string{"ops-web.yml": policyFile("web", "256Mi")},
			file:    "web.yaml",
			content: policyFile("web", "1Gi"),
			want:    ErrConflict,
			after:   map[string]Size{"web": 256 * MiB},
			files:   []string{"ops-web.yml"},
		},
		{
			name:    "the target file holds another policy",
			setup:   map[string]string{"web.yaml": policyFile("db", "256Mi")},
			file:    "web.yaml",
			content: policyFile("web", "1Gi"),
			want:    ErrConflict,
			after:   map[string]Size{"db": 256 * MiB},
			files:   []string{"web.yaml"},
		},
		{
			name:    "default from a file",
			file:    "default.yaml",
			content: policyFile("default", "128Mi"),
			after:   map[string]Size{"default": 128 * MiB},
			files:   []string{"default.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "policies.d") // Apply creates it
			if tt.setup != nil {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for f, content := range tt.setup {
					if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			s := NewStore(dir)
			if rep := s.Load(); len(rep.Rejected) != 0 {
				t.Fatalf("setup rejected: %v", rep.Rejected)
			}
			e, err := s.Apply(tt.file, []byte(tt.content))
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				checkEntry(t, e)
				if g, ok := s.Get(e.Name); !ok || g != e {
					t.Errorf("Get(%q) does not return the applied entry", e.Name)
				}
				target := filepath.Join(dir, e.Name+".yaml")
				if e.File != target {
					t.Errorf("entry file %s, want %s", e.File, target)
				}
				data, err := os.ReadFile(target)
				if err != nil || string(data) != tt.content {
					t.Errorf("%s holds %q (%v), want the content as given", target, data, err)
				}
				if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o644 {
					t.Errorf("%s: mode %v (%v), want 0644", target, fi.Mode(), err)
				}
			} else {
				if !errors.Is(err, tt.want) || e != nil {
					t.Fatalf("Apply = %v, %v; want %v", e, err, tt.want)
				}
				if tt.text != "" && err.Error() != tt.text {
					t.Errorf("error text:\n%s\nwant:\n%s", err, tt.text)
				}
				var list ErrorList
				if (errors.Is(tt.want, ErrUnknownField) || errors.Is(tt.want, ErrSyntax)) && !errors.As(err, &list) {
					t.Errorf("a validation error is %T, want the ErrorList Parse returns", err)
				}
			}
			for name, mem := range tt.after {
				if g, ok := s.Get(name); !ok || g.Policy.Spec.Resources.Memory != mem {
					t.Errorf("after Apply policy %s is %v, want memory %v", name, g, mem)
				}
			}
			var files []string
			entries, err := os.ReadDir(dir)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			for _, de := range entries {
				files = append(files, de.Name()) // temporary files too
			}
			if !slices.Equal(sorted(files), sorted(tt.files)) {
				t.Errorf("the directory holds %v, want %v", files, tt.files)
			}
			// What Apply published is what the directory says.
			if rep := s.Load(); len(rep.Loaded)+len(rep.Removed)+len(rep.Rejected) != 0 {
				t.Errorf("a Load after Apply changed the store: %+v", rep)
			}
		})
	}
}

// TestStoreApplyAgain: applying the same policy twice, even reformatted,
// keeps the entry; the file holds the latest text.
func TestStoreApplyAgain(t *testing.T) {
	s := NewStore(t.TempDir())
	first, err := s.Apply("a.yaml", []byte(policyFile("web", "1Gi")))
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Apply("b.yaml", []byte("# reformatted\n"+policyFile("web", "1024Mi")))
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("applying the same policy again published a new entry")
	}
	data, err := os.ReadFile(first.File)
	if err != nil || !strings.HasPrefix(string(data), "# reformatted\n") {
		t.Errorf("the file holds %q (%v), want the text applied last", data, err)
	}
}

func TestStoreDelete(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		delete string
		want   error
		active []string
	}{
		{"from a file", map[string]string{"w.yaml": policyFile("web", "1Gi")}, "web", nil, []string{"default"}},
		{"unknown", nil, "web", ErrNotFound, []string{"default"}},
		{"the built-in", nil, "default", ErrBuiltin, []string{"default"}},
		{"a default from a file: the built-in comes back", map[string]string{"d.yaml": policyFile("default", "1Gi")}, "default", nil, []string{"default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for f, content := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := NewStore(dir)
			s.Load()
			if err := s.Delete(tt.delete); !errors.Is(err, tt.want) {
				t.Fatalf("Delete(%q) = %v, want %v", tt.delete, err, tt.want)
			}
			if got := names(s.List()); !slices.Equal(got, tt.active) {
				t.Errorf("active %v, want %v", got, tt.active)
			}
			if e, _ := s.Get("default"); e.File != "" || e.Policy.Spec.Resources.Memory != 512*MiB {
				t.Errorf("default is %s, want the built-in", e.File)
			}
			if tt.want == nil {
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("the directory still holds %v", entries)
				}
			}
		})
	}
}

// TestStoreHash: the hash follows the policy, not the text of its file.
func TestStoreHash(t *testing.T) {
	base := policyFile("web", "1Gi")
	tests := []struct {
		name  string
		other string
		same  bool
	}{
		{"identical", base, true},
		{"comments and blank lines", "# web\n\n" + strings.ReplaceAll(base, "spec:\n", "spec: # here\n"), true},
		{"flow style, quoting, key order", `{kind: "SandboxPolicy", apiVersion: pinfold/v1, metadata: {name: 'web'}, spec: {resources: {memory: 1024Mi}}}`, true},
		{"a default spelled out", base + "  network: none\n", true},
		{"another size syntax", policyFile("web", "1073741824"), true},
		{"another value", policyFile("web", "2Gi"), false},
		{"another name", policyFile("web2", "1Gi"), false},
		{"another field", base + "  hostname: web\n", false},
	}
	s := NewStore(t.TempDir())
	want, err := s.Validate("base.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := s.Validate("other.yaml", []byte(tt.other))
			if err != nil {
				t.Fatal(err)
			}
			if (e.Hash == want.Hash) != tt.same {
				t.Errorf("hash %s, base %s: same = %v, want %v", e.Hash, want.Hash, !tt.same, tt.same)
			}
		})
	}
	if _, err := s.Validate("bad.yaml", []byte(badFile)); !errors.Is(err, ErrUnknownField) {
		t.Errorf("Validate of a bad file = %v, want ErrUnknownField", err)
	}
	if got := names(s.List()); !slices.Equal(got, []string{"default"}) {
		t.Errorf("Validate stored something: %v", got)
	}
}

// TestStoreConcurrent runs readers against Load, Apply and Delete (run with
// -race). Readers must always see a consistent store; afterwards the store
// must match its directory.
func TestStoreConcurrent(t *testing.T) {
	dir := t.TempDir()
	s := NewStore(dir)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				list := s.List()
				if !slices.IsSortedFunc(list, func(a, b *Entry) int { return strings.Compare(a.Name, b.Name) }) {
					t.Error("List is not sorted")
					return
				}
				if _, ok := s.Get("default"); !ok {
					t.Error("no default policy")
					return
				}
				for _, e := range list {
					if e.Name != e.Policy.Metadata.Name {
						t.Errorf("entry %s holds policy %s", e.Name, e.Policy.Metadata.Name)
						return
					}
				}
			}
		})
	}
	var writers sync.WaitGroup
	for w := range 3 {
		writers.Go(func() {
			for i := range 40 {
				name := fmt.Sprintf("p%d", (w+i)%5)
				switch i % 4 {
				case 0, 1:
					if _, err := s.Apply("x.yaml", []byte(policyFile(name, fmt.Sprintf("%dMi", 64+i)))); err != nil {
						t.Error(err)
					}
				case 2:
					if err := s.Delete(name); err != nil && !errors.Is(err, ErrNotFound) {
						t.Error(err)
					}
				case 3:
					if rep := s.Load(); len(rep.Rejected) != 0 {
						t.Errorf("Load rejected %v", rep.Rejected)
					}
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	rep := s.Load()
	if len(rep.Loaded)+len(rep.Removed)+len(rep.Rejected) != 0 {
		t.Errorf("the store did not match its directory: %+v", rep)
	}
	for _, e := range s.List() {
		checkEntry(t, e)
	}
}

// TestEntryPolicyCopy: the copy equals the policy and shares nothing with it.
func TestEntryPolicyCopy(t *testing.T) {
	for _, file := range []string{"testdata/good/full.yaml", "testdata/good/ipc.yaml"} {
		t.Run(file, func(t *testing.T) {
			p, err := LoadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			c := (&Entry{Policy: p}).PolicyCopy()
			if !reflect.DeepEqual(c, p) {
				t.Fatalf("the copy differs:\n%+v\n%+v", c, p)
			}
			changed := scribble(reflect.ValueOf(c).Elem())
			if changed < 50 {
				t.Fatalf("changed only %d values of the copy: the test policy is too small", changed)
			}
			fresh, err := LoadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, fresh) {
				t.Errorf("changing the copy changed the entry's policy")
			}
		})
	}
}

// scribble changes every scalar reachable from v and returns how many.
func scribble(v reflect.Value) int {
	n := 0
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			n += scribble(v.Elem())
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			n += scribble(v.Index(i))
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			val := reflect.New(v.Type().Elem()).Elem()
			val.Set(it.Value())
			n += scribble(val)
			v.SetMapIndex(it.Key(), val)
			n++
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				n += scribble(v.Field(i))
			}
		}
	case reflect.String:
		v.SetString(v.String() + "!")
		n++
	case reflect.Bool:
		v.SetBool(!v.Bool())
		n++
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
		n++
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
		n++
	case reflect.Float32, reflect.Float64:
		v.SetFloat(v.Float() + 1)
		n++
	}
	return n
}
