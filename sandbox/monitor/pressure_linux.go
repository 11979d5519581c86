package monitor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
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

// DefaultPollInterval is how often a Watcher reads the memory usage of the
// apps it polls by default.
const DefaultPollInterval = 250 * time.Millisecond

// RearmPoints is how far, in percentage points of the limit, use must fall
// below a level before the level can be reported again (80% is re-armed
// below 78%), so that use hovering at a level is not reported over and over.
const RearmPoints = 2

// maxArming bounds how many apps have their thresholds armed at once. Each
// arming blocks a thread in the kernel for an RCU grace period; concurrent
// ones share grace periods.
const maxArming = 16

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	// Levels are the percentages of the memory limit to report, ascending,
	// each in 1..100. Empty means DefaultLevels.
	Levels []int
	// PollInterval is how often polled apps' usage is read; 0 means
	// DefaultPollInterval. On cgroup v2 a crossing shorter than this can go
	// unseen.
	PollInterval time.Duration
	// PollPeak polls every app's memory high watermark instead of arming
	// kernel thresholds on cgroup v1 (and instead of polling the usage on
	// v2). Arming and disarming v1 thresholds costs RCU grace periods per
	// app; at a daemon's full start rate that cut throughput from ~188 to
	// ~125 apps/s here (measured with hack/loadgen), while one pread per
	// app per poll is cheap. The watermark cannot miss a spike between two
	// polls. Each level is then reported at most once
	// per app: a watermark never falls, so nothing re-arms.
	PollPeak bool
	// OnError, if set, is told about failures met after Watch returned (a
	// usage read that fails other than because the cgroup is gone, a
	// threshold the kernel refused to arm). It is called from the Watcher's
	// goroutines and must not block.
	OnError func(appID string, err error)
}

// Watcher reports when apps' memory use crosses levels of their memory
// limits. One serves a whole daemon; it is safe for concurrent use.
//
// On cgroup v1 (legacy and hybrid hosts) the kernel signals the crossings:
// each watched app costs one eventfd per level, armed as a memory threshold
// (cgroup.event_control), plus its open usage file. All eventfds are in one
// epoll set, waited on by one goroutine parked in Go's poller, so an app
// whose use is away from its levels costs no CPU, goroutine or thread. The
// kernel checks thresholds only every 128 pages charged on a CPU, and says
// nothing when use falls below a re-arm point, so an app whose use is just
// below a level or between a level and its re-arm point is also polled
// until it leaves that band. Arming a threshold makes the kernel wait for
// an RCU grace period (about 20 ms here), so Watch arms in the background,
// on at most 16 short-lived goroutines whose waits overlap (1000 apps armed
// in 2.5 s here), and evaluates the app once armed; if the kernel refuses
// (a PREEMPT_RT kernel has no cgroup.event_control), the app is polled.
//
// On cgroup v2 there is no such notification for memory.current: each app
// costs its open usage file, and one goroutine rereads them all every
// PollInterval.
//
// The epoll and the polling goroutines start with the first app that needs
// them and end at Close.
type Watcher struct {
	levels   []int
	interval time.Duration
	onError  func(string, error)
	pollPeak bool
	slack    uint64 // how far the kernel's threshold checks can lag behind usage

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	done   chan struct{}

	// Kernel thresholds (cgroup v1): the epoll set, its goroutine, and the
	// eventfds in it. Watches in pending are evaluated by that goroutine
	// without a signal: newly armed ones, and near ones the poller hands
	// over at every tick.
	ep      *os.File // nil until the first v1 app
	epfd    int
	wakefd  int              // eventfd that wakes the epoll goroutine for pending
	byFD    map[int32]*level // eventfd → the level it is for
	pending []*watch
	near    map[*watch]bool // notified watches in a band that needs polling
	batch   uint64          // counts epoll batches, to visit a watch once per batch
	arming  int             // watches whose thresholds are being armed
	armSem  chan struct{}

	// Polled watches (cgroup v2, or v1 where thresholds cannot be armed)
	// and the poller's doorbells: poll now, or resume ticking.
	polled     []*watch
	pollNow    chan struct{}
	pollResume chan struct{}
	polling    bool
}

// usageReader reads an app's memory usage: a *cgroup.MemoryUsage, or a
// stand-in in tests.
type usageReader interface {
	Read() (uint64, error)
	Close() error
}

// notifier is what kernel thresholds need of a usage reader (cgroup v1).
type notifier interface {
	NotifyAt(efd int, threshold uint64) error
}

// watch is one app being watched. One goroutine evaluates it at a time:
// the epoll goroutine for notified watches, the poller for polled ones.
type watch struct {
	app     string
	notify  func(level int, usage uint64)
	usage   usageReader
	levels  []level
	stopped atomic.Bool

	// Under Watcher.mu:
	released bool   // stopped and unregistered
	arming   bool   // an armer uses its descriptors, and closes them if released meanwhile
	queued   bool   // in Watcher.pending
	seen     uint64 // the epoll batch that last visited it
}

