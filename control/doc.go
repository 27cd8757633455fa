// Package control serves pilotfish's HTTP control API on a unix socket (SPEC §4).
//
// Handlers are thin: each decodes its request, calls one method of the Backend (core
// implements it) and writes the answer through writeJSON or writeError, the one place that
// maps error classes to status codes. Every request runs on its own goroutine with read and
// write deadlines, so a slow or stuck client never blocks the daemon; an event-stream client
// that stops reading is dropped.
//
// The client half (the CLI's only way to talk to a daemon) is package control/client.
package control
