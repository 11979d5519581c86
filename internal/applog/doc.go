// Package applog owns the bounded output log of a detached app: one file per
// app in the daemon's state directory that holds the newest bytes the app
// wrote to stdout and stderr, up to a size cap, and readers that read it from
// the oldest byte still held, optionally following it until the app is gone.
//
// # Storage
//
// A Log is a ring file: a single file at the path given to Open that never
// grows past the cap. The stream of bytes written is numbered from 0; byte n
// is stored at file offset n mod max, so a write past the cap overwrites the
// oldest bytes in place. "Oldest dropped" therefore has byte granularity: the
// log always holds exactly the last min(written, max) bytes, and Dropped
// counts every byte written that is no longer held. A single write larger
// than the cap keeps only its last max bytes.
//
// A write is one pwrite (two when it wraps around the end of the file) under
// the log's mutex, without fsync: the log lives as long as the daemon and is
// deleted with the app, so durability across a crash is not wanted. Writers
// never wait for readers: readers hold the mutex only to read the log's
// counters (and, in NewReader, to open the file), never while reading it.
//
// # Reading
//
// Each Reader opens the file itself and reads it with pread, so readers work
// after the log was closed (the app exited) until it is removed, and a slow
// reader never holds up the app. A reader that falls more than max bytes
// behind the writer has lost data: it skips to the oldest byte still held
// and reports how many bytes it missed. A read that raced with a write over
// the same part of the file is detected (the write is published before the
// reader checks) and the overwritten prefix is counted as missed rather than
// returned torn. A following reader sleeps on a channel that the next write
// or Close closes; cancelling its context or closing the Reader wakes it.
//
// # What it does not own
//
// The package does not decide where logs live, how large they are (the
// policy does; DefaultMax when it does not say), or when they are removed,
// and it does not reopen logs after a daemon restart: apps do not survive a
// restart, and the daemon deletes the logs of an earlier run when it starts.
// It does not copy the app's pipes: the daemon's copiers call Write.
package applog
