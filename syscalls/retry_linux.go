package syscalls

import (
	"errors"

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
