package main

// The fleet measurement (`-only fleet`, `make bench-fleet`): N pilotfish instances, each
// PID 1 of its own PID and UTS namespace with its own host name, against one real Consul
// agent with its default limits. Each instance runs job "web" (a tcp health check on a port
// pfbench listens on), registers it as service "web", and watches "web" with a job that runs
// on every `changed`. pfbench measures convergence, the delivery of a catalog change to every
// watcher, the errors each instance counted, CPU, and what is left in Consul after SIGTERM.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/integration_tests/consulagent"
)

const (
	fleetConverge  = 120 * time.Second // launch → all passing, at most
	fleetDeliver   = 20 * time.Second  // a change → every watcher ran, at most
	fleetStop      = 30 * time.Second  // SIGTERM → every instance exited, at most
	fleetQuiet     = time.Second       // no watcher ran for this long: the fleet has settled
	fleetService   = "web"
	fleetProbe     = "pfbench-probe" // the instance pfbench adds and removes to make changes
	fleetLaunchers = 8               // instances being started at once

	// The goals of docs/consul.md#a-fleet-on-one-agent, up to fleetGoalN instances.
	fleetGoalN        = 100
	fleetGoalConverge = 5 * time.Second
	fleetGoalP99      = time.Second
	fleetGoalErrors   = 10
)

// fleetResult is one fleet size's measurements.
type fleetResult struct {
	n                     int
	launch, converge      time.Duration // start of launch → last launched; → all passing
	p50, p99, worst       time.Duration // change → each watcher's job started
	samples, missing      int           // watcher runs measured; watchers that never ran
	errors                float64       // pilotfish_consul_errors_total summed over the fleet
	errorsByOp            map[string]float64
	errorRate             float64 // errors per instance and minute, launch to SIGTERM
	left                  int     // services still in Consul after every instance exited
	exitMax               time.Duration
	badExits              int
	consulConv, fleetConv time.Duration // CPU from launch to settled
	convRuns              float64       // the watchers' job runs per instance, launch to settled
	consulChg, fleetChg   time.Duration // CPU per change
	resyncs, raw          int           // "registering services again" lines; non-JSON stderr lines
	rawSample             string
	warnings              map[string]int // pilotfish's warnings by message, over the fleet
	warnSample            []string
	failed                error
}

// consulHTTP talks to the agent from 127.0.0.2, so that pfbench never takes one of the
// connections Consul allows the fleet's address (127.0.0.1).
type consulHTTP struct {
	base string
	c    *http.Client
}

func newConsulHTTP(addr string) *consulHTTP {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	return &consulHTTP{base: "http://" + addr, c: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 2}}}
}

func (c *consulHTTP) do(method, path string, body any, out any) (uint64, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		r = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return 0, err
	}
	resp, err := c.c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	idx, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	if out != nil {
		return idx, json.Unmarshal(b, out)
	}
	return idx, nil
}

// passing counts the fleet's passing instances of the service (pfbench's probe excluded),
// waiting up to wait for a change after index.
func (c *consulHTTP) passing(index uint64, wait time.Duration) (int, uint64, error) {
	var entries []struct{ Service struct{ ID string } }
	idx, err := c.do("GET", fmt.Sprintf("/v1/health/service/%s?passing&index=%d&wait=%dms", fleetService, index, wait.Milliseconds()), nil, &entries)
	n := 0
	for _, e := range entries {
		if e.Service.ID != fleetProbe {
			n++
		}
	}
	return n, idx, err
}

// left counts the services the agent and the catalog still hold (Consul's own excepted).
func (c *consulHTTP) left() (int, error) {
	var local map[string]json.RawMessage
	if _, err := c.do("GET", "/v1/agent/services", nil, &local); err != nil {
		return 0, err
	}
	var catalog []json.RawMessage
	if _, err := c.do("GET", "/v1/catalog/service/"+fleetService, nil, &catalog); err != nil {
		return 0, err
	}
	return max(len(local), len(catalog)), nil
}

// fleetMember is one instance of the fleet.
type fleetMember struct {
	in   *instance
	sock string
	ln   net.Listener
}

func (b *bench) fleet() {
	for _, s := range strings.Split(b.opt.fleet, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			b.fail("fleet", fmt.Errorf("bad -fleet size %q", s))
			return
		}
		r := b.fleetRun(n)
		b.fleetRows(r)
	}
	b.fleetTable()
}

