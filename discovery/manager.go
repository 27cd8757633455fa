package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/backoff"
)

const (
	// callTimeout bounds every call to the catalog but blocking queries. A slow agent is
	// given time: giving up and asking again would only add to its load. A call made for
	// someone who waits (a job's stop, maintenance, the exit) ends with their budget.
	callTimeout = 10 * time.Second
	// verifyAfter is when a new registration is checked to still be this instance's: another
	// instance that found the ID free at the same moment registers it a moment later.
	verifyAfter = 6 * time.Second
	// deregisterWait is how long a job's stop waits for its service to leave the catalog
	// (retried with backoff) before it goes on without: an unreachable agent does not hold
	// up the stop signal for the whole stop_timeout.
	deregisterWait = 2 * time.Second
	// CloseWait bounds the last deregistrations when pilotfish exits, and closeMin is what
	// they get even when the shutdown budget is spent.
	CloseWait = time.Second
	closeMin  = 500 * time.Millisecond
	// crowdedFor is how long a 429 makes the loop hand connections over (see sync), and
	// handover the time the agent takes to see the watches' connections closed.
	crowdedFor = time.Minute
	handover   = 5 * time.Millisecond
)

// SelfService is the service name pilotfish registers its metrics endpoint under.
const SelfService = "pilotfish"

// Options configure a Manager.
type Options struct {
	Backend  Backend
	Bus      *events.Bus
	Log      *slog.Logger
	Hostname string // default: os.Hostname
	Instance string // default: random; see MetaInstance
}

// Manager keeps services registered and watches running.
type Manager struct {
	b        Backend
	bus      *events.Bus
	log      *slog.Logger
	hostname string
	instance string

	ctx   context.Context // every call of the loop; cancelled when Close runs out of time
	abort context.CancelFunc
	// stopping is set when the shutdown is published, before the loop gets the event.
	stopping atomic.Bool
	cmds     chan func()
	resync   chan struct{}
	quit     chan struct{}
	done     chan struct{}
	sub      *events.Subscription
	// gate holds the watches' events from Apply until the next global startup, when the jobs
	// of the configuration are subscribed (a first answer may come before).
	gate     *events.Gate
	startups *events.Subscription
	released chan struct{} // the goroutine that opens the gate ended

	mu         sync.Mutex
	agentID    string // the agent last seen; see checkAgent
	agentGen   uint64 // counts the agent's restarts seen
	agentDown  bool
	errs       map[string]uint64
	svcFor     map[string]bool // jobs with a service, read by the bus filter
	watchList  []*watcher      // for Watches, which must not wait for the loop
	shutdownAt time.Time
	yieldUntil time.Time     // the watches stay off the agent until then (see yield)
	yieldCh    chan struct{} // closed when yieldUntil changes: waits end, queries give up
	crowdedTil time.Time     // the agent refused a connection lately (see crowded)

	viewsMu     sync.Mutex
	views       map[ViewKey]*view // every followed query, shared (views.go)
	viewsClosed bool              // the shutdown began: no view answers any more
	monitor     *follower         // runs while there is no view

	// Owned by the loop.
	svcs        map[string]*service // by job name; "" is pilotfish's own, retiredKey… old IDs
	watchers    map[string]*watcher // by watch name
	maintenance bool
	closing     bool // shutdown began: nothing new is registered, nothing resynced
	retryT      *time.Timer
	beatT       *time.Timer
}

// service is one registration and what is known of it.
type service struct {
	job      string
	base     string       // the ID configured, or NAME-HOSTNAME
	explicit bool         // base came from `id`: never replaced by another ID
	reg      Registration // reg.ID is the ID in use: base, or base-SUFFIX (see claim)
	health   bool         // the job has a health check: register once healthy
	want     bool         // should be registered
	stopping bool         // deregistered for a stop: not registered again before the next start
	dirty    bool         // the agent must be told something

	registered bool // the agent has it, as far as we know
	held       bool // the agent may hold it (a registration was sent, no deregistration since)
	owned      bool // reg.ID was found free or ours at this agent
	verify     bool // check at a heartbeat after verifyAfter that reg.ID is still ours
	regAt      time.Time
	lastBeat   time.Time
	conflict   bool // the clash of an explicit ID was logged

	retry   backoff.Backoff
	retryAt time.Time       // no call before this
	waiters []chan struct{} // closed once the agent holds nothing for it
}

