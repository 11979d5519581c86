package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// metrics are the rows of the table, in order, with their targets.
func metrics(cfg *config) []metric {
	return []metric{
		{id: "shm-write", name: fmt.Sprintf("shm: writer fills %s (memset)", size(cfg.shmSize)), unit: "GB/s", higher: true, minRatio: 0.9},
		{id: "shm-read", name: fmt.Sprintf("shm: reader sums %s", size(cfg.shmSize)), unit: "GB/s", higher: true, minRatio: 0.9},
		{id: "shm-handoff", name: "shm: fill + notify + read + ack", unit: "GB/s", higher: true, minRatio: 0.9},
		{id: "shm-faults", name: "shm: page faults per timed pass (both ends)", unit: "faults"},
		{id: "pipe", name: fmt.Sprintf("pipe: %s write()s, %s read()s", size(int64(cfg.chunk)), size(int64(cfg.chunk))), unit: "GB/s", higher: true, minRatio: 0.95},
		{id: "mq", name: fmt.Sprintf("mq: %d-byte messages, maxmsg %d", cfg.mqMsgSize, cfg.mqMaxMsg), unit: "msg/s", higher: true, minRatio: 0.95},
		// Anchors on the same CPU: 5.2 us (no fd), 6.3 us (fd), so the
		// targets of 10 and 15 us allow pinfold 4.8 and 8.7 us more.
		{id: "rtt-nop-p50", name: "call round trip: nop, p50", unit: "µs", maxSame: 10, budget: 4.8},
		{id: "rtt-nop-p99", name: "call round trip: nop, p99", unit: "µs"},
		{id: "rtt-fd-p50", name: "call round trip: returns 1 fd, p50", unit: "µs", maxSame: 15, budget: 8.7},
		{id: "rtt-fd-p99", name: "call round trip: returns 1 fd, p99", unit: "µs"},
		{id: "mqopen-p50", name: "mq_open: seccomp-brokered vs kernel, p50", unit: "µs"},
		{id: "mqopen-p99", name: "mq_open: seccomp-brokered vs kernel, p99", unit: "µs"},
	}
}

// bench drives one run.
type bench struct {
	cfg     *config
	ctx     context.Context
	sides   [2]*side // raw, pinfold
	stamp   uint64
	results *results
}

const cmdTimeout = 3 * time.Minute

func (b *bench) progress(format string, args ...any) {
	if b.cfg.quiet {
		return
	}
	fmt.Fprintf(os.Stderr, "ipcbench: "+format+"\n", args...)
}

// pin places p on cpu and checks it runs there.
func (b *bench) pin(p *proc, cpu int) error {
	if err := p.send(command{Op: "pin", CPU: cpu}); err != nil {
		return err
	}
	r, err := p.result(b.ctx, "pin", cmdTimeout)
	if err != nil {
		return err
	}
	if cpu >= 0 && r.CPU != cpu {
		return fmt.Errorf("%s: pinned to CPU %d but runs on CPU %d", p.name, cpu, r.CPU)
	}
	return nil
}

// both sends a command to two workers, then waits for both replies.
func (b *bench) both(p1 *proc, c1 command, p2 *proc, c2 command) (reply, reply, error) {
	if err := p1.send(c1); err != nil {
		return reply{}, reply{}, err
	}
	if err := p2.send(c2); err != nil {
		return reply{}, reply{}, err
	}
	r1, err1 := p1.result(b.ctx, c1.Op, cmdTimeout)
	r2, err2 := p2.result(b.ctx, c2.Op, cmdTimeout)
	if err1 != nil {
		return r1, r2, err1
	}
	return r1, r2, err2
}

// test is one measurement of one side: it returns a value per metric.
type test struct {
	name string
	run  func(b *bench, s *side, pl placement, scale float64) (map[string]float64, error)
	// soft: a failure of the pinfold side is reported in the table (and
	// the test not run again) instead of ending the run. Only for a test
	// whose pinfold worker serves nothing else.
	soft    bool
	metrics []string
}

var tests = []test{
	{name: "shm", run: (*bench).shm},
	{name: "pipe", run: (*bench).pipe},
	{name: "mq", run: (*bench).mq},
	{name: "rtt-nop", run: func(b *bench, s *side, pl placement, scale float64) (map[string]float64, error) {
		return b.rtt(s, pl, scale, false)
	}},
	{name: "rtt-fd", run: func(b *bench, s *side, pl placement, scale float64) (map[string]float64, error) {
		return b.rtt(s, pl, scale, true)
	}},
	{name: "mqopen", run: (*bench).mqOpen, soft: true, metrics: []string{"mqopen-p50", "mqopen-p99"}},
}