// fleetRun measures one fleet of n instances, from a fresh agent.
func (b *bench) fleetRun(n int) (r fleetResult) {
	r.n = n
	label := fmt.Sprintf("fleet %d", n)
	dir := filepath.Join(b.tmp, fmt.Sprintf("fleet-%d", n))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.failed = err
		return r
	}
	agent, err := consulagent.Launch(dir, consulagent.Options{LogLevel: "warn", Config: b.opt.fleetConsul})
	if err != nil {
		r.failed = fmt.Errorf("cannot start the Consul agent: %v", err)
		b.fail(label, r.failed)
		return r
	}
	defer agent.Stop()
	c := newConsulHTTP(agent.Addr())
	if _, err := c.do("GET", "/v1/agent/self", nil, nil); err != nil {
		r.failed = fmt.Errorf("cannot reach the agent from 127.0.0.2 (pfbench keeps off the fleet's address): %v", err)
		b.fail(label, r.failed)
		return r
	}
	consulPid := agent.PID()
	cpu0 := fleetCPU(consulPid, nil) // the fleet's own CPU counts from its start
	members, t0, err := b.fleetLaunch(dir, agent.Addr(), n, &r)
	defer func() {
		for _, m := range members {
			m.ln.Close()
		}
		fleetKill(members)
	}()
	if err != nil {
		r.failed = err
		b.fail(label, err)
		return r
	}

	// 1. Convergence: every instance registered and passing, as Consul answers it.
	var index uint64
	deadline := t0.Add(fleetConverge)
	for {
		got, idx, err := c.passing(index, time.Until(deadline))
		if err == nil && got == n {
			r.converge = time.Since(t0)
			break
		}
		if time.Now().After(deadline) {
			r.failed = fmt.Errorf("only %d/%d instances passing after %s (%v)", got, n, fleetConverge, err)
			b.fail(label, r.failed)
			break
		}
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			idx = 0
		}
		index = idx
	}
	if r.failed == nil && !fleetSettle(members, 60*time.Second) {
		fmt.Printf("%s: the watchers never stayed quiet for %s\n", label, fleetQuiet)
	}
	cpu1 := fleetCPU(consulPid, members)
	r.consulConv, r.fleetConv = cpu1.consul-cpu0.consul, cpu1.fleet-cpu0.fleet
	var ready, registered []time.Duration
	for _, m := range members {
		m.in.mu.Lock()
		r.convRuns += float64(len(m.in.runs["react"])) / float64(n)
		if t, ok := m.in.firstMsg["pilotfish started"]; ok {
			ready = append(ready, t.Sub(t0))
		}
		if t, ok := m.in.firstMsg["registered"]; ok {
			registered = append(registered, t.Sub(t0))
		}
		m.in.mu.Unlock()
	}
	if len(ready) > 0 && len(registered) > 0 {
		fmt.Printf("%s: pilotfish started p50 %s max %s; registered p50 %s max %s (after the launch began)\n", label,
			secs(percentile(ready, 0.5)), secs(percentile(ready, 1)), secs(percentile(registered, 0.5)), secs(percentile(registered, 1)))
	}

	// 2. Changes: pfbench's probe instance comes and goes; each watcher's job must run.
	var lat []time.Duration
	changes := b.opt.fleetChanges
	if r.failed != nil {
		changes = 0 // no change measured on a fleet that never converged
	}
	for k := 0; k < changes; k++ {
		t := time.Now()
		var err error
		if k%2 == 0 {
			_, err = c.do("PUT", "/v1/agent/service/register", map[string]any{"ID": fleetProbe, "Name": fleetService, "Address": "127.0.0.1", "Port": 1}, nil)
		} else {
			_, err = c.do("PUT", "/v1/agent/service/deregister/"+fleetProbe, nil, nil)
		}
		if err != nil {
			r.failed = fmt.Errorf("change %d: %v", k+1, err)
			b.fail(label, r.failed)
			break
		}
		for _, m := range members {
			d, ok := firstRunAfter(m.in, "react", t, fleetDeliver-time.Since(t))
			if !ok {
				r.missing++
				continue
			}
			lat = append(lat, d)
		}
		fleetSettle(members, 30*time.Second)
	}
	if changes%2 == 1 {
		_, _ = c.do("PUT", "/v1/agent/service/deregister/"+fleetProbe, nil, nil)
		fleetSettle(members, 30*time.Second)
	}
	cpu2 := fleetCPU(consulPid, members)
	if k := changes + changes%2; k > 0 {
		r.consulChg, r.fleetChg = (cpu2.consul-cpu1.consul)/time.Duration(k), (cpu2.fleet-cpu1.fleet)/time.Duration(k)
	}
	r.samples = len(lat)
	if len(lat) > 0 {
		r.p50, r.p99, r.worst = percentile(lat, 0.50), percentile(lat, 0.99), percentile(lat, 1)
	}

	// 3. Errors each instance counted, from its control socket.
	r.errorsByOp = map[string]float64{}
	for _, m := range members {
		byOp, err := consulErrors(m.sock)
		if err != nil {
			fmt.Printf("%s: cannot read the metrics of %s: %v\n", label, m.sock, err)
			continue
		}
		for op, v := range byOp {
			r.errorsByOp[op] += v
			r.errors += v
		}
	}

	r.errorRate = r.errors / float64(n) / time.Since(t0).Minutes()

	// 4. SIGTERM to all at once; then what does Consul still hold?
	sent := time.Now()
	for _, m := range members {
		_ = syscall.Kill(m.in.pid, syscall.SIGTERM)
	}
	for _, m := range members {
		if !m.in.until(fleetStop-time.Since(sent), func() bool { return m.in.done }) {
			r.badExits++
			continue
		}
		m.in.mu.Lock()
		if d := m.in.exitAt.Sub(sent); d > r.exitMax {
			r.exitMax = d
		}
		if m.in.exitCode != 0 {
			r.badExits++
		}
		m.in.mu.Unlock()
	}
	// The agent's local state is immediate; its catalog follows within moments.
	r.left = -1
	pollUntil(5*time.Second, 50*time.Millisecond, func() bool {
		if left, err := c.left(); err == nil {
			r.left = left
		}
		return r.left == 0
	})
	r.warnings = map[string]int{}
	for _, m := range members {
		m.in.mu.Lock()
		for _, w := range m.in.warnings {
			var e struct{ Msg, Err string }
			_ = json.Unmarshal([]byte(w), &e)
			if r.warnings[e.Msg]++; len(r.warnSample) < 5 && e.Err != "" {
				r.warnSample = append(r.warnSample, e.Msg+": "+e.Err)
			}
		}
		r.resyncs += m.in.msgs["catalog agent is back; registering services again"]
		r.raw += len(m.in.raw)
		if r.rawSample == "" && len(m.in.raw) > 0 {
			r.rawSample = m.in.raw[0]
		}
		m.in.mu.Unlock()
	}
	return r
}

