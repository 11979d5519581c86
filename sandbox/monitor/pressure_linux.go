package monitor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pinfold/pinfold/cgroup"
	"github.com/pinfold/pinfold/syscalls"
)

// DefaultLevels are the percentages of an app's memory limit a Watcher
// reports by default.
var DefaultLevels = []int{80, 95}

// DefaultPollInterval is how often a Watcher reads the memory usage of
// apps on cgroup v2 hosts by default.
const DefaultPollInterval = 250 * time.Millisecond

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	// Levels are the percentages of the memory limit to report, ascending,
	// each in 1..100. Empty means DefaultLevels.
	Levels []int
	// PollInterval is how often cgroup v2 usage is read; 0 means
	// DefaultPollInterval. A crossing shorter than this can go unseen on v2.
	PollInterval time.Duration
	// OnError, if set, is told about failures met after Watch returned
	// (a usage read that fails other than because the cgroup is gone). It
	// is called from the Watcher's goroutines and must not block.
	OnError func(appID string, err error)
}

// Watcher reports when apps' memory use crosses levels of their memory
// limits. One serves a whole daemon; it is safe for concurrent use.
//
// On cgroup v1 (legacy and hybrid hosts) each watched app costs one eventfd
// per level, armed as a kernel memory threshold, plus one open usage file;
// all eventfds are in one epoll set, waited on by one goroutine parked in
// Go's poller, so an idle app costs no CPU and no thread. On cgroup v2 each
// app costs one open usage file, and one goroutine reads them all every
// PollInterval. Both goroutines start with the first app of their kind and
// end at Close.
type Watcher struct {
	levels   []int
	interval time.Duration
	onError  func(string, error)

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	done   chan struct{}

	// cgroup v1: the epoll set, its goroutine and the eventfds in it.
	ep      *os.File // nil until the first v1 app
	epfd    int
	wakefd  int              // eventfd that wakes the goroutine for new watches
	byFD    map[int32]*level // eventfd → the level it is armed for
	initial []*watch         // v1 watches not evaluated yet
	batch   uint64           // counts epoll batches, to visit a watch once per batch

	// cgroup v2: the polled watches and the poller's doorbell.
	polled   []*watch
	pollWake chan struct{}
	polling  bool
}

// usageReader reads an app's memory usage: a *cgroup.MemoryUsage, or a
// stand-in in tests.
type usageReader interface {
	Read() (uint64, error)
	Close() error
}

// watch is one app being watched.
type watch struct {
	app      string
	notify   func(level int, usage uint64)
	usage    usageReader
	levels   []level
	stopped  atomic.Bool
	released bool   // its descriptors are closed; under Watcher.mu
	seen     uint64 // the epoll batch that last visited it (v1)
}

// level is one level of one watch. above is what the watcher last
// believed: usage at or above threshold. It is only touched by the
// goroutine that serves the watch.
type level struct {
	w         *watch
	percent   int
	threshold uint64
	efd       int    // v1: the eventfd armed at threshold; -1 on v2
	signals   uint64 // v1: crossings the kernel signalled, not yet evaluated
	above     bool
}

// crossing is a notification to deliver, outside the Watcher's lock.
type crossing struct {
	w       *watch
	percent int
	usage   uint64
}

// NewWatcher returns a Watcher with DefaultLevels and DefaultPollInterval.
func NewWatcher() *Watcher {
	w, err := NewWatcherWithOptions(WatcherOptions{})
	if err != nil {
		panic(err) // the defaults are valid
	}
	return w
}

// NewWatcherWithOptions returns a Watcher configured by opts. Nothing is
// started until the first Watch.
func NewWatcherWithOptions(opts WatcherOptions) (*Watcher, error) {
	levels := opts.Levels
	if len(levels) == 0 {
		levels = DefaultLevels
	}
	for i, l := range levels {
		if l < 1 || l > 100 || (i > 0 && l <= levels[i-1]) {
			return nil, fmt.Errorf("memory levels %v: each must be in 1..100, ascending: %w", levels, ErrInvalid)
		}
	}
	interval := opts.PollInterval
	if interval == 0 {
		interval = DefaultPollInterval
	}
	if interval < 0 {
		return nil, fmt.Errorf("poll interval %v is negative: %w", interval, ErrInvalid)
	}
	return &Watcher{
		levels:   slices.Clone(levels),
		interval: interval,
		onError:  opts.OnError,
		done:     make(chan struct{}),
		epfd:     -1,
		wakefd:   -1,
		byFD:     make(map[int32]*level),
		pollWake: make(chan struct{}, 1),
	}, nil
}

