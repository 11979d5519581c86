package monitor

import "errors"

var (
	// ErrClosed is returned by Watcher.Watch after Watcher.Close.
	ErrClosed = errors.New("memory watcher closed")

	// ErrInvalid means bad options or arguments: levels outside 1..100 or
	// not ascending, a nil cgroup or callback.
	ErrInvalid = errors.New("invalid monitor options")
)
