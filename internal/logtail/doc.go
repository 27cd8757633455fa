// Package logtail keeps the tail of every job's output in memory and hands new lines to
// the readers that follow them (GET /v1/logs, docs/api.md#get-v1logs).
//
// A Ring is one job's tail: whole lines, each with its time and stream, in a byte ring
// bounded by the job's `logging { buffer }`; the oldest lines go first. A Store holds the
// rings by job name and the followers. A Follower is one reader of new lines, with a
// bounded queue of its own: the output copier that appends a line never waits for a
// reader; when a follower's queue is full, the line is dropped for that follower only
// and counted, and the follower is told how many it lost (docs/jobs.md#logging).
//
// Concurrency: each Ring has a mutex, held while a line is stored and handed to the
// followers, so that a follower sees a job's lines in the ring's order; each Follower has
// its own mutex (taken inside a ring's, never the other way round). The Store's mutex
// guards its map; its follower list is copied on write, so appending a line takes no lock
// of the Store. Callers: the job output copiers (Append), the daemon (Store.Ring, Keep,
// Last, Follow) and the control API's log stream (Follower.Take).
package logtail