// Watch starts watching app appID, whose cgroup is cg and memory limit is
// limit bytes: notify(level, usage) is called when its memory use reaches
// level percent of limit (for each level, once per upward crossing: a level
// is reported again only after use has fallen below it), with the usage in
// bytes read when the crossing was noticed. If use is already above a level
// when Watch is called, that level is reported at once. A level can be
// reported with a usage below it: on cgroup v1, when the kernel signalled a
// rise past the level and a fall back before the watcher read the usage.
//
// notify is called from the Watcher's goroutines, one call at a time per
// app, lowest level first; it must not block for long (all apps share the
// goroutine). A limit of 0 means the app has none: nothing is watched and
// stop does nothing.
//
// stop ends the watch and releases its descriptors; it can be called more
// than once, and from notify. After stop returns no new notify call
// starts, but one already running may still be.
func (w *Watcher) Watch(appID string, cg cgroup.Cgroup, limit uint64, notify func(level int, usage uint64)) (stop func(), err error) {
	if cg == nil || notify == nil {
		return nil, fmt.Errorf("watching memory of app %s: no cgroup or no callback: %w", appID, ErrInvalid)
	}
	if limit == 0 {
		return func() {}, nil
	}
	u, err := cg.OpenMemoryUsage()
	if err != nil {
		return nil, fmt.Errorf("watching memory of app %s: %w", appID, err)
	}
	if cg.Paths().Mode == cgroup.ModeUnified {
		return w.watchPolled(appID, u, limit, notify)
	}
	return w.watchNotified(appID, u, limit, notify)
}

func (w *Watcher) newWatch(appID string, u usageReader, limit uint64, notify func(int, uint64)) *watch {
	wt := &watch{app: appID, notify: notify, usage: u, levels: make([]level, len(w.levels))}
	for i, pct := range w.levels {
		wt.levels[i] = level{w: wt, percent: pct, threshold: percentOf(limit, pct), efd: -1}
	}
	return wt
}

// percentOf is limit*pct/100 without overflowing.
func percentOf(limit uint64, pct int) uint64 {
	p := uint64(pct)
	return limit/100*p + limit%100*p/100
}

// watchPolled watches an app on cgroup v2 by polling u.
func (w *Watcher) watchPolled(appID string, u usageReader, limit uint64, notify func(int, uint64)) (func(), error) {
	wt := w.newWatch(appID, u, limit, notify)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		u.Close()
		return nil, fmt.Errorf("watching memory of app %s: %w", appID, ErrClosed)
	}
	w.polled = append(w.polled, wt)
	if !w.polling {
		w.polling = true
		w.wg.Add(1)
		go w.poll()
	}
	// Evaluate the new app now rather than at the next tick.
	select {
	case w.pollWake <- struct{}{}:
	default:
	}
	return w.stopFunc(wt), nil
}

// notifier is what watchNotified needs of a usage reader: cgroup v1's
// threshold notifications.
type notifier interface {
	NotifyAt(efd int, threshold uint64) error
}

// watchNotified watches an app on cgroup v1 with kernel thresholds.
func (w *Watcher) watchNotified(appID string, u usageReader, limit uint64, notify func(int, uint64)) (stop func(), err error) {
	n, ok := u.(notifier)
	if !ok {
		u.Close()
		return nil, fmt.Errorf("watching memory of app %s: no threshold notifications: %w", appID, cgroup.ErrNotSupported)
	}
	wt := w.newWatch(appID, u, limit, notify)
	w.mu.Lock()
	defer w.mu.Unlock()
	defer func() {
		if err != nil {
			w.release(wt)
		}
	}()
	if w.closed {
		return nil, fmt.Errorf("watching memory of app %s: %w", appID, ErrClosed)
	}
	if err := w.startEpoll(); err != nil {
		return nil, fmt.Errorf("watching memory of app %s: %w", appID, err)
	}
	for i := range wt.levels {
		l := &wt.levels[i]
		if l.efd, err = syscalls.EventFD(); err != nil {
			return nil, fmt.Errorf("watching memory of app %s: %w", appID, err)
		}
		if err := n.NotifyAt(l.efd, l.threshold); err != nil {
			return nil, fmt.Errorf("watching memory of app %s: %w", appID, err)
		}
		if err := syscalls.EpollAdd(w.epfd, l.efd); err != nil {
			return nil, fmt.Errorf("watching memory of app %s: %w", appID, err)
		}
		w.byFD[int32(l.efd)] = l
	}
	// The epoll goroutine makes the first evaluation, so that all of an
	// app's notifications come from one goroutine, in order.
	w.initial = append(w.initial, wt)
	if err := syscalls.WriteEventFD(w.wakefd, 1); err != nil {
		return nil, fmt.Errorf("watching memory of app %s: %w", appID, err)
	}
	return w.stopFunc(wt), nil
}

