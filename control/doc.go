// Package control serves pilotfish's HTTP control API on a unix socket (docs/api.md).
//
// Handlers are thin: each decodes its request, calls one method of the Backend (core
// implements it) and writes the answer through writeJSON or writeError. Errors carry a class
// of internal/errdefs; HTTPStatus (errors.go) is the one place that maps a class to its
// status code and kind. Every request runs on its own goroutine with read and
// write deadlines, so a slow or stuck client never blocks the daemon; an event-stream client
// that stops reading is dropped; a log follower (logs.go) that reads slowly loses lines, not
// the jobs' time.
//
// The request and answer types are package control/api, shared with core and with the
// client half (the CLI's only way to talk to a daemon), package control/client; this
// package never imports the client.
package control
