package events

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"
)

func TestNewLogSize(t *testing.T) {
	for _, tc := range []struct{ in, want int }{
		{0, DefaultSize}, {-5, DefaultSize}, {1, 1}, {2, 2}, {3, 4}, {1000, 1024}, {65536, 65536},
	} {
		if got := NewLog(tc.in).Size(); got != tc.want {
			t.Errorf("NewLog(%d).Size() = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestEmitAssignsIDAndTime(t *testing.T) {
	l := NewLog(16)
	before := time.Now().UnixNano()
	id1 := l.Emit(Event{Kind: AppCreated, App: "a1", Detail: "default"})
	id2 := l.Emit(Event{Kind: AppSpawned, App: "a1", Parent: id1, Time: 42})
	after := time.Now().UnixNano()
	if id1 != 1 || id2 != 2 || l.Last() != 2 {
		t.Fatalf("ids %d, %d, Last %d; want 1, 2, 2", id1, id2, l.Last())
	}
	e1, ok := l.Get(id1)
	if !ok {
		t.Fatal("Get(1) found nothing")
	}
	// The clock is the wall clock read through the monotonic one; allow
	// for its rounding against time.Now but nothing more.
	if e1.Time < before-int64(time.Millisecond) || e1.Time > after+int64(time.Millisecond) {
		t.Errorf("Time %d is outside [%d, %d]", e1.Time, before, after)
	}
	if e1.ID != 1 || e1.Kind != AppCreated || e1.App != "a1" || e1.Detail != "default" {
		t.Errorf("Get(1) = %+v", e1)
	}
	e2, _ := l.Get(id2)
	if e2.Time != 42 || e2.Parent != id1 {
		t.Errorf("Get(2) = %+v, want Time 42 (kept) and Parent 1", e2)
	}
	for _, id := range []uint64{0, 3, 1 << 40} {
		if e, ok := l.Get(id); ok {
			t.Errorf("Get(%d) = %+v, want nothing", id, e)
		}
	}
}

func TestClockFollowsWallClock(t *testing.T) {
	var c clock
	c.init()
	// Pretend the wall clock was an hour behind when the offset was last
	// read, long ago: the next reading must re-anchor to the real clock.
	c.offset.Add(-int64(time.Hour))
	c.anchor.Store(-anchorEvery)
	// The wall and monotonic readings of one time.Now are taken tens of
	// nanoseconds apart, so allow that much either way (and far less than
	// the hour).
	for range 2 {
		if d := time.Duration(time.Now().UnixNano() - c.now()); d < -time.Millisecond || d > time.Minute {
			t.Errorf("after re-anchoring the clock is %v behind the wall clock", d)
		}
	}
}

func ids(evs []Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestSince(t *testing.T) {
	l := NewLog(8)
	for i := range 20 {
		l.Emit(Event{Kind: CleanupStep, Value: int64(i + 1)})
	}
	for _, tc := range []struct {
		after      uint64
		max        int
		want       []uint64
		wantMissed uint64
	}{
		{0, 0, seq(13, 20), 12},
		{0, 3, seq(13, 15), 12},
		{11, 0, seq(13, 20), 1},
		{12, 0, seq(13, 20), 0},
		{15, 0, seq(16, 20), 0},
		{15, 2, seq(16, 17), 0},
		{19, 0, seq(20, 20), 0},
		{20, 0, nil, 0},
		{99, 0, nil, 0},
	} {
		t.Run(fmt.Sprintf("after=%d,max=%d", tc.after, tc.max), func(t *testing.T) {
			evs, missed := l.Since(tc.after, tc.max)
			if got := ids(evs); !slices.Equal(got, tc.want) {
				t.Errorf("ids %v, want %v", got, tc.want)
			}
			if missed != tc.wantMissed {
				t.Errorf("missed %d, want %d", missed, tc.wantMissed)
			}
			for _, e := range evs {
				if e.Value != int64(e.ID) {
					t.Errorf("event %d carries value %d: slots mixed up", e.ID, e.Value)
				}
			}
		})
	}
}

// TestStalledEmitter: an emitter that took an id and was then lapped by the
// whole ring must not overwrite the newer event; its own is counted as
// missed, and Since stops at an id whose emitter has not written yet.
func TestStalledEmitter(t *testing.T) {
	l := NewLog(4)
	stalled := l.next.Add(1) // id 1, not written yet
	evs, missed := l.Since(0, 0)
	if len(evs) != 0 || missed != 0 {
		t.Fatalf("with id 1 in flight: Since(0) = %v, %d; want nothing", ids(evs), missed)
	}
	for range 4 {
		l.Emit(Event{Kind: AppRunning}) // ids 2..5; 5 takes id 1's slot
	}
	l.put(&Event{ID: stalled, Kind: AppExited})
	if e, _ := l.Get(5); e.Kind != AppRunning {
		t.Fatalf("slot of id 5 holds %+v: the stalled emitter overwrote a newer event", e)
	}
	evs, missed = l.Since(0, 0)
	if got := ids(evs); !slices.Equal(got, seq(2, 5)) || missed != 1 {
		t.Errorf("Since(0) = %v, missed %d; want 2..5, missed 1", got, missed)
	}
}

// TestConcurrentEmitters: ids are unique, dense and, per emitter, increasing
// in the order it emitted.
func TestConcurrentEmitters(t *testing.T) {
	const emitters, each = 4, 5000
	l := NewLog(emitters * each)
	apps := [emitters]string{"a0", "a1", "a2", "a3"}
	var wg sync.WaitGroup
	for g := range emitters {
		wg.Go(func() {
			for i := range each {
				l.Emit(Event{Kind: AppRunning, App: apps[g], Value: int64(i)})
			}
		})
	}
	wg.Wait()
	evs, missed := l.Since(0, 0)
	if missed != 0 || len(evs) != emitters*each {
		t.Fatalf("Since(0) = %d events, missed %d; want %d, 0", len(evs), missed, emitters*each)
	}
	next := map[string]int64{}
	for i, e := range evs {
		if e.ID != uint64(i+1) {
			t.Fatalf("event %d has id %d", i, e.ID)
		}
		if e.Value != next[e.App] {
			t.Fatalf("emitter %s: event %d (value %d) came after value %d", e.App, e.ID, e.Value, next[e.App]-1)
		}
		next[e.App]++
	}
	if st := l.Stats(); st.Emitted != emitters*each || st.Dropped != 0 || st.Subscribers != 0 {
		t.Errorf("Stats() = %+v", st)
	}
}

func TestEmitDoesNotAllocate(t *testing.T) {
	l := NewLog(1024)
	app, detail := "app-1", "cgroup"
	e := Event{Kind: CleanupStep, App: app, Parent: 7, Value: 1234, Detail: detail, Peer: Peer{UID: 1, GID: 2, PID: 3}}
	if n := testing.AllocsPerRun(1000, func() { l.Emit(e) }); n != 0 {
		t.Errorf("Emit allocates %v times per event", n)
	}
	// With a subscriber asleep, Emit rings its doorbell: still no allocation.
	sub := l.Subscribe(SubscribeOptions{After: l.Last()})
	defer sub.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := sub.Next(t.Context()); err != nil {
				return
			}
		}
	}()
	if n := testing.AllocsPerRun(1000, func() { l.Emit(e) }); n != 0 {
		t.Errorf("Emit with a follower allocates %v times per event", n)
	}
	sub.Close()
	<-done
}

func TestSlotSize(t *testing.T) {
	if n := unsafe.Sizeof(slot{}); n%128 != 0 {
		t.Errorf("a slot is %d bytes, not a multiple of two cache lines", n)
	}
}
