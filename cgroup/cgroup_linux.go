package cgroup

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/cgroups/v3"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// cgroupImpl is what both implementations offer this package.
type cgroupImpl interface {
	Cgroup
	// apply writes limits; creating is true right after the directories were
	// made, when unset limits need no reset.
	apply(r *specs.LinuxResources, creating bool) error
}

// Load reopens a cgroup from the Paths that Cgroup.Paths returned, possibly
// in another process: it needs neither a Manager nor the cgroup the caller
// runs in. Directories that are already gone are tolerated, so a cgroup that
// was partly deleted can still be killed and deleted.
//
// p must come from a trusted record. Load checks that every directory is a
// proper descendant, at least Depth levels deep, of the hierarchy it names,
// and that it does not contain the calling process, so a damaged record
// cannot make Kill act on a root cgroup or on the supervisor itself; it
// cannot tell whose cgroup it is otherwise.
func Load(p Paths) (Cgroup, error) {
	if err := checkPaths(p); err != nil {
		return nil, err
	}
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	own, ownUnified, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("loading cgroup: reading the caller's cgroups: %w", err)
	}
	var v1Root string
	for _, c := range slices.Sorted(maps.Keys(p.V1)) {
		mnt, ok := v1MountOf(mounts, c)
		if !ok {
			return nil, fmt.Errorf("loading cgroup: cgroup v1 controller %s is not mounted: %w", c, ErrNotSupported)
		}
		root := filepath.Dir(mnt.Point)
		if err := checkUnder(p.V1[c], filepath.Join(root, c), p.Depth); err != nil {
			return nil, fmt.Errorf("loading cgroup: paths.v1[%s]: %w", c, err)
		}
		if err := checkNotSelf(p.V1[c], filepath.Join(root, c), mnt.Root, own[c]); err != nil {
			return nil, fmt.Errorf("loading cgroup: paths.v1[%s]: %w", c, err)
		}
		if v1Root != "" && root != v1Root {
			return nil, fmt.Errorf("loading cgroup: cgroup v1 hierarchies are mounted in both %s and %s: %w", v1Root, root, ErrNotSupported)
		}
		v1Root = root
	}
	if p.Unified != "" {
		point := cgroupRoot
		if p.Mode == ModeHybrid {
			point = hybridUnifiedPath
		}
		i := slices.IndexFunc(mounts, func(m mount) bool { return m.V2 && m.Point == point })
		if i < 0 {
			return nil, fmt.Errorf("loading cgroup: no cgroup2 filesystem is mounted at %s: %w", point, ErrNotSupported)
		}
		if err := checkUnder(p.Unified, point, p.Depth); err != nil {
			return nil, fmt.Errorf("loading cgroup: paths.unified: %w", err)
		}
		if err := checkNotSelf(p.Unified, point, mounts[i].Root, ownUnified); err != nil {
			return nil, fmt.Errorf("loading cgroup: paths.unified: %w", err)
		}
	}
	cg, err := newCgroup(p)
	if err != nil {
		return nil, fmt.Errorf("loading cgroup: %w", err)
	}
	return cg, nil
}

// checkPaths checks the shape of p, before any file system access.
func checkPaths(p Paths) error {
	bad := func(problem string) error {
		return fmt.Errorf("loading cgroup: %s: %w", problem, ErrInvalid)
	}
	if p.Depth < 1 {
		return bad(fmt.Sprintf("depth %d is below 1", p.Depth))
	}
	switch p.Mode {
	case ModeUnified:
		if p.Unified == "" || len(p.V1) > 0 {
			return bad("a unified cgroup has a unified path and no v1 paths")
		}
	case ModeLegacy:
		if len(p.V1) == 0 || p.Unified != "" {
			return bad("a legacy cgroup has v1 paths and no unified path")
		}
	case ModeHybrid:
		if len(p.V1) == 0 {
			return bad("a hybrid cgroup has v1 paths")
		}
	default:
		return bad(fmt.Sprintf("unknown mode %q", p.Mode))
	}
	for c := range p.V1 {
		if !slices.Contains(v1Controllers, c) {
			return bad(fmt.Sprintf("paths.v1 names controller %q, which pinfold does not use", c))
		}
	}
	return nil
}

// checkUnder checks that dir is a clean absolute path at least depth levels
// below hierarchy.
func checkUnder(dir, hierarchy string, depth int) error {
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir {
		return fmt.Errorf("%q is not a clean absolute path: %w", dir, ErrInvalid)
	}
	rel, err := filepath.Rel(hierarchy, dir)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%q is not below the hierarchy %s: %w", dir, hierarchy, ErrInvalid)
	}
	if n := len(strings.Split(rel, "/")); n < depth {
		return fmt.Errorf("%q is %d levels below %s, fewer than its depth %d: %w", dir, n, hierarchy, depth, ErrInvalid)
	}
	return nil
}

// checkNotSelf refuses dir if the caller's own cgroup in that hierarchy (own,
// as /proc/self/cgroup shows it, mounted from mountRoot at hierarchy) is dir
// or below it: killing such a cgroup would kill the caller.
func checkNotSelf(dir, hierarchy, mountRoot, own string) error {
	if own == "" {
		return nil
	}
	rel, err := filepath.Rel(mountRoot, own)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil // the caller is outside this mount's view
	}
	self := filepath.Join(hierarchy, rel)
	if self == dir || strings.HasPrefix(self, dir+"/") {
		return fmt.Errorf("%s contains the calling process (in %s): %w", dir, self, ErrInvalid)
	}
	return nil
}

// newCgroup opens the cgroup at p (created or loaded).
func newCgroup(p Paths) (cgroupImpl, error) {
	p.V1 = maps.Clone(p.V1)
	var unified *unifiedDir
	if p.Unified != "" {
		var err error
		if unified, err = openUnifiedDir(p.Unified); err != nil {
			return nil, err
		}
	}
	if p.Mode == ModeUnified {
		return &v2Cgroup{paths: p, dir: unified}, nil
	}
	return newV1Cgroup(p, unified), nil
}

// deleteDirs removes every directory of p, and then the empty shared parents.
func deleteDirs(p Paths) error {
	var errs []error
	del := func(what, dir string) {
		if err := removeTree(dir); err != nil {
			errs = append(errs, fmt.Errorf("deleting cgroup %s (%s): %w", dir, what, err))
			return
		}
		if err := removeParents(dir, p.Depth-1); err != nil {
			errs = append(errs, fmt.Errorf("deleting cgroup %s (%s): %w", dir, what, err))
		}
	}
	if p.Unified != "" {
		del("cgroup2", p.Unified)
	}
	for _, c := range v1Controllers {
		if dir, ok := p.V1[c]; ok {
			del(c, dir)
		}
	}
	return errors.Join(errs...)
}
