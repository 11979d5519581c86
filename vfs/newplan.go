package vfs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// copyLimit is the largest host /etc file that is copied into the sandbox
// rather than bound. A copied file travels inside the Plan (about 9 µs of
// JSON decoding per KiB in the init stage) and costs a file creation (about
// 9 µs); a bound one costs a mountpoint file and a bind (about 9 + 13 µs),
// measured by BenchmarkApply. Break-even is near 1.4 KiB.
const copyLimit = 1024

// replicateEntries is the most entries a host /etc directory may have to be
// recreated (directory plus small files) instead of bound.
const replicateEntries = 2

// etcCarried are the host /etc entries apps read at run time, carried when
// present: the dynamic loader's cache, TLS trust stores (Debian's ssl,
// Fedora's pki and crypto-policies), time zone, alternatives (/usr/bin has
// links into it), MIME types, protocol and service names, resolver
// configuration, os-release, and python3* (Debian links sitecustomize.py
// there). Never shadow, gshadow, sudoers, ssh, machine-id or the host's
// hostname, hosts, passwd, group or nsswitch.conf (generated instead). Also
// left out: the inputs of tools that rewrite /etc and so cannot run in the
// read-only root (ld.so.conf and ld.so.conf.d for ldconfig; ca-certificates
// and ca-certificates.conf for update-ca-certificates).
var etcCarried = []string{
	"alternatives", "crypto-policies", "gai.conf", "host.conf", "ld.so.cache",
	"localtime", "mime.types", "os-release", "pki", "protocols", "services",
	"ssl", "timezone",
}

// mergedUsr are the top-level directories that merged-/usr hosts make
// symbolic links into /usr.
var mergedUsr = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// Masked and read-only paths of /proc and /sys (those of runc's default
// configuration). Paths this kernel lacks are skipped at Apply.
var (
	procMasked = []string{
		"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi",
		"/proc/timer_list", "/proc/timer_stats",
	}
	procReadOnly = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
	sysMasked    = []string{"/sys/devices/virtual/powercap", "/sys/firmware"}
)

// devices are the character devices of /dev, all mode 0666.
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"full", 1, 7}, {"null", 1, 3}, {"random", 1, 8}, {"tty", 5, 0}, {"urandom", 1, 9}, {"zero", 1, 5},
}

// devLinks are the symbolic links of /dev.
var devLinks = []struct{ name, target string }{
	{"fd", "/proc/self/fd"}, {"ptmx", "pts/ptmx"}, {"stderr", "/proc/self/fd/2"},
	{"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
}

// NewPlan validates spec against the host and computes every operation that
// builds the sandbox's filesystem. It runs on the host, once per policy: it
// stats every bind source (a missing one is an error wrapping both
// ErrInvalidSpec and fs.ErrNotExist), reads the /etc files it carries, and
// checks that each target can be created in the new root without writing
// into a host directory.
func NewPlan(spec Spec) (*Plan, error) { return newPlan(spec, "") }

// newPlan is NewPlan with every host path looked up under host (tests use a
// fake host tree; "" is the real one). Sources in the Plan include host.
func newPlan(spec Spec, host string) (*Plan, error) {
	pl := &planner{host: host, spec: spec}
	if err := pl.run(); err != nil {
		return nil, err
	}
	return pl.plan(), nil
}

// item is something placed in the sandbox tree: a mount (bind or tmpfs) or
// a node that Apply creates (directory, file, symbolic link).
type item struct {
	path   string
	kind   Kind // KindBind, KindMount (tmpfs), KindDir, KindFile, KindSymlink
	source string
	dir    bool // bind: source is a directory
	attr   Attr
	size   int64 // tmpfs
	mode   uint32
	data   []byte
	user   bool // from the Spec (not generated or carried)
	// mountpoint says Apply creates the mount's target (a directory, or an
	// empty file for a file bind) because it lies on a tmpfs.
	mountpoint bool
	what       string // for errors: "read-only bind /srv/x"
}

type planner struct {
	host  string
	spec  Spec
	items []*item
	// byPath indexes items by sandbox path.
	byPath map[string]*item
}

func (pl *planner) h(p string) string { return pl.host + p }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, args...)...)
}

