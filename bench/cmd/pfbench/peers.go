package main

// The peer comparison (`-only peers`, `make bench-peers`): pilotfish side by side with the Go
// floor (bench/cmd/gofloor), tini, s6 and supervisord, each PID 1 of a fresh PID namespace,
// run after run in turn (the order rotates every repetition), so that a busy machine slows
// them alike and the paired ratio pilotfish / floor of each repetition stays meaningful.
//
// Every job reports to pfbench through one FIFO ("NAME up", "NAME term", "NAME done"): each
// peer is timed the same way, from the exec of `unshare` to the moment pfbench reads the line.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// peerOptions are the flags of the peer comparison.
type peerOptions struct {
	reps       int
	names      string
	floor      string
	out        string
	startJobs  int
	statusJobs int
	requests   int
	orphans    int
	window     time.Duration
}

// --- the jobs ------------------------------------------------------------------------------

// say is the shell command with which a job reports "NAME EVENT" to pfbench.
func say(fifo, name, event string) string {
	return "echo " + shq(name+" "+event) + " >" + shq(fifo)
}

// park ends a script: it waits for SIGTERM, reports "NAME term" and exits 0. A shell runs a
// trap only between commands, hence the sleep in the background.
func park(fifo, name string) string {
	return "trap " + shq(say(fifo, name, "term")+"; kill $! 2>/dev/null; exit 0") +
		" TERM; while :; do sleep 1000 & wait $!; done"
}

// sleeperJobs are n jobs that report "up" and become `sleep 1000`.
func sleeperJobs(n int) jobsFunc {
	return func(_, fifo string) ([]peerJob, error) {
		jobs := make([]peerJob, n)
		for i := range jobs {
			name := "job" + strconv.Itoa(i+1)
			jobs[i] = peerJob{name, say(fifo, name, "up") + "; exec sleep 1000"}
		}
		return jobs, nil
	}
}

// fifoLog collects the lines jobs write to a FIFO, with the time pfbench read each.
type fifoLog struct {
	notifier
	path  string
	f     *os.File
	count map[string]int       // event (a line's last word) → lines
	last  map[string]time.Time // event → when its latest line was read
	done  chan struct{}
}

func openFifoLog(path string) (*fifoLog, error) {
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, err
	}
	// Read-write: a job never blocks opening it, and pfbench never reads EOF between jobs.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	l := &fifoLog{path: path, f: f, count: map[string]int{}, last: map[string]time.Time{}, done: make(chan struct{})}
	go l.read()
	return l, nil
}

func (l *fifoLog) read() {
	defer close(l.done)
	sc := bufio.NewScanner(l.f)
	for sc.Scan() {
		now := time.Now()
		l.mu.Lock()
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			l.count[f[len(f)-1]]++
			l.last[f[len(f)-1]] = now
		}
		l.broadcast()
		l.mu.Unlock()
	}
}

// wait waits until n lines of event came and returns when the last one was read.
func (l *fifoLog) wait(event string, n int, timeout time.Duration) (time.Time, error) {
	var got int
	var at time.Time
	l.until(timeout, func() bool {
		got, at = l.count[event], l.last[event]
		return got >= n
	})
	if got < n {
		return at, fmt.Errorf("timeout: %d/%d %q lines after %s", got, n, event, timeout)
	}
	return at, nil
}

func (l *fifoLog) close() {
	l.f.Close()
	<-l.done
}

// --- one run -------------------------------------------------------------------------------

// peerRun is a peer running as PID 1 of its own PID namespace (in.pid is its pid here).
type peerRun struct {
	b    *bench
	p    *peer
	dir  string
	in   *instance
	fifo *fifoLog
}

// jobsFunc makes the jobs of a run, given its directory and the FIFO they report to.
type jobsFunc func(dir, fifo string) ([]peerJob, error)

