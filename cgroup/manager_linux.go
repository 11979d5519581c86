package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/cgroups/v3"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The cgroup v1 controllers pinfold uses, in the order their directories
// are created. blkio is optional: without it only a blockIO weight fails.
var v1Controllers = []string{"memory", "cpu", "cpuacct", "pids", "freezer", "blkio"}

const v1Optional = "blkio"

// The cgroup v2 controllers pinfold enables for its children. io is
// optional: without it only a blockIO weight fails.
var v2Controllers = []string{"memory", "cpu", "pids", "io"}

const v2Optional = "io"

// Where the cgroup filesystems are mounted; cgroups.Mode looks there too.
const (
	cgroupRoot        = "/sys/fs/cgroup"
	hybridUnifiedPath = "/sys/fs/cgroup/unified"
)

// ManagerConfig configures NewManager.
type ManagerConfig struct {
	// SelfLeaf matters only on cgroup v2 hosts, when the supervisor's own
	// cgroup is not the root and holds processes: the kernel then refuses to
	// enable controllers for its children. If SelfLeaf is set (for example
	// "supervisor"), NewManager moves the calling process into
	// <own cgroup>/<SelfLeaf> and enables the controllers on <own cgroup>,
	// which is what systemd expects of a service with Delegate=yes. If it is
	// empty, NewManager fails with an error wrapping ErrNotSupported. A
	// process already in a leaf of that name whose parent has the
	// controllers enabled (a second NewManager, or a supervisor that
	// re-executed itself) keeps using the parent.
	SelfLeaf string
}

// Manager creates per-app cgroups beneath the cgroup the supervisor was in
// when NewManager ran. Build one per supervisor and share it; it holds no
// mutable state.
type Manager struct {
	mode Mode

	v1Root   string              // directory holding the v1 hierarchies, e.g. /sys/fs/cgroup
	v1Base   map[string]string   // controller → the supervisor's own cgroup directory
	v1Mount  map[string]string   // controller → mount point, to spot co-mounted controllers
	v1Ctrls  map[string][]string // mount point → every controller bound to that hierarchy
	v1Blkio  bool
	unified  string // the supervisor's own cgroup2 directory; "" on legacy hosts
	v2Enable []string
	v2HaveIO bool
}

// NewManager detects the host's cgroup mode and the supervisor's own cgroup
// in every hierarchy pinfold uses. Missing controllers give errors wrapping
// ErrNotSupported.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	switch cgroups.Mode() {
	case cgroups.Legacy:
		return newManager(cfg, ModeLegacy)
	case cgroups.Hybrid:
		return newManager(cfg, ModeHybrid)
	case cgroups.Unified:
		return newManager(cfg, ModeUnified)
	default:
		return nil, fmt.Errorf("no cgroup filesystem is mounted at %s: %w", cgroupRoot, ErrNotSupported)
	}
}

// newManager is NewManager for a given mode. Tests use it to run a hybrid
// host as a legacy one (ignoring its cgroup2 hierarchy).
func newManager(cfg ManagerConfig, mode Mode) (*Manager, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	ownV1, ownUnified, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("reading the supervisor's cgroups: %w", err)
	}
	m := &Manager{mode: mode}
	if mode != ModeUnified {
		if err := m.findV1(mounts, ownV1); err != nil {
			return nil, err
		}
	}
	if mode == ModeLegacy {
		return m, nil
	}
	unifiedMount := cgroupRoot
	if mode == ModeHybrid {
		unifiedMount = hybridUnifiedPath
	}
	if m.unified, err = ownUnifiedDir(mounts, unifiedMount, ownUnified); err != nil {
		return nil, err
	}
	if mode == ModeUnified {
		if err := m.setupV2(cfg, unifiedMount); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Mode reports the host's cgroup mode.
func (m *Manager) Mode() Mode { return m.mode }

func readMounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("finding cgroup mounts: %w", err)
	}
	defer f.Close()
	return parseMountInfo(f)
}