func (pl *planner) run() error {
	pl.byPath = map[string]*item{}
	if err := checkHostname(pl.spec.Hostname); err != nil {
		return invalid("%w", err)
	}
	if pl.spec.ShmSize < 0 {
		return invalid("shm size %d is negative", pl.spec.ShmSize)
	}
	for _, m := range pl.spec.Masked {
		if err := checkPath(m); err != nil {
			return invalid("masked path: %w", err)
		}
	}
	if err := pl.userItems(); err != nil {
		return err
	}
	if err := pl.mergedUsr(); err != nil {
		return err
	}
	if err := pl.etc(); err != nil {
		return err
	}
	return pl.place()
}

func (pl *planner) add(it *item) error {
	if prev, ok := pl.byPath[it.path]; ok {
		return invalid("%s and %s both target %s", prev.what, it.what, it.path)
	}
	pl.byPath[it.path] = it
	pl.items = append(pl.items, it)
	return nil
}

// userItems adds the Spec's binds and tmpfs mounts.
func (pl *planner) userItems() error {
	binds := func(list []Bind, attr Attr, what string) error {
		for _, b := range list {
			w := what + " " + b.Source
			if err := checkPath(b.Source); err != nil {
				return invalid("%s: source: %w", w, err)
			}
			if err := checkTarget(b.Target); err != nil {
				return invalid("%s: %w", w, err)
			}
			fi, err := os.Lstat(pl.h(b.Source))
			if err != nil {
				return fmt.Errorf("%w: %s: %w (create it on the host or remove it from the policy)", ErrInvalidSpec, w, err)
			}
			it := &item{path: b.Target, user: true, what: w}
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				link, err := os.Readlink(pl.h(b.Source))
				if err != nil {
					return fmt.Errorf("%w: %s: %w", ErrInvalidSpec, w, err)
				}
				it.kind, it.source = KindSymlink, link
			default:
				it.kind, it.source, it.dir, it.attr = KindBind, pl.h(b.Source), fi.IsDir(), attr
			}
			if err := pl.add(it); err != nil {
				return err
			}
		}
		return nil
	}
	if err := binds(pl.spec.ReadOnly, ReadOnly|NoSuid|NoDev, "read-only bind"); err != nil {
		return err
	}
	if err := binds(pl.spec.ReadWrite, NoSuid|NoDev, "read-write bind"); err != nil {
		return err
	}
	for _, t := range pl.spec.Tmpfs {
		w := "tmpfs " + t.Path
		if err := checkTarget(t.Path); err != nil {
			return invalid("%s: %w", w, err)
		}
		if t.Size < 0 {
			return invalid("%s: size %d is negative", w, t.Size)
		}
		size := t.Size
		if size == 0 {
			size = DefaultTmpfsSize
		}
		if err := pl.add(&item{path: t.Path, kind: KindMount, size: size, attr: NoSuid | NoDev, user: true, what: w}); err != nil {
			return err
		}
	}
	return nil
}

// mergedUsr recreates the host's /bin -> usr/bin style links when /usr is
// bound at /usr, so that binaries and the dynamic loader find their paths.
func (pl *planner) mergedUsr() error {
	usr, ok := pl.byPath["/usr"]
	if !ok || usr.kind != KindBind || usr.source != pl.h("/usr") {
		return nil
	}
	for _, p := range mergedUsr {
		if _, ok := pl.byPath[p]; ok {
			continue // the policy binds it itself
		}
		fi, err := os.Lstat(pl.h(p))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		link, err := os.Readlink(pl.h(p))
		if err != nil {
			continue
		}
		abs := link
		if !filepath.IsAbs(abs) {
			abs = filepath.Join("/", abs)
		}
		if within(filepath.Clean(abs), "/usr") {
			if err := pl.add(&item{path: p, kind: KindSymlink, source: link, what: "merged-/usr link " + p}); err != nil {
				return err
			}
		}
	}
	return nil
}

