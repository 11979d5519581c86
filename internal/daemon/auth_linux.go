package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"

	"connectrpc.com/connect"

	"github.com/pinfold/pinfold/sandbox/events"
	"github.com/pinfold/pinfold/syscalls"
)

// Peer is who is on the other end of an API connection, from SO_PEERCRED.
type Peer struct {
	UID, GID uint32
	PID      int32
	// inGroup: the peer's process is a member of the daemon's --group.
	inGroup bool
}

// Root reports whether the peer is uid 0.
func (p Peer) Root() bool { return p.UID == 0 }

func (p Peer) events() events.Peer { return events.Peer{UID: p.UID, GID: p.GID, PID: p.PID} }

type peerKey struct{}

// peerFrom returns the peer stored in ctx by connContext.
func peerFrom(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

// connContext attaches the connection's peer credentials to every request
// on it (http.Server.ConnContext). A connection whose credentials cannot be
// read gets none, and every request on it is refused.
func (d *Daemon) connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *syscalls.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = syscalls.PeerCred(int(fd)) }); err != nil || cerr != nil {
		return ctx
	}
	p := Peer{UID: cred.UID, GID: cred.GID, PID: cred.PID}
	if d.groupSet {
		p.inGroup = p.GID == d.groupID
		if !p.inGroup {
			var groups []uint32
			var gerr error
			if err := raw.Control(func(fd uintptr) { groups, gerr = syscalls.PeerGroups(int(fd)) }); err == nil && gerr == nil {
				p.inGroup = slices.Contains(groups, d.groupID)
			}
		}
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// errNotAllowed is what a peer that is neither root nor in --group gets.
var errNotAllowed = errors.New("permission denied: the pinfold daemon accepts root and members of its --group only")

// authorize checks the peer of ctx against the daemon's access rule and
// records the call as an audit event; it returns the peer and the event id
// (the causal parent of whatever the call does).
func (d *Daemon) authorize(ctx context.Context, procedure string) (Peer, uint64, error) {
	p, ok := peerFrom(ctx)
	if !ok {
		return Peer{}, 0, connect.NewError(connect.CodePermissionDenied, errors.New("permission denied: the peer's credentials could not be read"))
	}
	allowed := p.Root() || p.inGroup
	detail := procedure
	if !allowed {
		detail = procedure + " (denied)"
	}
	id := d.events.Emit(events.Event{Kind: events.APICall, Detail: detail, Peer: p.events()})
	if !allowed {
		return p, id, connect.NewError(connect.CodePermissionDenied, errNotAllowed)
	}
	return p, id, nil
}

// requireRoot refuses what only root may do.
func requireRoot(p Peer, what string) error {
	if p.Root() {
		return nil
	}
	return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("permission denied: only root may %s (uid %d)", what, p.UID))
}
