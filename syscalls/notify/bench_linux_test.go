package notify

import (
	"syscall"
	"testing"
	"time"

	"github.com/pinfold/pinfold/ipc"
)

// dupBroker answers every MQOpen with a copy of one open queue, so that a
// benchmark measures the mediation (notification, memory reads, ID check,
// injection, wake-up) rather than the broker's bookkeeping.
type dupBroker struct{ fd int }

func (d dupBroker) MQOpen(string, ipc.MQAttr, ipc.Access, ipc.MQFlags) (int, ipc.MQAttr, bool, error) {
	fd, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(d.fd), syscall.F_DUPFD_CLOEXEC, 0)
	if e != 0 {
		return -1, ipc.MQAttr{}, false, e
	}
	return int(fd), ipc.MQAttr{}, false, nil
}

func (dupBroker) Unlink(string) error { return nil }

// BenchmarkNotifiedMQOpen times mq_open as the app sees it, from its side
// (a raw syscall of an existing queue, then close, which is not notified),
// and reports the mean, median and 99th percentile per call (run it with
// -benchtime=2000x). "dup" answers with a copy of an open queue, so it
// measures the mediation alone; "open" has the test broker open the
// kernel queue by name each time; "-syncwakeup" sets
// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP on the listener.
func BenchmarkNotifiedMQOpen(b *testing.B) {
	cases := []struct {
		name       string
		syncWakeUp bool
		kernelOpen bool // the test broker opens the kernel queue by name each time
	}{
		{"dup", false, false},
		{"dup-syncwakeup", true, false},
		{"open", false, true},
		{"open-syncwakeup", true, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			requireNotify(b)
			a := startApp(b)
			tb := newTestBroker(b)
			var broker MQBroker = tb
			if !c.kernelOpen {
				fd, _, _, err := tb.MQOpen("bench", ipc.MQAttr{MaxMsg: 1, MsgSize: 16}, ipc.ReadWrite, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer syscall.Close(fd)
				broker = dupBroker{fd}
			} else if _, _, _, err := tb.MQOpen("bench", ipc.MQAttr{MaxMsg: 1, MsgSize: 16}, ipc.ReadWrite, 0); err != nil {
				b.Fatal(err)
			}
			if c.syncWakeUp {
				if err := a.listener.SetSyncWakeUp(); err != nil {
					b.Skipf("SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: %v", err)
				}
			}
			a.serve(&Server{Handler: (&MQ{Broker: broker}).Handle})
			b.ResetTimer()
			r := a.do(command{Op: "bench", Name: "bench", Oflag: syscall.O_RDWR, N: b.N})
			b.StopTimer()
			if r.Errno != 0 {
				b.Fatalf("mq_open in the app: %v", r.Errno)
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(us(r.Mean), "mean-µs")
			b.ReportMetric(us(r.P50), "p50-µs")
			b.ReportMetric(us(r.P99), "p99-µs")
		})
	}
}

// BenchmarkKernelMQOpen is the same loop as BenchmarkNotifiedMQOpen in
// this process, which has no filter: the kernel's own mq_open.
func BenchmarkKernelMQOpen(b *testing.B) {
	tb := newTestBroker(b)
	fd, _, _, err := tb.MQOpen("bench", ipc.MQAttr{MaxMsg: 1, MsgSize: 16}, ipc.ReadWrite, 0)
	if err != nil {
		b.Fatal(err)
	}
	syscall.Close(fd)
	name := tb.kernelName("bench")
	d := make([]time.Duration, b.N)
	b.ResetTimer()
	t0 := time.Now()
	for i := range d {
		t := time.Now()
		fd, e := mqOpenRaw(name, syscall.O_RDWR, nil)
		d[i] = time.Since(t)
		if e != 0 {
			b.Fatal(e)
		}
		syscall.Close(fd)
	}
	mean := time.Since(t0) / time.Duration(b.N)
	b.StopTimer()
	p50, p99 := percentiles(d)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(us(mean), "mean-µs")
	b.ReportMetric(us(p50), "p50-µs")
	b.ReportMetric(us(p99), "p99-µs")
}

// BenchmarkUnrelatedSyscall times getppid(2), which the filter allows, in
// the app under the notify filter, against the same loop in this process,
// which has no filter.
func BenchmarkUnrelatedSyscall(b *testing.B) {
	b.Run("filtered", func(b *testing.B) {
		requireNotify(b)
		a := startApp(b)
		b.ResetTimer()
		r := a.do(command{Op: "getppid", N: b.N})
		b.StopTimer()
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(r.Mean.Nanoseconds()), "ns/syscall")
	})
	b.Run("unfiltered", func(b *testing.B) {
		t0 := time.Now()
		for range b.N {
			syscall.RawSyscall(syscall.SYS_GETPPID, 0, 0, 0)
		}
		d := time.Since(t0)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "ns/syscall")
	})
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