// occupied reports whether a Spec item is at, above or below p.
func (pl *planner) occupied(p string) bool {
	for _, it := range pl.items {
		if it.user && (within(it.path, p) || within(p, it.path)) {
			return true
		}
	}
	return false
}

// etc adds the generated /etc files and the carried host ones. A Spec item
// at, above or below one of them replaces it.
func (pl *planner) etc() error {
	add := func(it *item) error {
		if pl.occupied(it.path) {
			return nil
		}
		return pl.add(it)
	}
	for _, f := range pl.generated() {
		if err := add(f); err != nil {
			return err
		}
	}
	names := append([]string(nil), etcCarried...)
	if py, err := filepath.Glob(pl.h("/etc/python3*")); err == nil {
		for _, p := range py {
			names = append(names, filepath.Base(p))
		}
	}
	sort.Strings(names)
	for _, name := range names {
		p := "/etc/" + name
		if pl.occupied(p) {
			continue
		}
		if err := pl.carry(p); err != nil {
			return err
		}
	}
	return nil
}

// carry adds host path p (under /etc) as a copy, a symbolic link or a
// read-only bind, whichever is cheapest at Apply. Missing entries are skipped.
func (pl *planner) carry(p string) error {
	fi, err := os.Lstat(pl.h(p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading host %s: %w", p, err)
	}
	what := "host " + p
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		link, err := os.Readlink(pl.h(p))
		if err != nil {
			return fmt.Errorf("reading host %s: %w", p, err)
		}
		return pl.add(&item{path: p, kind: KindSymlink, source: link, what: what})
	case fi.Mode().IsRegular() && fi.Size() <= copyLimit:
		data, err := os.ReadFile(pl.h(p))
		if err != nil {
			return fmt.Errorf("reading host %s: %w", p, err)
		}
		if onlyComments(data) {
			return nil // same as absent, and costs nothing
		}
		return pl.add(&item{path: p, kind: KindFile, mode: uint32(fi.Mode().Perm()), data: data, what: what})
	case fi.Mode().IsRegular():
		if commentsOnly(pl.h(p)) {
			return nil
		}
		return pl.add(&item{path: p, kind: KindBind, source: pl.h(p), attr: ReadOnly | NoSuid | NoDev | NoExec, what: what})
	case fi.IsDir():
		if items, ok := pl.replicable(p); ok {
			for _, it := range items {
				if err := pl.add(it); err != nil {
					return err
				}
			}
			return nil
		}
		return pl.add(&item{path: p, kind: KindBind, source: pl.h(p), dir: true, attr: ReadOnly | NoSuid | NoDev | NoExec, what: what})
	}
	return nil // sockets, fifos, devices: not carried
}

// replicable returns the items that recreate host directory p when that is
// cheaper than binding it (two creations cost less than a mountpoint and a
// bind): at most replicateEntries entries, each a small regular file or a
// symbolic link.
func (pl *planner) replicable(p string) ([]*item, bool) {
	ents, err := os.ReadDir(pl.h(p))
	if err != nil || len(ents) > replicateEntries {
		return nil, false
	}
	fi, err := os.Stat(pl.h(p))
	if err != nil {
		return nil, false
	}
	items := []*item{{path: p, kind: KindDir, mode: uint32(fi.Mode().Perm()), what: "host " + p}}
	for _, e := range ents {
		sp, hp := p+"/"+e.Name(), pl.h(p+"/"+e.Name())
		it := &item{path: sp, what: "host " + sp}
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(hp)
			if err != nil {
				return nil, false
			}
			it.kind, it.source = KindSymlink, link
		case e.Type().IsRegular():
			fi, err := e.Info()
			if err != nil || fi.Size() > copyLimit {
				return nil, false
			}
			data, err := os.ReadFile(hp)
			if err != nil || len(data) > copyLimit {
				return nil, false
			}
			it.kind, it.mode, it.data = KindFile, uint32(fi.Mode().Perm()), data
		default:
			return nil, false
		}
		items = append(items, it)
	}
	return items, true
}

