package events

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// SubscribeOptions say where a subscription starts and what it sees.
type SubscribeOptions struct {
	// After is the ID of the last event the subscriber has seen: Next
	// returns events with larger IDs, the ones the ring still holds first.
	// 0 replays the whole ring; Log.Last() follows only new events.
	After uint64
	// App, when set, keeps only events about this app: its App or its
	// Other (an IPC event of another app on an object this one owns).
	App string
}

// Subscription follows a Log. Next is meant for one goroutine (calls from
// several are serialised); Close may be called from any goroutine, also
// while Next waits.
type Subscription struct {
	log *Log
	app string

	mu     sync.Mutex // serialises Next
	cursor uint64     // the ID of the last event Next consumed

	bell     chan struct{} // doorbell, capacity 1: rung by Emit when sleeping
	sleeping atomic.Bool   // set while Next waits for the bell
	closed   chan struct{}
	once     sync.Once
}

// Subscribe starts following the log from opts.After.
func (l *Log) Subscribe(opts SubscribeOptions) *Subscription {
	s := &Subscription{
		log:    l,
		app:    opts.App,
		cursor: opts.After,
		bell:   make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	l.mu.Lock()
	subs := append(slices.Clone(*l.subs.Load()), s)
	l.subs.Store(&subs)
	l.mu.Unlock()
	return s
}

// droppedDetail is the Detail of EventsDropped notices.
const droppedDetail = "subscriber fell behind the event ring"

// Next returns the next event after the last one returned (or after
// SubscribeOptions.After), waiting for it to be emitted if need be. It
// returns ctx's error when ctx ends first, and ErrClosed after Close.
//
// If events the subscriber had not read yet were overwritten (it fell more
// than the ring's size behind), Next first returns an event of kind
// EventsDropped with ID 0, Parent the ID of the last event returned before
// the gap, and Value the number of events lost (counting every app's, also
// with an App filter), and then continues with the oldest event the ring
// still holds.
func (s *Subscription) Next(ctx context.Context) (Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.log
	var e Event
	for {
		select {
		case <-s.closed:
			return Event{}, ErrClosed
		default:
		}
		last := l.next.Load()
		if s.cursor < last {
			if o := l.oldest(last); s.cursor+1 < o {
				lost := o - 1 - s.cursor
				before := s.cursor
				s.cursor = o - 1
				l.dropped.Add(lost)
				return Event{
					Kind:   EventsDropped,
					Time:   l.clock.now(),
					App:    s.app,
					Parent: before,
					Value:  int64(lost),
					Detail: droppedDetail,
				}, nil
			}
			switch l.load(s.cursor+1, &e) {
			case present:
				s.cursor++
				if s.app != "" && e.App != s.app && e.Other != s.app {
					continue
				}
				return e, nil
			case overwritten:
				continue // the ring lapped us while we looked: report the gap
			case pending:
			}
		}
		if err := s.sleep(ctx); err != nil {
			return Event{}, err
		}
	}
}

// ready reports whether Next has something to do without waiting.
func (s *Subscription) ready() bool {
	var e Event
	return s.log.load(s.cursor+1, &e) != pending || s.log.oldest(s.log.next.Load()) > s.cursor+1
}

// sleep waits until Emit rings the doorbell, ctx ends or s is closed.
//
// Emit writes its slot and then reads sleepers; sleep sets sleeping and
// sleepers and then reads the slot. Both sides use sequentially consistent
// atomics (the slot mutex is one), so either Emit sees the sleeper and rings,
// or sleep sees the event and does not wait.
func (s *Subscription) sleep(ctx context.Context) error {
	l := s.log
	s.sleeping.Store(true)
	l.sleepers.Add(1)
	if s.ready() {
		s.wakeSelf()
		return nil
	}
	select {
	case <-s.bell:
		// Usually the emitter that rang withdrew us from sleeping; a ring
		// left over from an earlier sleep did not, so withdraw here.
		s.wakeSelf()
		return nil
	case <-ctx.Done():
		s.wakeSelf()
		return ctx.Err()
	case <-s.closed:
		s.wakeSelf()
		return ErrClosed
	}
}

// wakeSelf withdraws from sleeping, unless an emitter did so already (it
// then rings the doorbell, and the next sleep finds that stale ring and
// checks again, which is harmless).
func (s *Subscription) wakeSelf() {
	if s.sleeping.CompareAndSwap(true, false) {
		s.log.sleepers.Add(-1)
	}
}

// Close ends the subscription: a waiting Next returns ErrClosed, and so does
// every later one. Close can be called more than once.
func (s *Subscription) Close() {
	s.once.Do(func() {
		close(s.closed)
		l := s.log
		l.mu.Lock()
		subs := slices.DeleteFunc(slices.Clone(*l.subs.Load()), func(x *Subscription) bool { return x == s })
		l.subs.Store(&subs)
		l.mu.Unlock()
	})
}
