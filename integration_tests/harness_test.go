// Package integration holds black-box tests of the pilotfish binary: each test writes a
// configuration into t.TempDir(), runs the real binary (as PID 1 inside
// `unshare --pid --fork --mount-proc` where PID-1 behaviour matters) and looks only at what
// a user could see: exit codes, pilotfish's stdout and stderr, and files the jobs write.
package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pilotfishBin is the binary under test: built once by TestMain (with -race when
// PILOTFISH_RACE=1), or $PILOTFISH_BIN. plainBin is the same without -race, for the tests
// that measure pilotfish's memory (opts.NoRace), which the detector's own would hide.
var pilotfishBin, plainBin string

// python is a real interpreter (a pyenv shim on PATH would add a slow bash wrapper).
var python = "/usr/bin/python3"

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	flag.Parse()
	if testing.Short() {
		fmt.Println("integration tests skipped: -short runs the unit tests only")
		return 0
	}
	if _, err := os.Stat(python); err != nil {
		if p, err := exec.LookPath("python3"); err == nil {
			python = p
		}
	}
	if p := os.Getenv("PILOTFISH_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "PILOTFISH_BIN:", err)
			return 2
		}
		pilotfishBin, plainBin = abs, abs
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "pilotfish-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer os.RemoveAll(dir)
	pilotfishBin = filepath.Join(dir, "pilotfish")
	plainBin = pilotfishBin
	if os.Getenv("PILOTFISH_RACE") == "1" {
		// make test: the daemon runs with the race detector, so that its own goroutines are
		// checked under every test. The detector's pause of 1 s at exit would fail every
		// bound on the shutdown.
		plainBin = filepath.Join(dir, "pilotfish-plain")
		if err := buildPilotfish(pilotfishBin, "-race"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	if err := buildPilotfish(plainBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return m.Run()
}

// buildPilotfish builds the binary at out (with -race, cgo, which the detector needs).
func buildPilotfish(out string, flags ...string) error {
	cgo := "CGO_ENABLED=0"
	if slices.Contains(flags, "-race") {
		cgo = "CGO_ENABLED=1"
	}
	build := exec.Command("go", append(append([]string{"build", "-o", out}, flags...), "./cmd/pilotfish")...)
	build.Dir = ".."
	build.Env = append(os.Environ(), cgo)
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("cannot build pilotfish %s: %v\n%s", strings.Join(flags, " "), err, b)
	}
	return nil
}

// ---------------------------------------------------------------------------------------
// Waiting without sleeping a fixed time.

// waitFor polls cond until it holds or d has passed (then the test fails), and returns how
// long it took.
func waitFor(t testing.TB, d time.Duration, cond func() bool, what string, args ...any) time.Duration {
	t.Helper()
	t0 := time.Now()
	if !poll(d, cond) {
		t.Fatalf("timed out after %s waiting for "+what, append([]any{d}, args...)...)
	}
	return time.Since(t0)
}

// poll reports whether cond came true within d.
func poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------------------
// Thread-safe output capture.

// stream collects one output stream of pilotfish. Writers wake up waiters.
//
// With the tests' usual jsonLogs, a job's lines reach pilotfish's stdout and stderr as JSON
// objects (docs/jobs.md#json-lines); String and Lines show each of them as `[job] line`, the
// text form, so that a test about what a job printed does not depend on the log format.
// Raw is what pilotfish wrote, byte for byte: the tests of the formats read it.
type stream struct {
	mu      sync.Mutex
	buf     bytes.Buffer // as written
	text    bytes.Buffer // complete lines, JSON job lines in their text form
	partial []byte       // the last line while it is not complete
	changed chan struct{}
}

func newStream() *stream { return &stream{changed: make(chan struct{})} }

func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.buf.Write(p)
	data := p
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := data[:i]
		if len(s.partial) > 0 {
			line = append(s.partial, line...)
			s.partial = s.partial[:0]
		}
		s.text.Write(jobLineAsText(line))
		s.text.WriteByte('\n')
		data = data[i+1:]
	}
	s.partial = append(s.partial, data...)
	close(s.changed)
	s.changed = make(chan struct{})
	return n, err
}