// onlyComments reports whether a configuration file has nothing but blank
// lines and '#' comments (Debian's gai.conf, for one): carrying it would
// change nothing.
func onlyComments(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line[0] != '#' {
			return false
		}
	}
	return true
}

// commentsOnly is onlyComments for a file too big to copy; it stops
// reading at the first line that is not a comment.
func commentsOnly(hp string) bool {
	f, err := os.Open(hp)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if !onlyComments(sc.Bytes()) {
			return false
		}
	}
	return sc.Err() == nil
}

// generated returns the /etc files pinfold writes for every sandbox.
func (pl *planner) generated() []*item {
	host := pl.spec.Hostname
	if host == "" {
		host = "localhost"
	}
	uid, gid := pl.spec.UID, pl.spec.GID
	passwd := "root:x:0:0:root:/root:/bin/sh\n"
	group := "root:x:0:\n"
	if uid != 0 && uid != 65534 {
		passwd += fmt.Sprintf("app:x:%d:%d:app:/tmp:/bin/sh\n", uid, gid)
	}
	passwd += "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
	if gid != 0 && gid != 65534 {
		group += fmt.Sprintf("app:x:%d:\n", gid)
	}
	group += "nogroup:x:65534:\n"
	hosts := "127.0.0.1\tlocalhost"
	if host != "localhost" {
		hosts += " " + host
	}
	hosts += "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	nss := "# Generated by pinfold: local files only, the sandbox has no network.\n"
	for _, db := range []string{"passwd", "group", "shadow", "hosts", "networks", "protocols", "services", "ethers", "rpc", "netgroup"} {
		nss += fmt.Sprintf("%-10s files\n", db+":")
	}
	file := func(name, content string) *item {
		return &item{path: "/etc/" + name, kind: KindFile, mode: 0o644, data: []byte(content), what: "generated /etc/" + name}
	}
	return []*item{
		file("group", group),
		file("hostname", host+"\n"),
		file("hosts", hosts),
		file("nsswitch.conf", nss),
		file("passwd", passwd),
		file("resolv.conf", "# Generated by pinfold: the sandbox has no network and no name server.\n"),
		{path: "/etc/mtab", kind: KindSymlink, source: "../proc/self/mounts", what: "generated /etc/mtab"},
	}
}

// place checks every item against the mounts above it and adds the
// directories and mountpoints that Apply must create:
//   - under the root tmpfs or a Spec tmpfs, missing parents are created
//     (the tmpfs is fresh: nothing there belongs to the host);
//   - under a bind, nothing is ever created: a mount's target must already
//     exist in the bind's source, with the source's type, and no other item
//     may be placed there.
//
// No item may be placed through a symbolic link that the plan creates.
func (pl *planner) place() error {
	// Reserved mountpoints.
	for _, p := range []string{"/dev", "/proc"} {
		if err := pl.ensureDir(p); err != nil {
			return err
		}
	}
	if pl.spec.Sysfs {
		if err := pl.ensureDir("/sys"); err != nil {
			return err
		}
	}
	items := append([]*item(nil), pl.items...)
	sort.Slice(items, func(i, j int) bool { return items[i].path < items[j].path })
	for _, it := range items {
		if err := pl.placeItem(it); err != nil {
			return err
		}
	}
	return nil
}

// enclosing returns the nearest mount item strictly above p, or nil for the
// root tmpfs, and any symbolic link item above p.
func (pl *planner) enclosing(p string) (mnt, link *item) {
	for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
		it, ok := pl.byPath[d]
		if !ok {
			continue
		}
		switch it.kind {
		case KindSymlink:
			if link == nil {
				link = it
			}
		case KindBind, KindMount:
			if mnt == nil {
				mnt = it
			}
		case KindFile:
			if link == nil {
				link = it // a file cannot have children either
			}
		}
	}
	return mnt, link
}

