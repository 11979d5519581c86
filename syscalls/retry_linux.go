package syscalls

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// retry calls fn until it returns something other than EINTR.
func retry(fn func() error) error {
	for {
		err := fn()
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// retryN is retry for calls that also return a value.
func retryN[T any](fn func() (T, error)) (T, error) {
	for {
		v, err := fn()
		if !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
}

func errorIs(err, target error) bool { return errors.Is(err, target) }

// uintptrOf returns the address of the first element of a non-empty slice.
func uintptrOf(s []uint32) uintptr { return uintptr(unsafe.Pointer(&s[0])) }
