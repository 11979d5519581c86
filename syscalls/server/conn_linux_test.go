package server_test

import (
	"errors"
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
