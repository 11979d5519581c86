// Command loadgen drives a pinfold daemon for the benchmarks in
// hack/bench-daemon.sh:
//
//	loadgen -host unix:///run/pinfold/pinfold.sock throughput -c 8 -d 10s -- /bin/true
//	loadgen -host ... idle -n 1000 -pid DAEMONPID
//
// throughput runs attached apps back to back from c clients for d and
// prints apps/second and start-to-exit latency percentiles. idle creates n
// detached apps that sleep, then prints the daemon's resident memory, then
// removes them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	v1 "github.com/pinfold/pinfold/api/pinfold/v1"
	"github.com/pinfold/pinfold/internal/client"
)

func main() {
	host := flag.String("host", os.Getenv(client.EnvHost), "daemon `HOST` (unix:///path)")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: loadgen -host HOST throughput|idle [flags]")
		os.Exit(2)
	}
	c, err := client.Dial(*host)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	defer c.Close()
	switch flag.Arg(0) {
	case "throughput":
		err = throughput(c, flag.Args()[1:])
	case "idle":
		err = idle(c, flag.Args()[1:])
	default:
		err = fmt.Errorf("unknown mode %q", flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func runOnce(ctx context.Context, c *client.Client, args []string) error {
	st := c.Apps.Run(ctx)
	if err := st.Send(&v1.RunRequest{Msg: &v1.RunRequest_Start{Start: &v1.RunStart{Spec: &v1.AppSpec{Args: args}}}}); err != nil {
		return err
	}
	if err := st.CloseRequest(); err != nil {
		return err
	}
	for {
		resp, err := st.Receive()
		if err != nil {
			return err
		}
		if x, ok := resp.Msg.(*v1.RunResponse_Exit); ok {
			st.CloseResponse()
			if x.Exit.Code != 0 {
				return fmt.Errorf("app exited %d", x.Exit.Code)
			}
			return nil
		}
	}
}

func throughput(c *client.Client, args []string) error {
	fs := flag.NewFlagSet("throughput", flag.ExitOnError)
	conc := fs.Int("c", 8, "concurrent clients")
	dur := fs.Duration("d", 10*time.Second, "duration")
	warm := fs.Int("warmup", 20, "apps run before measuring")
	fs.Parse(args)
	cmd := fs.Args()
	if len(cmd) == 0 {
		cmd = []string{"/bin/true"}
	}
	ctx := context.Background()
	for i := 0; i < *warm; i++ {
		if err := runOnce(ctx, c, cmd); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	var (
		mu    sync.Mutex
		lat   []time.Duration
		fails atomic.Int64
		first atomic.Value
	)
	deadline := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t := time.Now()
				if err := runOnce(ctx, c, cmd); err != nil {
					fails.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				d := time.Since(t)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(p*float64(len(lat)-1))]
	}
	fmt.Printf("throughput: %d apps in %.2fs with %d clients = %.1f apps/s; latency p50 %.2fms p90 %.2fms p99 %.2fms; failures %d\n",
		len(lat), elapsed.Seconds(), *conc, float64(len(lat))/elapsed.Seconds(),
		ms(pct(0.5)), ms(pct(0.9)), ms(pct(0.99)), fails.Load())
	if f := first.Load(); f != nil {
		return errors.New("first failure: " + f.(string))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func idle(c *client.Client, args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	n := fs.Int("n", 1000, "idle apps")
	pid := fs.Int("pid", 0, "daemon pid (for its resident memory)")
	fs.Parse(args)
	ctx := context.Background()
	rssBefore := rss(*pid)
	ids := make([]string, 0, *n)
	defer func() {
		for _, id := range ids {
			c.Apps.Remove(ctx, connect.NewRequest(&v1.RemoveRequest{Id: id, Force: true}))
		}
	}()
	t := time.Now()
	for i := 0; i < *n; i++ {
		r, err := c.Apps.Create(ctx, connect.NewRequest(&v1.CreateRequest{Start: true,
			Spec: &v1.AppSpec{Name: "idle", Args: []string{"/bin/sleep", "3600"}}}))
		if err != nil {
			return fmt.Errorf("app %d: %w", i, err)
		}
		ids = append(ids, r.Msg.App.Id)
	}
	took := time.Since(t)
	time.Sleep(2 * time.Second) // let the runtime settle
	fmt.Printf("idle: %d apps started in %.1fs; daemon RSS %s before, %s with %d idle apps\n",
		*n, took.Seconds(), mib(rssBefore), mib(rss(*pid)), *n)
	return nil
}

func mib(kb int) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

// rss returns VmRSS of pid in KiB.
func rss(pid int) int {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(v)[0])
			return n
		}
	}
	return 0
}
