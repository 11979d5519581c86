package server

import "errors"

// ErrHostile is returned by Serve when it closed an app's channel because
// the app sent Options.MaxMalformed malformed messages in a row. It is
// worth reporting as an event: a well-behaved client never sends one.
var ErrHostile = errors.New("control channel closed: the app sent too many malformed messages in a row")

// ErrStopped is returned by Conn.Serve after Conn.Stop.
var ErrStopped = errors.New("control channel server stopped")
