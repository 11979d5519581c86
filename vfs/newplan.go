package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// copyLimit is the largest host /etc file that is copied into the sandbox
// rather than bound. A copied file travels inside the Plan (in base64) and
// costs a file creation with its content (about 9 µs); a bound one costs an
// empty mountpoint file and a bind (about 5 + 13 µs), measured by
// BenchmarkApply.
const copyLimit = 1024

// etcCarried are the host /etc entries apps read at run time, carried when
// present: the dynamic loader's cache, TLS trust stores (Debian's ssl,
// Fedora's pki and crypto-policies), time zone, alternatives (/usr/bin has
// links into it), MIME types, protocol and service names, resolver
// configuration, os-release, and python3* (see pythonNames). Never shadow,
// gshadow, sudoers, ssh, machine-id or the host's hostname, hosts, passwd,
// group or nsswitch.conf (generated instead). Also left out: the inputs of
// tools that rewrite /etc and so cannot run in the read-only root
// (ld.so.conf and ld.so.conf.d for ldconfig; ca-certificates and
// ca-certificates.conf for update-ca-certificates).
var etcCarried = []string{
	"alternatives", "crypto-policies", "gai.conf", "host.conf", "ld.so.cache",
	"localtime", "mime.types", "os-release", "pki", "protocols", "services",
	"ssl", "timezone",
}

// etcMaybeComments are the carried files that distributions ship with
// nothing but comments and blank lines (Debian's gai.conf). Such a file
// changes nothing, so it is left out, which saves a bind at every start;
// NewPlan reads these to find out even when they are too big to copy. The
// other big ones are bound unread (ld.so.cache is binary; mime.types,
// protocols and services list entries): reading them costs an open, a read
// and a close on the start path for a bind that is always needed. Files
// small enough to copy are read anyway, and left out when they hold only
// comments.
var etcMaybeComments = []string{"gai.conf"}

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
	path         string
	major, minor uint32
}{
	{"/dev/full", 1, 7}, {"/dev/null", 1, 3}, {"/dev/random", 1, 8}, {"/dev/tty", 5, 0},
	{"/dev/urandom", 1, 9}, {"/dev/zero", 1, 5},
}

// devLinks are the symbolic links of /dev.
var devLinks = []struct{ path, target string }{
	{"/dev/fd", "/proc/self/fd"}, {"/dev/ptmx", "pts/ptmx"}, {"/dev/stderr", "/proc/self/fd/2"},
	{"/dev/stdin", "/proc/self/fd/0"}, {"/dev/stdout", "/proc/self/fd/1"},
}

// NewPlan validates spec against the host and computes every operation that
// builds the sandbox's filesystem. It runs on the host, on the start path
// of every sandbox: it looks at every bind source (a missing one is an
// error wrapping both ErrInvalidSpec and fs.ErrNotExist) and at the /etc
// entries it carries, reading only the files it copies (and gai.conf), and
// checks that each target can be created in the new root without writing
// into a host directory. It lists no directory: ext4 hashes every entry of
// a directory block to list it (about 0.3 µs per entry here).
func NewPlan(spec Spec) (*Plan, error) { return newPlan(spec, "") }

// newPlan is NewPlan with every host path looked up under host (tests use a
// fake host tree; "" is the real one). Sources in the Plan include host.
func newPlan(spec Spec, host string) (*Plan, error) {
	pl := &planner{host: host, spec: spec, buf: make([]byte, 4096)}
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
	// what names the item in errors: the Spec's words for a Spec item
	// ("read-only bind /srv/x"), else what goes before the path ("host ").
	what string
}

// desc names it in errors: "read-only bind /srv/x", "host /etc/ssl".
func (it *item) desc() string {
	if it.user {
		return it.what
	}
	return it.what + it.path
}

type planner struct {
	host  string
	spec  Spec
	items []*item
	// byPath indexes items by sandbox path.
	byPath map[string]*item
	// buf is scratch space for reading host files.
	buf []byte
}

func (pl *planner) h(p string) string { return pl.host + p }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, args...)...)
}

