// Package client is the Go client of pilotfish's control API, and the only way the CLI
// talks to a running daemon. It speaks HTTP/1.1 + JSON over the daemon's unix socket.
//
// Errors: a request the daemon refused is an *APIError (with the HTTP status, kind and
// message); a daemon that cannot be reached at all is an error wrapping ErrUnreachable.
//
// Concurrency: a Client may be used by several goroutines at once; each request has its own
// connection or one from the pool.
package client