// jobLineAsText turns a job's JSON line {"time","job","stream","msg"} into `[job] msg`;
// any other line stays as it is.
func jobLineAsText(line []byte) []byte {
	if !bytes.HasPrefix(line, []byte(`{"time":"`)) || !bytes.Contains(line, []byte(`,"stream":"`)) {
		return line
	}
	var l struct{ Time, Job, Stream, Msg string }
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if dec.Decode(&l) != nil || l.Job == "" || (l.Stream != "stdout" && l.Stream != "stderr") {
		return line
	}
	return []byte("[" + l.Job + "] " + l.Msg)
}

// String is everything written so far, job lines in text form (see stream).
func (s *stream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.text.String() + string(s.partial)
}

// Raw is everything written so far, byte for byte.
func (s *stream) Raw() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// Lines are the complete lines written so far (a trailing partial line is left out), job
// lines in text form (see stream).
func (s *stream) Lines() []string {
	s.mu.Lock()
	str := s.text.String()
	s.mu.Unlock()
	if str == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(str, "\n"), "\n")
}

// RawLines are the complete lines written so far, byte for byte.
func (s *stream) RawLines() []string {
	str := s.Raw()
	if i := strings.LastIndexByte(str, '\n'); i >= 0 {
		str = str[:i]
	} else {
		return nil
	}
	return strings.Split(str, "\n")
}

func (s *stream) wake() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// waitUntil waits until cond(contents) holds, waking on every write, for at most d.
func (s *stream) waitUntil(d time.Duration, cond func(string) bool) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		ch := s.wake()
		if cond(s.String()) {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return cond(s.String())
		}
	}
}

// throttled is a slow reader of a pipe: os/exec copies pilotfish's output into it, and each
// write takes as long as the rate allows, so the pipe fills and pilotfish must wait.
type throttled struct {
	w    io.Writer
	rate int // bytes per second
}

func (t *throttled) Write(p []byte) (int, error) {
	const chunk = 1024
	n := 0
	for n < len(p) {
		k := min(chunk, len(p)-n)
		time.Sleep(time.Duration(k) * time.Second / time.Duration(t.rate))
		m, err := t.w.Write(p[n : n+k])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// ---------------------------------------------------------------------------------------
// Running pilotfish.

// opts describe one pilotfish run.
type opts struct {
	Config     string   // contents of the configuration file
	NoRace     bool     // run the binary built without -race: the test measures pilotfish's memory
	ConfigName string   // file name inside the test dir (default pilotfish.hcl)
	ConfigArg  string   // value given to -config (default: the absolute path of the file)
	Args       []string // arguments before -config (e.g. "validate"); default: run
	Main       []string // the command after --
	Env        []string // added to the test's environment
	Plain      bool     // run pilotfish directly instead of as PID 1 of a new namespace
	Groups     []uint32 // supplementary groups pilotfish starts with (root only)
	Dir        string   // working dir (default: a fresh t.TempDir())
	StdoutRate int      // if set, pilotfish's stdout is read at most this many bytes/s (a slow terminal)
	StdoutFile *os.File // if set, receives pilotfish's stdout instead of memory (benchmarks, a pipe nobody reads)
	StderrFile *os.File // if set, receives pilotfish's stderr instead of memory
	// PrivateDev gives the namespace its own /dev: a directory of the test (TESTDIR/dev,
	// also reachable from the host) with null, zero, random and urandom bound in. pilotfish
	// then creates the default /dev/log there.
	PrivateDev bool
	// Logs is the logging block startPF puts before the configuration (default jsonLogs).
	Logs string
	// Launcher runs pilotfish: the program and its arguments, then pilotfish's command line
	// follow; it must exec pilotfish (a parent that sets limits or signal state, as a
	// container runtime would).
	Launcher []string
	// NoConfig runs pilotfish without -config (wrapper mode when the default file is absent).
	NoConfig bool
	// Hostname gives the namespace its own UTS namespace with this host name (as PID 1 only).
	Hostname string
}

// instance is one running pilotfish.
type instance struct {
	t      testing.TB
	Dir    string // the test's temp dir; the config lives here
	Stdout *stream
	Stderr *stream
	pid1   bool
	bin    string // the binary run
	cmd    *exec.Cmd
	start  time.Time

	done    chan struct{}
	state   *os.ProcessState
	exitAt  time.Time
	waitErr error

	pidMu sync.Mutex
	pid   int // pilotfish's host PID
}

// requirePID1 skips the test when pilotfish cannot be run as PID 1 of a namespace here.
func requirePID1(t testing.TB) {
	t.Helper()
	requireRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) is not installed: cannot run pilotfish as PID 1 of a PID namespace")
	}
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (PID namespaces, user switching)")
	}
}