// findV1 resolves the supervisor's own cgroup in each v1 hierarchy: its
// path from /proc/self/cgroup, made relative to the root of the hierarchy's
// mount (which differs from "/" when /sys/fs/cgroup is itself a bind of a
// subtree, as in containers). This is what cgroup1.NestedPath computes, but
// NestedPath re-reads /proc/self/mountinfo once for every controller the
// process is in (nine here, ~0.7 ms), on every start; this uses the one
// parse NewManager already made. TestOwnV1MatchesNestedPath checks that the
// answers agree.
func (m *Manager) findV1(mounts []mount, own map[string]string) error {
	m.v1Base = make(map[string]string)
	m.v1Mount = make(map[string]string)
	m.v1Ctrls = make(map[string][]string)
	for _, c := range v1Controllers {
		mnt, ok := v1MountOf(mounts, c)
		if !ok {
			if c == v1Optional {
				continue
			}
			return fmt.Errorf("cgroup v1 controller %s is not mounted: %w", c, ErrNotSupported)
		}
		root := filepath.Dir(mnt.Point)
		if m.v1Root == "" {
			m.v1Root = root
		}
		if root != m.v1Root {
			return fmt.Errorf("cgroup v1 hierarchies are mounted in both %s and %s: %w", m.v1Root, root, ErrNotSupported)
		}
		rel, err := ownV1Path(own, mnt, c)
		if err != nil {
			return err
		}
		base := filepath.Join(m.v1Root, c, rel)
		if !dirExists(base) {
			return fmt.Errorf("the supervisor's %s cgroup %s is not a directory (is %s/%s a link to the %s mount?): %w",
				c, base, m.v1Root, c, mnt.Point, ErrNotSupported)
		}
		m.v1Base[c] = base
		m.v1Mount[c] = mnt.Point
		if _, ok := m.v1Ctrls[mnt.Point]; !ok {
			m.v1Ctrls[mnt.Point] = v1ControllersOf(mnt)
		}
		if c == "blkio" {
			m.v1Blkio = true
		}
	}
	return nil
}

// ownV1Path returns the supervisor's cgroup in controller c's hierarchy,
// relative to what the hierarchy's mount shows.
func ownV1Path(own map[string]string, mnt mount, c string) (string, error) {
	p, ok := own[c]
	if !ok {
		return "", fmt.Errorf("/proc/self/cgroup has no line for the %s controller: %w", c, ErrNotSupported)
	}
	rel, err := filepath.Rel(mnt.Root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("the supervisor's %s cgroup %s is outside the hierarchy mounted at %s (root %s): %w", c, p, mnt.Point, mnt.Root, ErrNotSupported)
	}
	return "/" + strings.TrimPrefix(rel, "."), nil
}

func v1MountOf(mounts []mount, controller string) (mount, bool) {
	for _, mnt := range mounts {
		if !mnt.V2 && mnt.has(controller) {
			return mnt, true
		}
	}
	return mount{}, false
}

// ownUnifiedDir maps the supervisor's cgroup2 path (the "0::" line of
// /proc/self/cgroup) to a directory through the mount root.
func ownUnifiedDir(mounts []mount, point, own string) (string, error) {
	for _, mnt := range mounts {
		if !mnt.V2 || mnt.Point != point {
			continue
		}
		rel, err := filepath.Rel(mnt.Root, own)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("the supervisor's cgroup %s is outside the cgroup2 mount at %s (root %s): %w", own, point, mnt.Root, ErrNotSupported)
		}
		return filepath.Join(point, rel), nil
	}
	return "", fmt.Errorf("no cgroup2 filesystem is mounted at %s: %w", point, ErrNotSupported)
}

