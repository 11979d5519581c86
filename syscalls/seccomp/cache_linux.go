package seccomp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Cache holds compiled programs so that starting a sandbox does not pay for
// libseccomp again (about 10 ms for Docker's profile): first in memory, then
// in a directory shared by every pinfold process on the host, keyed by the
// SHA-256 of the profile and of everything else that decides the program
// (see profileKey). It is safe for concurrent use by goroutines, and by
// processes sharing the directory: files are written to a temporary name and
// renamed into place, so a reader sees a whole file or none.
//
// A cache file carries its key and a checksum. A file that is truncated,
// corrupt, written for another key, not owned by this user or readable by
// others is never used: the program is compiled again and the file replaced.
type Cache struct {
	dir string

	mu    sync.Mutex
	mem   map[[sha256.Size]byte]*cacheEntry
	dirOK bool // dir exists and is safe
	stats CacheStats
}

type cacheEntry struct {
	done chan struct{} // closed when prog or err is set
	prog *Program
	err  error
}

// CacheStats counts what a Cache did since it was made.
type CacheStats struct {
	Entries        int    // programs held in memory
	MemoryHits     uint64 // served from memory
	DiskHits       uint64 // read from the directory
	Compiles       uint64 // compiled with libseccomp
	Corrupt        uint64 // files found unusable and replaced
	WriteErrors    uint64 // programs that could not be stored (still returned)
	LastWriteError error  // the most recent of those errors
}

// NewCache returns a cache storing programs in dir, which is created (mode
// 0700) on first use. An empty dir keeps programs in memory only.
func NewCache(dir string) *Cache {
	return &Cache{dir: dir, mem: make(map[[sha256.Size]byte]*cacheEntry)}
}

// Dir returns the cache directory ("" for a memory-only cache).
func (c *Cache) Dir() string { return c.dir }

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = len(c.mem)
	return s
}

// Program returns the compiled program for p: from memory, else from the
// directory, else compiled (see Compile) and stored. Each call returns its
// own copy. Concurrent calls for one profile compile it once. An invalid
// profile is an error, as from Compile, and is not remembered.
func (c *Cache) Program(p *specs.LinuxSeccomp) (*Program, error) {
	if p == nil {
		return nil, Validate(p)
	}
	env, err := environment()
	if err != nil {
		return nil, err
	}
	key := profileKey(p, env)

	c.mu.Lock()
	if e, ok := c.mem[key]; ok {
		c.mu.Unlock()
		<-e.done
		if e.err != nil {
			return nil, e.err
		}
		c.mu.Lock()
		c.stats.MemoryHits++
		c.mu.Unlock()
		return e.prog.clone(), nil
	}
	e := &cacheEntry{done: make(chan struct{})}
	c.mem[key] = e
	c.mu.Unlock()

	e.prog, e.err = c.load(p, env, key)
	if e.err != nil {
		c.mu.Lock()
		delete(c.mem, key)
		c.mu.Unlock()
	}
	close(e.done)
	if e.err != nil {
		return nil, e.err
	}
	return e.prog.clone(), nil
}

// load reads the program from disk or compiles and stores it.
func (c *Cache) load(p *specs.LinuxSeccomp, env libEnv, key [sha256.Size]byte) (*Program, error) {
	if c.dir != "" {
		if err := c.checkDir(); err != nil {
			return nil, err
		}
		prog, err := readProgram(c.path(key), key)
		if err == nil {
			c.count(func(s *CacheStats) { s.DiskHits++ })
			return prog, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			c.count(func(s *CacheStats) { s.Corrupt++ })
		}
	}
	if err := Validate(p); err != nil {
		return nil, err
	}
	prog, err := compile(p, env)
	if err != nil {
		return nil, err
	}
	prog.Hash = hex.EncodeToString(key[:])
	c.count(func(s *CacheStats) { s.Compiles++ })
	if c.dir != "" {
		if err := writeProgram(c.dir, c.path(key), key, prog); err != nil {
			c.count(func(s *CacheStats) { s.WriteErrors++; s.LastWriteError = err })
		}
	}
	return prog, nil
}

