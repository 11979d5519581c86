package sandbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/vfs"
)

// Spec describes one sandboxed app completely. It is plain data: building and
// validating it touches nothing; only Supervisor.Create and Start do. Specs
// are usually made from a policy with FromPolicy.
type Spec struct {
	// Name is a human label (not unique); the supervisor assigns the ID.
	Name string

	Process Process

	// Namespaces beyond pid and mount, which every sandbox has.
	Namespaces Namespaces
	Hostname   string
	User       User

	// Filesystem is the view the app gets.
	Filesystem vfs.Spec

	// Resources are the app's cgroup limits.
	Resources *specs.LinuxResources

	// Seccomp is the filter installed last before exec; nil means none.
	Seccomp *specs.LinuxSeccomp

	// Capabilities the app keeps (names like "CAP_NET_BIND_SERVICE");
	// empty drops all.
	Capabilities []string
	Rlimits      []specs.POSIXRlimit

	// WallTime kills the app when it has run this long (0: no limit).
	WallTime time.Duration
	// StopTimeout is the grace between SIGTERM and killing everything.
	StopTimeout time.Duration

	// Stdio of the app. *os.File values are passed through directly;
	// anything else is copied through a pipe like os/exec does. Nil
	// means /dev/null.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// ExtraFiles are placed in the app at fd 3, 4, ...; the control
	// channel to the IPC broker and the pre-wired channels follow them
	// (announced in PINFOLD_CTL_FD and PINFOLD_FDS).
	ExtraFiles []*os.File

	// Policy is the name the app's IPC grants are checked under (peers and
	// owners in other apps' grants name it); "" means Name.
	Policy string
	// IPC is what the app may do with IPC objects; the zero value grants
	// nothing but the calls every app has (self, list, stat, nop).
	IPC ipc.Grants
}

// Process is the app's command.
type Process struct {
	Args []string
	// Env is the complete environment; nothing of the supervisor's own
	// environment is added.
	Env []string
	Cwd string
}

// Namespaces selects the optional namespaces. pid and mount are always new.
type Namespaces struct {
	UTS, IPC, Net, Cgroup bool
	// User, when set, runs the app in a new user namespace with these maps.
	User *UserNamespace
}

// UserNamespace holds the id maps of a new user namespace.
type UserNamespace struct {
	UIDMappings []specs.LinuxIDMapping
	GIDMappings []specs.LinuxIDMapping
}

// User is the identity the app runs as (inside its user namespace, if any).
type User struct {
	UID, GID       uint32
	AdditionalGIDs []uint32
}

// Validate checks what the supervisor relies on; policies are validated in
// more detail (with file positions) by the policy package.
func (s *Spec) Validate() error {
	if len(s.Process.Args) == 0 || s.Process.Args[0] == "" {
		return fmt.Errorf("%w: no command to run", ErrInvalidSpec)
	}
	if s.Process.Cwd == "" || !filepath.IsAbs(s.Process.Cwd) {
		return fmt.Errorf("%w: working directory %q is not an absolute path", ErrInvalidSpec, s.Process.Cwd)
	}
	if s.Resources == nil {
		return fmt.Errorf("%w: no resource limits", ErrInvalidSpec)
	}
	if s.Filesystem.Cgroupfs && !s.Namespaces.Cgroup {
		return fmt.Errorf("%w: a cgroupfs view needs a cgroup namespace (without one it would show the host's cgroup tree)", ErrInvalidSpec)
	}
	if err := s.IPC.Validate(); err != nil {
		return fmt.Errorf("%w: ipc: %w", ErrInvalidSpec, err)
	}
	if s.StopTimeout < 0 || s.WallTime < 0 {
		return fmt.Errorf("%w: negative timeout", ErrInvalidSpec)
	}
	return nil
}
