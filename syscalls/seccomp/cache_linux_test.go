package seccomp

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func dockerTB(tb testing.TB) *specs.LinuxSeccomp {
	tb.Helper()
	p, err := LoadFile(dockerProfile)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func samePrograms(t *testing.T, got, want *Program) {
	t.Helper()
	if got.Hash != want.Hash || got.Flags != want.Flags || !slices.Equal(got.Insns, want.Insns) || !slices.Equal(got.Skipped, want.Skipped) {
		t.Fatalf("program differs: hash %s flags %#x %d insns skipped %q; want hash %s flags %#x %d insns skipped %q",
			got.Hash, got.Flags, got.Len(), got.Skipped, want.Hash, want.Flags, want.Len(), want.Skipped)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(des)
}

func checkNoFDLeak(t *testing.T) {
	// The runtime's network poller (an epoll and an eventfd) is set up on
	// first use of a pollable file; start it now so it is not counted.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	w.Close()
	before := openFDs(t)
	t.Cleanup(func() {
		if after := openFDs(t); after > before {
			t.Errorf("file descriptors leaked: %d open before, %d after", before, after)
		}
	})
}

func TestCacheHit(t *testing.T) {
	checkNoFDLeak(t)
	dir := filepath.Join(t.TempDir(), "seccomp")
	want := mustCompile(t, dockerTB(t))

	c := NewCache(dir)
	if c.Dir() != dir {
		t.Fatalf("Dir() = %q", c.Dir())
	}
	first, err := c.Program(dockerTB(t))
	if err != nil {
		t.Fatal(err)
	}
	samePrograms(t, first, want)
	first.Insns[0] ^= 0xff // callers get copies
	second, err := c.Program(dockerTB(t))
	if err != nil {
		t.Fatal(err)
	}
	samePrograms(t, second, want)
	if s := c.Stats(); s.Compiles != 1 || s.MemoryHits != 1 || s.DiskHits != 0 || s.Entries != 1 {
		t.Fatalf("stats after a compile and a memory hit: %+v", s)
	}

	// Another process (another Cache) reads the file.
	c2 := NewCache(dir)
	third, err := c2.Program(dockerTB(t))
	if err != nil {
		t.Fatal(err)
	}
	samePrograms(t, third, want)
	if s := c2.Stats(); s.Compiles != 0 || s.DiskHits != 1 {
		t.Fatalf("stats of a second cache on the same directory: %+v", s)
	}

	fi, err := os.Stat(filepath.Join(dir, want.Hash+cacheExt))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %#o, want 0600", fi.Mode().Perm())
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("cache directory: %v, mode %#o, want 0700", err, di.Mode().Perm())
	}
	entries, err := c.Entries()
	if err != nil || !slices.Equal(entries, []string{want.Hash}) {
		t.Fatalf("Entries() = %q, %v", entries, err)
	}
}

func TestCacheMemoryOnly(t *testing.T) {
	c := NewCache("")
	a, err := c.Program(Default())
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Program(Default())
	if err != nil {
		t.Fatal(err)
	}
	samePrograms(t, b, a)
	if s := c.Stats(); s.Compiles != 1 || s.MemoryHits != 1 {
		t.Fatalf("stats: %+v", s)
	}
	if e, err := c.Entries(); err != nil || len(e) != 0 {
		t.Fatalf("Entries() of a memory-only cache = %q, %v", e, err)
	}
}

// TestCacheCorrupt damages the stored file in every way that matters and
// checks that the program is compiled again, never loaded, and the file
// repaired.
func TestCacheCorrupt(t *testing.T) {
	checkNoFDLeak(t)
	want := mustCompile(t, Default())
	other := mustCompile(t, dockerTB(t))
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, good []byte)
	}{
		{"truncated", func(t *testing.T, path string, good []byte) { write(t, path, good[:len(good)/2]) }},
		{"truncated to the header", func(t *testing.T, path string, good []byte) { write(t, path, good[:cacheHeaderLen]) }},
		{"empty", func(t *testing.T, path string, good []byte) { write(t, path, nil) }},
		{"flipped instruction byte", func(t *testing.T, path string, good []byte) {
			b := slices.Clone(good)
			b[cacheHeaderLen+100] ^= 0x01
			write(t, path, b)
		}},
		{"flipped checksum byte", func(t *testing.T, path string, good []byte) {
			b := slices.Clone(good)
			b[len(b)-1] ^= 0x80
			write(t, path, b)
		}},
		{"bad magic", func(t *testing.T, path string, good []byte) {
			b := slices.Clone(good)
			copy(b, "notbpf!!")
			write(t, path, b)
		}},
		{"another profile's program, consistent checksum", func(t *testing.T, path string, good []byte) {
			var k [sha256.Size]byte
			hex.Decode(k[:], []byte(other.Hash))
			write(t, path, encodeProgram(k, other))
		}},
		{"readable by others", func(t *testing.T, path string, good []byte) {
			if err := os.Chmod(path, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"symlink", func(t *testing.T, path string, good []byte) {
			target := path + ".target"
			write(t, target, good)
			os.Remove(path)
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}},
		{"directory", func(t *testing.T, path string, good []byte) {
			os.Remove(path)
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := NewCache(dir).Program(Default()); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, want.Hash+cacheExt)
			good, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, path, good)

			c := NewCache(dir)
			got, err := c.Program(Default())
			if tt.name == "directory" {
				// A directory in the way cannot be replaced by rename; the
				// program is compiled and returned, and the failure counted.
				if err != nil {
					t.Fatal(err)
				}
				samePrograms(t, got, want)
				if s := c.Stats(); s.Corrupt != 1 || s.WriteErrors != 1 || s.LastWriteError == nil {
					t.Fatalf("stats: %+v", s)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			samePrograms(t, got, want)
			if s := c.Stats(); s.Corrupt != 1 || s.Compiles != 1 || s.DiskHits != 0 {
				t.Fatalf("stats: %+v", s)
			}
			// The file was replaced by a good one.
			repaired, err := os.ReadFile(path)
			if err != nil || !slices.Equal(repaired, good) {
				t.Fatalf("cache file not repaired: %v", err)
			}
			if fi, _ := os.Lstat(path); !fi.Mode().IsRegular() {
				t.Fatalf("cache file is %v after repair", fi.Mode())
			}
		})
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCacheUnsafeDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "seccomp")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := NewCache(dir).Program(Default())
	if !errors.Is(err, ErrUnsafeCacheDir) {
		t.Fatalf("world-writable directory: %v, want ErrUnsafeCacheDir", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err := NewCache(dir).Program(Default())
		if !errors.Is(err, ErrUnsafeCacheDir) {
			t.Fatalf("directory owned by another user: %v, want ErrUnsafeCacheDir", err)
		}
	}
	t.Log(err)
}

func TestCacheInvalidProfile(t *testing.T) {
	dir := t.TempDir()
	c := NewCache(dir)
	bad := &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_WHATEVER"}
	for range 2 {
		if _, err := c.Program(bad); !errors.Is(err, ErrInvalidProfile) {
			t.Fatalf("Program(invalid): %v, want ErrInvalidProfile", err)
		}
	}
	if _, err := c.Program(nil); !errors.Is(err, ErrInvalidProfile) {
		t.Fatalf("Program(nil): %v", err)
	}
	if s := c.Stats(); s.Entries != 0 || s.Compiles != 0 {
		t.Fatalf("an invalid profile was remembered: %+v", s)
	}
	if e, _ := c.Entries(); len(e) != 0 {
		t.Fatalf("an invalid profile was stored: %q", e)
	}
}

// TestCacheKeys checks that profiles differing in any field the compiler
// reads get different keys, including differences that a naive
// concatenation would hide.
func TestCacheKeys(t *testing.T) {
	env, err := environment()
	if err != nil {
		t.Fatal(err)
	}
	base := func() *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write"}, Action: specs.ActAllow},
			{Names: []string{"kill"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 15, Op: specs.OpEqualTo}}},
		}}
	}
	mutations := map[string]func(p *specs.LinuxSeccomp){
		"unchanged":       func(p *specs.LinuxSeccomp) {},
		"default action":  func(p *specs.LinuxSeccomp) { p.DefaultAction = specs.ActKillProcess },
		"default errno":   func(p *specs.LinuxSeccomp) { p.DefaultErrnoRet = u(1) },
		"default errno 0": func(p *specs.LinuxSeccomp) { p.DefaultErrnoRet = u(0) },
		"architecture":    func(p *specs.LinuxSeccomp) { p.Architectures = []specs.Arch{specs.ArchX86} },
		"flag":            func(p *specs.LinuxSeccomp) { p.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog} },
		"names joined":    func(p *specs.LinuxSeccomp) { p.Syscalls[0].Names = []string{"readwrite"} },
		"names moved": func(p *specs.LinuxSeccomp) {
			p.Syscalls[0].Names = []string{"read"}
			p.Syscalls[1].Names = []string{"write", "kill"}
		},
		"rule errno":        func(p *specs.LinuxSeccomp) { p.Syscalls[1].Action = specs.ActErrno },
		"rule errnoRet":     func(p *specs.LinuxSeccomp) { p.Syscalls[1].Action = specs.ActErrno; p.Syscalls[1].ErrnoRet = u(1) },
		"arg index":         func(p *specs.LinuxSeccomp) { p.Syscalls[1].Args[0].Index = 0 },
		"arg value":         func(p *specs.LinuxSeccomp) { p.Syscalls[1].Args[0].Value = 9 },
		"arg valueTwo":      func(p *specs.LinuxSeccomp) { p.Syscalls[1].Args[0].ValueTwo = 1 },
		"arg op":            func(p *specs.LinuxSeccomp) { p.Syscalls[1].Args[0].Op = specs.OpNotEqual },
		"extra arg":         func(p *specs.LinuxSeccomp) { p.Syscalls[1].Args = append(p.Syscalls[1].Args, specs.LinuxSeccompArg{}) },
		"rules reordered":   func(p *specs.LinuxSeccomp) { p.Syscalls[0], p.Syscalls[1] = p.Syscalls[1], p.Syscalls[0] },
		"listener metadata": func(p *specs.LinuxSeccomp) { p.ListenerMetadata = "x" },
	}
	seen := map[[sha256.Size]byte]string{}
	for name, mutate := range mutations {
		p := base()
		mutate(p)
		k := profileKey(p, env)
		if prev, ok := seen[k]; ok {
			t.Errorf("%q and %q have the same key", name, prev)
		}
		seen[k] = name
	}
	// The environment is part of the key.
	other := env
	other.micro++
	if profileKey(base(), env) == profileKey(base(), other) {
		t.Error("the libseccomp version is not part of the key")
	}
	other = env
	other.arch = "aarch64"
	if profileKey(base(), env) == profileKey(base(), other) {
		t.Error("the architecture is not part of the key")
	}
}

