package events

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Event is one entry of the log. Every field has a fixed size; the strings
// are kept by reference, so pass strings that exist anyway (an app's id, a
// constant) and emitting does not allocate.
type Event struct {
	// ID is assigned by Log.Emit: 1 for the first event, then one more for
	// each, never reused. 0 marks a synthetic EventsDropped notice.
	ID uint64
	// Time is when the event happened, in nanoseconds since the Unix epoch.
	// Emit fills it in when it is 0.
	Time int64
	// Kind says what happened.
	Kind Kind
	// App is the id of the app the event concerns, "" for none.
	App string
	// Other is a second app the event concerns (for IPC events: the owner
	// of the object), "" for none.
	Other string
	// Parent is the ID of the event that caused this one, 0 for none.
	Parent uint64
	// Value and Detail carry what the Kind's documentation says.
	Value  int64
	Detail string
	// Peer is the API client that caused the event (APICall).
	Peer Peer
}

// Peer identifies an API client by the credentials of its socket
// (SO_PEERCRED).
type Peer struct {
	UID, GID uint32
	PID      int32
}

// DefaultSize is the number of events a Log keeps when NewLog is given 0.
const DefaultSize = 65536

// Log is a bounded, in-memory ring of the most recent events. It is safe
// for concurrent use by any number of emitters and readers.
type Log struct {
	ring []slot
	mask uint64

	next atomic.Uint64 // the last ID assigned

	clock clock

	// Subscribers. subs is replaced (copy on write) under mu, so Emit reads
	// it without locking; sleepers counts subscribers that are waiting for
	// a doorbell, so Emit looks at subs only when one is.
	mu       sync.Mutex
	subs     atomic.Pointer[[]*Subscription]
	sleepers atomic.Int32
	dropped  atomic.Uint64 // events lost to subscribers that fell behind
}

// slot holds one event. ev.ID says which: 0 for a slot never written, and a
// slot only ever moves to a larger ID.
//
// Slots are padded to a multiple of 128 bytes (two cache lines; the ring's
// memory is page aligned), so that concurrent emitters, which take
// consecutive ids, do not write the same cache line: without the padding
// two emitters took 77 ns per event here, with it about 45.
type slot struct {
	mu sync.Mutex
	ev Event
	_  [slotPad]byte
}

const slotPad = (128 - (unsafe.Sizeof(sync.Mutex{})+unsafe.Sizeof(Event{}))%128) % 128

// NewLog returns a Log that keeps the last size events; size is rounded up
// to a power of two, and 0 or less means DefaultSize. The ring is allocated
// at once (128 bytes per event: 8 MiB for DefaultSize), but its memory
// becomes resident only as events fill it.
func NewLog(size int) *Log {
	if size <= 0 {
		size = DefaultSize
	}
	n := uint64(1) << bits.Len64(uint64(size-1))
	l := &Log{ring: make([]slot, n), mask: n - 1}
	l.clock.init()
	l.subs.Store(new([]*Subscription))
	return l
}

// Size is the number of events the log keeps.
func (l *Log) Size() int { return len(l.ring) }

// Emit appends e to the log and returns its ID. It sets e.ID, and e.Time
// when e.Time is 0. Emit does not allocate and does not block on other
// emitters or on readers (beyond the one slot it writes).
//
// IDs order events. Times come from a clock read in Emit, so two events
// emitted at the same moment on different goroutines may have times out of
// ID order by the few nanoseconds Emit takes.
func (l *Log) Emit(e Event) uint64 {
	if e.Time == 0 {
		e.Time = l.clock.now()
	}
	id := l.next.Add(1)
	e.ID = id
	l.put(&e)
	if l.sleepers.Load() != 0 {
		l.wake()
	}
	return id
}

// put writes e into its slot. An emitter stalled for a whole lap of the
// ring finds its slot taken by a newer event; its own event is then lost,
// as it would have been overwritten anyway, and readers count it as missed.
func (l *Log) put(e *Event) {
	s := &l.ring[e.ID&l.mask]
	s.mu.Lock()
	if s.ev.ID < e.ID {
		s.ev = *e
	}
	s.mu.Unlock()
}

