package client

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pinfold/pinfold/ipc"
)

// FDsEnv names the environment variable listing the channels pinfold
// opened for the app before it started: "name:fd,name:fd".
const FDsEnv = "PINFOLD_FDS"

// ParseChannels reads a PINFOLD_FDS value: comma-separated name:fd pairs,
// each name a valid object name (ipc.ValidName) and each fd a decimal
// descriptor number, with no name or descriptor listed twice. An empty
// value lists no channels.
func ParseChannels(v string) (map[string]int, error) {
	out := map[string]int{}
	if v == "" {
		return out, nil
	}
	fds := map[int]string{}
	for i, item := range strings.Split(v, ",") {
		name, num, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("%s entry %d %q is not name:fd", FDsEnv, i+1, item)
		}
		if err := ipc.ValidName(name); err != nil {
			return nil, fmt.Errorf("%s entry %d: %w", FDsEnv, i+1, err)
		}
		fd, err := strconv.Atoi(num)
		if err != nil || fd < 0 || fd > 1<<30 || strconv.Itoa(fd) != num {
			return nil, fmt.Errorf("%s entry %d: %q is not a descriptor number", FDsEnv, i+1, num)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s lists channel %s twice", FDsEnv, name)
		}
		if other, dup := fds[fd]; dup {
			return nil, fmt.Errorf("%s lists descriptor %d for both %s and %s", FDsEnv, fd, other, name)
		}
		out[name], fds[fd] = fd, name
	}
	return out, nil
}
