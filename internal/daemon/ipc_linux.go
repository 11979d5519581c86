package daemon

import (
	"strings"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/sandbox/events"
)

// The daemon's IPC broker: made in New with ipcEvent as its event sink,
// shared by every app through the supervisor, closed by Shutdown once every
// app is cleaned.

// ipcKinds maps the broker's event kinds to the log's.
var ipcKinds = [...]events.Kind{
	ipc.Granted:  events.IPCGranted,
	ipc.Denied:   events.IPCDenied,
	ipc.Created:  events.IPCCreated,
	ipc.Removed:  events.IPCRemoved,
	ipc.Released: events.IPCReleased,
	ipc.Hostile:  events.IPCHostile,
}

// ipcEvent is the broker's event sink. The broker calls it synchronously,
// outside its locks, from the goroutine of the call that caused the event
// (an app's control-channel server, a seccomp notification, an app's
// cleanup), possibly from several at once; it must not block and must not
// call back into the broker. It only reads the app table (under the read
// lock, which no holder keeps across anything slow) and the app's latest
// event id (an atomic load), and appends to the event log, which never
// blocks.
//
// App is the app that caused the event (for a removal the broker made by
// itself, at its close, the object's owner) and Other the owner of the
// object concerned, so that every grant and every denial names both apps
// ("" when the object does not exist). IPC events hang off the acting
// app's latest lifecycle event (app.running while it runs; the release
// when its pid 1 is reaped comes before app.exited) without becoming the
// parent of the next one: an app's lifecycle stays one chain, its IPC
// events are leaves of it.
func (d *Daemon) ipcEvent(e ipc.Event) {
	var kind events.Kind
	if int(e.Kind) < len(ipcKinds) {
		kind = ipcKinds[e.Kind]
	}
	if kind == 0 {
		return // a kind this daemon does not know yet: nothing to map it to
	}
	app := e.App
	if app == "" {
		app = e.Owner
	}
	ev := events.Event{Kind: kind, App: app, Other: e.Owner, Detail: ipcDetail(&e)}
	switch e.Kind {
	case ipc.Denied:
		ev.Value = int64(e.Errno)
	case ipc.Created, ipc.Released:
		ev.Value = e.Size
	}
	if a := d.appByID(app); a != nil {
		ev.Parent = a.last.Load()
	}
	d.events.Emit(ev)
}

// ipcDetail formats an event's Detail: the object ("kind name"), what
// was granted or asked for, and the broker's reason. A denial starts with
// the call that was refused.
//
//	ipc.granted   shm results/1 read: read access to shm results/1 of app ..., as attach grant of policy ...
//	ipc.denied    shm_attach shm results/1 readwrite: ...
//	ipc.created   shm results/1: shm of 4096 bytes
//	ipc.removed   shm results/1: its owner ... exited
//	ipc.released  app exited: released 1 handle(s) on 1 object(s); ...
//	ipc.hostile   control channel closed: ...
func ipcDetail(e *ipc.Event) string {
	var b strings.Builder
	word := func(s string) {
		if s == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s)
	}
	switch e.Kind {
	case ipc.Released, ipc.Hostile:
		return e.Reason
	case ipc.Denied:
		word(e.Op)
	}
	if e.ObjKind != 0 {
		word(e.ObjKind.String())
	}
	word(e.Object)
	if (e.Kind == ipc.Granted || e.Kind == ipc.Denied) && e.Access != 0 {
		word(e.Access.String())
	}
	if e.Reason != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Reason)
	}
	return b.String()
}

// appByID returns the app with id, or nil (not created yet: the broker
// reports the channels an app gets before Start returns its id).
func (d *Daemon) appByID(id string) *appEntry {
	if id == "" {
		return nil
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.apps[id]
}

// ipcObjects describes the broker's objects that app id owns: those it
// created, while it runs, and the persistent ones (or ones still held by
// others) that outlive it.
func (d *Daemon) ipcObjects(id string) []*v1.IpcObject {
	var out []*v1.IpcObject
	for _, o := range d.broker.Objects() {
		if o.Owner != id {
			continue
		}
		out = append(out, &v1.IpcObject{
			Name:        o.Name,
			Kind:        o.Kind.String(),
			Size:        o.Size,
			Owner:       o.Owner,
			OwnerPolicy: o.OwnerPolicy,
			Holders:     int32(o.Holders),
			Persistent:  o.Persistent,
			Unlinked:    o.Unlinked,
			Created:     timeProto(o.Created),
			MaxMsg:      o.MaxMsg,
			MsgSize:     o.MsgSize,
		})
	}
	return out
}