// wake rings the doorbell of every subscriber that sleeps.
func (l *Log) wake() {
	for _, s := range *l.subs.Load() {
		if s.sleeping.Load() && s.sleeping.CompareAndSwap(true, false) {
			l.sleepers.Add(-1)
			select {
			case s.bell <- struct{}{}:
			default:
			}
		}
	}
}

// Last returns the ID of the most recent event, 0 before the first. Use it
// as SubscribeOptions.After to follow only events still to come.
func (l *Log) Last() uint64 { return l.next.Load() }

// slotState is what a read of one slot found.
type slotState int

const (
	present     slotState = iota // the event was copied out
	overwritten                  // the slot holds a newer event: this one is lost
	pending                      // the ID is assigned but its emitter has not written it yet, or not assigned
)

// load copies event id into *dst if the ring still holds it.
func (l *Log) load(id uint64, dst *Event) slotState {
	if id == 0 || id > l.next.Load() {
		return pending
	}
	s := &l.ring[id&l.mask]
	s.mu.Lock()
	got := s.ev.ID
	if got == id {
		*dst = s.ev
	}
	s.mu.Unlock()
	switch {
	case got == id:
		return present
	case got > id:
		return overwritten
	default:
		return pending
	}
}

// oldest returns the smallest ID the ring can still hold, given the last
// ID assigned.
func (l *Log) oldest(last uint64) uint64 {
	if n := uint64(len(l.ring)); last > n {
		return last - n + 1
	}
	return 1
}

// Get returns event id if the ring still holds it.
func (l *Log) Get(id uint64) (Event, bool) {
	var e Event
	return e, l.load(id, &e) == present
}

// Since returns, in ID order, up to max events with IDs above after that the
// ring still holds (max ≤ 0: all of them), and missed: how many events
// after after were already overwritten. It stops early at an event whose
// emitter is still writing it, so what it returns never has holes but for
// the missed ones; call it again from the last ID returned to continue.
func (l *Log) Since(after uint64, max int) (events []Event, missed uint64) {
	last := l.next.Load()
	if after >= last {
		return nil, 0
	}
	start := after + 1
	if o := l.oldest(last); start < o {
		missed = o - start
		start = o
	}
	n := last - start + 1
	if max > 0 && uint64(max) < n {
		n = uint64(max)
	}
	events = make([]Event, 0, n)
	var e Event
	for id := start; id <= last && uint64(len(events)) < n; id++ {
		switch l.load(id, &e) {
		case present:
			events = append(events, e)
		case overwritten:
			missed++
		case pending:
			return events, missed
		}
	}
	return events, missed
}

// Stats are a Log's counters.
type Stats struct {
	// Emitted is the number of events emitted (the last ID).
	Emitted uint64
	// Subscribers is the number of open subscriptions.
	Subscribers int
	// Dropped is the number of events subscribers lost because they fell
	// more than the ring's size behind, summed over subscribers.
	Dropped uint64
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	return Stats{
		Emitted:     l.next.Load(),
		Subscribers: len(*l.subs.Load()),
		Dropped:     l.dropped.Load(),
	}
}

// clock gives event times: the wall clock, read through the monotonic
// clock. Reading both (time.Now) costs about twice one reading, so the
// wall-clock offset is refreshed at most every anchorEvery and times in
// between advance with the monotonic clock; a step of the wall clock (NTP
// at boot) is followed within that period.
type clock struct {
	base   time.Time    // monotonic origin
	offset atomic.Int64 // wall-clock ns minus monotonic ns since base
	anchor atomic.Int64 // monotonic ns since base when offset was read
}

const anchorEvery = int64(time.Second)

func (c *clock) init() {
	c.base = time.Now()
	c.offset.Store(c.base.UnixNano())
}

func (c *clock) now() int64 {
	mono := int64(time.Since(c.base))
	if a := c.anchor.Load(); mono-a >= anchorEvery && c.anchor.CompareAndSwap(a, mono) {
		t := time.Now()
		m := int64(t.Sub(c.base))
		c.offset.Store(t.UnixNano() - m)
		c.anchor.Store(m)
		return t.UnixNano()
	}
	return c.offset.Load() + mono
}