// level is one level of one watch: reported when usage reaches threshold,
// re-armed when it falls below rearm.
type level struct {
	w         *watch
	percent   int
	threshold uint64
	rearm     uint64
	efd       int    // the eventfd armed at threshold (v1); -1 otherwise
	signals   uint64 // crossings the kernel signalled, not yet evaluated
	above     bool   // reported and not re-armed yet
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
		pollPeak: opts.PollPeak,
		// memcg checks thresholds every 128 pages charged per CPU and
		// charges up to 64 pages ahead per CPU.
		slack:      uint64(runtime.NumCPU()) * (128 + 64) * uint64(os.Getpagesize()),
		done:       make(chan struct{}),
		epfd:       -1,
		wakefd:     -1,
		byFD:       make(map[int32]*level),
		near:       make(map[*watch]bool),
		armSem:     make(chan struct{}, maxArming),
		pollNow:    make(chan struct{}, 1),
		pollResume: make(chan struct{}, 1),
	}, nil
}

// Watch starts watching app appID, whose cgroup is cg and memory limit is
// limit bytes: notify(level, usage) is called when its memory use reaches
// level percent of limit, with the usage in bytes read then. A level is
// reported again only after use fell RearmPoints below it. Levels use is
// already at when watching begins are reported then. On cgroup v1 a level
// can be reported with a usage below it: when the kernel signalled a rise
// past the level and a fall back before the watcher read the usage.
//
// Watch returns at once; on cgroup v1 watching begins when the thresholds
// are armed, tens of milliseconds later (Stats().Arming counts apps not
// armed yet). notify is called from the Watcher's goroutines, one call at a
// time per app, lowest level first; it must not block for long (apps share
// the goroutines) and must not call Close. A limit of 0 means the app has
// none: nothing is watched and stop does nothing.
//
// stop ends the watch and releases its descriptors; it can be called more
// than once, and from notify. After stop returns no new notify call starts,
// but one already running may still be.
func (w *Watcher) Watch(appID string, cg cgroup.Cgroup, limit uint64, notify func(level int, usage uint64)) (stop func(), err error) {
	if cg == nil || notify == nil {
		return nil, fmt.Errorf("watching memory of app %s: no cgroup or no callback: %w", appID, ErrInvalid)
	}
	if limit == 0 {
		return func() {}, nil
	}
	if w.pollPeak {
		u, err := cg.OpenMemoryPeak()
		if err != nil {
			return nil, fmt.Errorf("watching memory of app %s: %w", appID, err)
		}
		return w.watchPolled(appID, u, limit, notify)
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
		thr := percentOf(limit, pct)
		wt.levels[i] = level{
			w:         wt,
			percent:   pct,
			threshold: thr,
			rearm:     thr - min(thr/2, percentOf(limit, RearmPoints)),
			efd:       -1,
		}
	}
	return wt
}

// percentOf is limit*pct/100 without overflowing.
func percentOf(limit uint64, pct int) uint64 {
	p := uint64(pct)
	return limit/100*p + limit%100*p/100
}

// watchPolled watches an app by polling u (cgroup v2).
func (w *Watcher) watchPolled(appID string, u usageReader, limit uint64, notify func(int, uint64)) (func(), error) {
	wt := w.newWatch(appID, u, limit, notify)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		u.Close()
		return nil, fmt.Errorf("watching memory of app %s: %w", appID, ErrClosed)
	}
	w.polled = append(w.polled, wt)
	w.startPolling(true)
	return w.stopFunc(wt), nil
}

// startPolling starts the poller if it does not run, or wakes it if it
// sleeps for want of work. With now set it polls at once rather than at its
// next tick. w.mu is held.
func (w *Watcher) startPolling(now bool) {
	if !w.polling {
		w.polling = true
		w.wg.Add(1)
		go w.poll()
	}
	wake := w.pollResume
	if now {
		wake = w.pollNow
	}
	select {
	case wake <- struct{}{}:
	default:
	}
}

// watchNotified watches an app with kernel thresholds (cgroup v1): it
// makes the eventfds, puts them in the epoll set, and leaves arming them to
// a goroutine.
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
			err = fmt.Errorf("watching memory of app %s: %w", appID, err)
		}
	}()
	if w.closed {
		return nil, ErrClosed
	}
	if err := w.startEpoll(); err != nil {
		return nil, err
	}
	for i := range wt.levels {
		l := &wt.levels[i]
		if l.efd, err = syscalls.EventFD(); err != nil {
			return nil, err
		}
		if err := syscalls.EpollAdd(w.epfd, l.efd); err != nil {
			return nil, err
		}
		w.byFD[int32(l.efd)] = l
	}
	wt.arming = true
	w.arming++
	w.wg.Add(1)
	go w.arm(wt, n)
	return w.stopFunc(wt), nil
}