// startEpoll creates the epoll set and its goroutine, once. w.mu is held.
func (w *Watcher) startEpoll() error {
	if w.ep != nil {
		return nil
	}
	epfd, err := syscalls.EpollCreate()
	if err != nil {
		return err
	}
	wakefd, err := syscalls.EventFD()
	if err != nil {
		syscalls.Close(epfd)
		return err
	}
	if err := syscalls.EpollAdd(epfd, wakefd); err != nil {
		syscalls.Close(epfd)
		syscalls.Close(wakefd)
		return err
	}
	// A non-blocking epoll descriptor goes into Go's poller: the goroutine
	// waits for it to become readable without holding a thread, and Close
	// wakes it.
	w.ep = os.NewFile(uintptr(epfd), "memory-thresholds-epoll")
	w.epfd, w.wakefd = epfd, wakefd
	w.wg.Add(1)
	go w.waitEpoll(w.ep)
	return nil
}

// stopFunc returns the stop function of wt.
func (w *Watcher) stopFunc(wt *watch) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			wt.stopped.Store(true)
			w.mu.Lock()
			defer w.mu.Unlock()
			w.release(wt)
		})
	}
}

// release unregisters wt and closes its descriptors, once. w.mu is held.
func (w *Watcher) release(wt *watch) {
	wt.stopped.Store(true)
	if wt.released {
		return
	}
	wt.released = true
	for i := range wt.levels {
		l := &wt.levels[i]
		if l.efd < 0 {
			continue
		}
		if w.byFD[int32(l.efd)] == l {
			delete(w.byFD, int32(l.efd))
			// Closing the eventfd removes it from the set too, unless a
			// child forked meanwhile still holds a copy: delete it
			// explicitly. The error (not in the set) is of no interest.
			_ = syscalls.EpollDelete(w.epfd, l.efd)
		}
		syscalls.Close(l.efd)
		l.efd = -1
	}
	w.polled = slices.DeleteFunc(w.polled, func(x *watch) bool { return x == wt })
	w.initial = slices.DeleteFunc(w.initial, func(x *watch) bool { return x == wt })
	wt.usage.Close()
}

// Close stops every watch, releases every descriptor and waits for the
// Watcher's goroutines to end. Watch fails afterwards with ErrClosed.
func (w *Watcher) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	var all []*watch
	for _, l := range w.byFD {
		all = append(all, l.w)
	}
	all = append(all, w.polled...)
	for _, wt := range all {
		w.release(wt) // once per watch
	}
	ep := w.ep
	close(w.done)
	w.mu.Unlock()

	var err error
	if ep != nil {
		err = ep.Close() // wakes the epoll goroutine
	}
	w.wg.Wait()
	if w.wakefd >= 0 {
		err = errors.Join(err, syscalls.Close(w.wakefd))
	}
	return err
}

// Stats are a Watcher's counts.
type Stats struct {
	Notified int // apps watched with kernel thresholds (cgroup v1)
	Polled   int // apps watched by polling (cgroup v2)
}

// Stats returns how many apps are watched.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Stats{Notified: len(w.byFD) / len(w.levels), Polled: len(w.polled)}
}