func (pl *planner) placeItem(it *item) error {
	mnt, link := pl.enclosing(it.path)
	if link != nil {
		if link.kind == KindSymlink {
			to := link.source
			if !filepath.IsAbs(to) {
				to = filepath.Join(filepath.Dir(link.path), to)
			}
			return invalid("%s: target %s goes through the symbolic link %s -> %s (%s); use %s",
				it.what, it.path, link.path, link.source, link.what, filepath.Join(to, strings.TrimPrefix(it.path, link.path)))
		}
		return invalid("%s: target %s is below %s, which is a file (%s)", it.what, it.path, link.path, link.what)
	}
	if mnt != nil && mnt.kind == KindBind {
		if it.kind != KindBind && it.kind != KindMount {
			return invalid("%s: %s is inside %s (host %s); pinfold never creates files in host directories",
				it.what, it.path, mnt.what, mnt.source)
		}
		hp := filepath.Join(mnt.source, strings.TrimPrefix(it.path, mnt.path))
		fi, err := os.Stat(hp)
		if err != nil {
			return fmt.Errorf("%w: %s: target %s is inside %s, so %s must exist on the host: %w (create it; pinfold never creates mountpoints in host directories)",
				ErrInvalidSpec, it.what, it.path, mnt.what, hp, err)
		}
		wantDir := it.kind == KindMount || it.dir
		if fi.IsDir() != wantDir {
			return invalid("%s: target %s (host %s) is %s but the source is %s", it.what, it.path, hp, kindName(fi.IsDir()), kindName(wantDir))
		}
		return nil
	}
	// On the root tmpfs or a Spec tmpfs: create the parents, then the
	// mountpoint itself for mounts.
	if err := pl.ensureDir(filepath.Dir(it.path)); err != nil {
		return err
	}
	it.mountpoint = it.kind == KindBind || it.kind == KindMount
	return nil
}

func kindName(dir bool) string {
	if dir {
		return "a directory"
	}
	return "not a directory"
}

// ensureDir makes sure directory p and its parents exist as items (p is on
// the root tmpfs or a Spec tmpfs, checked by the caller for its leaf).
func (pl *planner) ensureDir(p string) error {
	if p == "/" {
		return nil
	}
	if it, ok := pl.byPath[p]; ok {
		switch {
		case it.kind == KindDir || it.kind == KindMount || (it.kind == KindBind && it.dir):
			return nil
		default:
			return invalid("%s must be a directory to hold other paths, but it is %s", p, it.what)
		}
	}
	if err := pl.ensureDir(filepath.Dir(p)); err != nil {
		return err
	}
	it := &item{path: p, kind: KindDir, mode: 0o755, what: "directory " + p}
	pl.byPath[p] = it
	pl.items = append(pl.items, it)
	return nil
}