// startPeer runs p in a fresh directory with the jobs built for the run, and main as its main
// command if not nil.
func (b *bench) startPeer(p *peer, scenario string, jobs jobsFunc, main []string) (*peerRun, error) {
	dir := filepath.Join(b.tmp, "peers", strings.ReplaceAll(p.name, " ", "-")+"-"+scenario)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	fifo, err := openFifoLog(filepath.Join(dir, "notify"))
	if err != nil {
		return nil, err
	}
	var js []peerJob
	if jobs != nil {
		js, err = jobs(dir, fifo.path)
	}
	var argv []string
	if err == nil {
		argv, err = p.command(p.bin, dir, js, main)
	}
	if err == nil {
		var in *instance
		if in, err = start(argv[0], argv[1:], true); err == nil {
			setCurrent(in)
			return &peerRun{b: b, p: p, dir: dir, in: in, fifo: fifo}, nil
		}
	}
	fifo.close()
	return nil, err
}

// startSleepers runs p with n sleeperJobs and waits until all are up; it returns when the
// last "up" came. On an error the run has been ended.
func (b *bench) startSleepers(p *peer, scenario string, n int) (*peerRun, time.Time, error) {
	r, err := b.startPeer(p, scenario, sleeperJobs(n), nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	last, err := r.fifo.wait("up", n, readyTimeout)
	if err != nil {
		err = r.errorf("%v", err)
		r.end()
		return nil, last, err
	}
	return r, last, nil
}

// end kills what is left of the run.
func (r *peerRun) end() {
	r.b.end(r.in)
	r.fifo.close()
}

// terminate sends SIGTERM to PID 1 and returns when.
func (r *peerRun) terminate() (time.Time, error) {
	sent := time.Now()
	return sent, syscall.Kill(r.in.pid, syscall.SIGTERM)
}

// stop sends SIGTERM to PID 1, waits until it exited and records its exit code (want 0) as
// what; it returns SIGTERM → exit and the code.
func (r *peerRun) stop(res *peerResults, what string) (time.Duration, int, error) {
	sent, err := r.terminate()
	if err != nil {
		return 0, 0, err
	}
	took, code, err := r.waitExit(sent)
	if err == nil {
		res.exit(r.p.name, what, code, 0)
	}
	return took, code, err
}

// waitExit waits until PID 1 exited and returns the time since `since` and its exit code.
func (r *peerRun) waitExit(since time.Time) (time.Duration, int, error) {
	if !r.in.until(stopTimeout, func() bool { return r.in.done }) {
		return 0, 0, fmt.Errorf("%s did not exit within %s%s", r.p.name, stopTimeout, r.in.tailText())
	}
	r.in.mu.Lock()
	defer r.in.mu.Unlock()
	return r.in.exitAt.Sub(since), r.in.exitCode, nil
}

// errorf adds the run's last output lines to an error.
func (r *peerRun) errorf(format string, a ...any) error {
	return fmt.Errorf("%s%s", fmt.Sprintf(format, a...), r.in.tailText())
}

// jobExes are the programs of the jobs, which do not count as the supervisor's processes.
var jobExes = map[string]bool{}

func init() {
	for _, name := range []string{"/bin/sh", "sleep", "true"} {
		if p, err := exec.LookPath(name); err == nil {
			if p, err = filepath.EvalSymlinks(p); err == nil {
				jobExes[p] = true
			}
		}
	}
}

// supervisorProcs are PID 1 and the processes below it that are not jobs (s6-supervise).
func supervisorProcs(pid1 int) []int {
	out := []int{pid1}
	for _, d := range descendants(pid1, allProcs()) {
		exe, err := os.Readlink("/proc/" + strconv.Itoa(d.pid) + "/exe")
		if err == nil && !jobExes[exe] {
			out = append(out, d.pid)
		}
	}
	return out
}

func sumUsage(pids []int) usage {
	var s usage
	for _, pid := range pids {
		if u, err := readUsage(pid); err == nil {
			s.cpuTicks += u.cpuTicks
			s.voluntary += u.voluntary
			s.forced += u.forced
			s.threads += u.threads
		}
	}
	return s
}

// settle waits, at most 5 s, until pids have used no CPU and switched no context for
// 300 ms: start-up work (the Go runtime returning memory, say) is over.
func settle(pids []int) {
	prev := sumUsage(pids)
	quiet := 0
	pollUntil(5*time.Second, 100*time.Millisecond, func() bool {
		u := sumUsage(pids)
		if u.cpuTicks == prev.cpuTicks && u.voluntary+u.forced == prev.voluntary+prev.forced {
			quiet++
		} else {
			quiet = 0
		}
		prev = u
		return quiet >= 3
	})
}

// --- the scenarios -------------------------------------------------------------------------

// peerScenario is one kind of run; rows are those it measures.
type peerScenario struct {
	name string
	rows []string
	skip func(*peer) bool
	run  func(p *peer, rep int, res *peerResults) error
}

// peerOneJob: one job; start-up, idle RSS and wake-ups, SIGTERM → job, exit code.
func (b *bench) peerOneJob(p *peer, rep int, res *peerResults) error {
	r, err := b.startPeer(p, "one", func(_, fifo string) ([]peerJob, error) {
		return []peerJob{{"job", say(fifo, "job", "up") + "; " + park(fifo, "job")}}, nil
	}, nil)
	if err != nil {
		return err
	}
	defer r.end()
	up, err := r.fifo.wait("up", 1, readyTimeout)
	if err != nil {
		return r.errorf("%v", err)
	}
	res.set("start1", p.name, rep, msF(up.Sub(r.in.execAt)))

	procs := supervisorProcs(r.in.pid)
	settle(procs)
	rss := 0
	for _, pid := range procs {
		if m, err := statusKB(pid, "VmRSS"); err == nil {
			rss += m["VmRSS"]
		}
	}
	res.set("rss", p.name, rep, float64(rss)/1024)
	u0 := sumUsage(procs)
	if r.in.until(b.opt.peers.window, func() bool { return r.in.done }) {
		return r.errorf("%s exited while idle", p.name)
	}
	u1 := sumUsage(procs)
	wake := (u1.voluntary + u1.forced) - (u0.voluntary + u0.forced)
	res.set("wake", p.name, rep, float64(wake))

	sent, err := r.terminate()
	if err != nil {
		return err
	}
	term, err := r.fifo.wait("term", 1, stopTimeout)
	if err != nil {
		return r.errorf("SIGTERM did not reach the job: %v", err)
	}
	res.set("term", p.name, rep, msF(term.Sub(sent)))
	took, code, err := r.waitExit(sent)
	if err != nil {
		return err
	}
	res.exit(p.name, "1 job, SIGTERM", code, 0)
	fmt.Printf("  %-11s 1 job: up %s | RSS %.1f MiB (%d processes) | %d wake-ups | SIGTERM → job %s, → exit %s, code %d\n",
		p.name, ms(up.Sub(r.in.execAt)), float64(rss)/1024, len(procs), wake, ms(term.Sub(sent)), ms(took), code)
	return nil
}

// peerStartMany: start-up with many jobs.
func (b *bench) peerStartMany(p *peer, rep int, res *peerResults) error {
	n := b.opt.peers.startJobs
	r, last, err := b.startSleepers(p, "many", n)
	if err != nil {
		return err
	}
	defer r.end()
	res.set("startN", p.name, rep, msF(last.Sub(r.in.execAt)))
	took, code, err := r.stop(res, fmt.Sprintf("%d jobs, SIGTERM", n))
	if err != nil {
		return err
	}
	fmt.Printf("  %-11s %d jobs: all up %s | SIGTERM → exit %s, code %d\n", p.name, n, ms(last.Sub(r.in.execAt)), ms(took), code)
	return nil
}

// peerStatusStop: GET /v1/status latency (peers with a socket), then shutdown time.
func (b *bench) peerStatusStop(p *peer, rep int, res *peerResults) error {
	n := b.opt.peers.statusJobs
	r, _, err := b.startSleepers(p, "some", n)
	if err != nil {
		return err
	}
	defer r.end()
	status := ""
	if p.socket {
		p50, p99, err := statusLatency(filepath.Join(r.dir, peerSocket), b.opt.peers.requests, n)
		if err != nil {
			return r.errorf("GET /v1/status: %v", err)
		}
		res.set("p50", p.name, rep, msF(p50))
		res.set("p99", p.name, rep, msF(p99))
		status = fmt.Sprintf("GET /v1/status p50 %.3fms p99 %.3fms | ", msF(p50), msF(p99))
	}
	took, code, err := r.stop(res, fmt.Sprintf("%d jobs, SIGTERM", n))
	if err != nil {
		return err
	}
	res.set("stop", p.name, rep, msF(took))
	fmt.Printf("  %-11s %d jobs: %sSIGTERM → exit %s, code %d\n", p.name, n, status, ms(took), code)
	return nil
}

// statusLatency times n GET /v1/status on one kept-alive connection, after a warm-up, and
// checks that the answer lists jobs jobs.
func statusLatency(sock string, n, jobs int) (p50, p99 time.Duration, err error) {
	c := unixClient(sock)
	get := func(check bool) error {
		resp, err := c.Get("http://peer/v1/status")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %s", resp.Status)
		}
		if !check {
			_, err = io.Copy(io.Discard, resp.Body)
			return err
		}
		var st struct{ Jobs []json.RawMessage }
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return err
		}
		if len(st.Jobs) != jobs {
			return fmt.Errorf("%d jobs in the answer, want %d", len(st.Jobs), jobs)
		}
		return nil
	}
	if err := get(true); err != nil {
		return 0, 0, err
	}
	for range 20 {
		if err := get(false); err != nil {
			return 0, 0, err
		}
	}
	ds := make([]time.Duration, n)
	for i := range ds {
		t0 := time.Now()
		if err := get(false); err != nil {
			return 0, 0, err
		}
		ds[i] = time.Since(t0)
	}
	return percentile(ds, 0.5), percentile(ds, 0.99), nil
}

