// Package backoff is pilotfish's one retry policy toward a peer (Consul, a syslog target, a
// webhook): exponential with jitter, so that a peer that is down or overloaded is never
// hammered, and many instances that failed together do not retry together.
//
// Concurrency: a Backoff is not safe for concurrent use; each retry loop owns its own.
package backoff