// arm arms wt's thresholds in the kernel, then has the epoll goroutine
// evaluate wt for the first time (so that all of an app's notifications
// come from that goroutine, in order). If the kernel refuses, wt is polled
// instead.
func (w *Watcher) arm(wt *watch, n notifier) {
	defer w.wg.Done()
	var err error
	select {
	case w.armSem <- struct{}{}:
		for i := range wt.levels {
			if wt.stopped.Load() {
				break
			}
			l := &wt.levels[i]
			if err = n.NotifyAt(l.efd, l.threshold); err != nil {
				break
			}
		}
		<-w.armSem
	case <-w.done:
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	wt.arming = false
	w.arming--
	switch {
	case wt.released:
		w.closeFDs(wt) // stopped while arming: the descriptors were left to us
	case err != nil && gone(err):
		// The cgroup is gone: the app has ended and will be stopped.
	case err != nil:
		w.report(wt.app, fmt.Errorf("arming memory thresholds (polling instead): %w", err))
		// A level armed before the refusal may have been signalled: the
		// epoll goroutine must be done with wt before the poller takes it.
		w.unregisterFDs(wt)
		w.dequeue(wt)
		w.closeEventFDs(wt)
		w.polled = append(w.polled, wt)
		w.startPolling(true)
	default:
		w.queue(wt)
		w.wakeEpoll()
	}
}

// queue has the epoll goroutine evaluate notified watch wt without a
// signal, once, at its next wakeup. w.mu is held.
func (w *Watcher) queue(wt *watch) {
	if !wt.queued {
		wt.queued = true
		w.pending = append(w.pending, wt)
	}
}

// dequeue makes sure the epoll goroutine does not evaluate wt without a
// signal again. w.mu is held.
func (w *Watcher) dequeue(wt *watch) {
	if wt.queued {
		w.pending = slices.DeleteFunc(w.pending, func(x *watch) bool { return x == wt })
		wt.queued = false
	}
	delete(w.near, wt)
}

// wakeEpoll wakes the epoll goroutine. w.mu is held.
func (w *Watcher) wakeEpoll() {
	if err := syscalls.WriteEventFD(w.wakefd, 1); err != nil {
		w.report("", err)
	}
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
	// waits for it to become readable without holding a thread, and closing
	// the file wakes it.
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

// release unregisters wt and closes its descriptors (or leaves that to its
// armer), once. w.mu is held.
func (w *Watcher) release(wt *watch) {
	wt.stopped.Store(true)
	if wt.released {
		return
	}
	wt.released = true
	w.unregisterFDs(wt)
	w.polled = slices.DeleteFunc(w.polled, func(x *watch) bool { return x == wt })
	w.dequeue(wt)
	if !wt.arming {
		w.closeFDs(wt)
	}
}

// unregisterFDs takes wt's eventfds out of the epoll set. w.mu is held.
func (w *Watcher) unregisterFDs(wt *watch) {
	for i := range wt.levels {
		l := &wt.levels[i]
		if l.efd >= 0 && w.byFD[int32(l.efd)] == l {
			delete(w.byFD, int32(l.efd))
			// Closing the eventfd would remove it from the set too, unless
			// a child forked meanwhile still holds a copy.
			_ = syscalls.EpollDelete(w.epfd, l.efd)
		}
	}
}

// closeEventFDs closes wt's eventfds, which also disarms their thresholds
// (the kernel does it asynchronously). w.mu is held.
func (w *Watcher) closeEventFDs(wt *watch) {
	for i := range wt.levels {
		if l := &wt.levels[i]; l.efd >= 0 {
			syscalls.Close(l.efd)
			l.efd = -1
		}
	}
}

// closeFDs closes every descriptor of wt. w.mu is held.
func (w *Watcher) closeFDs(wt *watch) {
	w.closeEventFDs(wt)
	wt.usage.Close()
}

// Close stops every watch, releases every descriptor and waits for the
// Watcher's goroutines to end (an arming in progress first finishes its
// kernel call). Watch fails afterwards with ErrClosed.
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
	Notified int // apps watched with kernel thresholds (cgroup v1), armed or being armed
	Arming   int // of those, apps whose thresholds are still being armed
	Near     int // of those, apps polled because their use is near a level
	Polled   int // apps watched by polling alone (cgroup v2)
}

// Stats returns how many apps are watched, and how.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Stats{Notified: len(w.byFD) / len(w.levels), Arming: w.arming, Near: len(w.near), Polled: len(w.polled)}
}

