package jobs

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"golang.org/x/sys/unix"
)

// inetdKind listens and runs its command per connection (accept) or once on the first
// connection with the listening socket passed on, as systemd socket activation does
// (activate).
type inetdKind struct{}

// InetdSpec is the inetd kind's part of a job's configuration.
type InetdSpec struct {
	Listen         string `json:"listen"`
	Mode           string `json:"mode"`
	MaxConnections int    `json:"max_connections"`
	Network        string `json:"network"` // tcp, udp or unix
	Address        string `json:"address"`
}

// Equal reports whether other is the same inetd spec.
func (s *InetdSpec) Equal(other config.Spec) bool { return config.SpecEqual(s, other) }

// Inetd modes and defaults.
const (
	ModeAccept            = "accept"
	ModeActivate          = "activate"
	DefaultMaxConnections = 64
	maxDatagram           = 64 << 10
)

func (inetdKind) Schema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "listen", Required: true}, {Name: "mode"}, {Name: "max_connections"}}}
}
func (inetdKind) ExecRule() config.ExecRule       { return config.ExecRequired }
func (inetdKind) Armed() bool                     { return true }
func (inetdKind) Emits(*config.Job) []events.Code { return processCodes }

func (inetdKind) Decode(d *config.Decoder, j *config.Job, c *hcl.BodyContent) {
	spec := &InetdSpec{Mode: ModeAccept, MaxConnections: DefaultMaxConnections}
	if d.String(c.Attributes, "listen", &spec.Listen) {
		var err error
		if spec.Network, spec.Address, err = parseListen(spec.Listen, "tcp", "udp", "unix"); err != nil {
			d.Errorf(c.Attributes["listen"].Expr.Range(), "%s", err)
		}
	}
	if d.String(c.Attributes, "mode", &spec.Mode) {
		d.OneOf(c.Attributes, "mode", spec.Mode, ModeAccept, ModeActivate)
	}
	d.Int(c.Attributes, "max_connections", 1, 1<<20, &spec.MaxConnections)
	j.Spec = spec
	if spec.Mode == ModeAccept {
		decodeOverlap(d, j, config.OverlapAllow)
		if j.Health != nil {
			d.Errorf(j.Range, "job %q: an inetd job in accept mode runs a process per connection; health checks apply to mode = \"activate\"", j.Name)
		}
	} else {
		decodeOverlap(d, j, config.OverlapSkip)
		checkArmedOnFailure(d, j, "the next connection starts the program again")
	}
}

// checkArmedOnFailure refuses health.on_failure = "restart" for a kind that restarts
// nothing (cron, inetd): why says what starts its next run.
func checkArmedOnFailure(d *config.Decoder, j *config.Job, why string) {
	if h := j.Health; h != nil && h.OnFailure == config.OnFailureRestart {
		d.Errorf(j.Range, "job %q: kind %q restarts nothing (%s); health.on_failure may be \"ignore\" or \"shutdown\"", j.Name, j.Kind, why)
	}
}

// parseListen reads tcp://host:port, udp://host:port and unix:///path (or whichever
// schemes are allowed).
func parseListen(s string, schemes ...string) (network, address string, err error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return "", "", fmt.Errorf("%q is not a listen address; write it like \"tcp://127.0.0.1:8080\", \"udp://0.0.0.0:514\" or \"unix:///run/app.sock\"", s)
	}
	ok := false
	for _, sc := range schemes {
		ok = ok || u.Scheme == sc
	}
	if !ok {
		return "", "", fmt.Errorf("%q: the scheme must be one of %s", s, strings.Join(schemes, ", "))
	}
	// Nothing of what is written may be ignored: a "?" or "#" in a socket's name would
	// otherwise listen on another path than the one written.
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.HasSuffix(s, "#") {
		return "", "", fmt.Errorf("%q: a listen address has no user, query (?) or fragment (#)", s)
	}
	if strings.HasPrefix(u.Scheme, "unix") {
		if u.Host != "" || u.Path == "" || !strings.HasPrefix(u.Path, "/") || strings.ContainsRune(u.Path, 0) {
			return "", "", fmt.Errorf("%q: a unix socket needs an absolute path, such as unix:///run/app.sock", s)
		}
		return u.Scheme, u.Path, nil
	}
	if u.Path != "" {
		return "", "", fmt.Errorf("%q: a %s address is HOST:PORT, without a path", s, u.Scheme)
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "", "", fmt.Errorf("%q: %v", s, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return "", "", fmt.Errorf("%q: %q is not a port", s, port)
	}
	return u.Scheme, net.JoinHostPort(host, port), nil
}

func (inetdKind) NewDriver(job *config.Job, rt *Runtime) (Driver, error) {
	out, err := newJobOutput(job, rt)
	if err != nil {
		return nil, err
	}
	return &inetdDriver{processDriver: processDriver{job: job, rt: rt, out: out}, spec: job.Spec.(*InetdSpec)}, nil
}

