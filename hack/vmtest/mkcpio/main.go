// Command mkcpio writes an uncompressed initramfs (cpio "newc" format, the
// one the Linux kernel unpacks) from a spec, so hack/vmtest.sh needs neither
// cpio nor the kernel's gen_init_cpio.
//
//	mkcpio -o initramfs.cpio < spec
//
// The spec has one entry per line, fields separated by tabs; modes are octal:
//
//	dir	<guest path>	<mode>
//	file	<guest path>	<host path>	[<mode>]	(default: the host file's permissions)
//	nod	<guest path>	<mode>	c|b	<major>	<minor>
//	slink	<guest path>	<target>
//	tree	<guest path>	<host dir>	(recursively: dirs, files, symlinks)
//
// Missing parent directories are added (0755), a path given twice keeps its
// first entry, and every timestamp and owner is zero, so equal inputs give
// equal archives. Empty lines and lines starting with # are ignored.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	sIFCHR = 0o020000
	sIFBLK = 0o060000
)

func main() {
	out := flag.String("o", "", "write the archive to `file` (required)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkcpio -o FILE < SPEC\n\nWrites a newc cpio archive described by SPEC (see the package comment).\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*out, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, "mkcpio:", err)
		os.Exit(1)
	}
}

func run(out string, spec io.Reader) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	w := &writer{w: bufio.NewWriterSize(f, 1<<20), seen: map[string]bool{".": true}, ino: 721}
	err = w.spec(spec)
	if err == nil {
		err = w.trailer()
	}
	if err == nil {
		err = w.w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out)
	}
	return err
}

type writer struct {
	w    *bufio.Writer
	seen map[string]bool
	ino  uint32
}

func (w *writer) spec(r io.Reader) error {
	s := bufio.NewScanner(r)
	for n := 1; s.Scan(); n++ {
		line := s.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := w.entry(strings.Split(line, "\t")); err != nil {
			return fmt.Errorf("spec line %d %q: %w", n, line, err)
		}
	}
	return s.Err()
}

func (w *writer) entry(f []string) error {
	need := func(n int) error {
		if len(f) < n {
			return fmt.Errorf("%s needs %d fields", f[0], n-1)
		}
		return nil
	}
	mode := func(s string) (uint32, error) {
		v, err := strconv.ParseUint(s, 8, 32)
		if err != nil || v > 0o7777 {
			return 0, fmt.Errorf("bad mode %q", s)
		}
		return uint32(v), nil
	}
	switch f[0] {
	case "dir":
		if err := need(3); err != nil {
			return err
		}
		m, err := mode(f[2])
		if err != nil {
			return err
		}
		return w.dir(f[1], m)
	case "file":
		if err := need(3); err != nil {
			return err
		}
		m := uint32(0)
		if len(f) > 3 {
			var err error
			if m, err = mode(f[3]); err != nil {
				return err
			}
		}
		return w.file(f[1], f[2], m)
	case "nod":
		if err := need(6); err != nil {
			return err
		}
		m, err := mode(f[2])
		if err != nil {
			return err
		}
		kind := uint32(sIFCHR)
		switch f[3] {
		case "c":
		case "b":
			kind = sIFBLK
		default:
			return fmt.Errorf("device type %q is not c or b", f[3])
		}
		major, err1 := strconv.ParseUint(f[4], 10, 32)
		minor, err2 := strconv.ParseUint(f[5], 10, 32)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		return w.header(f[1], kind|m, 1, 0, uint32(major), uint32(minor), nil)
	case "slink":
		if err := need(3); err != nil {
			return err
		}
		return w.header(f[1], sIFLNK|0o777, 1, uint32(len(f[2])), 0, 0, strings.NewReader(f[2]))
	case "tree":
		if err := need(3); err != nil {
			return err
		}
		return w.tree(f[1], f[2])
	}
	return fmt.Errorf("unknown entry type %q", f[0])
}

func (w *writer) dir(name string, m uint32) error {
	return w.header(name, sIFDIR|m, 2, 0, 0, 0, nil)
}

func (w *writer) file(name, host string, m uint32) error {
	src, err := os.Open(host)
	if err != nil {
		return err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", host)
	}
	if st.Size() > 1<<32-1 {
		return fmt.Errorf("%s is larger than newc's 4 GiB limit", host)
	}
	if m == 0 {
		m = uint32(st.Mode().Perm())
	}
	return w.header(name, sIFREG|m, 1, uint32(st.Size()), 0, 0, src)
}

func (w *writer) tree(name, host string) error {
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(host, p)
		if err != nil {
			return err
		}
		guest := path.Join(name, filepath.ToSlash(rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return w.dir(guest, uint32(info.Mode().Perm()))
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return w.entry([]string{"slink", guest, target})
		case info.Mode().IsRegular():
			return w.file(guest, p, uint32(info.Mode().Perm()))
		}
		return nil // sockets, fifos, devices: not shipped
	})
}

// header writes one entry, after any missing parent directories. data is
// size bytes of content (nil for none).
func (w *writer) header(name string, mode, nlink, size, rmajor, rminor uint32, data io.Reader) error {
	name = strings.TrimPrefix(path.Clean("/"+name), "/")
	if name == "" || w.seen[name] {
		return nil
	}
	if parent := path.Dir(name); !w.seen[parent] {
		if err := w.dir(parent, 0o755); err != nil {
			return err
		}
	}
	w.seen[name] = true
	w.ino++
	if err := w.raw(name, w.ino, mode, nlink, size, rmajor, rminor); err != nil {
		return err
	}
	if data != nil {
		n, err := io.Copy(w.w, data)
		if err != nil {
			return err
		}
		if n != int64(size) {
			return fmt.Errorf("%s changed size while being copied", name)
		}
	}
	return w.pad(int64(size))
}

// raw writes a newc header and name: "070701", thirteen 8-digit hex fields,
// the NUL-terminated name, then padding to a multiple of 4.
func (w *writer) raw(name string, ino, mode, nlink, size, rmajor, rminor uint32) error {
	fields := []uint32{ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, uint32(len(name) + 1), 0}
	if _, err := io.WriteString(w.w, "070701"); err != nil {
		return err
	}
	for _, v := range fields {
		if _, err := fmt.Fprintf(w.w, "%08x", v); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(w.w, name+"\x00"); err != nil {
		return err
	}
	return w.pad(110 + int64(len(name)) + 1)
}

func (w *writer) pad(n int64) error {
	_, err := w.w.Write(make([]byte, (4-n%4)%4))
	return err
}

func (w *writer) trailer() error {
	return w.raw("TRAILER!!!", 0, 0, 1, 0, 0, 0)
}