// start writes the configuration and starts pilotfish; t.Cleanup kills whatever is left.
func start(t testing.TB, o opts) *instance {
	t.Helper()
	if !o.Plain {
		requirePID1(t)
	}
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	name := o.ConfigName
	if name == "" {
		name = "pilotfish.hcl"
	}
	cfgPath := filepath.Join(dir, name)
	config := o.Config
	if o.Plain && !strings.HasSuffix(name, ".json") && !strings.Contains(config, "control {") {
		// Outside a namespace the default /var/run/pilotfish.sock is shared by everyone.
		config += "\ncontrol {\n  socket = " + hclString(filepath.Join(dir, "pilotfish.sock")) + "\n}\n"
	}
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	arg := o.ConfigArg
	if arg == "" {
		arg = cfgPath
	}
	argv := append([]string{}, o.Args...)
	if !o.NoConfig {
		argv = append(argv, "-config", arg)
	}
	if len(o.Main) > 0 {
		argv = append(append(argv, "--"), o.Main...)
	}
	var cmd *exec.Cmd
	var env []string
	bin := pilotfishBin
	if o.NoRace {
		bin = plainBin
	}
	argv = append(append(append([]string{}, o.Launcher...), bin), argv...)
	if o.Plain {
		cmd = exec.Command(argv[0], argv[1:]...)
	} else {
		// Like a container, the namespace gets its own /run, so that the default control
		// socket (/var/run/pilotfish.sock) of parallel tests does not collide. The shell
		// execs pilotfish, which stays PID 1.
		script := `mount -t tmpfs -o mode=0755 pilotfish-run /run && exec "$0" "$@"`
		if o.PrivateDev {
			dev := filepath.Join(dir, "dev")
			if err := os.MkdirAll(dev, 0o755); err != nil {
				t.Fatal(err)
			}
			script = `set -e; mount -t tmpfs -o mode=0755 pilotfish-run /run; ` +
				`for n in null zero random urandom; do : > "$DEV/$n"; mount --bind "/dev/$n" "$DEV/$n"; done; mount --bind "$DEV" /dev; ` +
				`exec "$0" "$@"`
			env = append(env, "DEV="+dev)
		}
		ns := []string{"--pid", "--fork", "--mount-proc"}
		if o.Hostname != "" {
			ns = append(ns, "--uts")
			script = `hostname "$PF_HOSTNAME" && ` + script
			env = append(env, "PF_HOSTNAME="+o.Hostname)
		}
		cmd = exec.Command("unshare", append(append(ns, "/bin/sh", "-c", script), argv...)...)
	}
	p := &instance{t: t, Dir: dir, Stdout: newStream(), Stderr: newStream(), pid1: !o.Plain, bin: bin, cmd: cmd, done: make(chan struct{})}
	cmd.Dir = dir
	cmd.Env = append(append(append(withoutEnv(os.Environ(), "PILOTFISH_CONFIG"), "TESTDIR="+dir), env...), o.Env...)
	cmd.Stdout, cmd.Stderr = p.Stdout, p.Stderr
	if o.StdoutRate > 0 {
		cmd.Stdout = &throttled{w: p.Stdout, rate: o.StdoutRate}
	}
	if o.StdoutFile != nil {
		cmd.Stdout = o.StdoutFile
	}
	if o.StderrFile != nil {
		cmd.Stderr = o.StderrFile
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if o.Groups != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Groups: o.Groups}
	}
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start pilotfish: %v", err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		p.exitAt = time.Now()
		close(p.done)
	}()
	t.Cleanup(p.cleanup)
	return p
}