func scaled(n int, scale float64) int { return max(1, int(float64(n)*scale)) }

// shm: the writer fills the buffer and notifies, the reader sums it and
// acks, passes times; GB/s of the fills, of the reads and of whole
// handoffs.
func (b *bench) shm(s *side, pl placement, scale float64) (map[string]float64, error) {
	if err := b.pin(s.w, pl.App); err != nil {
		return nil, err
	}
	if err := b.pin(s.r, pl.Peer); err != nil {
		return nil, err
	}
	n := scaled(b.cfg.shmPasses, scale)
	stamp := b.stamp + 1
	b.stamp += uint64(n)
	rw, rr, err := b.both(s.w, command{Op: "shm-write", N: n, Stamp: stamp}, s.r, command{Op: "shm-read", N: n, Stamp: stamp})
	if err != nil {
		return nil, err
	}
	bytes := float64(b.cfg.shmSize) * float64(n)
	return map[string]float64{
		"shm-write":   bytes / float64(sum(rw.A)),
		"shm-read":    bytes / float64(sum(rr.A)),
		"shm-handoff": bytes / float64(sum(rw.B)),
		// Faults per pass in the timed commands: 0 once both ends are
		// warm, on both sides.
		"shm-faults": float64(rw.Faults+rr.Faults) / float64(n),
	}, nil
}

// firstTouch allocates both sides' shared memory in small slices, taking
// turns (and changing who goes first every slice), so that the two
// buffers' pages are interleaved in physical memory. On these VMs,
// identical memfds filled one after the other differ by up to 1.5x in
// memset speed depending on where their pages landed; interleaved in 64 to
// 128 KiB slices they do not differ.
func (b *bench) firstTouch() error {
	const slice = 128 << 10
	for i, off := 0, int64(0); off < b.cfg.shmSize; i, off = i+1, off+slice {
		order := b.sides
		if i%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, s := range order {
			c := command{Op: "shm-touch", Bytes: off, Size: slice}
			if err := s.w.send(c); err != nil {
				return err
			}
			if _, err := s.w.result(b.ctx, c.Op, cmdTimeout); err != nil {
				return err
			}
		}
	}
	return nil
}

// pipe: the writer writes pipeBytes in chunks, the reader reads them and
// acks; GB/s.
func (b *bench) pipe(s *side, pl placement, scale float64) (map[string]float64, error) {
	if err := b.pin(s.w, pl.App); err != nil {
		return nil, err
	}
	if err := b.pin(s.r, pl.Peer); err != nil {
		return nil, err
	}
	bytes := int64(float64(b.cfg.pipeBytes) * scale)
	bytes -= bytes % int64(b.cfg.chunk)
	bytes = max(bytes, int64(b.cfg.chunk))
	rw, _, err := b.both(s.w, command{Op: "pipe-write", Bytes: bytes, Size: b.cfg.chunk},
		s.r, command{Op: "pipe-read", Bytes: bytes, Size: b.cfg.chunk})
	if err != nil {
		return nil, err
	}
	return map[string]float64{"pipe": float64(bytes) / float64(rw.A[0])}, nil
}

// mq: the sender sends mqN messages, the receiver receives them and acks;
// messages per second.
func (b *bench) mq(s *side, pl placement, scale float64) (map[string]float64, error) {
	if err := b.pin(s.w, pl.App); err != nil {
		return nil, err
	}
	if err := b.pin(s.r, pl.Peer); err != nil {
		return nil, err
	}
	n := scaled(b.cfg.mqN, scale)
	size := int(b.cfg.mqMsgSize)
	rw, _, err := b.both(s.w, command{Op: "mq-send", N: n, Size: size}, s.r, command{Op: "mq-recv", N: n, Size: size})
	if err != nil {
		return nil, err
	}
	return map[string]float64{"mq": float64(n) / (float64(rw.A[0]) / 1e9)}, nil
}