// waitEpoll serves notified watches: it waits, in Go's poller, for the
// epoll set to have ready eventfds, handles them, and delivers the
// crossings. It ends when the Watcher is closed.
func (w *Watcher) waitEpoll(ep *os.File) {
	defer w.wg.Done()
	rc, err := ep.SyscallConn()
	if err != nil {
		return
	}
	events := make([]syscalls.EpollEvent, 64)
	var out []crossing
	_ = rc.Read(func(fd uintptr) bool {
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
			var closed bool
			out, closed = w.handle(events[:n], out[:0])
			if closed {
				// Ready descriptors are no longer read: leave before they
				// make this loop spin.
				return true
			}
			w.deliver(out)
		}
	})
	// Read returned: the Watcher was closed (and with it the file).
}

// handle reads the eventfds that epoll reported and evaluates their apps,
// returning the crossings to deliver.
func (w *Watcher) handle(events []syscalls.EpollEvent, out []crossing) (_ []crossing, closed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return out, true
	}
	w.batch++
	for _, ev := range events {
		if int(ev.Fd) == w.wakefd {
			if _, err := syscalls.ReadEventFD(w.wakefd); err != nil {
				w.report("", err)
			}
			for i, wt := range w.pending {
				wt.queued = false
				if wt.seen != w.batch {
					wt.seen = w.batch
					out = w.evaluateNotified(wt, out)
				}
				w.pending[i] = nil
			}
			w.pending = w.pending[:0]
			continue
		}
		l := w.byFD[ev.Fd]
		if l == nil || l.w.seen == w.batch {
			continue // stopped meanwhile, or its app was evaluated in this batch
		}
		l.w.seen = w.batch
		out = w.evaluateNotified(l.w, out)
	}
	return out, false
}

// evaluateNotified collects the kernel's signals for wt, evaluates it and
// keeps track of whether it must be polled. w.mu is held.
func (w *Watcher) evaluateNotified(wt *watch, out []crossing) []crossing {
	for i := range wt.levels {
		l := &wt.levels[i]
		n, err := syscalls.ReadEventFD(l.efd)
		if err != nil {
			w.report(wt.app, err)
		}
		l.signals += n
	}
	out, near := w.evaluate(wt, out)
	switch {
	case near && !w.near[wt]:
		w.near[wt] = true
		w.startPolling(false)
	case !near:
		delete(w.near, wt)
	}
	return out
}

// evaluate reads wt's usage, updates its levels and appends the levels it
// crossed upwards, in ascending order. A level is crossed when usage
// reaches it while it is armed, or when the kernel signalled two crossings
// or more since the last look: those always include a rise past the level,
// even if usage is back below by now. A level is re-armed when usage falls
// below its re-arm point.
//
// near reports whether the kernel's signals alone may not tell what happens
// next, so that wt must be polled: usage is between a reported level and
// its re-arm point (the kernel signals nothing at re-arm points), or within
// the kernel's check granularity below an armed level (where a signalled
// rise may have been read as no rise).
func (w *Watcher) evaluate(wt *watch, out []crossing) (_ []crossing, near bool) {
	usage, err := wt.usage.Read()
	if err != nil {
		if !wt.stopped.Load() && !gone(err) {
			w.report(wt.app, err)
		}
		for i := range wt.levels {
			wt.levels[i].signals = 0
		}
		return out, false
	}
	for i := range wt.levels {
		l := &wt.levels[i]
		signals := l.signals
		l.signals = 0
		if !l.above && (usage >= l.threshold || signals >= 2) {
			out = append(out, crossing{w: wt, percent: l.percent, usage: usage})
			l.above = true
		}
		if l.above && usage < l.rearm {
			l.above = false
		}
		if (l.above && usage < l.threshold) || (!l.above && usage+w.slack >= l.threshold) {
			near = true
		}
	}
	return out, near
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

// poll serves polled watches: every interval (and at once when an app is
// added) it reads each one's usage and delivers the crossings, and it has
// the epoll goroutine evaluate notified watches that are near a level. It
// sleeps without a timer while there is nothing to poll.
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
		case <-w.pollNow:
		case <-w.pollResume:
			continue // ticking again; poll at the next tick
		}
		w.mu.Lock()
		list = append(list[:0], w.polled...)
		if len(w.near) > 0 && !w.closed {
			for wt := range w.near {
				w.queue(wt)
			}
			w.wakeEpoll()
		}
		idle := len(list) == 0 && len(w.near) == 0
		w.mu.Unlock()
		for i, wt := range list {
			if !wt.stopped.Load() {
				out, _ = w.evaluate(wt, out[:0])
				w.deliver(out)
			}
			list[i] = nil
		}
		if idle {
			t.Stop()
			select {
			case <-w.done:
				return
			case <-w.pollNow:
				select { // poll at once: the next select takes it
				case w.pollNow <- struct{}{}:
				default: // another wakeup is there already
				}
			case <-w.pollResume:
			}
			t.Reset(w.interval)
		}
	}
}