func (c *Cache) count(f func(*CacheStats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}

func (c *Cache) path(key [sha256.Size]byte) string {
	return filepath.Join(c.dir, hex.EncodeToString(key[:])+cacheExt)
}

// checkDir creates the directory and refuses one that others could write
// to: whoever can write there decides every sandbox's filter.
func (c *Cache) checkDir() error {
	c.mu.Lock()
	ok := c.dirOK
	c.mu.Unlock()
	if ok {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("creating seccomp cache directory: %w", err)
	}
	fi, err := os.Stat(c.dir)
	if err != nil {
		return fmt.Errorf("seccomp cache directory: %w", err)
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("seccomp cache directory %s: not a directory: %w", c.dir, ErrUnsafeCacheDir)
	case st == nil || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("seccomp cache directory %s is not owned by uid %d (chown it, or remove it and let pinfold create it): %w", c.dir, os.Geteuid(), ErrUnsafeCacheDir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("seccomp cache directory %s has mode %#o: others can write to it (chmod 700 it): %w", c.dir, fi.Mode().Perm(), ErrUnsafeCacheDir)
	}
	c.mu.Lock()
	c.dirOK = true
	c.mu.Unlock()
	return nil
}

// Entries returns the hashes of the programs stored in the directory.
func (c *Cache) Entries() ([]string, error) {
	if c.dir == "" {
		return nil, nil
	}
	des, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing seccomp cache: %w", err)
	}
	var hashes []string
	for _, de := range des {
		if h, ok := entryHash(de.Name()); ok {
			hashes = append(hashes, h)
		}
	}
	return hashes, nil
}

// Prune removes, from memory and from the directory, every program whose
// hash keep rejects, and temporary files left by writers that died more
// than staleTemp ago. It returns how many files it removed.
func (c *Cache) Prune(keep func(hash string) bool) (int, error) {
	c.mu.Lock()
	for k, e := range c.mem {
		select {
		case <-e.done:
			if !keep(hex.EncodeToString(k[:])) {
				delete(c.mem, k)
			}
		default: // being loaded: leave it
		}
	}
	c.mu.Unlock()
	if c.dir == "" {
		return 0, nil
	}
	des, err := os.ReadDir(c.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("listing seccomp cache: %w", err)
	}
	removed := 0
	var errs []error
	for _, de := range des {
		name := de.Name()
		if h, ok := entryHash(name); ok {
			if keep(h) {
				continue
			}
		} else if strings.HasPrefix(name, cacheTempPrefix) {
			fi, err := de.Info()
			if err != nil || time.Since(fi.ModTime()) < staleTemp {
				continue
			}
		} else {
			continue
		}
		if err := os.Remove(filepath.Join(c.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("pruning seccomp cache: %w", err)
	}
	return removed, nil
}

const (
	cacheExt        = ".bpf"
	cacheTempPrefix = ".tmp-"
	staleTemp       = 10 * time.Minute
)

func entryHash(name string) (string, bool) {
	h, ok := strings.CutSuffix(name, cacheExt)
	if !ok || len(h) != 2*sha256.Size {
		return "", false
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", false
	}
	return h, true
}

// Cache file layout (integers little-endian):
//
//	+----------+---------+-------+-----+---------+------------+-------+---------+--------+
//	| magic 8  | version | flags | key | insnLen | skippedLen | insns | skipped | sha256 |
//	|          | u32     | u32   | 32  | u32     | u32        |       |         | 32     |
//	+----------+---------+-------+-----+---------+------------+-------+---------+--------+
//
// skipped holds the names of Program.Skipped separated by NUL bytes; the
// trailing SHA-256 covers everything before it.
const (
	cacheMagic     = "pinfbpf\x00"
	cacheVersion   = 1
	cacheHeaderLen = 8 + 4 + 4 + sha256.Size + 4 + 4
	maxSkippedLen  = 1 << 16
	maxCacheFile   = cacheHeaderLen + bpfMaxInsns*bpfInsnSize + maxSkippedLen + sha256.Size
)

func encodeProgram(key [sha256.Size]byte, prog *Program) []byte {
	skipped := strings.Join(prog.Skipped, "\x00")
	b := make([]byte, 0, cacheHeaderLen+len(prog.Insns)+len(skipped)+sha256.Size)
	b = append(b, cacheMagic...)
	b = binary.LittleEndian.AppendUint32(b, cacheVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(prog.Flags))
	b = append(b, key[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(prog.Insns)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(skipped)))
	b = append(b, prog.Insns...)
	b = append(b, skipped...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// decodeProgram checks a cache file against the key it was looked up by; any
// mismatch is errCorrupt.
func decodeProgram(b []byte, key [sha256.Size]byte) (*Program, error) {
	bad := func(why string) error { return fmt.Errorf("%w: %s", errCorrupt, why) }
	if len(b) < cacheHeaderLen+sha256.Size {
		return nil, bad("too short")
	}
	if string(b[:8]) != cacheMagic {
		return nil, bad("bad magic")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != cacheVersion {
		return nil, bad(fmt.Sprintf("format version %d", v))
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return nil, bad("checksum mismatch")
	}
	flags := binary.LittleEndian.Uint32(b[12:])
	if !bytes.Equal(b[16:16+sha256.Size], key[:]) {
		return nil, bad("written for another profile")
	}
	off := 16 + sha256.Size
	insnLen := int(binary.LittleEndian.Uint32(b[off:]))
	skippedLen := int(binary.LittleEndian.Uint32(b[off+4:]))
	if insnLen > bpfMaxInsns*bpfInsnSize || skippedLen > maxSkippedLen || cacheHeaderLen+insnLen+skippedLen != len(body) {
		return nil, bad("lengths do not match the file")
	}
	insns := slices.Clone(body[cacheHeaderLen : cacheHeaderLen+insnLen])
	if err := checkBPF(insns); err != nil {
		return nil, bad(err.Error())
	}
	prog := &Program{Insns: insns, Flags: uint(flags), Hash: hex.EncodeToString(key[:])}
	if skippedLen > 0 {
		prog.Skipped = strings.Split(string(body[cacheHeaderLen+insnLen:]), "\x00")
	}
	return prog, nil
}

// readProgram reads a cache file. It refuses symlinks and files that are not
// regular, not owned by this user or accessible to others.
func readProgram(path string, key [sha256.Size]byte) (*Program, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%w: not a regular file", errCorrupt)
	case st == nil || int(st.Uid) != os.Geteuid() || fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("%w: wrong owner or mode", errCorrupt)
	case fi.Size() > maxCacheFile:
		return nil, fmt.Errorf("%w: too large", errCorrupt)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCacheFile+1))
	if err != nil {
		return nil, err
	}
	return decodeProgram(b, key)
}

// writeProgram stores a program under path, atomically: a temporary file in
// the same directory, renamed into place. It is not fsynced: after a crash a
// torn file fails its checksum and is recompiled.
func writeProgram(dir, path string, key [sha256.Size]byte, prog *Program) error {
	tmp, err := os.CreateTemp(dir, cacheTempPrefix+"*") // mode 0600
	if err != nil {
		return fmt.Errorf("storing seccomp program: %w", err)
	}
	_, werr := tmp.Write(encodeProgram(key, prog))
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("storing seccomp program: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("storing seccomp program: %w", err)
	}
	return nil
}