// rtt: the app (r) makes rttN calls; the raw echo process or pinfold's
// supervisor (this process, pinned to the peer CPU for the whole
// placement) answers. Microseconds.
func (b *bench) rtt(s *side, pl placement, scale float64, fd bool) (map[string]float64, error) {
	if err := b.pin(s.r, pl.App); err != nil {
		return nil, err
	}
	n := scaled(b.cfg.rttN, scale)
	c := command{Op: "rtt", N: n, FD: fd}
	var r reply
	if s.e != nil {
		if err := b.pin(s.e, pl.Peer); err != nil {
			return nil, err
		}
		var err error
		r, _, err = b.both(s.r, c, s.e, command{Op: "echo", N: n, FD: fd, Wait: b.cfg.rawEcho})
		if err != nil {
			return nil, err
		}
	} else {
		if err := s.r.send(c); err != nil {
			return nil, err
		}
		var err error
		if r, err = s.r.result(b.ctx, c.Op, cmdTimeout); err != nil {
			return nil, err
		}
	}
	key := "rtt-nop"
	if fd {
		key = "rtt-fd"
	}
	return map[string]float64{key + "-p50": us(r.P50), key + "-p99": us(r.P99)}, nil
}

// mqOpen: the app opens an existing queue by name mqOpenN times: the
// kernel alone (raw), or brokered by pinfold through seccomp user
// notification. Microseconds.
func (b *bench) mqOpen(s *side, pl placement, scale float64) (map[string]float64, error) {
	p := s.n
	if p == nil {
		p = s.r // raw: r has an ipc namespace of its own
	}
	if err := b.pin(p, pl.App); err != nil {
		return nil, err
	}
	c := command{Op: "mqopen", N: scaled(b.cfg.mqOpenN, scale)}
	if err := p.send(c); err != nil {
		return nil, err
	}
	// Short: a notified syscall whose answer was lost waits forever.
	r, err := p.result(b.ctx, c.Op, time.Minute)
	if err != nil {
		return nil, err
	}
	return map[string]float64{"mqopen-p50": us(r.P50), "mqopen-p99": us(r.P99)}, nil
}

func us(ns int64) float64 { return float64(ns) / 1e3 }

func sum(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}

// run measures every placement: this process (pinfold's supervisor) is
// pinned to the placement's peer CPU; a warm-up pass of every test on both
// sides, then the rounds. In each round every test runs on both sides back
// to back, raw first in even rounds and pinfold first in odd ones.
func (b *bench) run() error {
	if b.cfg.wants("shm") {
		if err := b.firstTouch(); err != nil {
			return fmt.Errorf("allocating the shared memory: %w", err)
		}
	}
	failed := map[string]bool{} // soft tests that failed: not run again
	do := func(t test, s *side, pl placement, scale float64, what string) (map[string]float64, error) {
		v, err := t.run(b, s, pl, scale)
		if err == nil {
			return v, nil
		}
		err = fmt.Errorf("%s, %s, %s %s: %w", t.name, s.mode, pl.Name, what, err)
		if !t.soft || s.mode != "pinfold" || b.ctx.Err() != nil {
			return nil, err
		}
		b.progress("%v; the test is not run again", err)
		failed[t.name] = true
		b.results.fail(pl, t.metrics, err.Error())
		if s.n != nil {
			s.n.kill()
		}
		return nil, nil
	}
	for _, pl := range b.cfg.placements {
		b.progress("%s", pl.describe())
		if err := pinProcess(pl.Peer); err != nil {
			return fmt.Errorf("pinning the supervisor: %w", err)
		}
		for _, t := range tests {
			for _, s := range b.sides {
				if !b.cfg.wants(t.name) || failed[t.name] {
					continue
				}
				if _, err := do(t, s, pl, b.cfg.warmScale, "warm-up"); err != nil {
					return err
				}
			}
		}
		for round := range b.cfg.rounds {
			b.progress("  %s round %d/%d", pl.Name, round+1, b.cfg.rounds)
			for _, t := range tests {
				order := b.sides
				if round%2 == 1 {
					order[0], order[1] = order[1], order[0]
				}
				var vals [2]map[string]float64
				for i, s := range order {
					if !b.cfg.wants(t.name) || failed[t.name] {
						continue
					}
					v, err := do(t, s, pl, 1, fmt.Sprintf("round %d", round+1))
					if err != nil {
						return err
					}
					vals[i] = v
				}
				// A round counts only when both sides have a value.
				if vals[0] != nil && vals[1] != nil {
					b.results.add(pl, order[0].mode, vals[0])
					b.results.add(pl, order[1].mode, vals[1])
				}
			}
		}
	}
	return pinProcess(-1)
}
