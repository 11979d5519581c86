package server_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/server"
	"github.com/pinfold/pinfold/syscalls/server/servertest"
)

// TestPython runs the Python client's tests (syscalls/python/
// test_pinfold.py) in a python3 child process whose PINFOLD_CTL_FD is
// served by Serve with a servertest.Session, and checks what the script
// left in shared memory. See the script's docstring for the setup it
// expects.
func TestPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	dir, err := filepath.Abs("../python")
	if err != nil {
		t.Fatal(err)
	}

	sess := servertest.New("pyapp"+strings.Repeat("-", 3000), "consumer")
	sess.MaxObjects = 16
	sess.MaxSize = 1 << 16
	sess.Fail = map[string]error{"gone": &ipc.Error{Op: "pipe_open", Name: "gone", Errno: syscall.EPIPE, Reason: "the read end of pipe gone is closed"}}
	defer sess.Close()
	writeShm(t, sess, "from-go", []byte("hello from go"))

	// A pre-opened channel, as pinfold places them: a memfd at fd 4.
	gfd, err := syscalls.MemfdCreate("greeting")
	if err != nil {
		t.Fatal(err)
	}
	greeting := os.NewFile(uintptr(gfd), "greeting")
	defer greeting.Close()
	if err := greeting.Truncate(4096); err != nil {
		t.Fatal(err)
	}
	if _, err := greeting.WriteAt([]byte("greeting from go"), 0); err != nil {
		t.Fatal(err)
	}

	var names []string
	for e := abi.Errno(1); e <= abi.MaxErrnoName; e++ {
		if !strings.HasPrefix(e.Name(), "errno ") {
			names = append(names, fmt.Sprintf("%d:%s", e, e.Name()))
		}
	}

	app, srv, err := syscalls.SeqpacketPair()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- server.Serve(context.Background(), srv, sess, server.Options{}) }()

	// -E -s: ignore PYTHON* variables and the user's site-packages, so
	// that only the standard library is importable besides the module.
	cmd := exec.Command(python, "-E", "-s", "-B", filepath.Join(dir, "test_pinfold.py"))
	cmd.Dir = dir
	cmd.ExtraFiles = []*os.File{app, greeting} // fds 3 and 4
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"PINFOLD_CTL_FD=3",
		"PINFOLD_FDS=greeting:4",
		"PINFOLD_TEST_ERRNO_NAMES=" + strings.Join(names, ","),
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	app.Close()
	t.Logf("python3 test_pinfold.py:\n%s", out.String())
	if err != nil {
		t.Fatalf("the Python client's tests failed: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if !strings.Contains(out.String(), "OK") {
		t.Fatal("the Python tests did not report OK")
	}

	// What Python wrote through its mmap is in the shared memory.
	fd, _, err := sess.ShmAttach("py/out", ipc.Read)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "py/out")
	defer f.Close()
	got := make([]byte, 17)
	if _, err := f.ReadAt(got, 0); err != nil || string(got) != "hello from python" {
		t.Fatalf("py/out holds %q (%v), want %q", got, err, "hello from python")
	}
}

func writeShm(t *testing.T, sess *servertest.Session, name string, data []byte) {
	t.Helper()
	fd, err := sess.ShmCreate(name, 4096)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
}
