package events

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

// checkGoroutines fails t if goroutines started during the test are still
// there when it ends (they get a while to finish).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var now int
		for range 500 {
			if now = runtime.NumGoroutine(); now <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("%d goroutines before the test, %d after:\n%s", before, now, buf)
	})
}

// next calls sub.Next with a deadline, so a broken wakeup fails the test
// instead of hanging it.
func next(t *testing.T, sub *Subscription) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	e, err := sub.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return e
}

func TestSubscribeReplaysThenFollows(t *testing.T) {
	checkGoroutines(t)
	l := NewLog(64)
	for range 5 {
		l.Emit(Event{Kind: AppRunning})
	}
	sub := l.Subscribe(SubscribeOptions{After: 2})
	defer sub.Close()
	for want := uint64(3); want <= 5; want++ {
		if e := next(t, sub); e.ID != want {
			t.Fatalf("replay: got id %d, want %d", e.ID, want)
		}
	}
	// Now Next must wait for events emitted later, on another goroutine.
	go func() {
		for range 3 {
			time.Sleep(time.Millisecond)
			l.Emit(Event{Kind: AppExited})
		}
	}()
	for want := uint64(6); want <= 8; want++ {
		if e := next(t, sub); e.ID != want || e.Kind != AppExited {
			t.Fatalf("follow: got %+v, want id %d", e, want)
		}
	}
}

func TestSubscribeFromNow(t *testing.T) {
	l := NewLog(64)
	l.Emit(Event{Kind: AppRunning})
	sub := l.Subscribe(SubscribeOptions{After: l.Last()})
	defer sub.Close()
	id := l.Emit(Event{Kind: AppExited})
	if e := next(t, sub); e.ID != id {
		t.Fatalf("got id %d, want %d", e.ID, id)
	}
}

func TestSubscribeAppFilter(t *testing.T) {
	l := NewLog(64)
	for i, app := range []string{"a", "b", "a", "", "b", "a"} {
		l.Emit(Event{Kind: AppRunning, App: app, Value: int64(i)})
	}
	// b denied an object a owns: an event about a as well.
	l.Emit(Event{Kind: IPCDenied, App: "b", Other: "a", Value: 6})
	l.Emit(Event{Kind: IPCDenied, App: "b", Other: "c", Value: 7})
	sub := l.Subscribe(SubscribeOptions{App: "a"})
	defer sub.Close()
	var got []int64
	for range 4 {
		got = append(got, next(t, sub).Value)
	}
	if !slices.Equal(got, []int64{0, 2, 5, 6}) {
		t.Errorf("app a's events: values %v, want [0 2 5 6]", got)
	}
}

func TestSubscribeReportsDrops(t *testing.T) {
	l := NewLog(8)
	sub := l.Subscribe(SubscribeOptions{After: 0})
	defer sub.Close()
	l.Emit(Event{Kind: AppRunning})
	if e := next(t, sub); e.ID != 1 {
		t.Fatalf("first event: id %d", e.ID)
	}
	for range 19 {
		l.Emit(Event{Kind: AppRunning}) // ids 2..20; the ring keeps 13..20
	}
	e := next(t, sub)
	if e.Kind != EventsDropped || e.ID != 0 || e.Value != 11 || e.Parent != 1 || e.Time == 0 {
		t.Fatalf("after falling behind: got %+v, want EventsDropped, ID 0, Value 11 (ids 2..12), Parent 1", e)
	}
	for want := uint64(13); want <= 20; want++ {
		if e := next(t, sub); e.ID != want {
			t.Fatalf("after the gap: id %d, want %d", e.ID, want)
		}
	}
	if st := l.Stats(); st.Dropped != 11 {
		t.Errorf("Stats().Dropped = %d, want 11", st.Dropped)
	}
}

