package monitor

import (
	"bufio"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// The test binary doubles as the app whose memory is watched, like
// os/exec's tests: TestMain runs a helper role instead of the tests when
// roleEnv is set.
const roleEnv = "PINFOLD_MONITOR_TEST_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(m.Run())
}

func runRole(role string) int {
	if role != "hog" {
		fmt.Fprintln(os.Stderr, "unknown role", role)
		return 2
	}
	// hog: one command per line on stdin, "ok" on stdout after each.
	//   +N    allocate and touch N more KiB, and keep them
	//   free  drop everything allocated and return it to the kernel
	var keep [][]byte
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd := strings.TrimSpace(in.Text())
		switch {
		case strings.HasPrefix(cmd, "+"):
			n, err := strconv.Atoi(cmd[1:])
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			b := make([]byte, n<<10)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			keep = append(keep, b)
		case cmd == "free":
			keep = nil
			debug.FreeOSMemory()
		default:
			fmt.Println("error: unknown command", cmd)
			return 1
		}
		fmt.Println("ok")
	}
	return 0
}
