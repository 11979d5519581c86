package ipc

import (
	"fmt"
	"syscall"
)

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// Granted: a handle (a descriptor) was handed out, to the creator or
	// to another app.
	Granted EventKind = iota + 1
	// Denied: a call was refused; Errno and Reason say why.
	Denied
	// Created: an object now exists under a name.
	Created
	// Removed: an object is gone (its name and its memory); Reason says
	// why: unlinked by whom, its owner exited, its pipe ends closed, the
	// broker closed.
	Removed
	// Released: an app's session closed (the app exited); Reason counts
	// the holds released and the owned objects removed or kept.
	Released
	// Hostile: pinfold closed the app's control channel because of what
	// the app sent (Reason says what); its objects and holds stay until
	// it exits.
	Hostile
)

var eventKindNames = map[EventKind]string{
	Granted: "granted", Denied: "denied", Created: "created", Removed: "removed", Released: "released",
	Hostile: "hostile",
}

func (k EventKind) String() string {
	if s, ok := eventKindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one thing the broker did or refused. Every grant and every
// denial names both the app that asked (App, Policy) and the object's
// owner (Owner), when the object exists.
type Event struct {
	Kind EventKind
	// Op is the call that caused the event ("shm_attach", "unlink",
	// "close" for a session's release, "broker_close").
	Op string
	// App and Policy are the app that caused the event.
	App, Policy string
	// Owner is the app id of the object's owner; "" when there is no
	// object (or none yet).
	Owner string
	// Object is the object name; ObjKind its kind (or the kind asked for).
	Object  string
	ObjKind Kind
	// Access is what was handed out (Granted) or asked for (Denied).
	Access Access
	// Errno is what the app saw (Denied).
	Errno syscall.Errno
	// Size is the object's size in bytes (Created) or the number of
	// objects the app held when it exited (Released).
	Size   int64
	Reason string
}
