package client

import (
	"fmt"
	"os"

	"github.com/pinfold/pinfold/syscalls"
)

// Channels returns the channels pinfold opened for the app before it
// started, by name, as listed in PINFOLD_FDS (none when it is unset). Each
// descriptor must be open. Call it once: the Files own the descriptors.
func Channels() (map[string]*os.File, error) {
	m, err := ParseChannels(os.Getenv(FDsEnv))
	if err != nil {
		return nil, err
	}
	for name, fd := range m {
		if _, _, err := syscalls.StatFD(fd); err != nil {
			return nil, fmt.Errorf("%s lists descriptor %d for channel %s, which is not open: %w", FDsEnv, fd, name, err)
		}
	}
	out := make(map[string]*os.File, len(m))
	for name, fd := range m {
		out[name] = os.NewFile(uintptr(fd), "pinfold:"+name)
	}
	return out, nil
}