// TestCacheConcurrent uses one cache from many goroutines and several caches
// (as separate processes would) on one directory at once.
func TestCacheConcurrent(t *testing.T) {
	checkNoFDLeak(t)
	dir := t.TempDir()
	profiles := []*specs.LinuxSeccomp{Default(), dockerTB(t), DefaultFor([]string{"CAP_SYS_PTRACE"})}
	want := make([]*Program, len(profiles))
	for i, p := range profiles {
		want[i] = mustCompile(t, p)
	}
	caches := []*Cache{NewCache(dir), NewCache(dir), NewCache(dir)}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := range 24 {
		wg.Go(func() {
			c := caches[g%len(caches)]
			for i := range 5 {
				k := (g + i) % len(profiles)
				got, err := c.Program(profiles[k])
				if err != nil {
					errs <- err
					return
				}
				if got.Hash != want[k].Hash || !slices.Equal(got.Insns, want[k].Insns) {
					errs <- fmt.Errorf("goroutine %d got the wrong program for profile %d", g, k)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, c := range caches {
		s := c.Stats()
		if s.Compiles+s.DiskHits != uint64(len(profiles)) || s.Corrupt != 0 || s.WriteErrors != 0 {
			t.Errorf("cache %d: each profile must be loaded once: %+v", i, s)
		}
	}
	if e, _ := caches[0].Entries(); len(e) != len(profiles) {
		t.Errorf("%d files stored, want %d", len(e), len(profiles))
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, cacheTempPrefix+"*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %q", leftovers)
	}
}

// TestCacheProcesses runs several processes that fill one cache directory at
// once; all must get the same program.
func TestCacheProcesses(t *testing.T) {
	dir := t.TempDir()
	want := mustCompile(t, dockerTB(t))
	const n = 4
	outs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envRole+"=cache", "PINFOLD_SECCOMP_TEST_CACHE="+dir)
			out, err := cmd.Output()
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("process %d: %v", i, errs[i])
		}
		if outs[i] != want.Hash+" "+fmt.Sprintf("%x", sha256.Sum256(want.Insns))+"\n" {
			t.Fatalf("process %d got %q, want hash %s", i, outs[i], want.Hash)
		}
	}
}

// childCache is the cache role: load Docker's profile through the cache
// directory and print the program's hash and a digest of its instructions.
func childCache() {
	c := NewCache(os.Getenv("PINFOLD_SECCOMP_TEST_CACHE"))
	p, err := LoadFile(dockerProfile)
	if err != nil {
		die("%v", err)
	}
	prog, err := c.Program(p)
	if err != nil {
		die("%v", err)
	}
	fmt.Printf("%s %x\n", prog.Hash, sha256.Sum256(prog.Insns))
}

func TestCachePrune(t *testing.T) {
	dir := t.TempDir()
	c := NewCache(dir)
	a, err := c.Program(Default())
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Program(dockerTB(t))
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, cacheTempPrefix+"123")
	write(t, stale, []byte("x"))
	past := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(stale, past, past); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, cacheTempPrefix+"456")
	write(t, fresh, []byte("x"))
	write(t, filepath.Join(dir, "unrelated"), []byte("x"))

	removed, err := c.Prune(func(h string) bool { return h == a.Hash })
	if err != nil {
		t.Fatal(err)
	}
	if removed != 2 { // b's file and the stale temporary file
		t.Fatalf("Prune removed %d files, want 2", removed)
	}
	entries, _ := c.Entries()
	if !slices.Equal(entries, []string{a.Hash}) {
		t.Fatalf("after Prune: %q", entries)
	}
	for _, p := range []string{fresh, filepath.Join(dir, "unrelated")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("Prune removed %s: %v", p, err)
		}
	}
	if s := c.Stats(); s.Entries != 1 {
		t.Fatalf("memory entries after Prune: %d", s.Entries)
	}
	// b is compiled again on the next request.
	if got, err := c.Program(dockerTB(t)); err != nil || got.Hash != b.Hash {
		t.Fatalf("after Prune: %v", err)
	}
	if s := c.Stats(); s.Compiles != 3 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestDecodeProgramRejectsBadBPF(t *testing.T) {
	var k [sha256.Size]byte
	good := mustCompile(t, Default())
	tests := map[string][]byte{
		"not whole instructions": good.Insns[:len(good.Insns)-3],
		"cut short":              good.Insns[:16], // a load and a jump past the end
		"no final return":        append(slices.Clone(good.Insns), good.Insns[:8]...),
		"empty":                  {},
	}
	for name, insns := range tests {
		b := encodeProgram(k, &Program{Insns: insns})
		if _, err := decodeProgram(b, k); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: %v, want errCorrupt", name, err)
		}
	}
	if _, err := decodeProgram(encodeProgram(k, good), k); err != nil {
		t.Fatalf("good program: %v", err)
	}
}