// inetdDriver owns the listening socket. It is opened when the job starts (before startup
// is published, so no connection races it), handed to the accept loop when the job is
// armed, and closed when the job stops.
type inetdDriver struct {
	processDriver
	spec *InetdSpec

	mu       sync.Mutex
	ln       net.Listener
	pc       net.PacketConn
	file     *os.File // a dup of the socket, for socket activation
	stop     chan struct{}
	done     chan struct{}
	wake     *os.File    // activate: closing it ends the wait for a connection
	runEnded chan Result // activate: the program exited
	active   int
	accepted float64
	refused  float64
}

func (d *inetdDriver) Concurrent() bool { return d.spec.Mode == ModeAccept }

// Prepare opens the socket.
func (d *inetdDriver) Prepare() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.openLocked()
}

func (d *inetdDriver) openLocked() error {
	if d.ln != nil || d.pc != nil {
		return nil
	}
	var err error
	switch d.spec.Network {
	case "unix":
		if st, serr := os.Lstat(d.spec.Address); serr == nil && st.Mode().Type() == os.ModeSocket {
			os.Remove(d.spec.Address) // a stale socket from an earlier run
		}
		if d.ln, err = net.Listen("unix", d.spec.Address); err == nil {
			err = os.Chmod(d.spec.Address, 0o666)
		}
	case "udp":
		d.pc, err = net.ListenPacket("udp", d.spec.Address)
	default:
		d.ln, err = net.Listen("tcp", d.spec.Address)
	}
	if err != nil {
		d.closeLocked()
		return fmt.Errorf("cannot listen on %s: %w", d.spec.Listen, err)
	}
	if d.spec.Mode == ModeActivate {
		var fc interface{ File() (*os.File, error) }
		if d.ln != nil {
			fc = d.ln.(interface{ File() (*os.File, error) })
		} else {
			fc = d.pc.(interface{ File() (*os.File, error) })
		}
		if d.file, err = fc.File(); err != nil {
			d.closeLocked()
			return err
		}
		// Programs written for socket activation expect a blocking socket.
		_ = unix.SetNonblock(int(d.file.Fd()), false)
	}
	d.rt.Log.Info("listening", "job", d.job.Name, "listen", d.spec.Listen, "mode", d.spec.Mode)
	return nil
}

func (d *inetdDriver) closeLocked() {
	if d.ln != nil {
		d.ln.Close()
		d.ln = nil
	}
	if d.pc != nil {
		d.pc.Close()
		d.pc = nil
	}
	if d.file != nil {
		d.file.Close()
		d.file = nil
	}
}

func (d *inetdDriver) Arm() (<-chan Activation, State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.openLocked(); err != nil {
		return nil, "", err
	}
	acts := make(chan Activation)
	d.stop, d.done = make(chan struct{}), make(chan struct{})
	d.runEnded = make(chan Result, 1)
	switch {
	case d.spec.Mode == ModeActivate:
		r, w, err := os.Pipe()
		if err != nil {
			return nil, "", err
		}
		d.wake = w
		go d.activateLoop(acts, r, d.stop, d.done)
	case d.pc != nil:
		go d.datagramLoop(d.pc, acts, d.stop, d.done)
	default:
		go d.acceptLoop(d.ln, acts, d.stop, d.done)
	}
	return acts, Listening, nil
}

// Disarm stops accepting and closes the socket: a stopped job refuses connections.
func (d *inetdDriver) Disarm() {
	d.mu.Lock()
	stop, done, wake := d.stop, d.done, d.wake
	d.stop, d.done, d.wake = nil, nil, nil
	if stop != nil {
		close(stop) // before the socket closes, so the loops know the error is expected
	}
	if wake != nil {
		wake.Close()
	}
	d.closeLocked()
	d.mu.Unlock()
	if stop != nil {
		<-done
	}
}

func (d *inetdDriver) Close() {
	d.Disarm()
	if d.spec.Network == "unix" {
		os.Remove(d.spec.Address)
	}
	d.processDriver.Close()
}

// reserve counts a connection against max_connections; false means refuse it.
func (d *inetdDriver) reserve() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active >= d.spec.MaxConnections {
		d.refused++
		return false
	}
	d.active++
	d.accepted++
	return true
}

func (d *inetdDriver) release() {
	d.mu.Lock()
	d.active--
	d.mu.Unlock()
}

func (d *inetdDriver) deliver(acts chan<- Activation, act Activation, stop <-chan struct{}) bool {
	select {
	case acts <- act:
		return true
	case <-stop:
		act.Release(false)
		return false
	}
}