// peerOrphans: a job forks N short-lived processes whose parent exits at once, so that they
// are reparented to PID 1; the CPU PID 1 spends from the job's start signal until it has
// reaped the last one, divided by N.
func (b *bench) peerOrphans(p *peer, rep int, res *peerResults) error {
	n := b.opt.peers.orphans
	var gate string
	r, err := b.startPeer(p, "orphans", func(dir, fifo string) ([]peerJob, error) {
		// The job waits reading gate until pfbench has read PID 1's CPU time.
		gate = filepath.Join(dir, "go")
		return []peerJob{{"spawn", say(fifo, "spawn", "up") + "; read x <" + shq(gate) +
			`; i=0; while [ "$i" -lt ` + strconv.Itoa(n) + ` ]; do (true &); i=$((i+1)); done; ` +
			say(fifo, "spawn", "done") + "; " + park(fifo, "spawn")}}, syscall.Mkfifo(gate, 0o600)
	}, nil)
	if err != nil {
		return err
	}
	defer r.end()
	if _, err := r.fifo.wait("up", 1, readyTimeout); err != nil {
		return r.errorf("%v", err)
	}
	pid1 := r.in.pid
	settle([]int{pid1})
	kids := len(children(pid1))
	st0, err := readStat(pid1)
	if err != nil {
		return err
	}
	t0 := time.Now()
	if err := release(gate, 10*time.Second); err != nil {
		return r.errorf("%v", err)
	}
	if _, err := r.fifo.wait("done", 1, reapTimeout); err != nil {
		return r.errorf("the spawner did not finish: %v", err)
	}
	var left int
	if !pollUntil(reapTimeout, time.Millisecond, func() bool { left = len(children(pid1)) - kids; return left <= 0 }) {
		return r.errorf("%d orphans not reaped after %s", left, reapTimeout)
	}
	reaped := time.Since(t0)
	settle([]int{pid1})
	st1, err := readStat(pid1)
	if err != nil {
		return err
	}
	cpu := time.Duration(st1.utime+st1.stime-st0.utime-st0.stime) * time.Second / clockTicks
	res.set("orphan", p.name, rep, float64(cpu.Microseconds())/float64(n))
	_, code, err := r.stop(res, "orphans, SIGTERM")
	if err != nil {
		return err
	}
	fmt.Printf("  %-11s %d orphans: all reaped %s after the start | PID 1 CPU %s, %.1f µs each | exit code %d\n",
		p.name, n, ms(reaped), ms(cpu), float64(cpu.Microseconds())/float64(n), code)
	return nil
}