// retiredKey prefixes the keys of services whose ID went away (a reload) until the agent
// has let go of them.
const retiredKey = "\x00retired:"

// New builds a manager. Call Apply, then Start.
func New(o Options) *Manager {
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if o.Instance == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		o.Instance = hex.EncodeToString(b)
	}
	ctx, abort := context.WithCancel(context.Background())
	m := &Manager{
		b: o.Backend, bus: o.Bus, log: o.Log.With("component", "discovery"), hostname: o.Hostname, instance: o.Instance,
		ctx: ctx, abort: abort,
		cmds: make(chan func()), resync: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		gate: events.NewGate(o.Bus), released: make(chan struct{}),
		watchers: map[string]*watcher{}, errs: map[string]uint64{}, svcFor: map[string]bool{}, views: map[ViewKey]*view{},
		svcs:   map[string]*service{},
		retryT: time.NewTimer(time.Hour), beatT: time.NewTimer(time.Hour),
	}
	m.retryT.Stop()
	m.beatT.Stop()
	return m
}

// Start subscribes to the bus and starts the registration loop.
func (m *Manager) Start() {
	m.sub = m.bus.Subscribe(events.SubscribeOptions{Name: "discovery", Filter: m.wants})
	m.startups = m.bus.Subscribe(events.SubscribeOptions{Name: "discovery-startup", Filter: func(ev events.Event) bool {
		return ev.Code == events.Startup && ev.Source == events.Global
	}})
	go m.loop()
	go m.release()
}

// release opens the gate of the watches' events at each global startup. It does not wait
// for the loop, which may be busy with a slow agent.
func (m *Manager) release() {
	defer close(m.released)
	for {
		ev, err := m.startups.Recv(context.Background())
		if err != nil {
			return // closed
		}
		m.gate.Release(ev.Seq)
	}
}

