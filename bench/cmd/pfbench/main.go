// Command pfbench runs the real pilotfish binary and measures the performance goals: start-up
// of many independent jobs and of a long trigger chain, SIGTERM shutdown, reaping of orphans
// as PID 1, idle CPU and wake-ups, and memory; with -only fleet, a fleet of instances on one
// Consul agent (fleet.go); with -only peers, pilotfish side by side with the Go floor, tini,
// s6 and supervisord (peers.go).
//
// Each measurement prints one line; a summary table comes last. A measurement that cannot be
// made (timeout, pilotfish exiting non-zero, processes left behind) prints FAIL and makes
// pfbench exit 1. A goal that is measured but not met prints MISSED, and counts as a failure
// only with -strict. Every process pfbench starts is ended before it exits: pfbench is a
// child subreaper and sweeps its descendants after each run.
//
// Usage (from the repository root, after `make build`):
//
//	bash bench/run [flags]        # or: go run ./bench/cmd/pfbench [flags]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

type options struct {
	bin       string
	reps      int
	reapReps  int
	orphans   int
	jobs      int
	chain     int
	idleJobs  int
	idle      time.Duration
	memJobs   int
	memWait   time.Duration
	memGoalKB int
	only      string
	strict    bool
	keep      bool

	fleet         string
	fleetChanges  int
	fleetSameHost bool
	fleetNoWatch  bool
	fleetConsul   string

	peers peerOptions
}

// row is one line of the summary table.
type row struct {
	name, median, max, goal, result string
}

type bench struct {
	opt    options
	tmp    string
	rows   []row
	failed bool
	missed bool

	fleetResults []fleetResult
}

// current is the pilotfish being measured, for the interrupt handler.
var current struct {
	sync.Mutex
	in *instance
}

func setCurrent(in *instance) {
	current.Lock()
	current.in = in
	current.Unlock()
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin/pilotfish", "the pilotfish binary")
	flag.IntVar(&o.reps, "n", 5, "repetitions of the start-up measurements")
	flag.IntVar(&o.reapReps, "reap-n", 3, "repetitions of each reaping measurement")
	flag.IntVar(&o.orphans, "orphans", 5000, "orphans to reap")
	flag.IntVar(&o.jobs, "jobs", 200, "independent jobs in the start-up measurement")
	flag.IntVar(&o.chain, "chain", 50, "jobs in the dependency chain")
	flag.IntVar(&o.idleJobs, "idle-jobs", 20, "sleeping jobs in the idle measurement")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "idle measurement window")
	flag.IntVar(&o.memJobs, "mem-jobs", 50, "running jobs in the memory measurement")
	flag.DurationVar(&o.memWait, "mem-wait", 5*time.Second, "second memory reading after this long")
	flag.IntVar(&o.memGoalKB, "mem-goal", 15*1024, "memory goal for VmRSS and VmHWM, kB")
	flag.StringVar(&o.only, "only", "startup,chain,reap,idle,mem", "measurements to run, comma-separated (also: fleet, peers)")
	flag.StringVar(&o.fleet, "fleet", "10,50,100,200", "fleet sizes to measure, comma-separated (needs a Consul agent: $PILOTFISH_CONSUL_BIN or .bin/consul)")
	flag.IntVar(&o.fleetChanges, "fleet-changes", 6, "catalog changes to deliver to the fleet's watchers")
	flag.BoolVar(&o.fleetSameHost, "fleet-same-host", false, "give every fleet instance the same host name")
	flag.BoolVar(&o.fleetNoWatch, "fleet-no-watch", false, "fleet instances only register (no watch): the cost of registration alone")
	flag.StringVar(&o.fleetConsul, "fleet-consul-config", "", "extra configuration (HCL) for the fleet's Consul agent, e.g. 'limits { http_max_conns_per_client = 1000 }' (default: none, Consul's default limits)")
	flag.IntVar(&o.peers.reps, "peers-n", 7, "repetitions of the peer comparison")
	flag.StringVar(&o.peers.names, "peers", "pilotfish,floor,tini,s6,supervisord", "peers to compare, comma-separated")
	flag.StringVar(&o.peers.floor, "floor", "", "the Go floor binary (bench/cmd/gofloor); bench/run builds it")
	flag.StringVar(&o.peers.out, "o", "", "markdown file for the peer comparison (default bench/results/peers-DATE.md; - for none)")
	flag.IntVar(&o.peers.startJobs, "peers-jobs", 200, "jobs in the peers' many-jobs start-up")
	flag.IntVar(&o.peers.statusJobs, "peers-status-jobs", 50, "jobs in the peers' status and shutdown runs")
	flag.IntVar(&o.peers.requests, "peers-requests", 1000, "GET /v1/status requests per run")
	flag.IntVar(&o.peers.orphans, "peers-orphans", 3000, "orphans per run for the peers' CPU per reaped orphan")
	flag.DurationVar(&o.peers.window, "peers-idle", 5*time.Second, "window for the peers' idle wake-ups")
	flag.BoolVar(&o.strict, "strict", false, "a missed goal counts as a failure")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory with the generated configs")
	flag.Parse()

	bin, err := filepath.Abs(o.bin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pfbench: cannot use %s (%v); run `make build` first\n", o.bin, err)
		os.Exit(2)
	}
	o.bin = bin
	if err := becomeSubreaper(); err != nil {
		fmt.Fprintf(os.Stderr, "pfbench: cannot become a child subreaper: %v\n", err)
		os.Exit(2)
	}
	tmp, err := os.MkdirTemp("", "pfbench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "pfbench: %v\n", err)
		os.Exit(2)
	}
	b := &bench{opt: o, tmp: tmp}
	cleanup := func() {
		if o.keep {
			fmt.Printf("configs kept in %s\n", tmp)
		} else {
			os.RemoveAll(tmp)
		}
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "\npfbench: %v, cleaning up\n", sig)
		current.Lock()
		if current.in != nil {
			current.in.kill()
		}
		sweep()
		cleanup()
		os.Exit(130)
	}()

	fmt.Printf("pfbench: %s, %d CPUs, %s\n", bin, runtime.NumCPU(), time.Now().Format(time.RFC3339))
	want := map[string]bool{}
	for _, s := range strings.Split(o.only, ",") {
		want[strings.TrimSpace(s)] = true
	}
	if want["startup"] {
		b.startupIndependent()
	}
	if want["chain"] {
		b.startupChain()
	}
	if want["reap"] {
		b.reapBurst()
		b.reapStream()
	}
	if want["idle"] {
		b.idle()
	}
	if want["mem"] {
		b.memory()
	}
	if want["fleet"] {
		b.fleet()
	}
	if want["peers"] {
		b.peers()
	}
	b.table()
	cleanup()
	if b.failed || (o.strict && b.missed) {
		os.Exit(1)
	}
}

