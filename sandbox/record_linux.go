package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/syscalls"
)

// record is the on-disk state of one app: enough for a later pinfold to find
// and release everything if this supervisor dies. The supervisor holds an
// exclusive flock on the record for the app's lifetime; a record that can be
// locked belongs to a dead supervisor.
type record struct {
	Version         int           `json:"version"`
	ID              string        `json:"id"`
	Name            string        `json:"name,omitempty"`
	SupervisorPID   int           `json:"supervisorPid"`
	SupervisorStart uint64        `json:"supervisorStart"`
	Created         time.Time     `json:"created"`
	Cgroup          *cgroup.Paths `json:"cgroup,omitempty"`
}

const recordVersion = 1

// appendJSON encodes the record as JSON by hand: encoding/json spends
// ~0.2 ms building its reflection caches on first use, and every pinfold run
// is a first use. Recovery decodes records with encoding/json;
// TestRecordJSON checks that the two agree.
func (r *record) appendJSON(b []byte) []byte {
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, int64(r.Version), 10)
	b = append(b, `,"id":`...)
	b = appendJSONString(b, r.ID)
	if r.Name != "" {
		b = append(b, `,"name":`...)
		b = appendJSONString(b, r.Name)
	}
	b = append(b, `,"supervisorPid":`...)
	b = strconv.AppendInt(b, int64(r.SupervisorPID), 10)
	b = append(b, `,"supervisorStart":`...)
	b = strconv.AppendUint(b, r.SupervisorStart, 10)
	b = append(b, `,"created":`...)
	b = appendJSONString(b, r.Created.Format(time.RFC3339Nano))
	if p := r.Cgroup; p != nil {
		b = append(b, `,"cgroup":{"mode":`...)
		b = appendJSONString(b, string(p.Mode))
		if len(p.V1) > 0 {
			b = append(b, `,"v1":{`...)
			keys := make([]string, 0, len(p.V1))
			for k := range p.V1 {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for i, k := range keys {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendJSONString(b, k)
				b = append(b, ':')
				b = appendJSONString(b, p.V1[k])
			}
			b = append(b, '}')
		}
		if p.Unified != "" {
			b = append(b, `,"unified":`...)
			b = appendJSONString(b, p.Unified)
		}
		b = append(b, `,"depth":`...)
		b = strconv.AppendInt(b, int64(p.Depth), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', byte(c))
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = utf8.AppendRune(b, c)
		}
	}
	return append(b, '"')
}

// recordFile is a state record on disk with its lock held.
type recordFile struct {
	path string
	f    *os.File // holds the flock
}

// writeRecord atomically (re)writes r at path: it writes a locked temporary
// file and renames it over the record, so the visible record is always
// complete and always locked by its live owner. The previous version's lock
// is released after the rename.
func writeRecord(path string, r *record, prev *recordFile) (*recordFile, error) {
	data := r.appendJSON(make([]byte, 0, 1024))
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("writing state record: %w", err)
	}
	if err := syscalls.Flock(int(f.Fd()), true, false); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("locking state record: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("writing state record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("writing state record: %w", err)
	}
	if prev != nil {
		prev.f.Close()
	}
	return &recordFile{path: path, f: f}, nil
}

// remove deletes the record, then drops the lock.
func (rf *recordFile) remove() error {
	err := os.Remove(rf.path)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if cerr := rf.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Leftover is one app of a dead supervisor found and released by Recover.
type Leftover struct {
	ID     string `json:"id"`
	Name   string `json:"name,omitempty"`
	Report Report `json:"report"`
}

// recoverDir releases every app in dir whose supervisor is gone.
func recoverDir(dir string) ([]Leftover, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading state dir: %w", err)
	}
	var out []Leftover
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, ".json.tmp") {
			continue
		}
		lo, ok, err := recoverOne(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			out = append(out, lo)
		}
	}
	return out, errors.Join(errs...)
}

func recoverOne(path string) (Leftover, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return Leftover{}, false, nil // its owner just finished
	}
	if err != nil {
		return Leftover{}, false, fmt.Errorf("opening state record: %w", err)
	}
	defer f.Close()
	if err := syscalls.Flock(int(f.Fd()), true, true); err != nil {
		// Locked: its supervisor is alive.
		return Leftover{}, false, nil
	}
	// We hold the lock, so the owner is dead. The file may have been
	// renamed over meanwhile (the owner finished a write just before
	// dying): if so, the path names another inode; handle it next time.
	if st, err := os.Stat(path); err != nil || !sameFile(st, f) {
		return Leftover{}, false, nil
	}
	var cs cleanupStack
	var r record
	data, err := os.ReadFile(path)
	lo := Leftover{ID: strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "."), ".json.tmp")}
	lo.ID = strings.TrimSuffix(lo.ID, ".json")
	cs.add(ResStateRecord, path, func() error {
		err := os.Remove(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	})
	if err == nil && json.Unmarshal(data, &r) == nil {
		lo.Name = r.Name
		if r.Cgroup != nil {
			paths := *r.Cgroup
			cs.add(ResCgroup, r.ID, func() error {
				cg, err := cgroup.Load(paths)
				if err != nil {
					return err
				}
				defer cg.Close()
				kerr := cg.Kill(context.Background())
				return errors.Join(kerr, cg.Delete())
			})
		}
	}
	lo.Report = cs.run()
	return lo, true, lo.Report.Err()
}

func sameFile(st fs.FileInfo, f *os.File) bool {
	fst, err := f.Stat()
	return err == nil && os.SameFile(st, fst)
}
