package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
)

// Timing of calls to the catalog.
const (
	callTimeout  = 3 * time.Second
	retryInitial = 100 * time.Millisecond
	retryMax     = 5 * time.Second
)

// SelfService is the service name pilotfish registers its metrics endpoint under.
const SelfService = "pilotfish"

// Options configure a Manager.
type Options struct {
	Backend  Backend
	Bus      *events.Bus
	Log      *slog.Logger
	Hostname string // default: os.Hostname
}

// Manager keeps services registered and watches running.
type Manager struct {
	b        Backend
	bus      *events.Bus
	log      *slog.Logger
	hostname string

	cmds     chan func()
	resync   chan struct{}
	quit     chan struct{}
	done     chan struct{}
	sub      *events.Subscription
	watchers map[string]*watcher // by watch name; owned by the loop

	mu        sync.Mutex
	agentID   string // the agent last seen; see agentRestarted
	errs      map[string]uint64
	svcFor    map[string]bool // jobs with a service, read by the bus filter
	watchList []*watcher      // for Watches, which must not wait for the loop

	// Owned by the loop.
	svcs        map[string]*service // by job name; "" is pilotfish's own
	maintenance bool
	retryDelay  time.Duration
	retryT      *time.Timer
	beatT       *time.Timer
}

// service is one registration and what is known of it.
type service struct {
	job        string
	reg        Registration
	health     bool // the job has a health check: register once healthy
	want       bool // should be registered
	registered bool // the agent has it, as far as we know
	dirty      bool // the agent must be told something
	lastBeat   time.Time
}

// New builds a manager. Call Apply, then Start.
func New(o Options) *Manager {
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	m := &Manager{
		b: o.Backend, bus: o.Bus, log: o.Log.With("component", "discovery"), hostname: o.Hostname,
		cmds: make(chan func()), resync: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		watchers: map[string]*watcher{}, errs: map[string]uint64{}, svcFor: map[string]bool{},
		svcs: map[string]*service{}, retryDelay: retryInitial,
		retryT: time.NewTimer(time.Hour), beatT: time.NewTimer(time.Hour),
	}
	m.retryT.Stop()
	m.beatT.Stop()
	return m
}

// Start subscribes to the bus and starts the registration loop and the agent monitor.
func (m *Manager) Start() {
	m.sub = m.bus.Subscribe(events.SubscribeOptions{Name: "discovery", Filter: m.wants})
	go m.loop()
	go m.monitor()
}

func (m *Manager) wants(ev events.Event) bool {
	switch ev.Code {
	case events.Started, events.Healthy, events.Unhealthy, events.ExitSuccess, events.ExitFailed, events.Stopped:
	default:
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.svcFor[ev.Source]
}

// do runs fn on the loop and waits for it.
func (m *Manager) do(ctx context.Context, fn func()) error {
	done := make(chan struct{})
	select {
	case m.cmds <- func() { fn(); close(done) }:
	case <-m.done:
		return errors.New("discovery has stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServiceID is the ID a job's service is registered under: NAME-HOSTNAME.
func (m *Manager) ServiceID(name string) string { return name + "-" + m.hostname }

// Apply takes the services and watches of a configuration (at start and on reload).
// self, when not "", is the host:port of pilotfish's metrics endpoint to register as
// service "pilotfish".
func (m *Manager) Apply(ctx context.Context, cfg *config.Config, self string) error {
	want := map[string]*config.Job{}
	for _, j := range cfg.Jobs {
		if j.Service != nil {
			want[j.Name] = j
		}
	}
	m.mu.Lock()
	m.svcFor = map[string]bool{}
	for name := range want {
		m.svcFor[name] = true
	}
	m.mu.Unlock()
	apply := func() {
		for name, s := range m.svcs {
			if name == "" {
				continue
			}
			j, ok := want[name]
			if !ok {
				s.want, s.dirty = false, true // its job is gone
				continue
			}
			reg := m.registration(j)
			if reg.ID != s.reg.ID {
				s.want, s.dirty = false, true
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				m.syncOne(ctx, s) // the old ID goes away before the new one comes
				cancel()
				m.svcs[name] = &service{job: name, reg: reg, health: j.Health != nil}
				continue
			}
			reg.Status, reg.Output = s.reg.Status, s.reg.Output
			s.reg, s.health = reg, j.Health != nil
		}
		for name, j := range want {
			if _, ok := m.svcs[name]; !ok {
				m.svcs[name] = &service{job: name, reg: m.registration(j), health: j.Health != nil}
			}
		}
		m.applySelf(self)
		m.applyWatches(cfg.Watches)
		m.sync()
	}
	if m.sub == nil { // not started yet
		apply()
		return nil
	}
	return m.do(ctx, apply)
}

func (m *Manager) registration(j *config.Job) Registration {
	s := j.Service
	addr, err := ResolveAddress(s.Interfaces)
	if err != nil {
		m.log.Warn("cannot pick the service address; registering without one", "job", j.Name, "err", err)
	}
	return Registration{
		ID: m.ServiceID(s.Name), Name: s.Name, Address: addr, Port: s.Port, Tags: s.Tags, Meta: s.Meta,
		EnableTagOverride: s.EnableTagOverride, TTL: s.TTL, DeregisterCriticalAfter: s.DeregisterCriticalAfter,
		Status: Critical,
	}
}

func (m *Manager) applySelf(hostport string) {
	host, portStr, _ := net.SplitHostPort(hostport)
	port, _ := strconv.Atoi(portStr)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host, _ = ResolveAddress([]string{"inet", "inet6", "static:127.0.0.1"}) // listening everywhere
	}
	self := m.svcs[""]
	switch {
	case port == 0 && self != nil:
		self.want, self.dirty = false, true
	case port != 0 && (self == nil || self.reg.Port != port || self.reg.Address != host):
		if self != nil && self.registered {
			self.want, self.dirty = false, true
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			m.syncOne(ctx, self)
			cancel()
		}
		m.svcs[""] = &service{reg: Registration{ID: m.ServiceID(SelfService), Name: SelfService, Address: host,
			Port: port, Tags: []string{"metrics"}, TTL: 10 * time.Second, Status: Passing, Output: "pilotfish is running"},
			want: true, dirty: true}
	}
}

// PreStop deregisters a job's service before the job is signalled, so traffic drains first.
func (m *Manager) PreStop(ctx context.Context, job string) {
	_ = m.do(ctx, func() {
		s, ok := m.svcs[job]
		if !ok || !s.want && !s.registered {
			return
		}
		s.want, s.dirty = false, true
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		m.syncOne(cctx, s)
	})
}

// SetMaintenance takes every service out of the catalog (deregistered: no query, DNS name
// or load balancer reaches it), or puts each back with its current health. A service the
// agent cannot be told about now is retried like any registration.
func (m *Manager) SetMaintenance(ctx context.Context, on bool) {
	_ = m.do(ctx, func() {
		m.maintenance = on
		for _, s := range m.svcs {
			s.dirty = true
		}
		m.sync()
	})
}

// ErrorOps are the operations failed catalog calls are counted under.
var ErrorOps = []string{"register", "deregister", "ttl", "watch", "agent"}

// Errors returns failed catalog calls by operation, every operation listed (from zero).
func (m *Manager) Errors() map[string]uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]uint64, len(ErrorOps))
	for _, op := range ErrorOps {
		out[op] = m.errs[op]
	}
	for k, v := range m.errs {
		out[k] = v
	}
	return out
}