// withoutEnv returns env without the variable key.
func withoutEnv(env []string, key string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func (p *instance) cleanup() {
	if !p.exited() {
		pid := p.findPID(2 * time.Second)
		var tree []int
		if pid > 0 {
			tree = descendants(pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = p.cmd.Process.Kill()
		for _, c := range tree {
			_ = syscall.Kill(c, syscall.SIGKILL)
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.t.Errorf("pilotfish (pid %d) did not die after SIGKILL", pid)
		}
	}
	if race := strings.Index(p.Stderr.String(), "WARNING: DATA RACE"); race >= 0 {
		p.t.Errorf("the race detector found a data race in pilotfish:\n%s", p.Stderr.String()[race:])
	}
	if p.t.Failed() {
		p.t.Logf("pilotfish stdout:\n%s", tail(p.Stdout.Raw(), 6000))
		p.t.Logf("pilotfish stderr:\n%s", tail(p.Stderr.Raw(), 6000))
	}
}

func (p *instance) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// PID is pilotfish's PID in the host namespace (for unshare --fork: unshare's child).
func (p *instance) PID() int {
	p.t.Helper()
	pid := p.findPID(5 * time.Second)
	if pid == 0 {
		p.t.Fatalf("cannot find pilotfish's process (exited: %v)", p.exited())
	}
	return pid
}

func (p *instance) findPID(d time.Duration) int {
	p.pidMu.Lock()
	defer p.pidMu.Unlock()
	if p.pid != 0 {
		return p.pid
	}
	if !p.pid1 {
		p.pid = p.cmd.Process.Pid
		return p.pid
	}
	// unshare forks, the child mounts /proc and then execs pilotfish: wait for the exec so
	// that a signal reaches pilotfish and not unshare's child.
	poll(d, func() bool {
		for _, c := range children(p.cmd.Process.Pid) {
			if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c)); err == nil && exe == p.bin {
				p.pid = c
				return true
			}
		}
		return p.exited()
	})
	return p.pid
}

// children lists the child PIDs of pid.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, w := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(w); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// descendants lists every process below pid.
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		c := children(queue[0])
		queue = append(queue[1:], c...)
		out = append(out, c...)
	}
	return out
}

// nsPIDOf is the PID that the host process pid has in its own (innermost) PID namespace,
// or 0 when it is gone.
func nsPIDOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(l, "NSpid:"); ok {
			if ids := strings.Fields(f); len(ids) > 0 {
				n, _ := strconv.Atoi(ids[len(ids)-1])
				return n
			}
		}
	}
	return 0
}

// hostPID translates a PID of pilotfish's namespace (pilotfish or a process below it) into
// the host's (0 if there is no such process).
func (p *instance) hostPID(nsPID int) int {
	if !p.pid1 {
		return nsPID
	}
	for _, h := range append([]int{p.PID()}, descendants(p.PID())...) {
		if nsPIDOf(h) == nsPID {
			return h
		}
	}
	return 0
}

// inNS is the path of a file of pilotfish's mount namespace (its private /run, /dev), as
// seen from the host.
func (p *instance) inNS(path string) string {
	return fmt.Sprintf("/proc/%d/root%s", p.PID(), path)
}

// WaitSignalHandlers waits until pilotfish has installed its signal handlers: its SIGTTIN
// disposition is no longer the default, which it changes (caught, or ignored by older
// builds) right after it has started to catch SIGTERM and SIGINT. Before that instant a
// signal meets the Go runtime's default action.
func (p *instance) WaitSignalHandlers(d time.Duration) {
	p.t.Helper()
	pid := p.PID()
	const ttin = 1 << (syscall.SIGTTIN - 1)
	waitFor(p.t, d, func() bool {
		st := procStatus(pid)
		return p.exited() || (st["SigCgt"]|st["SigIgn"])&ttin != 0
	}, "pilotfish to install its signal handlers")
}

// procStatus reads the hexadecimal signal masks (SigIgn, SigCgt, SigBlk, …) of a process.
func procStatus(pid int) map[string]uint64 {
	out := map[string]uint64{}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || !strings.HasPrefix(k, "Sig") {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

// Signal sends sig to pilotfish itself.
func (p *instance) Signal(sig syscall.Signal) {
	p.t.Helper()
	pid := p.PID()
	if p.exited() {
		p.t.Fatalf("cannot send %v: pilotfish has exited already", sig)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		p.t.Fatalf("cannot send %v to pilotfish (pid %d): %v", sig, pid, err)
	}
}

// Wait waits at most d for pilotfish to exit and returns its exit code (128+N if it died of
// signal N; unshare re-raises its child's killing signal on itself).
func (p *instance) Wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("pilotfish did not exit within %s", d)
	}
	return p.exitCode()
}