// fleetLaunch starts n instances, each as PID 1 of new PID, UTS and mount namespaces with
// its own host name (fleet-NNN, or one name for all with -fleet-same-host), fleetLaunchers
// at a time as an orchestrator would. It returns when the launch began.
func (b *bench) fleetLaunch(dir, consulAddr string, n int, r *fleetResult) ([]*fleetMember, time.Time, error) {
	members := make([]*fleetMember, n)
	argvs := make([][]string, n)
	// The shell gives the namespace its host name and its own /run, then becomes pilotfish.
	script := `hostname "$1" && mount -t tmpfs -o mode=0755 pfbench-run /run && shift && exec "$@"`
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, time.Time{}, err
		}
		go acceptAndClose(ln)
		port := ln.Addr().(*net.TCPAddr).Port
		idir := filepath.Join(dir, fmt.Sprintf("i%03d", i))
		m := &fleetMember{sock: filepath.Join(idir, "pf.sock"), ln: ln}
		members[i] = m
		if err := os.MkdirAll(idir, 0o755); err != nil {
			return nil, time.Time{}, err
		}
		cfg := fleetConfig(consulAddr, m.sock, port, !b.opt.fleetNoWatch)
		path := filepath.Join(idir, "pilotfish.hcl")
		if i == 0 {
			if path, err = b.write(filepath.Join(filepath.Base(dir), filepath.Base(idir), "pilotfish.hcl"), cfg); err != nil {
				return nil, time.Time{}, err
			}
		} else if err := os.WriteFile(path, []byte(cfg.sb.String()), 0o644); err != nil {
			return nil, time.Time{}, err
		}
		host := fmt.Sprintf("fleet-%03d", i)
		if b.opt.fleetSameHost {
			host = "fleet"
		}
		argvs[i] = []string{"unshare", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child",
			"/bin/sh", "-c", script, "sh", host, b.opt.bin, "-config", path}
	}
	t0 := time.Now()
	next := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range fleetLaunchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				in, err := startArgv(argvs[i], nil, true)
				if err != nil {
					errs <- fmt.Errorf("instance %d: %v", i, err)
					continue
				}
				members[i].in = in
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	r.launch = time.Since(t0)
	var started []*fleetMember
	for _, m := range members {
		if m.in != nil {
			started = append(started, m)
		} else {
			m.ln.Close()
		}
	}
	select {
	case err := <-errs:
		return started, t0, err
	default:
	}
	return started, t0, nil
}

