// Package events is pilotfish's event bus.
//
// An Event is a (Code, Source) pair stamped with a global sequence number. Jobs, watches and
// the daemon itself publish; jobs, the control API's event stream and telemetry subscribe.
//
// Guarantees, stated once here because everything else relies on them:
//   - Publish never blocks on a subscriber: it appends to each subscriber's own queue under
//     the bus lock and returns. No subscriber code runs while the lock is held.
//   - Every subscriber sees the events it accepts in one global order (by Seq).
//   - A reliable subscriber (the default) never loses an event: its queue grows instead. Only
//     subscribers created with a Limit (stream clients) are dropped when they fall that far
//     behind; their Done channel is then closed and Dropped reports true.
//   - A subscriber that never reads costs memory, not time: it delays nobody else.
//   - Subscribers take events themselves (Ready, Next, Recv); no goroutine per subscriber,
//     and Depth is exact.
//
// The last RingSize events are kept for replay (SubscribeSince, Since).
package events
