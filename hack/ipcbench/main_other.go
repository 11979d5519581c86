//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "ipcbench: pinfold's IPC runs on Linux only")
	os.Exit(1)
}