// fleetConfig is one instance's configuration; without watch, it only registers.
func fleetConfig(consulAddr, sock string, port int, watch bool) *config {
	c := newConfig()
	fmt.Fprintf(&c.sb, `
control {
  socket = %s
}
consul {
  address = %s
}
job %s {
  exec = ["sleep", "100000"]
  health {
    tcp      = %s
    interval = "5s"
  }
  service {
    port       = %d
    interfaces = ["static:127.0.0.1"]
  }
}
`, hclStr(sock), hclStr(consulAddr), hclStr(fleetService), hclStr(fmt.Sprintf("127.0.0.1:%d", port)), port)
	c.names = []string{fleetService}
	if watch {
		fmt.Fprintf(&c.sb, `
watch %s {}
job "react" {
  exec = ["true"]
  when {
    source = "watch.%s"
    each   = "changed"
  }
}
`, hclStr(fleetService), fleetService)
		c.names = append(c.names, "react")
	}
	return c
}

func acceptAndClose(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		conn.Close()
	}
}

// fleetSettle waits until no watcher's job has started for fleetQuiet.
func fleetSettle(members []*fleetMember, timeout time.Duration) bool {
	return pollUntil(timeout, 50*time.Millisecond, func() bool {
		var last time.Time
		for _, m := range members {
			m.in.mu.Lock()
			if runs := m.in.runs["react"]; len(runs) > 0 && runs[len(runs)-1].After(last) {
				last = runs[len(runs)-1]
			}
			m.in.mu.Unlock()
		}
		return time.Since(last) >= fleetQuiet
	})
}

// firstRunAfter waits for the first start of job after t and returns how long after t it came.
func firstRunAfter(in *instance, job string, t time.Time, timeout time.Duration) (time.Duration, bool) {
	var at time.Time
	ok := in.until(max(timeout, 0), func() bool {
		runs := in.runs[job]
		i := sort.Search(len(runs), func(i int) bool { return runs[i].After(t) })
		if i < len(runs) {
			at = runs[i]
			return true
		}
		return in.done
	})
	if !ok || at.IsZero() {
		return 0, false
	}
	return at.Sub(t), true
}

// cpuTimes are CPU seconds used so far by the agent and by the fleet's pilotfish processes
// (their own, not their jobs').
type cpuTimes struct{ consul, fleet time.Duration }

func fleetCPU(consulPid int, members []*fleetMember) cpuTimes {
	ticks := func(pid int) time.Duration {
		st, err := readStat(pid)
		if err != nil {
			return 0
		}
		return time.Duration(st.utime+st.stime) * time.Second / clockTicks
	}
	c := cpuTimes{consul: ticks(consulPid)}
	for _, m := range members {
		c.fleet += ticks(m.in.pid)
	}
	return c
}

// unixClient is an HTTP client of the control API on the unix socket sock; it keeps its
// connection alive between requests.
func unixClient(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
}