// setupV2 makes the supervisor's cgroup2 directory able to hold app cgroups
// with controllers: the controllers must be available there, and enabled in
// its cgroup.subtree_control.
func (m *Manager) setupV2(cfg ManagerConfig, mountPoint string) error {
	base := m.unified
	if cfg.SelfLeaf != "" && base != mountPoint && filepath.Base(base) == cfg.SelfLeaf {
		// Already in the leaf (a second Manager, or a supervisor that
		// re-executed itself): the base is the parent, if it was set up.
		parent := filepath.Dir(base)
		if on, err := os.ReadFile(filepath.Join(parent, "cgroup.subtree_control")); err == nil &&
			hasAll(strings.Fields(string(on)), v2Controllers, v2Optional) {
			base, m.unified = parent, parent
		}
	}
	data, err := os.ReadFile(filepath.Join(base, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("reading the controllers of the supervisor's cgroup: %w", err)
	}
	have := strings.Fields(string(data))
	for _, c := range v2Controllers {
		if slices.Contains(have, c) {
			m.v2Enable = append(m.v2Enable, c)
			continue
		}
		if c == v2Optional {
			continue
		}
		return fmt.Errorf("cgroup v2 controller %s is not available in the supervisor's cgroup %s (it has: %s); "+
			"the parent cgroup must delegate it (systemd: Delegate=yes): %w", c, base, strings.Join(have, " "), ErrNotSupported)
	}
	m.v2HaveIO = slices.Contains(m.v2Enable, "io")

	err = enableControllers(base, m.v2Enable)
	if err == nil || !errors.Is(err, syscall.EBUSY) || base == mountPoint {
		return err
	}
	// "No internal processes": a non-root cgroup with member processes
	// cannot enable controllers for children.
	if cfg.SelfLeaf == "" {
		return fmt.Errorf("the supervisor's cgroup %s holds processes, so cgroup v2 cannot enable controllers for app cgroups below it; "+
			"run the supervisor in a delegated cgroup and set ManagerConfig.SelfLeaf so it moves itself into a leaf (systemd: Delegate=yes): %w", base, ErrNotSupported)
	}
	if err := checkComponent(cfg.SelfLeaf); err != nil {
		return fmt.Errorf("ManagerConfig.SelfLeaf: %w", err)
	}
	leaf := filepath.Join(base, cfg.SelfLeaf)
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating the supervisor's leaf cgroup: %w", err)
	}
	if err := writeFile(leaf, "cgroup.procs", strconv.Itoa(os.Getpid())); err != nil {
		return fmt.Errorf("moving the supervisor into %s: %w", leaf, err)
	}
	if err := enableControllers(base, m.v2Enable); err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("other processes remain in %s after the supervisor moved to %s; move them into a leaf too: %w: %w", base, leaf, ErrNotSupported, err)
		}
		return err
	}
	return nil
}

// hasAll reports whether have holds every controller in want except
// optional.
func hasAll(have, want []string, optional string) bool {
	for _, c := range want {
		if c != optional && !slices.Contains(have, c) {
			return false
		}
	}
	return true
}

