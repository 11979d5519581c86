package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/pinfold/pinfold/ipc"
	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/server"
	"github.com/pinfold/pinfold/syscalls/server/servertest"
)

// The benchmarks measure app -> pinfold -> app as it happens in
// production: the app is another process (this test binary re-executed,
// see benchApp) doing plain blocking sendmsg/recvmsg on its end of a
// socketpair, as a C or Python app would; this process serves the other
// end with Serve. The app reports the median and 99th percentile of its
// round trips (p50-ns, p99-ns); ns/op is the app's mean. Run them pinned to
// one CPU (taskset -c 0) to compare with a same-CPU anchor.

const benchAppEnv = "PINFOLD_SERVER_BENCH_APP"

// BenchmarkRoundTrip: a nop, a call returning a descriptor (shm_attach;
// the app closes each), and a batch of 16 nops in one message.
func BenchmarkRoundTrip(b *testing.B) {
	sess := servertest.New("bench", "pol")
	defer sess.Close()
	fd, err := sess.ShmCreate("bench/shm", 4096)
	if err != nil {
		b.Fatal(err)
	}
	syscalls.Close(fd)
	for _, mode := range []string{"nop", "fd", "batch16nop"} {
		b.Run(mode, func(b *testing.B) {
			app, srv, err := syscalls.SeqpacketPair()
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- server.Serve(context.Background(), srv, sess, server.Options{}) }()
			runBenchApp(b, mode, app)
			if err := <-done; err != nil {
				b.Error(err)
			}
		})
	}
}

// BenchmarkRawPingPong is the anchor: the same app, socketpair and nop
// message, echoed back by a goroutine of this process doing blocking
// recvmsg/sendmsg, with no decoding or dispatch.
func BenchmarkRawPingPong(b *testing.B) {
	app, srv, err := syscalls.SeqpacketPair()
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		defer srv.Close()
		buf := make([]byte, abi.MaxMessage)
		for {
			m, _, err := syscalls.CtlRecvmsg(int(srv.Fd()), buf, nil, false)
			if err != nil || m.N == 0 {
				return
			}
			if _, err := syscalls.CtlSendmsg(int(srv.Fd()), buf[:m.N], nil, false); err != nil {
				return
			}
		}
	}()
	runBenchApp(b, "nop", app)
}

// runBenchApp runs b.N round trips in a child process on app (closed
// here) and reports its latencies.
func runBenchApp(b *testing.B, mode string, app *os.File) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchAppEnv+"="+mode, "PINFOLD_BENCH_N="+strconv.Itoa(b.N))
	cmd.ExtraFiles = []*os.File{app}
	cmd.Stderr = os.Stderr
	b.ResetTimer()
	out, err := cmd.Output()
	b.StopTimer()
	app.Close()
	if err != nil {
		b.Fatalf("bench app: %v", err)
	}
	var mean, p50, p99 float64
	if _, err := fmt.Sscan(string(out), &mean, &p50, &p99); err != nil {
		b.Fatalf("bench app said %q: %v", out, err)
	}
	b.ReportMetric(mean, "ns/op")
	b.ReportMetric(p50, "p50-ns")
	b.ReportMetric(p99, "p99-ns")
}

// benchApp is the app side of the benchmarks, run by TestMain in a child
// process: round trips on fd 3, then "mean p50 p99" in ns on stdout.
func benchApp(mode string) error {
	n, err := strconv.Atoi(os.Getenv("PINFOLD_BENCH_N"))
	if err != nil {
		return err
	}
	const fd = 3
	var b abi.RequestBuilder
	b.Reset(nil, 0)
	wantFDs := 0
	switch mode {
	case "nop":
		b.Begin(1, abi.SysNop)
		b.End()
	case "fd":
		b.Begin(1, abi.SysShmAttach)
		b.String("bench/shm")
		b.U64(uint64(ipc.Read))
		b.End()
		wantFDs = 1
	case "batch16nop":
		for i := range 16 {
			b.Begin(uint64(i+1), abi.SysNop)
			b.End()
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	msg, err := b.Finish()
	if err != nil {
		return err
	}
	in := make([]byte, abi.MaxMessage)
	oob := make([]byte, syscalls.RightsSpace(abi.MaxFDs))
	var rep abi.Reply
	var fds []int
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		if _, err := syscalls.CtlSendmsg(fd, msg, nil, false); err != nil {
			return err
		}
		m, _, err := syscalls.CtlRecvmsg(fd, in, oob, false)
		if err != nil {
			return err
		}
		lat[i] = time.Since(t0)
		if mode != "nop" || m.N != len(msg) { // the raw echo returns the request
			if err := abi.DecodeReply(in[:m.N], &rep); err != nil || rep.Results[0].Errno != 0 {
				return fmt.Errorf("reply: %v %+v", err, rep.Results)
			}
		}
		fds, _ = syscalls.ParseRights(oob[:m.OOBN], fds[:0])
		if len(fds) != wantFDs {
			return fmt.Errorf("%d descriptors, want %d", len(fds), wantFDs)
		}
		for _, fd := range fds {
			syscalls.Close(fd)
		}
	}
	total := time.Since(start)
	slices.Sort(lat)
	fmt.Println(total.Nanoseconds()/int64(max(n, 1)), lat[n/2].Nanoseconds(), lat[n*99/100].Nanoseconds())
	return nil
}
