package control

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control/api"
)

func errorOf(t *testing.T, body string) api.ErrorDetail {
	t.Helper()
	var e api.ErrorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not a JSON error: %q", body)
	}
	return e.Error
}

func TestMutatingCallsWaitForStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pf.sock")
	s, err := Listen(config.Control{Socket: path, Mode: 0o600}, newBackend(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Serve()
	defer s.Close(context.Background())
	for _, p := range []string{"/v1/reload", "/v1/environ", "/v1/metric", "/v1/maintenance/enable", "/v3/maintenance/disable",
		"/v1/jobs/app/start", "/v1/jobs/app/stop", "/v1/jobs/app/restart", "/v1/jobs/app/signal", "/v1/shutdown"} {
		code, body := raw(t, path, "POST", p, "{}")
		if e := errorOf(t, body); code != http.StatusServiceUnavailable || e.Kind != api.KindStarting {
			t.Errorf("POST %s before start: %d %s, want 503 %s", p, code, body, api.KindStarting)
		}
	}
	for _, p := range []string{"/v1/ping", "/v1/status", "/v1/health", "/v1/jobs/app"} {
		if code, body := raw(t, path, "GET", p, ""); code != 200 {
			t.Errorf("GET %s before start: %d %s", p, code, body)
		}
	}
	s.Started()
	if code, body := raw(t, path, "POST", "/v1/maintenance/enable", "{}"); code != 200 {
		t.Errorf("POST /v1/maintenance/enable after start: %d %s", code, body)
	}
}

func TestStreamCap(t *testing.T) {
	s, _, _ := serve(t, config.Control{})
	var conns []net.Conn
	open := func() string {
		c, err := net.Dial("unix", s.Path())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		fmt.Fprint(c, "GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range MaxStreams {
		if line := open(); !strings.Contains(line, " 200 ") {
			t.Fatalf("stream %d: %q", i, line)
		}
	}
	code, body := raw(t, s.Path(), "GET", "/v1/events", "")
	if e := errorOf(t, body); code != http.StatusTooManyRequests || e.Kind != api.KindTooManyStreams || !strings.Contains(e.Message, "64") {
		t.Fatalf("stream %d: %d %s", MaxStreams+1, code, body)
	}
	if code, _ := raw(t, s.Path(), "GET", "/v1/ping", ""); code != 200 {
		t.Fatalf("ping with every stream taken: %d", code)
	}
	conns[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := raw(t, s.Path(), "GET", "/v1/events?follow=false", "")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot of a closed stream never came back (%d)", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A listener at its connection cap makes room by closing the connection that has waited
// longest without a request in progress (idle, or new and silent for newGrace); with none,
// it waits until a connection ends.
func TestConnLimiterMakesRoom(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "l.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l := newConnLimiter(ln, 2)
	accepted := make(chan net.Conn, 1)
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		l.Close()
		for range accepted {
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("unix", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	next := func() net.Conn {
		select {
		case s := <-accepted:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("not accepted")
		}
		return nil
	}
	closed := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF
	}
	counted := func(c net.Conn) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		_, ok := l.conns[c]
		return ok
	}
	dial()
	s1 := next()
	c2 := dial()
	s2 := next()
	l.connState(s1, http.StateActive)
	l.connState(s2, http.StateIdle)
	dial()
	s3 := next() // room made by closing the idle s2
	if !closed(c2) || counted(s2) || !counted(s1) || !counted(s3) {
		t.Fatal("the idle connection was not the one closed to make room")
	}
	l.connState(s3, http.StateActive)
	// Both busy: the next connection waits until one ends.
	c4 := dial()
	l.connState(s1, http.StateClosed)
	s4 := next()
	if !counted(s4) || counted(s1) {
		t.Fatal("a closed connection's place was not given to the waiting one")
	}
	// s4 never sends a byte: after newGrace it makes room for the next.
	t0 := time.Now()
	dial()
	s5 := next()
	if !closed(c4) || counted(s4) || !counted(s5) {
		t.Fatal("a silent new connection was not closed to make room")
	}
	if d := time.Since(t0); d < newGrace/2 {
		t.Fatalf("a silent new connection was closed after %s, before its grace of %s", d, newGrace)
	}
}

func TestDecodeEnvironLimits(t *testing.T) {
	for _, c := range []struct {
		body string
		ok   bool
		kind string
	}{
		{`{"K":"` + strings.Repeat("x", MaxEnvEntry-2) + `"}`, true, ""},
		{`{"K":"` + strings.Repeat("x", MaxEnvEntry-1) + `"}`, false, api.KindTooLarge},
		{`{"K":"a\u0000b"}`, false, api.KindBadRequest},
	} {
		_, err := DecodeEnviron(strings.NewReader(c.body))
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v", c.body[:min(len(c.body), 20)], err)
			continue
		}
		if err != nil {
			if _, kind := HTTPStatus(err); kind != c.kind {
				t.Errorf("%s: kind %s, want %s (%v)", c.body[:20], kind, c.kind, err)
			}
		}
	}
}