// enableControllers turns on the controllers in dir's cgroup.subtree_control
// that are not on yet.
func enableControllers(dir string, controllers []string) error {
	if len(controllers) == 0 {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("enabling cgroup controllers: %w", err)
	}
	on := strings.Fields(string(data))
	var add []string
	for _, c := range controllers {
		if !slices.Contains(on, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := writeFile(dir, "cgroup.subtree_control", strings.Join(add, " ")); err != nil {
		return fmt.Errorf("enabling cgroup controllers: %w", err)
	}
	return nil
}

// v1MountFlags are the cgroup v1 super options that are not controllers
// (name= and release_agent= are told apart by their '=').
var v1MountFlags = []string{"rw", "ro", "none", "all", "noprefix", "xattr", "clone_children", "cpuset_v2_mode", "favordynmods", "nofavordynmods"}

// v1ControllersOf returns the controllers bound to a v1 hierarchy, in the
// order its mount options list them.
func v1ControllersOf(mnt mount) []string {
	var out []string
	for _, o := range mnt.Options {
		if !strings.Contains(o, "=") && !slices.Contains(v1MountFlags, o) {
			out = append(out, o)
		}
	}
	return out
}

// Hierarchies returns the cgroup v1 hierarchies p has directories in, each
// as every controller bound to it, in the order the host's mount options
// list them ({"memory"}, {"cpu", "cpuacct"}): what vfs.CgroupView.V1
// wants. It is nil on unified hosts.
func (m *Manager) Hierarchies(p Paths) [][]string {
	var out [][]string
	seen := make(map[string]bool)
	for _, c := range v1Controllers {
		if _, ok := p.V1[c]; !ok {
			continue
		}
		mp := m.v1Mount[c]
		if seen[mp] {
			continue
		}
		seen[mp] = true
		out = append(out, slices.Clone(m.v1Ctrls[mp]))
	}
	return out
}

// PathsFor returns the directories New(cfg) creates, without creating
// anything, so that a supervisor can record them before they exist.
func (m *Manager) PathsFor(cfg Config) (Paths, error) {
	parts, err := checkName(cfg.Name)
	if err != nil {
		return Paths{}, err
	}
	return m.paths(parts, cfg.Resources), nil
}

// paths places an app cgroup in the hierarchies it needs. On hybrid hosts
// the freezer hierarchy is not used (the cgroup2 directory freezes and
// kills), and blkio only when an I/O weight is asked for: every hierarchy
// costs a mkdir, a thread migration at spawn and an rmdir per app.
func (m *Manager) paths(parts []string, r *specs.LinuxResources) Paths {
	p := Paths{Mode: m.mode, Depth: len(parts)}
	rel := filepath.Join(parts...)
	if m.mode != ModeUnified {
		wantBlkio := r != nil && r.BlockIO != nil && r.BlockIO.Weight != nil
		p.V1 = make(map[string]string, len(m.v1Base))
		for c, base := range m.v1Base {
			if (c == "freezer" && m.mode == ModeHybrid) || (c == "blkio" && !wantBlkio) {
				continue
			}
			p.V1[c] = filepath.Join(base, rel)
		}
	}
	if m.unified != "" {
		p.Unified = filepath.Join(m.unified, rel)
	}
	return p
}

// ForkInside calls fn, which must clone a child from the calling OS thread
// (locked with runtime.LockOSThread), so that the child starts inside cg in
// every hierarchy. The v1 part is done by moving the calling thread alone
// into cg's v1 directories (writing 0 to their tasks files) and back to the
// supervisor's own cgroups after fn: a child inherits its cgroups from the
// thread that cloned it. Moving the child afterwards by pid (cgroup.procs)
// would take the kernel's threadgroup lock for writing, which waits for an
// RCU grace period: 5-15 ms per start on these machines, against ~20 µs per
// hierarchy for a thread moving itself. The cgroup2 part (unified and
// hybrid hosts) is CLONE_INTO_CGROUP with CgroupFD, which fn must use.
func (m *Manager) ForkInside(cg Cgroup, fn func() error) error {
	if m.mode == ModeUnified {
		return fn()
	}
	var moved []string
	back := func() error {
		var errs []error
		for _, c := range moved {
			if err := writeFile(m.v1Base[c], "tasks", "0"); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for c, dir := range cg.Paths().V1 {
		if err := writeFile(dir, "tasks", "0"); err != nil {
			if berr := back(); berr != nil {
				err = errors.Join(err, fmt.Errorf("moving the spawning thread back to the supervisor's cgroups: %w", berr))
			}
			return fmt.Errorf("entering cgroup %s to start a process in it: %w", dir, err)
		}
		moved = append(moved, c)
	}
	err := fn()
	if berr := back(); berr != nil {
		return errors.Join(err, fmt.Errorf("moving the spawning thread back to the supervisor's cgroups: %w", berr))
	}
	return err
}

// maxCreateAttempts bounds New's retries when a concurrent Delete removes a
// shared parent directory between New's mkdir of it and of the leaf.
const maxCreateAttempts = 100

// New creates the app cgroup cfg.Name below the supervisor's own cgroup in
// every hierarchy, applies cfg.Resources, and opens it. The last component
// of the name must not exist yet (the error then wraps fs.ErrExist). On
// failure nothing it created is left behind.
func (m *Manager) New(cfg Config) (Cgroup, error) {
	parts, err := checkName(cfg.Name)
	if err != nil {
		return nil, err
	}
	if err := checkResources(cfg.Resources); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", cfg.Name, err)
	}
	if r := cfg.Resources; r != nil && r.BlockIO != nil && r.BlockIO.Weight != nil {
		if m.mode == ModeUnified && !m.v2HaveIO {
			return nil, fmt.Errorf("cgroup %s: resources.blockIO.weight: the io controller is not delegated to the supervisor's cgroup: %w", cfg.Name, ErrNotSupported)
		}
		if m.mode != ModeUnified && !m.v1Blkio {
			return nil, fmt.Errorf("cgroup %s: resources.blockIO.weight: the blkio hierarchy is not mounted: %w", cfg.Name, ErrNotSupported)
		}
	}

	p := m.paths(parts, cfg.Resources)

	for attempt := 1; ; attempt++ {
		err := m.mkdirs(p, parts)
		if err == nil {
			break
		}
		if !vanished(err) || attempt == maxCreateAttempts {
			return nil, fmt.Errorf("creating cgroup %s: %w", cfg.Name, err)
		}
	}

	cg, err := newCgroup(p)
	if err == nil {
		err = cg.apply(cfg.Resources, true)
		if err != nil {
			err = errors.Join(err, cg.Delete(), cg.Close())
		}
	} else {
		err = errors.Join(err, deleteDirs(p))
	}
	if err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", cfg.Name, err)
	}
	return cg, nil
}

// mkdirs creates the shared parents (if missing) and the leaf in every
// hierarchy. If a parent vanishes under it (a concurrent Delete removed it
// while empty) it returns an error for which vanished is true, after undoing
// what it did, and New tries again.
func (m *Manager) mkdirs(p Paths, parts []string) (err error) {
	var created []string
	defer func() {
		if err == nil {
			return
		}
		for _, leaf := range created {
			err = errors.Join(err, rmdir(leaf), removeParents(leaf, len(parts)-1))
		}
	}()
	seen := make(map[string]bool)
	mk := func(base, leaf string, enable []string) error {
		if seen[leaf] {
			return nil
		}
		seen[leaf] = true
		var parents []string
		dir := base
		for _, part := range parts[:len(parts)-1] {
			dir = filepath.Join(dir, part)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			parents = append(parents, dir)
		}
		if err := os.Mkdir(leaf, 0o755); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w (another app uses this name, or a crashed run left it: recover it with Load, Kill and Delete)", err)
			}
			return err
		}
		created = append(created, leaf)
		// Only now, with the leaf keeping them from being removed, enable
		// the controllers in the parents, top down: a parent that another
		// New has just recreated may not have them yet. The write is made
		// even when subtree_control already lists them: the kernel shows
		// the new mask before it has finished creating the children's
		// controller files, and the write waits for that (it takes the
		// cgroup mutex), so the leaf's limit files exist afterwards.
		for _, dir := range parents {
			if len(enable) == 0 {
				break
			}
			if err := writeFile(dir, "cgroup.subtree_control", "+"+strings.Join(enable, " +")); err != nil {
				return fmt.Errorf("enabling cgroup controllers: %w", err)
			}
		}
		return nil
	}
	if p.Unified != "" {
		if err := mk(m.unified, p.Unified, m.v2Enable); err != nil {
			return err
		}
	}
	for _, c := range v1Controllers {
		leaf, ok := p.V1[c]
		if !ok {
			continue
		}
		// Co-mounted controllers (cpu,cpuacct) share one directory.
		key := m.v1Mount[c] + "\x00" + strings.TrimPrefix(leaf, filepath.Join(m.v1Root, c))
		if seen[key] {
			continue
		}
		seen[key] = true
		if err := mk(m.v1Base[c], leaf, nil); err != nil {
			return err
		}
	}
	return nil
}

// Controllers lists the resource controllers app cgroups get: the v1
// hierarchies found, or the cgroup2 controllers enabled for children.
func (m *Manager) Controllers() []string {
	if m.mode == ModeUnified {
		return slices.Clone(m.v2Enable)
	}
	out := make([]string, 0, len(m.v1Base))
	for _, c := range v1Controllers {
		if _, ok := m.v1Base[c]; !ok || (c == "freezer" && m.mode == ModeHybrid) {
			continue // hybrid hosts freeze and kill through cgroup2
		}
		out = append(out, c)
	}
	return out
}
