package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

type entry struct {
	mode, rmajor, rminor uint32
	data                 string
}

// readNewc parses a newc archive, checking magic, alignment and the trailer.
func readNewc(t *testing.T, b []byte) (map[string]entry, []string) {
	t.Helper()
	out := map[string]entry{}
	var order []string
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("header at %d is not 4-byte aligned", off)
		}
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return uint32(v)
		}
		mode, size, rmajor, rminor, namesize := field(1), field(6), field(9), field(10), field(11)
		name := string(b[off+110 : off+110+int(namesize)-1])
		if b[off+110+int(namesize)-1] != 0 {
			t.Fatalf("name %q is not NUL-terminated", name)
		}
		off += 110 + int(namesize)
		off += (4 - off%4) % 4
		data := string(b[off : off+int(size)])
		off += int(size)
		off += (4 - off%4) % 4
		if name == "TRAILER!!!" {
			if off != len(b) {
				t.Fatalf("%d bytes after the trailer", len(b)-off)
			}
			return out, order
		}
		if _, dup := out[name]; dup {
			t.Fatalf("%q twice", name)
		}
		out[name] = entry{mode, rmajor, rminor, data}
		order = append(order, name)
	}
}

func TestArchive(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bin := write("bin", "#!ELF...", 0o755)
	write("work/testdata/a.txt", "hello", 0o644)
	if err := os.Symlink("a.txt", filepath.Join(dir, "work/testdata/link")); err != nil {
		t.Fatal(err)
	}
	spec := strings.Join([]string{
		"# comment",
		"file\t/init\t" + bin + "\t0755",
		"nod\t/dev/console\t0600\tc\t5\t1",
		"dir\t/tmp\t1777",
		"file\t/vmtest/bin/test\t" + bin,
		"file\t/vmtest/bin/test\t" + write("other", "ignored", 0o600), // first wins
		"slink\t/lib64\tusr/lib64",
		"tree\t/vmtest/work\t" + filepath.Join(dir, "work"),
		"",
	}, "\n")
	out := filepath.Join(dir, "out.cpio")
	if err := run(out, strings.NewReader(spec)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, order := readNewc(t, b)
	want := map[string]entry{
		"init":                       {sIFREG | 0o755, 0, 0, "#!ELF..."},
		"dev":                        {sIFDIR | 0o755, 0, 0, ""},
		"dev/console":                {sIFCHR | 0o600, 5, 1, ""},
		"tmp":                        {sIFDIR | 0o1777, 0, 0, ""},
		"vmtest":                     {sIFDIR | 0o755, 0, 0, ""},
		"vmtest/bin":                 {sIFDIR | 0o755, 0, 0, ""},
		"vmtest/bin/test":            {sIFREG | 0o755, 0, 0, "#!ELF..."},
		"lib64":                      {sIFLNK | 0o777, 0, 0, "usr/lib64"},
		"vmtest/work":                {sIFDIR | 0o755, 0, 0, ""},
		"vmtest/work/testdata":       {sIFDIR | 0o755, 0, 0, ""},
		"vmtest/work/testdata/a.txt": {sIFREG | 0o644, 0, 0, "hello"},
		"vmtest/work/testdata/link":  {sIFLNK | 0o777, 0, 0, "a.txt"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("archive:\n got %v\nwant %v", got, want)
	}
	// Parents come before their children.
	pos := map[string]int{}
	for i, n := range order {
		pos[n] = i
	}
	for n := range got {
		if p := filepath.Dir(n); p != "." && pos[p] > pos[n] {
			t.Errorf("%s comes before its parent %s", n, p)
		}
	}
	// Equal inputs, equal archives.
	if err := run(out+"2", strings.NewReader(spec)); err != nil {
		t.Fatal(err)
	}
	if b2, _ := os.ReadFile(out + "2"); !bytes.Equal(b, b2) {
		t.Error("two runs gave different archives")
	}
}

func TestBadSpec(t *testing.T) {
	for _, spec := range []string{
		"bogus\t/x",
		"dir\t/x",
		"dir\t/x\t999",
		"nod\t/x\t0600\tp\t1\t1",
		"file\t/x\t/nonexistent/file",
		"file\t/x\t/",
	} {
		out := filepath.Join(t.TempDir(), "out")
		if err := run(out, strings.NewReader(spec)); err == nil {
			t.Errorf("spec %q: no error", spec)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("spec %q: a partial archive was left", spec)
		}
	}
}