// waitEpoll serves cgroup v1 watches: it waits, in Go's poller, for the
// epoll set to have ready eventfds, handles them, and delivers the
// crossings. It ends when the epoll file is closed.
func (w *Watcher) waitEpoll(ep *os.File) {
	defer w.wg.Done()
	rc, err := ep.SyscallConn()
	if err != nil {
		return
	}
	events := make([]syscalls.EpollEvent, 64)
	var out []crossing
	for {
		err := rc.Read(func(fd uintptr) bool {
			// Go's poller watches the set edge-triggered: drain it before
			// waiting again.
			for {
				n, err := syscalls.EpollWait(int(fd), events, 0)
				if err != nil {
					w.report("", err)
					return false
				}
				if n == 0 {
					return false
				}
				out = w.handle(events[:n], out[:0])
				w.deliver(out)
			}
		})
		if err != nil {
			return // closed
		}
	}
}

// handle reads the eventfds that epoll reported and evaluates their apps,
// returning the crossings to deliver.
func (w *Watcher) handle(events []syscalls.EpollEvent, out []crossing) []crossing {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return out
	}
	w.batch++
	for _, ev := range events {
		if int(ev.Fd) == w.wakefd {
			if _, err := syscalls.ReadEventFD(w.wakefd); err != nil {
				w.report("", err)
			}
			for _, wt := range w.initial {
				out = w.evaluate(wt, false, out)
			}
			w.initial = w.initial[:0]
			continue
		}
		l := w.byFD[ev.Fd]
		if l == nil || l.w.seen == w.batch {
			continue // stopped meanwhile, or its app was evaluated in this batch
		}
		l.w.seen = w.batch
		for i := range l.w.levels {
			ll := &l.w.levels[i]
			n, err := syscalls.ReadEventFD(ll.efd)
			if err != nil {
				w.report(l.w.app, err)
			}
			ll.signals = n
		}
		out = w.evaluate(l.w, true, out)
	}
	return out
}

// evaluate reads wt's usage and appends the levels it crossed upwards, in
// ascending order.
//
// For a first evaluation or a poll (signalled false) a level is crossed
// when usage is at or above it and was not before. Otherwise each level's
// signals say how many times the kernel signalled that usage crossed it
// (either way) since the last evaluation: two or more always include an
// upward crossing, even if usage is back below by now; one is an upward
// crossing only if usage is now above and was not before (else usage fell;
// or it rose and fell and the fall is not signalled yet, which the next
// signal settles); none leaves the level as it was.
func (w *Watcher) evaluate(wt *watch, signalled bool, out []crossing) []crossing {
	if signalled && !slices.ContainsFunc(wt.levels, func(l level) bool { return l.signals > 0 }) {
		return out
	}
	usage, err := wt.usage.Read()
	if err != nil {
		if !wt.stopped.Load() && !gone(err) {
			w.report(wt.app, err)
		}
		return out
	}
	for i := range wt.levels {
		l := &wt.levels[i]
		now := usage >= l.threshold
		crossed := !l.above && now
		if signalled {
			n := l.signals
			l.signals = 0
			if n == 0 {
				continue
			}
			if n >= 2 {
				crossed = true
			}
		}
		l.above = now
		if crossed {
			out = append(out, crossing{w: wt, percent: l.percent, usage: usage})
		}
	}
	return out
}

// gone reports whether err means the cgroup was deleted (or the watch
// closed), which is how watches normally end.
func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENODEV) || errors.Is(err, cgroup.ErrClosed)
}

// deliver calls notify for each crossing whose watch is still on.
func (w *Watcher) deliver(out []crossing) {
	for i, c := range out {
		if !c.w.stopped.Load() {
			c.w.notify(c.percent, c.usage)
		}
		out[i] = crossing{} // drop references
	}
}

func (w *Watcher) report(app string, err error) {
	if w.onError != nil {
		w.onError(app, err)
	}
}

// poll serves cgroup v2 watches: every interval (and at once when an app is
// added) it reads each app's usage and delivers the crossings. It sleeps
// without a timer while there is nothing to poll.
func (w *Watcher) poll() {
	defer w.wg.Done()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	var list []*watch
	var out []crossing
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		case <-w.pollWake:
		}
		w.mu.Lock()
		list = append(list[:0], w.polled...)
		w.mu.Unlock()
		if len(list) == 0 {
			t.Stop()
			select {
			case <-w.done:
				return
			case <-w.pollWake:
			}
			t.Reset(w.interval)
			w.mu.Lock()
			list = append(list[:0], w.polled...)
			w.mu.Unlock()
		}
		for i, wt := range list {
			if !wt.stopped.Load() {
				out = w.evaluate(wt, false, out[:0])
				w.deliver(out)
			}
			list[i] = nil
		}
	}
}
