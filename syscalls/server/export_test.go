package server

// Borrowed is the number of message buffers out of the pool: 0 when every
// server is idle.
func Borrowed() int64 { return borrowed.Load() }
