// Package events is the daemon's causal event log: every lifecycle
// transition, cleanup step, OOM kill, limit hit, signal, policy change and
// API call becomes an [Event] with a monotonically increasing id, a
// timestamp, the app it concerns, and the id of the event that caused it
// (its causal parent: the API call that created an app → its spawn → its
// exit → its cleanup).
//
// A [Log] keeps the most recent events in a bounded in-memory ring. Emitting
// is cheap enough for hot paths — no allocation, no lock shared between
// emitters, tens of nanoseconds — so callers emit freely: an emitter takes
// the next id with one atomic add and writes its slot under that slot's own
// mutex. Readers replay from an id ([Log.Since], [Log.Get]) or follow
// ([Log.Subscribe]): a [Subscription] first replays what the ring still
// holds and then waits for new events. Waiting costs the emitters nothing
// until a subscriber actually sleeps; it is then woken through a one-slot
// channel used as a doorbell, so emitting never allocates.
//
// A subscriber that falls more than the ring's size behind loses events. It
// is told so: [Subscription.Next] returns a synthetic event of kind
// [EventsDropped] whose Value is the number of events lost (ID 0: it is not
// part of the log), then continues from the oldest event still held. [Log.Stats]
// counts such losses for the daemon's "events dropped" metric.
//
// Event strings (app ids, details) are kept by reference: callers pass
// strings that already exist (the app's id, constants) so that emitting does
// not allocate. The package does not persist events, format them for people,
// or decide which events to emit; the daemon does.
package events
