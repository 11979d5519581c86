package probe

import (
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// Exit codes of Main besides the ones a mode asks for.
const (
	// ExitUsage: bad arguments.
	ExitUsage = 2
	// ExitSurvived: mode selfkill sent the signal to itself and is still
	// alive (as pid 1 of a pid namespace, a process cannot kill itself).
	ExitSurvived = 3
)

// Main runs the probe and exits; it never returns. os.Args[1] selects the
// mode (report when absent):
//
//	report [PATH...]       print a Report; PATHs are extra paths to lstat
//	alloc MIB              allocate MIB mebibytes and touch every page
//	fork [CAP]             fork until it fails (at most CAP children, default
//	                       64); print a ForkResult
//	burn THREADS DURATION  print "ready", keep THREADS threads busy for
//	                       DURATION
//	exit CODE              exit with CODE
//	segv                   die of a real SIGSEGV (a fault, not kill(2))
//	selfkill SIGNAL        kill(getpid(), SIGNAL); exit ExitSurvived if alive
//	trap SIGNAL CODE       print "ready", wait for SIGNAL, print "got SIGNAL",
//	                       exit CODE
//	ignore SIGNAL          ignore SIGNAL, print "ready", sleep forever
//	sleep                  print "ready", sleep forever
//
// SIGNAL is a name such as TERM or SIGTERM, or a number.
func Main() {
	args := os.Args[1:]
	mode := "report"
	if len(args) > 0 {
		mode, args = args[0], args[1:]
	}
	os.Exit(run(mode, args))
}

func usage(format string, a ...any) int {
	fmt.Fprintf(os.Stderr, "probe: "+format+"\n", a...)
	return ExitUsage
}

func run(mode string, args []string) int {
	switch mode {
	case "report":
		r := Collect(args)
		if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
			return usage("writing report: %v", err)
		}
		return 0
	case "alloc":
		if len(args) != 1 {
			return usage("alloc MIB")
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n <= 0 {
			return usage("alloc: bad size %q", args[0])
		}
		b := make([]byte, n<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		fmt.Printf("allocated %d MiB\n", n)
		runtime.KeepAlive(b)
		return 0
	case "fork":
		limit := 64
		if len(args) == 1 {
			n, err := strconv.Atoi(args[0])
			if err != nil || n <= 0 {
				return usage("fork: bad cap %q", args[0])
			}
			limit = n
		}
		res := forkStorm(limit)
		if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
			return usage("writing result: %v", err)
		}
		return 0
	case "burn":
		if len(args) != 2 {
			return usage("burn THREADS DURATION")
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n <= 0 {
			return usage("burn: bad thread count %q", args[0])
		}
		d, err := time.ParseDuration(args[1])
		if err != nil {
			return usage("burn: %v", err)
		}
		fmt.Println("ready")
		burn(n, d)
		return 0
	case "exit":
		if len(args) != 1 {
			return usage("exit CODE")
		}
		n, err := strconv.Atoi(args[0])
		if err != nil {
			return usage("exit: bad code %q", args[0])
		}
		return n
	case "segv":
		segv()
		return usage("segv: still alive after the fault")
	case "selfkill":
		if len(args) != 1 {
			return usage("selfkill SIGNAL")
		}
		sig, ok := ParseSignal(args[0])
		if !ok {
			return usage("selfkill: bad signal %q", args[0])
		}
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			return usage("selfkill: %v", err)
		}
		fmt.Println("survived")
		return ExitSurvived
	case "trap":
		if len(args) != 2 {
			return usage("trap SIGNAL CODE")
		}
		sig, ok := ParseSignal(args[0])
		if !ok {
			return usage("trap: bad signal %q", args[0])
		}
		code, err := strconv.Atoi(args[1])
		if err != nil {
			return usage("trap: bad code %q", args[1])
		}
		c := make(chan os.Signal, 1)
		signal.Notify(c, sig)
		fmt.Println("ready")
		got := <-c
		fmt.Println("got", SignalName(got.(syscall.Signal)))
		return code
	case "ignore":
		if len(args) != 1 {
			return usage("ignore SIGNAL")
		}
		sig, ok := ParseSignal(args[0])
		if !ok {
			return usage("ignore: bad signal %q", args[0])
		}
		signal.Ignore(sig)
		fmt.Println("ready")
		sleepForever()
	case "sleep":
		fmt.Println("ready")
		sleepForever()
	}
	return usage("unknown mode %q", mode)
}

func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}