func (pl *planner) run() error {
	pl.byPath = make(map[string]*item, 64)
	pl.items = make([]*item, 0, 64)
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
		return invalid("%s and %s both target %s", prev.desc(), it.desc(), it.path)
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
			hp := pl.h(b.Source)
			it := &item{path: b.Target, user: true, what: w}
			// readlink first: it answers for a symbolic link (merged-/usr
			// hosts' /bin, /lib...) in one call.
			link, err := hostReadlink(hp)
			if err != nil {
				st, err := hostLstat(hp)
				if err != nil {
					return fmt.Errorf("%w: %s: %w (create it on the host or remove it from the policy)", ErrInvalidSpec, w, err)
				}
				if st.mode&fs.ModeSymlink != 0 { // it just became one
					return fmt.Errorf("%w: %s: %s changed while being read", ErrInvalidSpec, w, hp)
				}
				it.kind, it.source, it.dir, it.attr = KindBind, hp, st.mode.IsDir(), attr
			} else {
				it.kind, it.source = KindSymlink, link
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
	for _, f := range pl.spec.Files {
		w := "file " + f.Path
		if err := checkTarget(f.Path); err != nil {
			return invalid("%s: %w", w, err)
		}
		if f.Mode&^0o777 != 0 {
			return invalid("%s: mode %#o has bits other than permissions", w, f.Mode)
		}
		if err := pl.add(&item{path: f.Path, kind: KindFile, mode: f.Mode, data: f.Content, user: true, what: w}); err != nil {
			return err
		}
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
		link, err := hostReadlink(pl.h(p))
		if err != nil {
			continue // absent, or not a symbolic link
		}
		abs := link
		if !filepath.IsAbs(abs) {
			abs = filepath.Join("/", abs)
		}
		if within(filepath.Clean(abs), "/usr") {
			if err := pl.add(&item{path: p, kind: KindSymlink, source: link, what: "merged-/usr link "}); err != nil {
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
	for _, f := range pl.generated() {
		if pl.occupied(f.path) {
			continue
		}
		if err := pl.add(f); err != nil {
			return err
		}
	}
	for _, names := range [][]string{etcCarried, pl.pythonNames()} {
		for _, name := range names {
			p := "/etc/" + name
			if pl.occupied(p) {
				continue
			}
			if err := pl.carry(p, slices.Contains(etcMaybeComments, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// pythonNames returns python3 and the default Python's python3.X: Debian
// links /usr/lib/python3.X/sitecustomize.py to /etc/python3.X and keeps
// tool settings in /etc/python3. The version is the target of
// /usr/bin/python3, one readlink: listing /usr/lib or /etc for every
// python3* costs 20-50 µs (ext4 hashes every entry of a directory block
// when it is listed). Other installed versions' /etc/python3.Y are left
// out; Debian's sitecustomize.py only installs Ubuntu's apport crash hook,
// and Python ignores a sitecustomize.py link that leads nowhere.
func (pl *planner) pythonNames() []string {
	names := []string{"python3"}
	link, err := hostReadlink(pl.h("/usr/bin/python3"))
	if err != nil {
		return names
	}
	v := link[strings.LastIndexByte(link, '/')+1:]
	if strings.HasPrefix(v, "python3.") {
		names = append(names, v)
	}
	return names
}

// carry adds host path p (under /etc) as a copy, a symbolic link or a
// read-only bind, whichever costs least at start (NewPlan and Apply
// together). Missing entries are skipped, and so are files with nothing
// but comments, which a file too big to copy is checked for only when
// checkComments.
func (pl *planner) carry(p string, checkComments bool) error {
	hp := pl.h(p)
	st, err := hostLstat(hp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading host %s: %w", p, err)
	}
	const what = "host "
	bind := &item{path: p, kind: KindBind, source: hp, attr: ReadOnly | NoSuid | NoDev | NoExec, what: what}
	switch {
	case st.mode&fs.ModeSymlink != 0:
		link, err := hostReadlink(hp)
		if err != nil {
			return fmt.Errorf("reading host %s: %w", p, err)
		}
		return pl.add(&item{path: p, kind: KindSymlink, source: link, what: what})
	case st.mode.IsRegular():
		if st.size <= copyLimit {
			data, err := pl.readSmall(hp, st.size)
			if err != nil {
				return fmt.Errorf("reading host %s: %w", p, err)
			}
			if data != nil {
				if onlyComments(data) {
					return nil // same as absent, and costs nothing
				}
				return pl.add(&item{path: p, kind: KindFile, mode: uint32(st.mode.Perm()), data: data, what: what})
			}
			// It grew past copyLimit since the lstat: bind it.
		}
		if checkComments && pl.commentsOnly(hp, st.size) {
			return nil
		}
		return pl.add(bind)
	case st.mode.IsDir():
		bind.dir = true
		return pl.add(bind)
	}
	return nil // sockets, fifos, devices: not carried
}

// readSmall reads regular file hp whole, if it has at most copyLimit
// bytes; it returns nil, nil for a bigger one. size is its lstat size: a
// short read that reaches it is the end of the file.
func (pl *planner) readSmall(hp string, size int64) ([]byte, error) {
	f, err := hostOpen(hp)
	if err != nil {
		return nil, err
	}
	defer f.close()
	buf := pl.buf[:copyLimit+1]
	n := 0
	for n < len(buf) {
		m, err := f.read(buf[n:])
		if err != nil {
			return nil, err
		}
		n += m
		if m == 0 || int64(n) >= size && n < len(buf) {
			return bytes.Clone(buf[:n]), nil
		}
	}
	return nil, nil
}

// onlyComments reports whether a configuration file has nothing but blank
// lines and '#' comments (Debian's gai.conf, for one): carrying it would
// change nothing.
func onlyComments(data []byte) bool {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if !blankOrComment(line) {
			return false
		}
	}
	return true
}

func blankOrComment(line []byte) bool {
	line = bytes.TrimSpace(line)
	return len(line) == 0 || line[0] == '#'
}

// maxLine is the longest line commentsOnly reads through; a longer one
// counts as content.
const maxLine = 64 << 10

// commentsOnly is onlyComments for regular file hp, too big to copy
// (size is its lstat size); it stops reading at the first line that is
// not a comment.
func (pl *planner) commentsOnly(hp string, size int64) bool {
	f, err := hostOpen(hp)
	if err != nil {
		return false
	}
	defer f.close()
	buf := pl.buf
	var total int64
	start, end := 0, 0 // buf[start:end]: the line being read
	for {
		if end == len(buf) {
			switch {
			case start > 0:
				end = copy(buf, buf[start:end])
				start = 0
			case len(buf) >= maxLine:
				return false
			default:
				buf = append(buf[:end:end], make([]byte, len(buf))...)
			}
		}
		n, err := f.read(buf[end:])
		if err != nil {
			return false
		}
		end += n
		total += int64(n)
		for {
			i := bytes.IndexByte(buf[start:end], '\n')
			if i < 0 {
				break
			}
			if !blankOrComment(buf[start : start+i]) {
				return false
			}
			start += i + 1
		}
		if n == 0 || total >= size && end < len(buf) {
			return blankOrComment(buf[start:end])
		}
	}
}

// nsswitchConf is the generated /etc/nsswitch.conf.
const nsswitchConf = `# Generated by pinfold: local files only, the sandbox has no network.
passwd:    files
group:     files
shadow:    files
hosts:     files
networks:  files
protocols: files
services:  files
ethers:    files
rpc:       files
netgroup:  files
`

// generated returns the /etc files pinfold writes for every sandbox.
func (pl *planner) generated() []*item {
	host := pl.spec.Hostname
	if host == "" {
		host = "localhost"
	}
	uid, gid := pl.spec.UID, pl.spec.GID
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
	group := []byte("root:x:0:\n")
	if uid != 0 && uid != 65534 {
		passwd = append(passwd, "app:x:"...)
		passwd = strconv.AppendUint(passwd, uint64(uid), 10)
		passwd = append(passwd, ':')
		passwd = strconv.AppendUint(passwd, uint64(gid), 10)
		passwd = append(passwd, ":app:/tmp:/bin/sh\n"...)
	}
	passwd = append(passwd, "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"...)
	if gid != 0 && gid != 65534 {
		group = append(group, "app:x:"...)
		group = strconv.AppendUint(group, uint64(gid), 10)
		group = append(group, ":\n"...)
	}
	group = append(group, "nogroup:x:65534:\n"...)
	hosts := "127.0.0.1\tlocalhost"
	if host != "localhost" {
		hosts += " " + host
	}
	hosts += "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	file := func(name string, content []byte) *item {
		return &item{path: "/etc/" + name, kind: KindFile, mode: 0o644, data: content, what: "generated "}
	}
	return []*item{
		file("group", group),
		file("hostname", []byte(host+"\n")),
		file("hosts", []byte(hosts)),
		file("nsswitch.conf", []byte(nsswitchConf)),
		file("passwd", passwd),
		file("resolv.conf", []byte("# Generated by pinfold: the sandbox has no network and no name server.\n")),
		{path: "/etc/mtab", kind: KindSymlink, source: "../proc/self/mounts", what: "generated "},
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
	if pl.spec.Cgroupfs {
		if err := checkCgroupView(pl.spec.Cgroups); err != nil {
			return invalid("cgroupfs: %w", err)
		}
		if !pl.spec.Sysfs {
			// On the root tmpfs, sealed with it.
			if err := pl.ensureDir(cgroupRoot); err != nil {
				return err
			}
		}
	}
	items := append([]*item(nil), pl.items...)
	slices.SortFunc(items, byPath)
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
				it.desc(), it.path, link.path, link.source, link.desc(), filepath.Join(to, strings.TrimPrefix(it.path, link.path)))
		}
		return invalid("%s: target %s is below %s, which is a file (%s)", it.desc(), it.path, link.path, link.desc())
	}
	if mnt != nil && mnt.kind == KindBind {
		if it.kind != KindBind && it.kind != KindMount {
			return invalid("%s: %s is inside %s (host %s); pinfold never creates files in host directories",
				it.desc(), it.path, mnt.desc(), mnt.source)
		}
		hp := filepath.Join(mnt.source, strings.TrimPrefix(it.path, mnt.path))
		fi, err := os.Stat(hp)
		if err != nil {
			return fmt.Errorf("%w: %s: target %s is inside %s, so %s must exist on the host: %w (create it; pinfold never creates mountpoints in host directories)",
				ErrInvalidSpec, it.desc(), it.path, mnt.desc(), hp, err)
		}
		wantDir := it.kind == KindMount || it.dir
		if fi.IsDir() != wantDir {
			return invalid("%s: target %s (host %s) is %s but the source is %s", it.desc(), it.path, hp, kindName(fi.IsDir()), kindName(wantDir))
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

func byPath(a, b *item) int { return strings.Compare(a.path, b.path) }

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
			return invalid("%s must be a directory to hold other paths, but it is %s", p, it.desc())
		}
	}
	if err := pl.ensureDir(filepath.Dir(p)); err != nil {
		return err
	}
	it := &item{path: p, kind: KindDir, mode: 0o755, what: "directory "}
	pl.byPath[p] = it
	pl.items = append(pl.items, it)
	return nil
}

// plan emits the operations: the Spec, generated and carried items in path
// order (parents before children, each mountpoint just before its mount),
// then /dev, /proc, /sys, /sys/fs/cgroup, the masks, and the sealing of
// /dev.
func (pl *planner) plan() *Plan {
	items := append([]*item(nil), pl.items...)
	slices.SortFunc(items, byPath)
	n := len(items) + 1 + 2*len(devices) + len(devLinks) + 6 + 1 + len(procMasked) + len(procReadOnly) +
		1 + len(sysMasked) + len(pl.spec.Masked) + 1
	if pl.spec.Cgroupfs {
		n += 4 + 3*len(pl.spec.Cgroups.V1)
	}
	for _, it := range items {
		if it.mountpoint {
			n++
		}
	}
	p := &Plan{Ops: make([]Op, 0, n)}
	var copied int64
	node := func(it *item) {
		switch it.kind {
		case KindDir:
			p.Ops = append(p.Ops, Op{Kind: KindDir, Path: it.path, Mode: it.mode})
		case KindFile:
			p.Ops = append(p.Ops, Op{Kind: KindFile, Path: it.path, Mode: it.mode, Content: it.data})
			copied += (int64(len(it.data)) + 4095) &^ 4095
		case KindSymlink:
			p.Ops = append(p.Ops, Op{Kind: KindSymlink, Path: it.path, Source: it.source})
		case KindBind, KindMount:
			if it.mountpoint {
				p.Ops = append(p.Ops, mountpoint(it.path, it.kind == KindMount || it.dir))
			}
		}
	}
	for _, it := range items {
		node(it)
		switch it.kind {
		case KindBind:
			p.Ops = append(p.Ops, Op{Kind: KindBind, Path: it.path, Source: it.source, Dir: it.dir, Attr: it.attr})
		case KindMount:
			p.Ops = append(p.Ops, Op{Kind: KindMount, Path: it.path, FSType: "tmpfs",
				Options: []string{"size=" + strconv.FormatInt(it.size, 10), "mode=1777"}, Attr: it.attr})
		}
	}
	// The root holds directories, links and the copied files; 256 KiB
	// leaves room for the rest and bounds what a bug could write there
	// before the root is sealed.
	p.RootOptions = []string{"size=" + strconv.FormatInt(copied+256<<10, 10), "mode=0755"}
	p.Ops = pl.dev(p.Ops)
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
	if pl.spec.Cgroupfs {
		p.Ops = pl.cgroupfs(p.Ops)
	}
	for _, m := range pl.spec.Masked {
		p.Ops = append(p.Ops, Op{Kind: KindMask, Path: m})
	}
	p.Ops = append(p.Ops, Op{Kind: KindSeal, Path: "/dev"})
	return p
}

// cgroupRoot is where Spec.Cgroupfs shows the app's cgroups.
const cgroupRoot = "/sys/fs/cgroup"

// cgroupOptions are the cgroup v1 mount options that are not controllers;
// none of them may appear in CgroupView.V1 (fsconfig would take them as
// options, not as the controller they are listed as).
var cgroupOptions = []string{
	"all", "none", "noprefix", "clone_children", "cpuset_v2_mode", "xattr",
	"favordynmods", "nofavordynmods", "name", "release_agent", "source",
}

// checkCgroupView reports what is wrong with a CgroupView.
func checkCgroupView(v CgroupView) error {
	switch v.Mode {
	case CgroupUnified:
		if len(v.V1) > 0 {
			return fmt.Errorf("a unified (cgroup v2 only) host has no cgroup v1 hierarchies, but %d are listed", len(v.V1))
		}
		return nil
	case CgroupLegacy:
		if len(v.V1) == 0 {
			return fmt.Errorf("a legacy (cgroup v1 only) layout with no hierarchy to show")
		}
	case CgroupHybrid:
	case "":
		return fmt.Errorf("the host's cgroup layout is not set (Spec.Cgroups, which the supervisor fills from its cgroup manager)")
	default:
		return fmt.Errorf("unknown cgroup layout %q (want %s, %s or %s)", v.Mode, CgroupLegacy, CgroupHybrid, CgroupUnified)
	}
	seen := make(map[string]bool)
	for _, g := range v.V1 {
		if len(g) == 0 {
			return fmt.Errorf("an empty cgroup v1 hierarchy (list the controllers bound to it)")
		}
		for _, c := range g {
			if !controllerName(c) {
				return fmt.Errorf("cgroup v1 controller %q is not a controller name (lowercase letters, digits and '_')", c)
			}
			if c == "unified" || slices.Contains(cgroupOptions, c) {
				return fmt.Errorf("%q is a cgroup mount option or directory, not a controller", c)
			}
			if seen[c] {
				return fmt.Errorf("cgroup v1 controller %s is listed twice (a controller is bound to one hierarchy)", c)
			}
			seen[c] = true
		}
	}
	return nil
}

// controllerName reports whether c can name a cgroup controller: 1 to 64
// lowercase letters, digits and '_' (the kernel's are "cpu", "net_cls"...).
func controllerName(c string) bool {
	if c == "" || len(c) > 64 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if b := c[i]; !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_') {
			return false
		}
	}
	return true
}

// cgroupfs appends the operations that show the app's cgroups at
// /sys/fs/cgroup (see CgroupView). Every cgroup mount is a fresh one, made
// read-only, nosuid, nodev and noexec inside the app's cgroup namespace;
// Apply checks it is not the initial one. The directories and links live
// on the root tmpfs, or, over a sysfs (where nothing can be created), on
// a small tmpfs that is sealed read-only once populated.
func (pl *planner) cgroupfs(ops []Op) []Op {
	const ro = ReadOnly | NoSuid | NoDev | NoExec
	v := pl.spec.Cgroups
	if v.Mode == CgroupUnified {
		return append(ops, Op{Kind: KindMount, Path: cgroupRoot, FSType: "cgroup2", Attr: ro})
	}
	if pl.spec.Sysfs {
		ops = append(ops, Op{Kind: KindMount, Path: cgroupRoot, FSType: "tmpfs",
			Options: []string{"size=4096", "mode=0755"}, Attr: NoSuid | NoDev | NoExec})
	}
	groups := slices.Clone(v.V1)
	slices.SortFunc(groups, func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) })
	for _, g := range groups {
		p := cgroupRoot + "/" + strings.Join(g, ",")
		ops = append(ops, mountpoint(p, true),
			Op{Kind: KindMount, Path: p, FSType: "cgroup", Options: slices.Clone(g), Attr: ro})
	}
	for _, g := range groups {
		if len(g) > 1 {
			name := strings.Join(g, ",")
			for _, c := range g {
				ops = append(ops, Op{Kind: KindSymlink, Path: cgroupRoot + "/" + c, Source: name})
			}
		}
	}
	if v.Mode == CgroupHybrid {
		ops = append(ops, mountpoint(cgroupRoot+"/unified", true),
			Op{Kind: KindMount, Path: cgroupRoot + "/unified", FSType: "cgroup2", Attr: ro})
	}
	if pl.spec.Sysfs {
		ops = append(ops, Op{Kind: KindSeal, Path: cgroupRoot})
	}
	return ops
}

// mountpoint is the op that creates the target of a mount on a tmpfs.
func mountpoint(p string, dir bool) Op {
	if dir {
		return Op{Kind: KindDir, Path: p, Mode: 0o755}
	}
	return Op{Kind: KindFile, Path: p, Mode: 0o444}
}

// dev appends the operations that build /dev: a small tmpfs holding the
// six usual character devices (created with mknod, or bound from the host
// inside a user namespace, where mknod is refused), the standard links, a
// private devpts instance, /dev/shm and /dev/mqueue.
func (pl *planner) dev(ops []Op) []Op {
	ops = append(ops, Op{Kind: KindMount, Path: "/dev", FSType: "tmpfs", Options: []string{"size=65536", "mode=0755"}, Attr: NoSuid | NoExec})
	for _, d := range devices {
		if pl.spec.UserNS {
			ops = append(ops, mountpoint(d.path, false),
				Op{Kind: KindBind, Path: d.path, Source: pl.h(d.path), Attr: NoSuid | NoExec})
		} else {
			ops = append(ops, Op{Kind: KindDevice, Path: d.path, Mode: 0o666, Major: d.major, Minor: d.minor})
		}
	}
	for _, l := range devLinks {
		ops = append(ops, Op{Kind: KindSymlink, Path: l.path, Source: l.target})
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
		Op{Kind: KindMount, Path: "/dev/shm", FSType: "tmpfs", Options: []string{"size=" + strconv.FormatInt(shm, 10), "mode=1777"}, Attr: NoSuid | NoDev | NoExec},
	)
	return ops
}
