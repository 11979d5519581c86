package server_test

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/pinfold/pinfold/syscalls"
	"github.com/pinfold/pinfold/syscalls/abi"
	"github.com/pinfold/pinfold/syscalls/server"
	"github.com/pinfold/pinfold/syscalls/server/servertest"
)

// TestConnStop: a Conn made from syscalls.ControlPair serves without a
// duplicate descriptor, and Stop ends an idle Serve with ErrStopped and
// closes pinfold's end, which the app reads as the end of its channel.
func TestConnStop(t *testing.T) {
	sess := servertest.New("app1", "pol")
	defer sess.Close()
	before := len(openFDs())
	ours, app, err := syscalls.ControlPair()
	if err != nil {
		t.Fatal(err)
	}
	c, err := server.NewConn(ours, sess, server.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(openFDs()); got != before+2 {
		t.Errorf("%d descriptors open after NewConn, want %d (the pair, no duplicate)", got, before+2)
	}
	done := make(chan error, 1)
	go func() { done <- c.Serve() }()
	p := newPeer(t, app)
	defer p.f.Close()
	ok(t, p.one(abi.SysNop))

	c.Stop()
	select {
	case err := <-done:
		if !errors.Is(err, server.ErrStopped) {
			t.Errorf("Serve after Stop = %v, want ErrStopped", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after Stop")
	}
	c.Stop() // after Serve returned: harmless
	msg, fds, err := p.recvRaw()
	if err != nil || len(msg) != 0 || len(fds) != 0 {
		t.Errorf("app read %d bytes, %d fds, %v after Stop; want the end of the channel", len(msg), len(fds), err)
	}
}

// TestIdleChannels: a channel the app has been quiet on for Linger has no
// goroutine; a message wakes it and is answered; Stop ends an idle one.
func TestIdleChannels(t *testing.T) {
	sess := servertest.New("app1", "pol")
	defer sess.Close()
	base := runtime.NumGoroutine()
	const n = 50
	type ch struct {
		c    *server.Conn
		p    *peer
		done chan error
	}
	var chans []ch
	for range n {
		ours, app, err := syscalls.ControlPair()
		if err != nil {
			t.Fatal(err)
		}
		c, err := server.NewConn(ours, sess, server.Options{Linger: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		c.Start(func(err error) { done <- err })
		chans = append(chans, ch{c, newPeer(t, app), done})
	}
	settle := func(what string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d goroutines, want %d (no goroutine per idle channel)", what, runtime.NumGoroutine(), base)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	settle("after start")
	for round := range 2 {
		for _, x := range chans {
			ok(t, x.p.one(abi.SysNop))
		}
		settle(fmt.Sprintf("after round %d of calls", round))
	}
	for i, x := range chans {
		if i%2 == 0 {
			x.c.Stop() // idle: ends at once
			if err := <-x.done; !errors.Is(err, server.ErrStopped) {
				t.Errorf("idle channel stopped: %v, want ErrStopped", err)
			}
			x.p.f.Close()
		} else {
			x.p.f.Close() // the app hangs up: the idle set wakes it, it ends
			select {
			case err := <-x.done:
				if err != nil {
					t.Errorf("channel after hang-up: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("an idle channel whose app hung up did not end")
			}
		}
	}
}
