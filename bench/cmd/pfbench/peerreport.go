package main

// The results of the peer comparison (peers.go): one value per row, peer and repetition, and
// the report in markdown, with the machine it ran on.

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// peerRow is a row of the comparison. Values are in unit; a goal applies to pilotfish's
// median, or with ratio to the median of its per-repetition ratios to the floor.
type peerRow struct {
	key, label, unit string
	digits           int
	goal             string // "" for none
	max              float64
	ratio            bool
}

func (o peerOptions) rows() []peerRow {
	return []peerRow{
		{key: "rss", label: "idle RSS, 1 job", unit: "MiB", digits: 1, goal: "≤ 9.5 MiB", max: 9.5},
		{key: "start1", label: "start-up, 1 job", unit: "ms", digits: 1, goal: "≤ 10 ms", max: 10},
		{key: "startN", label: fmt.Sprintf("start-up, %d jobs", o.startJobs), unit: "ms", digits: 0, goal: "≤ 1.0× floor", max: 1, ratio: true},
		{key: "orphan", label: "CPU per reaped orphan", unit: "µs", digits: 1, goal: "≤ 20 µs", max: 20},
		{key: "p50", label: fmt.Sprintf("GET /v1/status, %d jobs, p50", o.statusJobs), unit: "ms", digits: 2, goal: "≤ 0.2 ms", max: 0.2},
		{key: "p99", label: fmt.Sprintf("GET /v1/status, %d jobs, p99", o.statusJobs), unit: "ms", digits: 2, goal: "≤ 1 ms", max: 1},
		{key: "wake", label: fmt.Sprintf("idle wake-ups in %s, 1 job", o.window), digits: 0, goal: "0", max: 0},
		{key: "term", label: "SIGTERM → job", unit: "ms", digits: 1},
		{key: "stop", label: fmt.Sprintf("shutdown, %d jobs (SIGTERM → exit)", o.statusJobs), unit: "ms", digits: 1},
	}
}

// peerResults holds one value per row, peer and repetition.
type peerResults struct {
	reps  int
	vals  map[string]map[string][]float64 // row → peer → value per repetition, NaN for none
	fails map[string]map[string]int       // row → peer → repetitions that could not measure it
	exits map[string]*exitTally           // peer → its exit codes
}

type exitTally struct {
	ok, total int
	wrong     []string
}

func newPeerResults(reps int) *peerResults {
	return &peerResults{reps: reps, vals: map[string]map[string][]float64{},
		fails: map[string]map[string]int{}, exits: map[string]*exitTally{}}
}

func (r *peerResults) set(row, peer string, rep int, v float64) {
	if r.vals[row] == nil {
		r.vals[row] = map[string][]float64{}
	}
	vs := r.vals[row][peer]
	if vs == nil {
		vs = make([]float64, r.reps)
		for i := range vs {
			vs[i] = math.NaN()
		}
		r.vals[row][peer] = vs
	}
	vs[rep] = v
}

func (r *peerResults) get(row, peer string, rep int) float64 {
	if vs := r.vals[row][peer]; vs != nil {
		return vs[rep]
	}
	return math.NaN()
}

// failed counts the rows a failed run of peer did not measure in repetition rep.
func (r *peerResults) failed(rows []string, peer string, rep int) {
	for _, row := range rows {
		if math.IsNaN(r.get(row, peer, rep)) {
			if r.fails[row] == nil {
				r.fails[row] = map[string]int{}
			}
			r.fails[row][peer]++
		}
	}
}

func (r *peerResults) exit(peer, what string, got, want int) {
	t := r.exits[peer]
	if t == nil {
		t = &exitTally{}
		r.exits[peer] = t
	}
	t.total++
	if got == want {
		t.ok++
	} else {
		t.wrong = append(t.wrong, fmt.Sprintf("%s: %d, want %d", what, got, want))
	}
}