// plan emits the operations: the Spec, generated and carried items in path
// order (parents before children, each mountpoint just before its mount),
// then /dev, /proc, /sys, the masks, and the sealing of /dev.
func (pl *planner) plan() *Plan {
	items := append([]*item(nil), pl.items...)
	sort.Slice(items, func(i, j int) bool { return items[i].path < items[j].path })
	p := &Plan{}
	var copied int64
	for _, it := range items {
		switch it.kind {
		case KindDir:
			p.Ops = append(p.Ops, Op{Kind: KindDir, Path: it.path, Mode: it.mode})
		case KindFile:
			p.Ops = append(p.Ops, Op{Kind: KindFile, Path: it.path, Mode: it.mode, Content: it.data})
			copied += (int64(len(it.data)) + 4095) &^ 4095
		case KindSymlink:
			p.Ops = append(p.Ops, Op{Kind: KindSymlink, Path: it.path, Source: it.source})
		case KindBind:
			if it.mountpoint {
				p.Ops = append(p.Ops, mountpoint(it.path, it.dir))
			}
			p.Ops = append(p.Ops, Op{Kind: KindBind, Path: it.path, Source: it.source, Dir: it.dir, Attr: it.attr})
		case KindMount:
			if it.mountpoint {
				p.Ops = append(p.Ops, mountpoint(it.path, true))
			}
			p.Ops = append(p.Ops, Op{Kind: KindMount, Path: it.path, FSType: "tmpfs",
				Options: []string{fmt.Sprintf("size=%d", it.size), "mode=1777"}, Attr: it.attr})
		}
	}
	// The root holds directories, links and the copied files; 256 KiB
	// leaves room for the rest and bounds what a bug could write there
	// before the root is sealed.
	p.RootOptions = []string{fmt.Sprintf("size=%d", copied+256<<10), "mode=0755"}
	p.Ops = append(p.Ops, pl.dev()...)
	p.Ops = append(p.Ops, Op{Kind: KindMount, Path: "/proc", FSType: "proc", Attr: NoSuid | NoDev | NoExec})
	for _, m := range procMasked {
		p.Ops = append(p.Ops, Op{Kind: KindMask, Path: m})
	}
	for _, r := range procReadOnly {
		p.Ops = append(p.Ops, Op{Kind: KindReadOnly, Path: r})
	}
	if pl.spec.Sysfs {
		p.Ops = append(p.Ops, Op{Kind: KindMount, Path: "/sys", FSType: "sysfs", Attr: ReadOnly | NoSuid | NoDev | NoExec})
		for _, m := range sysMasked {
			p.Ops = append(p.Ops, Op{Kind: KindMask, Path: m})
		}
	}
	for _, m := range pl.spec.Masked {
		p.Ops = append(p.Ops, Op{Kind: KindMask, Path: m})
	}
	p.Ops = append(p.Ops, Op{Kind: KindSeal, Path: "/dev"})
	return p
}

// mountpoint is the op that creates the target of a mount on a tmpfs.
func mountpoint(p string, dir bool) Op {
	if dir {
		return Op{Kind: KindDir, Path: p, Mode: 0o755}
	}
	return Op{Kind: KindFile, Path: p, Mode: 0o444}
}

// dev returns the operations that build /dev: a small tmpfs holding the
// six usual character devices (created with mknod, or bound from the host
// inside a user namespace, where mknod is refused), the standard links, a
// private devpts instance, /dev/shm and /dev/mqueue.
func (pl *planner) dev() []Op {
	ops := []Op{{Kind: KindMount, Path: "/dev", FSType: "tmpfs", Options: []string{"size=65536", "mode=0755"}, Attr: NoSuid | NoExec}}
	for _, d := range devices {
		p := "/dev/" + d.name
		if pl.spec.UserNS {
			ops = append(ops, mountpoint(p, false),
				Op{Kind: KindBind, Path: p, Source: pl.h(p), Attr: NoSuid | NoExec})
		} else {
			ops = append(ops, Op{Kind: KindDevice, Path: p, Mode: 0o666, Major: d.major, Minor: d.minor})
		}
	}
	for _, l := range devLinks {
		ops = append(ops, Op{Kind: KindSymlink, Path: "/dev/" + l.name, Source: l.target})
	}
	shm := pl.spec.ShmSize
	if shm == 0 {
		shm = DefaultShmSize
	}
	ops = append(ops,
		Op{Kind: KindDir, Path: "/dev/mqueue", Mode: 0o755},
		Op{Kind: KindDir, Path: "/dev/pts", Mode: 0o755},
		Op{Kind: KindDir, Path: "/dev/shm", Mode: 0o755},
		Op{Kind: KindMount, Path: "/dev/mqueue", FSType: "mqueue", Attr: NoSuid | NoDev | NoExec},
		Op{Kind: KindMount, Path: "/dev/pts", FSType: "devpts", Options: []string{"newinstance", "ptmxmode=0666", "mode=0620"}, Attr: NoSuid | NoExec},
		Op{Kind: KindMount, Path: "/dev/shm", FSType: "tmpfs", Options: []string{fmt.Sprintf("size=%d", shm), "mode=1777"}, Attr: NoSuid | NoDev | NoExec},
	)
	return ops
}