// segv dies of SIGSEGV the way a C program does: the default action is
// restored first (the Go runtime handles SIGSEGV itself), then the probe
// faults. A fault is forced on the process, so it kills even the pid 1 of a
// pid namespace, which kill(2) from inside cannot.
func segv() {
	// struct sigaction with SIG_DFL, no flags, empty mask: all zeros on
	// every architecture.
	var act [4]uint64
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGSEGV), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
		fmt.Fprintln(os.Stderr, "probe: rt_sigaction:", e)
		return
	}
	var p *int
	if len(os.Args) > 1000 { // never: keeps the compiler from seeing the nil
		p = new(int)
	}
	*p = 1
}

// forkStorm forks children that wait forever until a fork fails or limit
// children exist, then kills and reaps them all. It runs on one locked
// thread and uses raw system calls until the children are gone, so that
// the Go runtime does not need a new thread while the pids limit is hit.
func forkStorm(limit int) ForkResult {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pids := make([]int, 0, limit)
	res := ForkResult{Errno: OK, Cap: limit}
	for len(pids) < limit {
		pid, e := rawClone(0, childPause)
		if e != 0 {
			res.Errno = ErrnoName(e)
			break
		}
		pids = append(pids, pid)
	}
	res.Forked = len(pids)
	for _, pid := range pids {
		syscall.RawSyscall(syscall.SYS_KILL, uintptr(pid), uintptr(syscall.SIGKILL), 0)
	}
	for _, pid := range pids {
		var ws syscall.WaitStatus
		for {
			_, _, e := syscall.RawSyscall6(syscall.SYS_WAIT4, uintptr(pid), uintptr(unsafe.Pointer(&ws)), 0, 0, 0, 0)
			if e != syscall.EINTR {
				break
			}
		}
	}
	if ents, err := os.ReadDir("/proc/self/task"); err == nil {
		res.Threads = len(ents)
	}
	return res
}

// burn keeps n threads busy until d has passed.
func burn(n int, d time.Duration) {
	runtime.GOMAXPROCS(n + 1)
	deadline := time.Now().Add(d)
	done := make(chan uint64)
	for i := 0; i < n; i++ {
		go func() {
			runtime.LockOSThread()
			x := uint64(i)
			for time.Now().Before(deadline) {
				for j := 0; j < 10000; j++ {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
			done <- x // keeps the loop from being optimised away
		}()
	}
	for i := 0; i < n; i++ {
		<-done
	}
}

var signalNames = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"ILL": syscall.SIGILL, "ABRT": syscall.SIGABRT, "BUS": syscall.SIGBUS,
	"FPE": syscall.SIGFPE, "KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1,
	"SEGV": syscall.SIGSEGV, "USR2": syscall.SIGUSR2, "PIPE": syscall.SIGPIPE,
	"ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM, "CHLD": syscall.SIGCHLD,
	"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP,
}

// ParseSignal reads "TERM", "SIGTERM" or "15".
func ParseSignal(s string) (syscall.Signal, bool) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return syscall.Signal(n), true
	}
	if len(s) > 3 && s[:3] == "SIG" {
		s = s[3:]
	}
	sig, ok := signalNames[s]
	return sig, ok
}

// SignalName is "SIGTERM" for SIGTERM, or "SIG<n>".
func SignalName(sig syscall.Signal) string {
	for n, s := range signalNames {
		if s == sig {
			return "SIG" + n
		}
	}
	return fmt.Sprintf("SIG%d", int(sig))
}