// fail reports a measurement that could not be made.
func (b *bench) fail(what string, err error) {
	b.failed = true
	fmt.Printf("FAIL %s: %v\n", what, err)
}

func (b *bench) add(r row) {
	switch r.result {
	case "FAIL":
		b.failed = true
	case "MISSED":
		b.missed = true
	}
	b.rows = append(b.rows, r)
}

func (b *bench) table() {
	fmt.Println()
	fmt.Println("summary")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "MEASUREMENT\tMEDIAN\tMAX\tGOAL\tRESULT")
	for _, r := range b.rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.name, dash(r.median), dash(r.max), dash(r.goal), r.result)
	}
	w.Flush()
	switch {
	case b.failed:
		fmt.Println("result: FAIL (see the FAIL lines above)")
	case b.missed && b.opt.strict:
		fmt.Println("result: FAIL (a goal was missed and -strict is set)")
	case b.missed:
		fmt.Println("result: ok, but a goal was MISSED")
	default:
		fmt.Println("result: ok")
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stats are the median and maximum of some durations.
func stats(ds []time.Duration) (median, max time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		median = s[len(s)/2]
	} else {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return median, s[len(s)-1]
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// durRow is a table row of durations; with no values the measurement failed.
func durRow(name string, ds []time.Duration, runs int) row {
	if len(ds) == 0 {
		return row{name: name, result: "FAIL"}
	}
	med, mx := stats(ds)
	r := row{name: name, median: ms(med), max: ms(mx), result: "ok"}
	if len(ds) < runs {
		r.result = "FAIL"
		r.goal = fmt.Sprintf("%d/%d runs ok", len(ds), runs)
	}
	return r
}

// medMax formats "median X max Y".
func medMax(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n/a"
	}
	med, mx := stats(ds)
	return fmt.Sprintf("median %s max %s", ms(med), ms(mx))
}
