//go:build race

package server_test

// The race detector allocates on synchronisation; allocation counts are
// only checked without it.
const raceEnabled = true