func BenchmarkCompileDefault(b *testing.B) {
	p := Default()
	for b.Loop() {
		if _, err := Compile(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompileDocker(b *testing.B) {
	p := dockerTB(b)
	for b.Loop() {
		if _, err := Compile(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCacheHitMemory is the cost of a start when the program is
// already in memory: the profile's key (a canonical encoding hashed with
// SHA-256) and a copy of the program.
func BenchmarkCacheHitMemory(b *testing.B) {
	p := dockerTB(b)
	c := NewCache(b.TempDir())
	if _, err := c.Program(p); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := c.Program(p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCacheHitDisk is the cost of the first start in a new process when
// the program is on disk: a new Cache (directory check), key, open, read,
// checksum and BPF check.
func BenchmarkCacheHitDisk(b *testing.B) {
	p := dockerTB(b)
	dir := b.TempDir()
	if _, err := NewCache(dir).Program(p); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		c := NewCache(dir)
		if _, err := c.Program(p); err != nil {
			b.Fatal(err)
		}
		if c.Stats().DiskHits != 1 {
			b.Fatal("not a disk hit")
		}
	}
}

func BenchmarkProfileKeyDocker(b *testing.B) {
	p := dockerTB(b)
	env, err := environment()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		profileKey(p, env)
	}
}