// consulErrors reads pilotfish_consul_errors_total by op from an instance's control socket.
func consulErrors(sock string) (map[string]float64, error) {
	resp, err := unixClient(sock).Get("http://pilotfish/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, `pilotfish_consul_errors_total{op="`)
		if !ok {
			continue
		}
		op, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err == nil {
			out[op] = v
		}
	}
	return out, sc.Err()
}

// fleetKill ends whatever the fleet left running (an instance is PID 1 of its namespace:
// its end takes every process in it along) and closes the pipes.
func fleetKill(members []*fleetMember) {
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() { defer wg.Done(); m.in.kill() }()
	}
	wg.Wait()
	for _, m := range members {
		for _, f := range m.in.files {
			f.Close()
		}
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

// fleetRows prints one fleet's details and adds its rows to the summary.
func (b *bench) fleetRows(r fleetResult) {
	label := fmt.Sprintf("fleet %d", r.n)
	if r.failed != nil && r.errorsByOp == nil {
		b.fleetResults = append(b.fleetResults, r)
		b.add(row{name: label, result: "FAIL"})
		return
	}
	ops := make([]string, 0, len(r.errorsByOp))
	for op, v := range r.errorsByOp {
		if v > 0 {
			ops = append(ops, fmt.Sprintf("%s %.0f", op, v))
		}
	}
	sort.Strings(ops)
	fmt.Printf("%s: launched in %s, all registered and passing %s after the launch began | change → every watcher p50 %s p99 %s max %s (%d runs, %d missing) | consul errors %.0f %v (%.1f per instance and minute) | SIGTERM → all exited %s (%d bad exits), left in Consul %d | CPU consul %s fleet %s to converge (%.1f watcher runs each), %s / %s per change | resync lines %d, raw stderr lines %d %q\n",
		label, secs(r.launch), secs(r.converge), ms(r.p50), ms(r.p99), ms(r.worst), r.samples, r.missing,
		r.errors, ops, r.errorRate, secs(r.exitMax), r.badExits, r.left, secs(r.consulConv), secs(r.fleetConv), r.convRuns, ms(r.consulChg), ms(r.fleetChg),
		r.resyncs, r.raw, r.rawSample)
	if len(r.warnings) > 0 {
		fmt.Printf("%s: warnings logged by the fleet %v, e.g. %q\n", label, r.warnings, r.warnSample)
	}
	b.fleetResults = append(b.fleetResults, r)
	goal := r.n <= fleetGoalN
	res := func(ok bool) string {
		switch {
		case ok:
			return "ok"
		case goal:
			return "MISSED"
		}
		return "info"
	}
	if r.failed != nil {
		b.add(row{name: label, result: "FAIL"})
	}
	b.add(row{name: label + ": all registered and passing", median: secs(r.converge), goal: "≤ " + secs(fleetGoalConverge), result: res(r.failed == nil && r.converge <= fleetGoalConverge)})
	b.add(row{name: label + ": change → every watcher (p50, p99)", median: ms(r.p50), max: ms(r.p99), goal: "p99 ≤ " + ms(fleetGoalP99), result: res(r.p99 <= fleetGoalP99 && r.missing == 0)})
	b.add(row{name: label + ": consul errors counted", median: fmt.Sprintf("%.0f", r.errors), goal: fmt.Sprintf("< %d", fleetGoalErrors), result: res(r.errors < fleetGoalErrors)})
	// No ghost, no resync at shutdown, no raw line and every instance out in time, at any size.
	clean := r.left == 0 && r.badExits == 0 && r.resyncs == 0 && r.raw == 0
	b.add(row{name: label + ": left after SIGTERM (and a clean exit)", median: strconv.Itoa(r.left), goal: "0", result: map[bool]string{true: "ok", false: "MISSED"}[clean]})
}

// fleetTable prints the fleet's summary in the layout of docs/consul.md.
func (b *bench) fleetTable() {
	fmt.Println()
	fmt.Println("| instances | all registered and passing | change → every watcher (p50 / p99) | Consul errors counted | left after SIGTERM | Consul CPU (converge / per change) | fleet CPU (converge / per change) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, r := range b.fleetResults {
		if r.failed != nil && r.errorsByOp == nil {
			fmt.Printf("| %d | FAIL: %v | | | | | |\n", r.n, r.failed)
			continue
		}
		if r.failed != nil {
			fmt.Printf("| %d | FAIL: %v | | %.0f | %d | %s / - | %s / - |\n", r.n, r.failed, r.errors, r.left, secs(r.consulConv), secs(r.fleetConv))
			continue
		}
		fmt.Printf("| %d | %s | %s / %s | %.0f | %d | %s / %s | %s / %s |\n", r.n, secs(r.converge), ms(r.p50), ms(r.p99),
			r.errors, r.left, secs(r.consulConv), ms(r.consulChg), secs(r.fleetConv), ms(r.fleetChg))
	}
}
