package control

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/errdefs"
	"github.com/pilotfish/pilotfish/internal/logtail"
	"golang.org/x/sys/unix"
)

// MaxBody is the largest request body accepted; larger ones get 413.
const MaxBody = 1 << 20

// Timeouts that keep slow clients from holding the daemon's resources (variables so that
// tests can shorten them).
var (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 60 * time.Second
	// writeTimeout bounds a whole answer; stopping a job or reloading may take that job's
	// stop_timeout, so it is generous. The event stream sets its own per-write deadline.
	writeTimeout = 10 * time.Minute
)

// Backend is what the control API needs from the daemon.
type Backend interface {
	Version() string
	Status() api.Status
	Job(name string) (api.Job, error)
	StartJob(ctx context.Context, name string) (api.Job, error)
	StopJob(ctx context.Context, name string) (api.Job, error)
	RestartJob(ctx context.Context, name string) (api.Job, error)
	SignalJob(ctx context.Context, name string, sig syscall.Signal) error
	Reload(ctx context.Context) (api.Reload, error)
	SetMaintenance(ctx context.Context, on bool) error
	PutEnv(env map[string]string) error
	PutMetrics(updates []api.Metric) error
	Health() (api.Health, bool)
	Shutdown(reason string)
	Bus() *events.Bus
	Metrics() http.Handler
	// Logs and FollowLogs answer GET /v1/logs: the newest n lines of the named jobs (every
	// job when none), and for FollowLogs a follower of the new ones.
	Logs(jobs []string, n int) ([]logtail.Line, error)
	FollowLogs(jobs []string, n int) ([]logtail.Line, *logtail.Follower, error)
}

// Server is the control API listening on its unix socket.
type Server struct {
	b    Backend
	log  *slog.Logger
	path string
	ln   *connLimiter
	srv  *http.Server
	done chan struct{}
	// streams holds a token per open stream (MaxStreams at most).
	streams streamSlots
	// started is false until every job is installed; mutating calls wait for it.
	started atomic.Bool
	// cancel ends every request's context: event streams finish when the daemon exits.
	cancel context.CancelFunc
}

// Listen creates the socket (removing a stale one) with the configured mode and group. It
// refuses to take over a socket another daemon still answers on.
func Listen(cfg config.Control, b Backend, log *slog.Logger) (*Server, error) {
	ln, err := listenUnix(cfg)
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	lim := newConnLimiter(ln, maxConns())
	s := &Server{b: b, log: log, path: cfg.Socket, ln: lim, done: make(chan struct{}), cancel: cancel,
		streams: make(streamSlots, MaxStreams)}
	s.srv = &http.Server{
		ConnState:         lim.connState,
		BaseContext:       func(net.Listener) context.Context { return base },
		Handler:           s.routes(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       withPeer,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

func listenUnix(cfg config.Control) (net.Listener, error) {
	path := cfg.Socket
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("cannot create the control socket: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("cannot create the control socket: another daemon answers on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("cannot remove the stale control socket: %w", err)
		}
	}
	// The socket is created with no rights for others from the first moment; chmod then
	// widens it to the configured mode (never beyond the group).
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("cannot create the control socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if cfg.Group != "" {
		gid, err := groupID(cfg.Group)
		if err == nil {
			err = os.Chown(path, -1, gid)
		}
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("cannot give the control socket to group %q: %w", cfg.Group, err)
		}
	}
	if err := os.Chmod(path, cfg.Mode&0o770); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot set the control socket's mode: %w", err)
	}
	return ln, nil
}

func groupID(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// Path is the socket path.
func (s *Server) Path() string { return s.path }

// Serve answers requests until Close.
func (s *Server) Serve() {
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("control API stopped", "err", err)
		}
	}()
}

// Close stops accepting, ends event streams, gives running requests a moment to finish
// (never longer than ctx), closes every connection and removes the socket.
func (s *Server) Close(ctx context.Context) {
	s.cancel()
	ctx, cancel := context.WithTimeout(ctx, closeGrace)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close() // idle and silent connections do not hold the exit up
	}
	<-s.done
}

// closeGrace is how long answers in progress may take to finish when the daemon exits.
const closeGrace = 100 * time.Millisecond

type peerKey struct{}

// Peer is the credentials of the process on the other end of a control connection.
type Peer struct {
	Pid, Uid, Gid int32
}

func withPeer(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return ctx
	}
	var cred *unix.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, _ = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cred == nil {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, Peer{Pid: cred.Pid, Uid: int32(cred.Uid), Gid: int32(cred.Gid)})
}

// PeerOf returns the peer of a request, if known.
func PeerOf(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.middleware)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errdefs.Errorf(errdefs.ErrNotFound, "no endpoint %s; see the API reference in docs/api.md", r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errdefs.Errorf(errdefs.ErrMethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
	})
	// Every POST changes something: it waits until start-up has installed every job.
	post := func(path string, h http.HandlerFunc) { r.Post(path, s.whenStarted(h)) }
	for _, prefix := range []string{"/v1", "/v3"} {
		post(prefix+"/reload", s.reload)
		post(prefix+"/environ", s.environ)
		post(prefix+"/maintenance/enable", s.maintenance(true))
		post(prefix+"/maintenance/disable", s.maintenance(false))
	}
	r.Get("/v1/ping", s.ping)
	post("/v1/metric", s.metric(DecodeMetrics))
	// ContainerPilot's clients: any method pings, and metric values may be strings.
	r.HandleFunc("/v3/ping", s.ping)
	post("/v3/metric", s.metric(DecodeMetricsV3))
	r.Get("/v1/status", s.status)
	r.Get("/v1/jobs/{name}", s.job)
	post("/v1/jobs/{name}/start", s.jobVerb(Backend.StartJob))
	post("/v1/jobs/{name}/stop", s.jobVerb(Backend.StopJob))
	post("/v1/jobs/{name}/restart", s.jobVerb(Backend.RestartJob))
	post("/v1/jobs/{name}/signal", s.signal)
	r.Get("/v1/events", s.events)
	r.Get("/v1/logs", s.logs)
	r.Get("/v1/health", s.health)
	s.templateRoutes(r)
	post("/v1/shutdown", s.shutdown)
	r.Get("/metrics", func(w http.ResponseWriter, r *http.Request) { s.b.Metrics().ServeHTTP(w, r) })
	return r
}

// middleware limits the body, sets the write deadline and logs the request with its peer.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeTimeout))
		if !s.log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r) // the recorder below only serves the debug line
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", rec.code, "took", time.Since(start)}
		if p, ok := PeerOf(r.Context()); ok {
			attrs = append(attrs, "uid", p.Uid, "gid", p.Gid, "pid", p.Pid)
		}
		s.log.Debug("control request", attrs...)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