func (d *inetdDriver) acceptLoop(ln net.Listener, acts chan<- Activation, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		conn, err := ln.Accept()
		if err != nil {
			select {
			case <-stop:
				return
			default:
			}
			d.rt.Log.Warn("accept failed", "job", d.job.Name, "err", err)
			select {
			case <-time.After(100 * time.Millisecond):
				continue
			case <-stop:
				return
			}
		}
		if !d.reserve() {
			d.rt.Log.Warn("connection refused: max_connections reached", "job", d.job.Name, "max_connections", d.spec.MaxConnections)
			conn.Close()
			continue
		}
		f, err := conn.(interface{ File() (*os.File, error) }).File()
		conn.Close() // the child gets the dup; close Go's copy
		if err != nil {
			d.release()
			continue
		}
		env := []string{}
		if host, port, err := net.SplitHostPort(conn.RemoteAddr().String()); err == nil {
			env = append(env, "REMOTE_ADDR="+host, "REMOTE_PORT="+port)
		}
		act := Activation{Stdin: f, Stdout: f, Env: env, Release: func(started bool) {
			f.Close()
			if !started {
				d.release()
			}
		}}
		if !d.deliver(acts, act, stop) {
			return
		}
	}
}

// datagramLoop runs the command once per datagram: the datagram on its stdin, its output
// sent back to the sender as one datagram.
func (d *inetdDriver) datagramLoop(pc net.PacketConn, acts chan<- Activation, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, maxDatagram)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				continue
			}
		}
		if !d.reserve() {
			continue
		}
		inR, inW, err1 := os.Pipe()
		outR, outW, err2 := os.Pipe()
		if err1 != nil || err2 != nil {
			d.release()
			continue
		}
		data := append([]byte(nil), buf[:n]...)
		go func() {
			inW.Write(data)
			inW.Close()
		}()
		go func() {
			reply, _ := io.ReadAll(io.LimitReader(outR, maxDatagram))
			outR.Close()
			if len(reply) > 0 {
				pc.WriteTo(reply, addr)
			}
		}()
		env := []string{}
		if host, port, err := net.SplitHostPort(addr.String()); err == nil {
			env = append(env, "REMOTE_ADDR="+host, "REMOTE_PORT="+port)
		}
		act := Activation{Stdin: inR, Stdout: outW, Env: env, Release: func(started bool) {
			inR.Close()
			outW.Close()
			if !started {
				d.release()
			}
		}}
		if !d.deliver(acts, act, stop) {
			return
		}
	}
}

// activateLoop waits for the socket to become readable (a connection or datagram is
// waiting, not yet taken), starts the program with the socket as fd 3, and waits for the
// program to exit before listening for the next activation. Nothing is accepted here, so
// nothing is lost: the program finds every waiting connection in the backlog.
func (d *inetdDriver) activateLoop(acts chan<- Activation, wake *os.File, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	defer wake.Close()
	d.mu.Lock()
	file, ended := d.file, d.runEnded
	d.mu.Unlock()
	var delay time.Duration
	for {
		if !waitReadable(file, wake) {
			return
		}
		d.mu.Lock()
		d.accepted++
		d.active++
		d.mu.Unlock()
		act := Activation{
			Files:   []*os.File{file},
			Env:     []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=" + d.job.Name},
			PidVars: []string{"LISTEN_PID"},
			Release: func(started bool) {
				if !started {
					d.release()
					ended <- Result{Code: 127}
				}
			},
		}
		if !d.deliver(acts, act, stop) {
			return
		}
		t0 := time.Now()
		var res Result
		select {
		case res = <-ended:
		case <-stop:
			return
		}
		// A program that fails soon after it started (without taking the connection that
		// woke it, maybe) would be started again at once: back off as a restart would.
		if res.Success(d.job.SuccessCodes) || time.Since(t0) >= d.job.Backoff.Max {
			delay = 0
			continue
		}
		delay = nextDelay(delay, d.job.Backoff)
		d.rt.Log.Warn("socket-activated program failed; waiting before the next activation", "job", d.job.Name, "in", delay.Round(time.Millisecond))
		select {
		case <-time.After(delay):
		case <-stop:
			return
		}
	}
}

// waitReadable waits until the socket is readable; false when the wake pipe's other end
// was closed (the job is disarmed) or polling failed.
func waitReadable(f, wake *os.File) bool {
	fds := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}, {Fd: int32(wake.Fd()), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || fds[1].Revents != 0 {
			return false
		}
		if fds[0].Revents&(unix.POLLIN|unix.POLLERR|unix.POLLHUP) != 0 {
			return true
		}
	}
}

func (d *inetdDriver) Start(req RunRequest) (Run, error) {
	return d.processDriver.Start(req.beforeExit(func(res Result) {
		d.release()
		if d.spec.Mode == ModeActivate {
			select {
			case d.runEnded <- res:
			default:
			}
		}
	}))
}

// Counters reports pilotfish_inetd_connections_total and pilotfish_inetd_refused_total.
func (d *inetdDriver) Counters() []Counter {
	d.mu.Lock()
	defer d.mu.Unlock()
	return []Counter{
		{Metric: "pilotfish_inetd_connections_total", N: d.accepted},
		{Metric: "pilotfish_inetd_refused_total", N: d.refused},
	}
}