func (m *Manager) wants(ev events.Event) bool {
	switch ev.Code {
	case events.Shutdown:
		if ev.Source != events.Global {
			return false
		}
		m.stopping.Store(true) // at once, in the publisher: the loop may be busy
		return true
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

// ServiceID is the default ID of a service: NAME-HOSTNAME.
func (m *Manager) ServiceID(name string) string { return name + "-" + m.hostname }

// Instance is the token this pilotfish puts in its registrations' meta (MetaInstance).
func (m *Manager) Instance() string { return m.instance }

// Apply takes the services and watches of a configuration (at start and on reload).
// self, when not "", is the host:port of pilotfish's metrics endpoint to register as
// service "pilotfish".
func (m *Manager) Apply(ctx context.Context, cfg *config.Config, self string) error {
	m.gate.Hold()
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
			if name == "" || s.job == "" {
				continue
			}
			j, ok := want[name]
			if !ok {
				s.want, s.dirty = false, true // its job is gone
				continue
			}
			next := m.newService(j)
			if next.base != s.base {
				m.retire(name, s) // the old ID goes away before the new one comes
				m.svcs[name] = next
				continue
			}
			next.reg.ID, next.reg.Status, next.reg.Output = s.reg.ID, s.reg.Status, s.reg.Output
			s.reg, s.health = next.reg, next.health
		}
		for name, j := range want {
			if _, ok := m.svcs[name]; !ok {
				m.svcs[name] = m.newService(j)
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

// retire takes s out of its job's place and deregisters it (now, and retried like any call
// until the agent has let go of it).
func (m *Manager) retire(key string, s *service) {
	delete(m.svcs, key)
	if !s.held {
		return
	}
	s.job, s.want, s.dirty, s.retryAt = "", false, true, time.Time{}
	m.svcs[retiredKey+s.reg.ID] = s
	m.syncNow(m.ctx, s)
}

func (m *Manager) newService(j *config.Job) *service {
	c := j.Service
	addr, err := ResolveAddress(c.Interfaces)
	if err != nil {
		m.log.Warn("cannot pick the service address; registering without one", "job", j.Name, "err", err)
	}
	base := c.ID
	if base == "" {
		base = m.ServiceID(c.Name)
	}
	return &service{job: j.Name, base: base, explicit: c.ID != "", health: j.Health != nil, retry: backoff.NewPeer(),
		reg: Registration{
			ID: base, Name: c.Name, Address: addr, Port: c.Port, Tags: c.Tags, Meta: m.meta(c.Meta),
			EnableTagOverride: c.EnableTagOverride, TTL: c.TTL, DeregisterCriticalAfter: c.DeregisterCriticalAfter,
			Status: Critical,
		}}
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
		if self != nil {
			m.retire("", self)
		}
		base := m.ServiceID(SelfService)
		m.svcs[""] = &service{base: base, want: true, dirty: true, retry: backoff.NewPeer(),
			reg: Registration{ID: base, Name: SelfService, Address: host, Port: port, Tags: []string{"metrics"},
				Meta: m.meta(nil), TTL: 10 * time.Second, DeregisterCriticalAfter: config.DefaultDeregisterCriticalAfter,
				Status: Passing, Output: "pilotfish is running"}}
	}
}

// PreStop deregisters a job's service before the job is signalled, so traffic drains first.
// Failed calls are retried with backoff for up to deregisterWait (bounded by ctx); then the
// job goes on stopping and the loop keeps trying.
func (m *Manager) PreStop(ctx context.Context, job string) {
	ctx, cancel := context.WithTimeout(ctx, deregisterWait)
	defer cancel()
	var wait chan struct{}
	_ = m.do(ctx, func() {
		s, ok := m.svcs[job]
		if !ok {
			return
		}
		s.want, s.stopping = false, true
		if !s.held && !s.registered {
			return
		}
		s.dirty, s.retryAt = true, time.Time{}
		wait = m.syncNow(ctx, s)
	})
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			m.log.Warn("the service is not deregistered yet; stopping the job anyway (still retrying)", "job", job)
		}
	}
}

// syncNow makes one attempt for s at once (bounded by ctx) and returns a channel closed once
// the agent holds nothing for it (nil if that is so already).
func (m *Manager) syncNow(ctx context.Context, s *service) chan struct{} {
	m.syncService(ctx, s)
	m.armTimers()
	if !s.held && !s.dirty {
		return nil
	}
	ch := make(chan struct{})
	s.waiters = append(s.waiters, ch)
	return ch
}

// SetMaintenance takes every service out of the catalog (deregistered: no query, DNS name
// or load balancer reaches it), or puts each back with its current health. A service the
// agent cannot be told about now is retried like any registration.
func (m *Manager) SetMaintenance(ctx context.Context, on bool) {
	_ = m.do(ctx, func() {
		m.maintenance = on
		for _, s := range m.svcs {
			s.dirty, s.retryAt = true, time.Time{}
		}
		m.syncWith(ctx)
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

// CloseDeadline is when Close must be done for the whole shutdown to end within its budget:
// stopTimeout after the shutdown began, but never less than a moment from now so that the
// agent is asked at least once.
func (m *Manager) CloseDeadline(stopTimeout time.Duration) time.Time {
	m.mu.Lock()
	began := m.shutdownAt
	m.mu.Unlock()
	now := time.Now()
	end := now.Add(CloseWait)
	if !began.IsZero() && began.Add(stopTimeout).Before(end) {
		end = began.Add(stopTimeout)
	}
	return maxTime(end, now.Add(closeMin))
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Close deregisters everything the agent may hold for this pilotfish (the container is going
// away), whatever state each registration is in, retrying until ctx ends; then it stops the
// loop. The watches stopped when the shutdown began.
func (m *Manager) Close(ctx context.Context) {
	stop := context.AfterFunc(ctx, m.abort) // a call still running when ctx ends gives up
	defer stop()
	var waits []chan struct{}
	_ = m.do(ctx, func() {
		m.beginClose()
		for _, s := range m.sortedServices() {
			s.want = false
			if s.held || s.registered {
				s.dirty, s.retryAt = true, time.Time{}
			}
		}
		for _, s := range m.sortedServices() {
			if s.dirty {
				if ch := m.syncNow(ctx, s); ch != nil {
					waits = append(waits, ch)
				}
			}
		}
	})
	for _, ch := range waits {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	_ = m.do(ctx, func() {
		for _, s := range m.sortedServices() {
			if s.held {
				m.log.Warn("cannot deregister; leaving it to the agent's deregister_critical_after", "service", s.reg.ID, "after", s.reg.DeregisterCriticalAfter)
			}
		}
	})
	close(m.quit)
	<-m.done
	m.abort()
	if m.sub != nil {
		m.sub.Close()
		m.startups.Close()
		<-m.released
	}
}

// beginClose is the shutdown's start: the watches stop (freeing their connections for the
// deregistrations), nothing new gets registered and an agent restart is not followed.
func (m *Manager) beginClose() {
	if m.closing {
		return
	}
	m.closing = true
	m.mu.Lock()
	if m.shutdownAt.IsZero() {
		m.shutdownAt = time.Now()
	}
	m.mu.Unlock()
	for name, w := range m.watchers {
		w.stop()
		delete(m.watchers, name)
	}
	m.closeViews()
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
			if m.closing || m.stopping.Load() {
				continue
			}
			m.log.Info("catalog agent is back; registering services again")
			for _, s := range m.svcs {
				// What the agent has is unknown now: register what should be there, and
				// deregister what should not (both are idempotent).
				if m.present(s) {
					s.registered, s.owned = false, false
				}
				if m.present(s) || s.held {
					s.dirty, s.retryAt = true, time.Time{}
				}
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
	if ev.Code == events.Shutdown {
		m.beginClose()
		return
	}
	s, ok := m.svcs[ev.Source]
	if !ok {
		return
	}
	msg := ev.Attrs[events.AttrMessage]
	switch ev.Code {
	case events.Healthy:
		s.want = !s.stopping
		s.setStatus(Passing, orDefault(msg, "healthy"))
	case events.Started:
		s.stopping = false
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

// sync tells the agent what changed, for every service not waiting out a backoff, then
// arms the retry and heartbeat timers.
func (m *Manager) sync() { m.syncWith(m.ctx) }

// syncWith is sync with the calls bounded by ctx too.
func (m *Manager) syncWith(ctx context.Context) {
	now := time.Now()
	var due []*service
	for _, s := range m.sortedServices() {
		if s.dirty && !now.Before(s.retryAt) {
			due = append(due, s)
		}
	}
	crowded := len(due) > 0 && m.crowded()
	if crowded {
		// The agent refuses connections beyond its per-address limit: the watches hand
		// their connections over for these calls, then get them back.
		m.yield(time.Minute) // ended below, whatever happens
		time.Sleep(handover)
	}
	for _, s := range due {
		m.syncService(ctx, s)
	}
	if crowded {
		m.releaseIdle()
		m.endYield(0)
	}
	for key, s := range m.svcs {
		if !s.want && !s.held && !s.dirty && (s.job == "" && key != "" || s.job != "" && !m.hasService(s.job)) {
			delete(m.svcs, key) // retired, or its job is gone
		}
	}
	m.armTimers()
}

// syncService makes one attempt for s; a failure puts s in backoff.
func (m *Manager) syncService(ctx context.Context, s *service) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if op, err := m.syncOne(ctx, s); err != nil {
		m.countError(op)
		d := s.retry.Next()
		s.retryAt = time.Now().Add(d)
		if isTooMany(err) {
			m.markCrowded()
			m.yield(d + restIdle)
		}
		if s.retry.Failures() == 1 {
			m.log.Warn("catalog call failed; will retry", "op", op, "service", s.reg.ID, "err", err, "in", d.Round(time.Millisecond))
		} else {
			m.log.Debug("catalog call failed again", "op", op, "service", s.reg.ID, "err", err, "attempt", s.retry.Failures(), "in", d.Round(time.Millisecond))
		}
		return
	}
	if n := s.retry.Failures(); n > 0 {
		m.log.Info("catalog call works again", "service", s.reg.ID, "failed_attempts", n)
		m.endYield(restIdle)
	}
	s.retry.Reset()
	s.retryAt = time.Time{}
	if !s.held && !s.dirty {
		for _, ch := range s.waiters {
			close(ch)
		}
		s.waiters = nil
	}
}

// armTimers sets the retry timer to the first service out of backoff, and the heartbeat
// timer to the first registration due to repeat its state.
func (m *Manager) armTimers() {
	var retry, beat time.Time
	for _, s := range m.svcs {
		switch {
		case s.dirty:
			if retry.IsZero() || s.retryAt.Before(retry) {
				retry = s.retryAt
			}
		case s.registered && s.want:
			if due := s.lastBeat.Add(s.reg.TTL / 2); beat.IsZero() || due.Before(beat) {
				beat = due
			}
		}
	}
	m.retryT.Stop()
	if !retry.IsZero() {
		m.retryT.Reset(max(time.Until(retry), time.Millisecond))
	}
	m.beatT.Stop()
	if !beat.IsZero() {
		m.beatT.Reset(max(time.Until(beat), time.Millisecond))
	}
}

func (m *Manager) hasService(job string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.svcFor[job]
}

// present reports whether s should be in the catalog now. Maintenance takes the
// container's services out; pilotfish's own metrics endpoint stays, since a container in
// maintenance is one to watch. From the shutdown on, only what is registered stays (until
// its job's stop): a registration in doubt, say after the agent restarted, goes.
func (m *Manager) present(s *service) bool {
	return s.want && !(m.maintenance && s.job != "") && !(m.closing && !s.registered)
}

// syncOne makes the agent match one service; on failure it returns the operation that
// failed.
func (m *Manager) syncOne(ctx context.Context, s *service) (string, error) {
	for try := 0; ; try++ {
		if !m.present(s) {
			if s.held {
				if err := m.b.Deregister(ctx, s.reg.ID); err != nil {
					return "deregister", err
				}
				m.log.Info("deregistered", "service", s.reg.ID, "job", s.job)
			}
			s.held, s.registered, s.dirty, s.verify = false, false, false, false
			return "", nil
		}
		if !s.registered {
			if err := m.register(ctx, s); err != nil {
				return "register", err
			}
		}
		err := m.b.UpdateTTL(ctx, s.reg.CheckID(), s.reg.Status, s.reg.Output)
		if errors.Is(err, ErrUnknownCheck) && try == 0 {
			s.registered, s.owned = false, false // the agent forgot it: register again
			continue
		}
		if err != nil {
			return "ttl", err
		}
		s.dirty, s.lastBeat = false, time.Now()
		if s.verify && time.Since(s.regAt) >= verifyAfter {
			if err := m.verify(ctx, s); err != nil {
				return "register", err // checked again at the next heartbeat
			}
			if !s.registered && try == 0 {
				s.dirty = true // moved off the ID (or the agent forgot it): register now
				continue
			}
		}
		return "", nil
	}
}

// register registers s under an ID that is free or this instance's (see claim).
func (m *Manager) register(ctx context.Context, s *service) error {
	if !s.owned {
		if err := m.claim(ctx, s); err != nil {
			return err
		}
	}
	// A registration cannot carry the check's output, so the service comes in critical and
	// gets its real state and output in the next call: it is never seen passing without them.
	reg := s.reg
	reg.Status, reg.Output = Critical, "registering"
	s.held = true // even if the call fails: it may have reached the agent
	if err := m.b.Register(ctx, reg); err != nil {
		return err
	}
	s.registered, s.verify, s.regAt = true, true, time.Now()
	m.log.Info("registered", "service", s.reg.ID, "address", s.reg.Address, "port", s.reg.Port, "status", s.reg.Status)
	return nil
}

// String describes the manager for logs.
func (m *Manager) String() string { return fmt.Sprintf("discovery(%s)", m.hostname) }
