package applog

import "errors"

// Sentinels returned by Log and Reader methods; test with errors.Is.
var (
	// ErrClosed: Write on a log that was closed or removed.
	ErrClosed = errors.New("app log is closed")
	// ErrRemoved: a new reader on a log whose file was removed.
	ErrRemoved = errors.New("app log was removed")
	// ErrReaderClosed: a read on a Reader after (or during) its Close.
	ErrReaderClosed = errors.New("app log reader is closed")
	// ErrInvalidSize: Open with a size cap below 1 byte.
	ErrInvalidSize = errors.New("invalid app log size")
)