func (m *Manager) countError(op string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.errs[op]++
}

// Close deregisters every service (the container is going away), stops the watches and
// the loop.
func (m *Manager) Close(ctx context.Context) {
	_ = m.do(ctx, func() {
		for _, s := range m.sortedServices() {
			s.want, s.dirty = false, true
		}
		for _, s := range m.sortedServices() {
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			m.syncOne(cctx, s)
			cancel()
		}
		for _, w := range m.watchers {
			w.stop()
		}
	})
	close(m.quit)
	<-m.done
	if m.sub != nil {
		m.sub.Close()
	}
}

func (m *Manager) sortedServices() []*service {
	out := make([]*service, 0, len(m.svcs))
	for _, s := range m.svcs {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].reg.ID < out[j].reg.ID })
	return out
}

func (m *Manager) loop() {
	defer close(m.done)
	defer m.retryT.Stop()
	defer m.beatT.Stop()
	m.sync()
	for {
		select {
		case <-m.sub.Ready():
			for {
				ev, ok := m.sub.Next()
				if !ok {
					break
				}
				m.onEvent(ev)
			}
			m.sync()
		case fn := <-m.cmds:
			fn()
		case <-m.resync:
			m.log.Info("catalog agent is back; registering services again")
			for _, s := range m.svcs {
				// What the agent has is unknown now: register what should be there, and
				// deregister what should not (both are idempotent).
				s.registered, s.dirty = !m.present(s), true
			}
			m.sync()
		case <-m.retryT.C:
			m.sync()
		case <-m.beatT.C:
			now := time.Now()
			for _, s := range m.svcs {
				if s.registered && s.want && now.Sub(s.lastBeat) >= s.reg.TTL/2 {
					s.dirty = true
				}
			}
			m.sync()
		case <-m.quit:
			return
		}
	}
}

// onEvent turns a job's lifecycle into the desired state of its service: registered once
// healthy (or started, for a job without a health check), critical at once when unhealthy.
func (m *Manager) onEvent(ev events.Event) {
	s, ok := m.svcs[ev.Source]
	if !ok {
		return
	}
	msg := ev.Attrs[events.AttrMessage]
	switch ev.Code {
	case events.Healthy:
		s.want = true
		s.setStatus(Passing, orDefault(msg, "healthy"))
	case events.Started:
		if !s.health {
			s.want = true
			s.setStatus(Passing, "running")
		}
	case events.Unhealthy:
		s.setStatus(Critical, orDefault(msg, "unhealthy"))
	case events.ExitSuccess, events.ExitFailed:
		s.setStatus(Critical, "the process exited ("+ev.Attrs[events.AttrExitCode]+")")
	case events.Stopped:
		s.want = false
		s.dirty = true
	}
}