func TestSubscribeCancel(t *testing.T) {
	checkGoroutines(t)
	l := NewLog(8)
	sub := l.Subscribe(SubscribeOptions{})
	defer sub.Close()
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error)
	go func() {
		_, err := sub.Next(ctx)
		errc <- err
	}()
	waitSleeping(t, l, 1)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel: %v, want context.Canceled", err)
	}
	if n := l.sleepers.Load(); n != 0 {
		t.Errorf("%d sleepers left after the cancelled Next", n)
	}
	// The subscription still works, from where it was.
	id := l.Emit(Event{Kind: AppRunning})
	if e := next(t, sub); e.ID != id {
		t.Errorf("after cancel: got id %d, want %d", e.ID, id)
	}
}

func TestSubscribeClose(t *testing.T) {
	checkGoroutines(t)
	l := NewLog(8)
	subs := []*Subscription{l.Subscribe(SubscribeOptions{}), l.Subscribe(SubscribeOptions{App: "x"})}
	if n := l.Stats().Subscribers; n != 2 {
		t.Fatalf("Subscribers = %d, want 2", n)
	}
	errc := make(chan error)
	go func() {
		_, err := subs[0].Next(context.Background())
		errc <- err
	}()
	waitSleeping(t, l, 1)
	subs[0].Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next waiting during Close: %v, want ErrClosed", err)
	}
	subs[0].Close() // again: no panic
	if _, err := subs[0].Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
	if n := l.Stats().Subscribers; n != 1 {
		t.Errorf("Subscribers = %d after one Close, want 1", n)
	}
	subs[1].Close()
	if n := l.Stats().Subscribers; n != 0 {
		t.Errorf("Subscribers = %d after both closed", n)
	}
	if n := l.sleepers.Load(); n != 0 {
		t.Errorf("%d sleepers left", n)
	}
}

// waitSleeping waits until n subscribers of l sleep.
func waitSleeping(t *testing.T, l *Log, n int32) {
	t.Helper()
	for range 10000 {
		if l.sleepers.Load() == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("%d subscribers sleep, want %d", l.sleepers.Load(), n)
}

// TestFollowersUnderLoad: followers see every event of concurrent emitters
// exactly once and in id order, whether they keep up or not.
func TestFollowersUnderLoad(t *testing.T) {
	checkGoroutines(t)
	const emitters, each, followers = 2, 20000, 3
	for _, size := range []int{1 << 16, 64} {
		t.Run(fmt.Sprintf("ring=%d", size), func(t *testing.T) {
			l := NewLog(size)
			start := l.Last()
			var wg sync.WaitGroup
			results := make([]struct {
				got, dropped uint64
				err          error
			}, followers)
			for f := range followers {
				sub := l.Subscribe(SubscribeOptions{After: start})
				wg.Go(func() {
					defer sub.Close()
					r := &results[f]
					last := start
					ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
					defer cancel()
					for r.got+r.dropped < emitters*each {
						e, err := sub.Next(ctx)
						if err != nil {
							r.err = err
							return
						}
						if e.Kind == EventsDropped {
							r.dropped += uint64(e.Value)
							last += uint64(e.Value)
							continue
						}
						if e.ID != last+1 {
							r.err = errors.New("ids out of order or repeated")
							return
						}
						last = e.ID
						r.got++
						if f == 0 && e.ID%1000 == 0 {
							time.Sleep(time.Millisecond) // a slow follower
						}
					}
				})
			}
			var ew sync.WaitGroup
			for range emitters {
				ew.Go(func() {
					for range each {
						l.Emit(Event{Kind: AppRunning})
					}
				})
			}
			ew.Wait()
			wg.Wait()
			var dropped uint64
			for f, r := range results {
				if r.err != nil {
					t.Errorf("follower %d: %v", f, r.err)
				}
				if size == 1<<16 && r.dropped != 0 {
					t.Errorf("follower %d lost %d events with a ring larger than the run", f, r.dropped)
				}
				dropped += r.dropped
			}
			if st := l.Stats(); st.Dropped != dropped {
				t.Errorf("Stats().Dropped = %d, followers counted %d", st.Dropped, dropped)
			}
			if n := l.sleepers.Load(); n != 0 {
				t.Errorf("%d sleepers left", n)
			}
		})
	}
}
