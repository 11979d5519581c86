package events

import "errors"

// ErrClosed is returned by Subscription.Next after Subscription.Close.
var ErrClosed = errors.New("event subscription closed")

// ErrUnknownKind is returned by ParseKind for a name that is not a Kind.
var ErrUnknownKind = errors.New("unknown event kind")
