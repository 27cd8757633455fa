package jobs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/pilotfish/pilotfish/internal/backoff"
	"github.com/pilotfish/pilotfish/internal/syslogmsg"
)

// syslogListener is one socket messages arrive on.
type syslogListener interface {
	// Serve reads messages until stop closes, handing each to handle with a parser of its
	// own.
	Serve(handle func(*syslogmsg.Parser, []byte), stop <-chan struct{})
	Close()
}

func openSyslogListener(network, addr string) (syslogListener, error) {
	switch network {
	case "unixgram":
		if st, err := os.Lstat(addr); err == nil && st.Mode().Type() == os.ModeSocket {
			os.Remove(addr) // a stale /dev/log from an earlier run
		}
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
		if err != nil {
			return nil, err
		}
		// Every local program must be able to log, as with any /dev/log; the socket file
		// is writable, its directory is left as it is.
		if err := os.Chmod(addr, 0o666); err != nil {
			c.Close()
			return nil, err
		}
		_ = c.SetReadBuffer(4 << 20)
		return &datagramListener{conn: c, unlink: addr}, nil
	case "udp":
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, err
		}
		_ = c.(*net.UDPConn).SetReadBuffer(4 << 20)
		return &datagramListener{conn: c}, nil
	default:
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		return &streamListener{ln: ln, conns: map[net.Conn]bool{}}, nil
	}
}

// datagramListener takes one message per datagram (unixgram, udp).
type datagramListener struct {
	conn   net.PacketConn
	unlink string
}

func (l *datagramListener) Serve(handle func(*syslogmsg.Parser, []byte), stop <-chan struct{}) {
	p := syslogmsg.NewParser(nil)
	buf := make([]byte, maxSyslogMessage)
	for {
		n, _, err := l.conn.ReadFrom(buf)
		if err != nil {
			select {
			case <-stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		handle(p, buf[:n])
	}
}

func (l *datagramListener) Close() {
	l.conn.Close()
	if l.unlink != "" {
		os.Remove(l.unlink)
	}
}

// streamListener reads TCP connections framed by octet counting ("LEN MSG", RFC 6587) or
// by newlines; the first byte of each connection tells which.
type streamListener struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func (l *streamListener) Serve(handle func(*syslogmsg.Parser, []byte), stop <-chan struct{}) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-stop:
				l.closeConns()
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				l.closeConns()
				return
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		l.mu.Lock()
		l.conns[c] = true
		l.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				l.mu.Lock()
				delete(l.conns, c)
				l.mu.Unlock()
				c.Close()
			}()
			readFrames(c, syslogmsg.NewParser(nil), handle)
		}()
	}
}

func (l *streamListener) closeConns() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		c.Close()
	}
}

func (l *streamListener) Close() { l.ln.Close() }

func readFrames(r io.Reader, p *syslogmsg.Parser, handle func(*syslogmsg.Parser, []byte)) {
	br := bufio.NewReaderSize(r, maxSyslogMessage)
	for {
		first, err := br.Peek(1)
		if err != nil {
			return
		}
		if first[0] >= '1' && first[0] <= '9' {
			// ReadSlice, not ReadString: a length that never ends fills the buffer once
			// and ends the connection instead of growing without bound.
			lenStr, err := br.ReadSlice(' ')
			if err != nil {
				return
			}
			n, err := strconv.Atoi(string(lenStr[:len(lenStr)-1]))
			if err != nil || n <= 0 || n > maxSyslogMessage {
				return // not a frame: the stream cannot be trusted any more
			}
			frame := make([]byte, n)
			if _, err := io.ReadFull(br, frame); err != nil {
				return
			}
			handle(p, frame)
			continue
		}
		line, err := br.ReadSlice('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			handle(p, line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// forwarder sends messages on as RFC 5424, over UDP (a datagram each) or TCP (octet
// counted frames). While the target is down it retries with backoff (internal/backoff) and
// its output's queue fills: further messages are dropped and counted, nothing blocks a
// client. Every attempt has a deadline, and the context of Send ends every wait at once
// when the output gives up (docs/syslog.md, "Queues and drops"). One goroutine, the
// output's writer, calls Send; Close may come from any.
type forwarder struct {
	network, addr string
	log           *slog.Logger
	down          bool // the last attempt failed: the outage was logged (writer only)

	mu   sync.Mutex
	conn net.Conn
}

// forwardTimeout bounds one attempt: a connect, or the write of one batch to a target that
// accepts but does not read.
const forwardTimeout = 10 * time.Second

func newForwarder(network, addr string, log *slog.Logger) *forwarder {
	return &forwarder{network: network, addr: addr, log: log}
}

// append frames one message: "LEN MSG".
func (f *forwarder) append(buf []byte, m *syslogmsg.Message, host string) []byte {
	if m.Hostname != "" {
		host = m.Hostname // the sender's host, not the forwarder's
	}
	msg := syslogmsg.Append5424(nil, m, host)
	buf = strconv.AppendInt(buf, int64(len(msg)), 10)
	buf = append(buf, ' ')
	return append(buf, msg...)
}

// Send sends a batch of frames, retrying until it went out or ctx ends.
func (f *forwarder) Send(ctx context.Context, batch []byte) error {
	bo := backoff.NewPeer()
	for {
		err := f.attempt(ctx, batch)
		if err == nil {
			if f.down {
				f.down = false
				f.log.Info("forwarding syslog messages again", "to", f.target())
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !f.down {
			f.down = true
			f.log.Warn("cannot forward syslog messages; retrying", "to", f.target(), "err", err)
		} else {
			f.log.Debug("cannot forward syslog messages; retrying", "to", f.target(), "err", err)
		}
		if !backoff.Sleep(ctx, bo.Next()) {
			return ctx.Err()
		}
	}
}

func (f *forwarder) target() string { return f.network + "://" + f.addr }

// attempt connects if needed and writes the batch, within forwardTimeout; ctx ending
// interrupts both.
func (f *forwarder) attempt(ctx context.Context, batch []byte) error {
	f.mu.Lock()
	conn := f.conn
	f.mu.Unlock()
	if conn == nil {
		dctx, cancel := context.WithTimeout(ctx, forwardTimeout)
		c, err := (&net.Dialer{}).DialContext(dctx, f.network, f.addr)
		cancel()
		if err != nil {
			return err
		}
		f.mu.Lock()
		f.conn, conn = c, c
		f.mu.Unlock()
	}
	_ = conn.SetWriteDeadline(time.Now().Add(forwardTimeout))
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
	err := f.send(conn, batch)
	stop()
	if err != nil {
		f.drop(conn) // a partial frame was maybe sent: start over on a new connection
	}
	return err
}

func (f *forwarder) send(conn net.Conn, batch []byte) error {
	if f.network == "tcp" {
		_, err := conn.Write(batch)
		return err
	}
	for len(batch) > 0 { // one datagram per frame
		sp := bytes.IndexByte(batch, ' ')
		n, _ := strconv.Atoi(string(batch[:sp]))
		if _, err := conn.Write(batch[sp+1 : sp+1+n]); err != nil {
			return err
		}
		batch = batch[sp+1+n:]
	}
	return nil
}

func (f *forwarder) drop(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn == c {
		f.conn.Close()
		f.conn = nil
	}
}

// Close closes the connection; a later Send opens a new one.
func (f *forwarder) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn != nil {
		f.conn.Close()
		f.conn = nil
	}
}