// release lets the job blocked opening the FIFO gate go on.
func release(gate string, timeout time.Duration) error {
	var f *os.File
	var err error
	// O_NONBLOCK: the open fails (ENXIO) until the job has the FIFO open for reading.
	if !pollUntil(timeout, time.Millisecond, func() bool {
		f, err = os.OpenFile(gate, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		return err == nil
	}) {
		return fmt.Errorf("nobody reads %s: %v", gate, err)
	}
	defer f.Close()
	_, err = f.Write([]byte("go\n"))
	return err
}

// peerMainExit: `-- CMD` exits with CMD's status, also when CMD died of a signal.
func (b *bench) peerMainExit(p *peer, rep int, res *peerResults) error {
	var codes []string
	for _, c := range []struct {
		script string
		want   int
	}{{"exit 3", 3}, {"kill -KILL $$", 128 + int(syscall.SIGKILL)}} {
		r, err := b.startPeer(p, "main", nil, []string{"/bin/sh", "-c", c.script})
		if err != nil {
			return err
		}
		_, code, err := r.waitExit(r.in.execAt)
		r.end()
		if err != nil {
			return err
		}
		res.exit(p.name, fmt.Sprintf("-- sh -c %q", c.script), code, c.want)
		codes = append(codes, fmt.Sprintf("%q → %d (want %d)", c.script, code, c.want))
	}
	fmt.Printf("  %-11s main command: %s\n", p.name, strings.Join(codes, ", "))
	return nil
}

// noSupervisor times the job alone as PID 1 (exec'd by unshare): the part of every start-up
// that is not the supervisor's.
func (b *bench) noSupervisor(rep int, res *peerResults) error {
	none := &peer{name: "none", bin: "/bin/sh", command: func(bin, _ string, jobs []peerJob, _ []string) ([]string, error) {
		return []string{bin, "-c", jobs[0].script}, nil
	}}
	r, up, err := b.startSleepers(none, "one", 1)
	if err != nil {
		return err
	}
	defer r.end()
	res.set("start1", "none", rep, msF(up.Sub(r.in.execAt)))
	return nil
}

func msF(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// --- the comparison ------------------------------------------------------------------------

func (b *bench) peers() {
	o := b.opt.peers
	peers := peerList(o.names, b.opt.bin, o.floor)
	if len(peers) == 0 {
		b.fail("peers", fmt.Errorf("no peer to run"))
		return
	}
	m := describeMachine()
	fmt.Printf("peers: %d repetitions of %s on %s\n", o.reps, strings.Join(peerNames(peers), ", "), m.summary())
	notSingle := func(p *peer) bool { return p.single }
	scenarios := []peerScenario{
		{"1 job", []string{"start1", "rss", "wake", "term"}, nil, b.peerOneJob},
		{fmt.Sprintf("%d jobs", o.startJobs), []string{"startN"}, notSingle, b.peerStartMany},
		{fmt.Sprintf("%d jobs", o.statusJobs), []string{"p50", "p99", "stop"}, notSingle, b.peerStatusStop},
		{"orphans", []string{"orphan"}, nil, b.peerOrphans},
		{"main command", nil, func(p *peer) bool { return !p.mainCmd }, b.peerMainExit},
	}
	res := newPeerResults(o.reps)
	for rep := range o.reps {
		fmt.Printf("repetition %d/%d\n", rep+1, o.reps)
		for _, sc := range scenarios {
			for i := range peers {
				p := peers[(i+rep)%len(peers)]
				if sc.skip != nil && sc.skip(p) {
					continue
				}
				if err := sc.run(p, rep, res); err != nil {
					rows := sc.rows
					if !p.socket {
						rows = slices.DeleteFunc(slices.Clone(rows), func(r string) bool { return r == "p50" || r == "p99" })
					}
					res.failed(rows, p.name, rep)
					b.fail(fmt.Sprintf("%s, %s, repetition %d", p.name, sc.name, rep+1), err)
				}
			}
		}
		if err := b.noSupervisor(rep, res); err != nil {
			b.fail(fmt.Sprintf("the job alone, repetition %d", rep+1), err)
		}
	}
	m.loadEnd = loadAverage()
	report := b.peerReport(peers, res, m)
	fmt.Println()
	fmt.Print(report)
	if o.out == "-" {
		return
	}
	path, err := resultPath(o.out)
	if err == nil {
		err = os.WriteFile(path, []byte(report), 0o644)
	}
	if err != nil {
		b.fail("peers: writing the results", err)
		return
	}
	fmt.Printf("\nwritten to %s\n", path)
}

func peerNames(peers []*peer) []string {
	var ns []string
	for _, p := range peers {
		ns = append(ns, p.name)
	}
	return ns
}