func (p *instance) exitCode() int {
	ws, ok := p.state.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		p.t.Logf("pilotfish was killed by signal %v", ws.Signal())
		return 128 + int(ws.Signal())
	}
	return p.state.ExitCode()
}

// SignalWait sends sig to pilotfish, waits at most d for it to exit and returns its exit
// code and the time from the signal to the exit.
func (p *instance) SignalWait(sig syscall.Signal, d time.Duration) (int, time.Duration) {
	p.t.Helper()
	sent := time.Now()
	p.Signal(sig)
	code := p.Wait(d)
	return code, p.ExitedAt().Sub(sent)
}

// ExitsWithin reports whether pilotfish exits within d (without failing the test).
func (p *instance) ExitsWithin(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// ExitedAt is when Wait saw the process end.
func (p *instance) ExitedAt() time.Time { <-p.done; return p.exitAt }

// Running reports whether pilotfish is still running.
func (p *instance) Running() bool { return !p.exited() }

// WaitStdout waits for a complete stdout line matching re and returns it.
func (p *instance) WaitStdout(d time.Duration, re string) string {
	p.t.Helper()
	return p.waitLine(p.Stdout, "stdout", d, re)
}

// WaitStderr waits for a complete stderr line matching re and returns it.
func (p *instance) WaitStderr(d time.Duration, re string) string {
	p.t.Helper()
	return p.waitLine(p.Stderr, "stderr", d, re)
}

func (p *instance) waitLine(s *stream, name string, d time.Duration, expr string) string {
	p.t.Helper()
	re := regexp.MustCompile(expr)
	found, ok := waitNth(s, d, 1, s.Lines, re.MatchString)
	if !ok {
		p.t.Fatalf("no %s line matching %q within %s", name, expr, d)
	}
	return found
}

// waitNth waits, waking on every write to s, for at most d until items() holds n (1-based)
// that match, and returns the n-th.
func waitNth[T any](s *stream, d time.Duration, n int, items func() []T, match func(T) bool) (T, bool) {
	var found T
	ok := s.waitUntil(d, func(string) bool {
		k := 0
		for _, it := range items() {
			if match(it) {
				if k++; k == n {
					found = it
					return true
				}
			}
		}
		return false
	})
	return found, ok
}

// ---------------------------------------------------------------------------------------
// pilotfish's own JSON log lines (logging { format = "json" }) on stderr.

type logEntry map[string]any

func (e logEntry) str(k string) string {
	switch v := e[k].(type) {
	case string:
		return v
	case nil:
		return ""
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

func (e logEntry) msg() string { return e.str("msg") }
func (e logEntry) job() string { return e.str("job") }

func (e logEntry) time() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.str("time"))
	return t
}

func (e logEntry) String() string {
	b, _ := json.Marshal(map[string]any(e))
	return string(b)
}

// is matches an entry by message and, if job is not empty, by job.
func is(msg, job string) func(logEntry) bool {
	return func(e logEntry) bool { return e.msg() == msg && (job == "" || e.job() == job) }
}

// Logs parses pilotfish's JSON log lines so far.
func (p *instance) Logs() []logEntry {
	return parseLogs(p.Stderr.Lines())
}

func parseLogs(lines []string) []logEntry {
	var out []logEntry
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var e logEntry
		if json.Unmarshal([]byte(l), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// logsOf returns the log entries with msg for job ("" = any job).
func (p *instance) logsOf(msg, job string) []logEntry {
	var out []logEntry
	for _, e := range p.Logs() {
		if is(msg, job)(e) {
			out = append(out, e)
		}
	}
	return out
}

// shutdownReason is the reason of pilotfish's last "shutting down" log entry ("" if none).
func (p *instance) shutdownReason() string {
	reason := ""
	for _, e := range p.logsOf("shutting down", "") {
		reason = e.str("reason")
	}
	return reason
}

// CountLogs counts the log entries that match.
func (p *instance) CountLogs(match func(logEntry) bool) int {
	n := 0
	for _, e := range p.Logs() {
		if match(e) {
			n++
		}
	}
	return n
}

// WaitLogN waits for the n-th (1-based) log entry that matches and returns it.
func (p *instance) WaitLogN(d time.Duration, n int, match func(logEntry) bool, what string) logEntry {
	p.t.Helper()
	found, ok := waitNth(p.Stderr, d, n, p.Logs, match)
	if !ok {
		p.t.Fatalf("no log entry #%d for %s within %s", n, what, d)
	}
	return found
}

// WaitLog waits for the first log entry that matches.
func (p *instance) WaitLog(d time.Duration, match func(logEntry) bool, what string) logEntry {
	p.t.Helper()
	return p.WaitLogN(d, 1, match, what)
}

// WaitStarted waits until pilotfish has installed its signal handlers and started its jobs.
func (p *instance) WaitStarted() {
	p.t.Helper()
	p.WaitLog(10*time.Second, is("pilotfish started", ""), "pilotfish started")
}

// ---------------------------------------------------------------------------------------
// One-shot commands (validate, plan, version) and small helpers.

type result struct {
	code           int
	stdout, stderr string
}

// runCmd runs pilotfish with args in dir (not as PID 1) and waits at most 20 s.
func runCmd(t testing.TB, dir string, args ...string) result {
	t.Helper()
	return runCmdEnv(t, dir, nil, args...)
}

// runCmdEnv is runCmd with variables added to the environment.
func runCmdEnv(t testing.TB, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(pilotfishBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if late, _ := runWithin(t, cmd, 20*time.Second); late {
		t.Fatalf("pilotfish %q did not finish in 20s", args)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

// runWithin runs cmd and waits at most d for it to end; a command still running then is
// killed, and late is true. err is what cmd.Wait returned.
func runWithin(t testing.TB, cmd *exec.Cmd, d time.Duration) (late bool, err error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
		return false, err
	case <-time.After(d):
		_ = cmd.Process.Kill()
		return true, <-done
	}
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// readFile returns the file's contents, or "" if it does not exist (yet).
func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// fileLines returns the complete lines of a file.
func fileLines(t testing.TB, path string) []string {
	t.Helper()
	s := readFile(t, path)
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		return nil
	}
	return strings.Split(s[:i], "\n")
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// nanoTimes parses the `date +%s%N` stamps of a file, one per line.
func nanoTimes(t testing.TB, path string) []time.Time {
	t.Helper()
	var out []time.Time
	for _, l := range fileLines(t, path) {
		n, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64)
		if err != nil {
			t.Fatalf("%s: %q is not a timestamp", path, l)
		}
		out = append(out, time.Unix(0, n))
	}
	return out
}

// stamp reads a one-line `date +%s%N` file.
func stamp(t testing.TB, path string) time.Time {
	t.Helper()
	ts := nanoTimes(t, path)
	if len(ts) == 0 {
		t.Fatalf("%s holds no timestamp", path)
	}
	return ts[len(ts)-1]
}

// envFile parses a KEY=VALUE-per-line file (as written by `env` or printf).
func envFile(t testing.TB, path string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range fileLines(t, path) {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct loopback TCP ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// countLines counts the lines of s that match re.
func countLines(s string, re *regexp.Regexp) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if re.MatchString(sc.Text()) {
			n++
		}
	}
	return n
}

// hclString quotes s as an HCL string literal (paths of temp dirs are plain, but be safe).
func hclString(s string) string {
	b, _ := json.Marshal(s)
	r := strings.ReplaceAll(string(b), "${", "$${")
	return strings.ReplaceAll(r, "%{", "%%{")
}

// sh returns an HCL list literal running script with sh -c.
func sh(script string) string {
	return "[\"/bin/sh\", \"-c\", " + hclString(script) + "]"
}

const jsonLogs = `logging {
  format = "json"
  level  = "debug"
}
`

// benchLogs keeps pilotfish's own logs at info: one started and one exited line per run,
// as in production, without the debug lines.
const benchLogs = `logging {
  format = "json"
  level  = "info"
}
`