// median of the values that are not NaN; NaN if none.
func median(vs []float64) float64 {
	var s []float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio is the median over the repetitions of pilotfish's value over the floor's.
func (r *peerResults) ratio(row string) float64 {
	rs := make([]float64, r.reps)
	for i := range rs {
		pf, fl := r.get(row, "pilotfish", i), r.get(row, "Go floor", i)
		rs[i] = math.NaN()
		if fl > 0 {
			rs[i] = pf / fl
		}
	}
	return median(rs)
}

// resultPath is out, or bench/results/peers-DATE.md (-2, -3… if taken).
func resultPath(out string) (string, error) {
	if out != "" {
		return out, nil
	}
	if err := os.MkdirAll("bench/results", 0o755); err != nil {
		return "", err
	}
	base := "bench/results/peers-" + time.Now().Format("2006-01-02")
	for i := 1; ; i++ {
		p := base + ".md"
		if i > 1 {
			p = fmt.Sprintf("%s-%d.md", base, i)
		}
		if _, err := os.Stat(p); os.IsNotExist(err) {
			return p, nil
		}
	}
}

// peerReport is the comparison as markdown: the table, the machine, the raw values. It adds a
// row per goal to the summary too.
func (b *bench) peerReport(peers []*peer, res *peerResults, m machine) string {
	o := b.opt.peers
	var sb strings.Builder
	fmt.Fprintf(&sb, "# pilotfish and its peers, %s\n\n", m.start.Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&sb, "- machine: %s\n", m.summary())
	fmt.Fprintf(&sb, "- load average (1, 5, 15 min): %s at the start, %s at the end\n", m.loadStart, m.loadEnd)
	fmt.Fprintf(&sb, "- peers: %s\n", peerVersions(peers))
	fmt.Fprintf(&sb, "- %d repetitions, the peers in turn (the order rotates each repetition), each PID 1 of its own PID namespace (`unshare --pid --fork --mount-proc`); medians over the repetitions; pilotfish / floor is the median of the per-repetition ratios\n", o.reps)
	fmt.Fprintf(&sb, "- command: `%s`\n\n", commandLine())

	sb.WriteString("| |")
	for _, p := range peers {
		fmt.Fprintf(&sb, " %s |", p.name)
	}
	sb.WriteString(" pilotfish / floor | goal | |\n|---|")
	sb.WriteString(strings.Repeat("---:|", len(peers)))
	sb.WriteString("---:|---|---|\n")
	met, goals := 0, 0
	for _, pr := range o.rows() {
		fmt.Fprintf(&sb, "| %s |", pr.label)
		for _, p := range peers {
			fmt.Fprintf(&sb, " %s |", res.cell(pr, p.name))
		}
		ratio := res.ratio(pr.key)
		rs := "–"
		if !math.IsNaN(ratio) {
			rs = fmt.Sprintf("×%.2f", ratio)
		}
		verdict := ""
		if pr.goal != "" {
			goals++
			v := median(res.vals[pr.key]["pilotfish"])
			if pr.ratio {
				v = ratio
			}
			result := "MISSED"
			switch {
			case math.IsNaN(v):
				verdict, result = "✗ (not measured)", "FAIL"
			case v <= pr.max:
				verdict, result = "✓", "ok"
				met++
			default:
				verdict = "✗"
			}
			b.add(row{name: "peers: " + pr.label, median: res.cell(pr, "pilotfish"), max: rs, goal: pr.goal, result: result})
		}
		goal := pr.goal
		if goal == "" {
			goal = "–"
		}
		fmt.Fprintf(&sb, " %s | %s | %s |\n", rs, goal, verdict)
	}
	sb.WriteString("| exit codes as documented |")
	for _, p := range peers {
		sb.WriteString(" " + res.exitCell(p.name) + " |")
	}
	goals++
	verdict, result := "✗", "MISSED"
	if t := res.exits["pilotfish"]; t != nil && t.ok == t.total {
		verdict, result = "✓", "ok"
		met++
	}
	fmt.Fprintf(&sb, " – | all | %s |\n\n", verdict)
	b.add(row{name: "peers: exit codes as documented", median: res.exitCell("pilotfish"), goal: "all", result: result})

	fmt.Fprintf(&sb, "pilotfish meets %d of %d goals.\n\n", met, goals)
	if v := median(res.vals["start1"]["none"]); !math.IsNaN(v) {
		fmt.Fprintf(&sb, "The job alone, exec'd by `unshare` with no supervisor, reports `up` after %.1f ms (median): that much of every start-up row is the machine's, not the supervisor's.\n\n", v)
	}
	sb.WriteString(peerMethod(o))
	sb.WriteString("\n## Every repetition\n\n")
	for _, pr := range o.rows() {
		for _, name := range append(peerNames(peers), "none") {
			vs := res.vals[pr.key][name]
			if vs == nil {
				continue
			}
			var s []string
			for _, v := range vs {
				s = append(s, formatValue(v, pr.digits))
			}
			fmt.Fprintf(&sb, "- %s, %s: %s\n", pr.label, name, strings.Join(s, " "))
		}
	}
	for _, p := range peers {
		if t := res.exits[p.name]; t != nil && len(t.wrong) > 0 {
			fmt.Fprintf(&sb, "- exit codes, %s, wrong: %s\n", p.name, strings.Join(t.wrong, "; "))
		}
	}
	return sb.String()
}

func formatValue(v float64, digits int) string {
	if math.IsNaN(v) {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', digits, 64)
}

// cell is a peer's median with its unit, "–" when the row does not apply to it.
func (r *peerResults) cell(row peerRow, peer string) string {
	s := "–"
	if v := median(r.vals[row.key][peer]); !math.IsNaN(v) {
		s = formatValue(v, row.digits)
		if row.unit != "" {
			s += " " + row.unit
		}
	}
	if n := r.fails[row.key][peer]; n > 0 {
		s += fmt.Sprintf(" (%d failed)", n)
	}
	return s
}

func (r *peerResults) exitCell(peer string) string {
	t := r.exits[peer]
	if t == nil {
		return "–"
	}
	s := fmt.Sprintf("%d/%d", t.ok, t.total)
	if t.ok != t.total {
		s += " ✗"
	}
	return s
}

// peerMethod says how each row is measured.
func peerMethod(o peerOptions) string {
	return fmt.Sprintf(`How: each job is a /bin/sh script that writes "NAME up" to a FIFO pfbench reads
(s6: the same script as the service's run file). Start-up is exec of `+"`unshare`"+` → the last
"up" line read. Idle RSS is VmRSS summed over the supervisor's processes (PID 1, and for s6 its
s6-supervise), read after the start-up settled (no CPU, no context switch for 300 ms); idle
wake-ups are their context switches (voluntary and not, every thread) over the next %s.
SIGTERM → job: SIGTERM to PID 1 → the job's trap wrote "job term". CPU per reaped orphan: a
job forks %d times `+"`(true &)`"+` (each `+"`true`"+` is reparented to PID 1); utime+stime of
PID 1 from /proc/PID/stat from the job's start signal until PID 1 has no child left but the
job, divided by %d. GET /v1/status: %d requests on one kept-alive connection to the unix
socket after a warm-up, %d sleeping jobs. Shutdown: SIGTERM → PID 1 exited (all jobs die of
SIGTERM). Exit codes: 0 after every SIGTERM; with `+"`-- CMD`"+` (pilotfish, the floor, tini)
CMD's status, 3 for `+"`exit 3`"+` and 137 for `+"`kill -KILL $$`"+`. tini runs one command
only: it has no rows with several jobs. s6 and supervisord have no status endpoint on a unix
socket.
`, o.window, o.orphans, o.orphans, o.requests, o.statusJobs)
}

// machine describes where the comparison ran.
type machine struct {
	cpu, kernel, memory string
	cores               int
	loadStart, loadEnd  string
	start               time.Time
}

func describeMachine() machine {
	m := machine{cpu: "unknown CPU", cores: runtime.NumCPU(), loadStart: loadAverage(), start: time.Now()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	if f, err := statusFields("/proc/meminfo", "MemTotal"); err == nil {
		m.memory = fmt.Sprintf("%.1f GiB", float64(f["MemTotal"])/1024/1024)
	}
	return m
}

func (m machine) summary() string {
	return fmt.Sprintf("%s, %d cores, %s RAM, Linux %s", m.cpu, m.cores, m.memory, m.kernel)
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}

// peerVersions asks every peer its version.
func peerVersions(peers []*peer) string {
	var vs []string
	for _, p := range peers {
		var argv []string
		switch p.name {
		case "pilotfish":
			argv = []string{p.bin, "version"}
		case "Go floor":
			vs = append(vs, "Go floor (bench/cmd/gofloor, "+runtime.Version()+")")
			continue
		case "tini", "supervisord":
			argv = []string{p.bin, "--version"}
		case "s6":
			argv = []string{"dpkg-query", "-W", "-f=${Version}", "s6"}
		}
		v := "version unknown"
		if out, err := exec.Command(argv[0], argv[1:]...).Output(); err == nil {
			v, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
		}
		vs = append(vs, p.name+" "+strings.TrimPrefix(v, p.name+" "))
	}
	return strings.Join(vs, ", ")
}

// commandLine is how pfbench was run, without the temporary path of the floor bench/run built.
func commandLine() string {
	out := []string{"pfbench"}
	for i := 1; i < len(os.Args); i++ {
		if os.Args[i] == "-floor" {
			i++
			continue
		}
		out = append(out, os.Args[i])
	}
	return strings.Join(out, " ")
}