func (s *service) setStatus(status, output string) {
	if s.reg.Status != status || s.reg.Output != output {
		s.reg.Status, s.reg.Output, s.dirty = status, output, true
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// sync tells the agent what changed, then arms the retry and heartbeat timers.
func (m *Manager) sync() {
	failed := false
	for _, s := range m.sortedServices() {
		if !s.dirty {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		if !m.syncOne(ctx, s) {
			failed = true
		}
		cancel()
	}
	for job, s := range m.svcs {
		if !s.want && !s.registered && !s.dirty && job != "" {
			if _, ok := m.svcForJob(job); !ok {
				delete(m.svcs, job) // its job is gone
			}
		}
	}
	if failed {
		m.retryT.Reset(m.retryDelay)
		m.retryDelay = min(2*m.retryDelay, retryMax)
	} else {
		m.retryDelay = retryInitial
	}
	next := time.Duration(0)
	for _, s := range m.svcs {
		if s.registered && s.want {
			due := time.Until(s.lastBeat.Add(s.reg.TTL / 2))
			if next == 0 || due < next {
				next = max(due, time.Millisecond)
			}
		}
	}
	m.beatT.Stop()
	if next > 0 {
		m.beatT.Reset(next)
	}
}

func (m *Manager) svcForJob(job string) (bool, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.svcFor[job]
	return v, ok
}

// present reports whether s should be in the catalog now. Maintenance takes the
// container's services out; pilotfish's own metrics endpoint stays, since a container in
// maintenance is one to watch.
func (m *Manager) present(s *service) bool {
	return s.want && !(m.maintenance && s.job != "")
}

// syncOne makes the agent match one service; it reports success.
func (m *Manager) syncOne(ctx context.Context, s *service, retried ...bool) bool {
	if !m.present(s) {
		if s.registered {
			if err := m.b.Deregister(ctx, s.reg.ID); err != nil {
				m.failed("deregister", s, err)
				return false
			}
			m.log.Info("deregistered", "service", s.reg.ID, "job", s.job)
		}
		s.registered, s.dirty = false, false
		return true
	}
	if !s.registered {
		// A registration cannot carry the check's output, so the service comes in critical
		// and gets its real state and output in the next call: it is never seen passing
		// without them.
		reg := s.reg
		reg.Status, reg.Output = Critical, "registering"
		if err := m.b.Register(ctx, reg); err != nil {
			m.failed("register", s, err)
			return false
		}
		s.registered = true
		m.log.Info("registered", "service", s.reg.ID, "address", s.reg.Address, "port", s.reg.Port, "status", s.reg.Status)
	}
	err := m.b.UpdateTTL(ctx, s.reg.CheckID(), s.reg.Status, s.reg.Output)
	if errors.Is(err, ErrUnknownCheck) && len(retried) == 0 {
		s.registered = false // the agent forgot it: register again
		return m.syncOne(ctx, s, true)
	}
	if err != nil {
		m.failed("ttl", s, err)
		return false
	}
	s.dirty, s.lastBeat = false, time.Now()
	return true
}

func (m *Manager) failed(op string, s *service, err error) {
	m.countError(op)
	m.log.Warn("catalog call failed; will retry", "op", op, "service", s.reg.ID, "err", err)
}

// agentRestarted asks the agent who it is. A different identity, or no answer, means the
// agent may have restarted: registrations must be made again and blocking-query indexes
// start over (a restarted agent's indexes are lower, and a query with an index from before
// would wait its full time). Consul answers pending blocking queries normally when it
// shuts down, so this check, not the error, is what notices a quick restart.
func (m *Manager) agentRestarted(ctx context.Context) bool {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	id, err := m.b.AgentID(cctx)
	if err != nil {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := m.agentID != "" && m.agentID != id
	m.agentID = id
	return changed
}

// resyncSoon asks the loop to register everything again.
func (m *Manager) resyncSoon() {
	select {
	case m.resync <- struct{}{}:
	default:
	}
}

// monitor follows the catalog with blocking queries to notice an agent that went away and
// came back (maybe having forgotten every local service), and asks the loop to resync.
func (m *Manager) monitor() {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-m.quit
		cancel()
	}()
	m.agentRestarted(ctx) // learn who the agent is
	var index uint64
	delay := retryInitial
	down := false
	for ctx.Err() == nil {
		next, err := m.b.WaitChange(ctx, index)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !down {
				m.countError("agent")
				m.log.Warn("catalog agent unreachable; retrying", "err", err)
			}
			down, index = true, 0
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return
			}
			delay = min(2*delay, retryMax)
			continue
		}
		delay = retryInitial
		restarted := m.agentRestarted(ctx)
		if down || restarted || next < index {
			down = false
			m.resyncSoon()
			if restarted {
				next = 0
			}
		}
		index = next
	}
}

// String describes the manager for logs.
func (m *Manager) String() string { return fmt.Sprintf("discovery(%s)", m.hostname) }
