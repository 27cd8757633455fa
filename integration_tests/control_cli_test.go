package integration

// The client verbs of the CLI (docs/cli.md): output, -json, -socket and $PILOTFISH_SOCKET, and
// the exit codes 0 success, 1 refused, 2 usage, 3 unreachable.

import (
	"bufio"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// cliRunner runs client verbs against one daemon; $PILOTFISH_SOCKET points elsewhere
// unless a test says otherwise, so that -socket must win.
type cliRunner struct {
	t    *testing.T
	dir  string
	sock string
}

// run runs `pilotfish VERB -socket SOCK ARGS...`.
func (c cliRunner) run(verb string, args ...string) result {
	c.t.Helper()
	return runCmdEnv(c.t, c.dir, []string{"PILOTFISH_SOCKET=/nonexistent/decoy.sock"}, append([]string{verb, "-socket", c.sock}, args...)...)
}

// want checks the exit code.
func (c cliRunner) want(r result, code int, what string) result {
	c.t.Helper()
	if r.code != code {
		c.t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
	return r
}

// docs/cli.md: every client verb through the CLI with its exit codes.
func TestControlCLI(t *testing.T) {
	t.Parallel()
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
job "trap" {
  exec = ["/bin/sh", "-c", "trap 'echo HUP >> \"$TESTDIR/hup.txt\"' HUP; while :; do sleep 0.05; done"]
}
job "envjob" {
  exec = ["/bin/sh", "-c", "echo \"PF_CLI=$PF_CLI\" >> \"$TESTDIR/env.txt\"; exec sleep 1000"]
}
job "done" {
  exec = "true"
}
`})
	c := cliRunner{t: t, dir: p.Dir, sock: sock}
	a := newGoAPI(t, sock)
	for _, n := range []string{"steady", "trap", "envjob"} {
		waitJob(t, a, n, 10*time.Second, running, "running")
	}
	waitJob(t, a, "done", 10*time.Second, func(j client.Job) bool { return j.State == "completed" }, "completed")

	// ping: -socket, $PILOTFISH_SOCKET, flags before the verb, -json.
	r := c.want(c.run("ping"), 0, "ping -socket")
	if !regexp.MustCompile(`^ok \(pilotfish \S+\)\n$`).MatchString(r.stdout) {
		t.Errorf("ping printed %q", r.stdout)
	}
	c.want(runCmdEnv(t, p.Dir, []string{"PILOTFISH_SOCKET=" + sock}, "ping"), 0, "ping with $PILOTFISH_SOCKET")
	c.want(runCmdEnv(t, p.Dir, []string{"PILOTFISH_SOCKET=/nonexistent/decoy.sock"}, "-socket", sock, "ping"), 0, "pilotfish -socket SOCK ping")
	r = c.want(c.run("ping", "-json"), 0, "ping -json")
	var ping client.Ping
	if err := json.Unmarshal([]byte(r.stdout), &ping); err != nil || ping.Status != "ok" {
		t.Errorf("ping -json printed %q (%v)", r.stdout, err)
	}

	// status: a table with the documented columns, one row per job.
	r = c.want(c.run("status"), 0, "status")
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	header := []string{"JOB", "KIND", "STATE", "PID", "HEALTH", "RESTARTS", "UPTIME", "CPU%", "MEM", "STATUS"}
	if len(lines) < 5 || !slices.Equal(strings.Fields(lines[0]), header) {
		t.Fatalf("status printed:\n%s\nwant a header %q and four rows", r.stdout, header)
	}
	rows := map[string][]string{}
	for _, l := range lines[1:5] {
		f := strings.Fields(l)
		rows[f[0]] = f
	}
	steady := must[client.Job](t, "job steady")(a.Job("steady"))
	if f := rows["steady"]; len(f) < 9 || f[1] != "exec" || f[2] != "running" || f[3] != strconv.Itoa(steady.Pid) || f[4] != "unknown" || f[5] != "0" ||
		!regexp.MustCompile(`^\d+\.\d$`).MatchString(f[7]) || !regexp.MustCompile(`^\d+(\.\d)?[KMG]$`).MatchString(f[8]) {
		t.Errorf("status row of steady: %q, want exec running %d unknown 0 UPTIME CPU%% MEM", f, steady.Pid)
	}
	if f := rows["done"]; len(f) < 9 || f[2] != "completed" || f[3] != "-" || f[7] != "-" || f[8] != "-" {
		t.Errorf("status row of done: %q, want completed with pid, CPU%% and MEM -", f)
	}
	// Columns line up: each header starts where its values start.
	col := strings.Index(lines[0], "STATE")
	for _, l := range lines[1:5] {
		if len(l) <= col || l[col-1] != ' ' || l[col] == ' ' {
			t.Errorf("status row %q is not aligned with the STATE column", l)
		}
	}
	r = c.want(c.run("status", "steady"), 0, "status steady")
	if lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n"); len(lines) != 2 || !slices.Equal(strings.Fields(lines[0]), header) || !strings.HasPrefix(lines[1], "steady ") {
		t.Errorf("status steady printed:\n%s", r.stdout)
	}
	r = c.want(c.run("status", "-json"), 0, "status -json")
	var st client.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st.Jobs) != 4 || st.Watches == nil {
		t.Errorf("status -json printed %q (%v)", r.stdout, err)
	}
	r = c.want(c.run("status", "steady", "-json"), 0, "status steady -json")
	var j client.Job
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.Name != "steady" || j.Pid != steady.Pid {
		t.Errorf("status steady -json printed %q (%v)", r.stdout, err)
	}
	r = c.want(c.run("status", "nosuchjob"), 1, "status of an unknown job")
	if !strings.Contains(r.stderr, "nosuchjob") {
		t.Errorf("status nosuchjob: stderr %q does not name the job", r.stderr)
	}
	c.want(c.run("status", "a", "b"), 2, "status with two jobs")
	c.want(c.run("status", "-bogus"), 2, "status with an unknown flag")

	// events: the ring, then the end; -json lines; -since.
	r = c.want(c.run("events"), 0, "events")
	lines = strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if f := strings.Fields(lines[0]); len(f) < 4 || f[0] != "1" || f[2] != "global" || f[3] != "startup" {
		t.Errorf("events: first line %q, want seq 1, a time, global startup", lines[0])
	}
	if !strings.Contains(r.stdout, " steady ") || !strings.Contains(r.stdout, " started ") {
		t.Errorf("events lacks steady's start:\n%s", r.stdout)
	}
	r = c.want(c.run("events", "-json"), 0, "events -json")
	var evs []client.Event
	for _, l := range strings.Split(strings.TrimRight(r.stdout, "\n"), "\n") {
		var e client.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Errorf("events -json line %q: %v", l, err)
			continue
		}
		evs = append(evs, e)
	}
	checkReplay(t, "events -json", evs, 0)
	if len(evs) > 2 {
		r = c.want(c.run("events", "-json", "-since", strconv.FormatUint(evs[1].Seq, 10)), 0, "events -since")
		if n := strings.Count(r.stdout, "\n"); n < len(evs)-2 {
			t.Errorf("events -since %d printed %d events, want at least %d", evs[1].Seq, n, len(evs)-2)
		}
		if !strings.HasPrefix(r.stdout, `{"seq":`+strconv.FormatUint(evs[2].Seq, 10)+",") {
			t.Errorf("events -since %d starts with %q", evs[1].Seq, tail(r.stdout, 80))
		}
	}

	// reload
	r = c.want(c.run("reload"), 0, "reload")
	if r.stdout != "reloaded: changed none, added none, removed none\n" {
		t.Errorf("reload printed %q", r.stdout)
	}
	r = c.want(c.run("reload", "-json"), 0, "reload -json")
	if got := strings.Join(strings.Fields(r.stdout), ""); got != `{"changed":[],"added":[],"removed":[]}` {
		t.Errorf("reload -json printed %q", r.stdout)
	}
	c.want(c.run("reload", "now"), 2, "reload with an argument")

	// maintenance on|off, and usage errors.
	c.want(c.run("maintenance", "on"), 0, "maintenance on")
	if _, code, _ := a.Health(); code != 503 {
		t.Errorf("health after maintenance on: %d, want 503", code)
	}
	if r := c.want(c.run("status"), 0, "status"); !strings.Contains(r.stdout, "maintenance: on") {
		t.Errorf("status in maintenance does not say so:\n%s", r.stdout)
	}
	c.want(c.run("maintenance", "off"), 0, "maintenance off")
	if st := must[client.Status](t, "status")(a.Status()); st.Maintenance {
		t.Errorf("maintenance still on after maintenance off")
	}
	for _, args := range [][]string{{}, {"maybe"}, {"on", "off"}} {
		r := c.want(c.run("maintenance", args...), 2, "maintenance "+strings.Join(args, " "))
		if !strings.Contains(r.stderr, "usage") {
			t.Errorf("maintenance %q: no usage on stderr: %q", args, r.stderr)
		}
	}

	// putenv: values with = and spaces; usage errors.
	c.want(c.run("putenv", "PF_CLI=a=b c", "PF_OTHER=1"), 0, "putenv")
	c.want(c.run("putenv"), 2, "putenv without arguments")
	c.want(c.run("putenv", "NOVALUE"), 2, "putenv without =")
	c.want(c.run("putenv", "=x"), 2, "putenv without a key")
	c.want(c.run("restart", "envjob"), 0, "restart envjob")
	envFile := filepath.Join(p.Dir, "env.txt")
	waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, envFile)) == 2 }, "envjob to start again")
	if got := fileLines(t, envFile); got[1] != "PF_CLI=a=b c" {
		t.Errorf("envjob saw %q after putenv, want PF_CLI=a=b c", got[1])
	}

	// putmetric: custom metrics are not declared here; the daemon refuses (exit 1).
	r = c.want(c.run("putmetric", "orders_total=1"), 1, "putmetric of an undeclared metric")
	if !strings.Contains(r.stderr, "orders_total") {
		t.Errorf("putmetric refusal does not name the metric: %q", r.stderr)
	}
	c.want(c.run("putmetric"), 2, "putmetric without arguments")
	c.want(c.run("putmetric", "orders_total"), 2, "putmetric without =")
	c.want(c.run("putmetric", "orders_total=many"), 2, "putmetric with a non-number")

	// start / stop / restart
	c.want(c.run("start", "steady"), 0, "start of a running job (a no-op)")
	r = c.want(c.run("stop", "steady"), 0, "stop steady")
	if r.stdout != "steady: stopped\n" {
		t.Errorf("stop steady printed %q", r.stdout)
	}
	r = c.want(c.run("start", "steady"), 0, "start steady")
	if !regexp.MustCompile(`^steady: running \(pid \d+\)\n$`).MatchString(r.stdout) {
		t.Errorf("start steady printed %q", r.stdout)
	}
	r = c.want(c.run("restart", "steady", "-json"), 0, "restart steady -json")
	if err := json.Unmarshal([]byte(r.stdout), &j); err != nil || j.Name != "steady" {
		t.Errorf("restart -json printed %q (%v)", r.stdout, err)
	}
	waitJob(t, a, "steady", 10*time.Second, running, "running after the restart")
	for _, verb := range []string{"start", "stop", "restart"} {
		r := c.want(c.run(verb, "nosuchjob"), 1, verb+" of an unknown job")
		if !strings.Contains(r.stderr, "nosuchjob") {
			t.Errorf("%s nosuchjob: stderr %q does not name the job", verb, r.stderr)
		}
	}
	c.want(c.run("start"), 2, "start without a job")
	c.want(c.run("restart"), 2, "restart without a job")
	c.want(c.run("restart", "a", "b"), 2, "restart with two jobs")

	// signal
	c.want(c.run("signal", "trap", "HUP"), 0, "signal trap HUP")
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(readFile(t, filepath.Join(p.Dir, "hup.txt")), "HUP") }, "trap to record SIGHUP")
	c.want(c.run("signal", "trap", "BOGUS"), 1, "signal with an unknown signal")
	c.want(c.run("signal", "nosuchjob", "HUP"), 1, "signal to an unknown job")
	c.want(c.run("signal", "done", "HUP"), 1, "signal to a job with no process")
	c.want(c.run("signal", "trap"), 2, "signal without a signal")
	c.want(c.run("signal"), 2, "signal without arguments")

	// stop without a job: the container shuts down.
	r = c.want(c.run("stop"), 0, "stop")
	if r.stdout != "shutting down\n" {
		t.Errorf("stop printed %q", r.stdout)
	}
	if code := p.Wait(15 * time.Second); code != 0 {
		t.Errorf("exit code after pilotfish stop: %d, want 0", code)
	}
	// Nobody answers any more: exit 3.
	r = c.want(c.run("ping"), 3, "ping after shutdown")
	if !strings.Contains(r.stderr, sock) {
		t.Errorf("the unreachable error does not name the socket: %q", r.stderr)
	}
}

// docs/cli.md: exit 3 when no daemon answers: no socket file, a stale socket file, a path
// that is not a socket; usage errors win over an unreachable socket.
func TestControlCLIUnreachable(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	plain := filepath.Join(dir, "file")
	writeFile(t, plain, "", 0o644)
	for _, sock := range []string{filepath.Join(dir, "missing.sock"), stale, plain} {
		for _, args := range [][]string{{"ping"}, {"status"}, {"status", "x"}, {"events"}, {"reload"}, {"maintenance", "on"},
			{"putenv", "A=b"}, {"start", "x"}, {"stop", "x"}, {"restart", "x"}, {"signal", "x", "HUP"}, {"stop"}} {
			r := runCmdEnv(t, dir, nil, append(args, "-socket", sock)...)
			if r.code != 3 {
				t.Errorf("pilotfish %q with %s: exit %d, want 3 (stderr %q)", args, filepath.Base(sock), r.code, r.stderr)
			} else if !strings.Contains(r.stderr, sock) {
				t.Errorf("pilotfish %q: stderr %q does not name the socket", args, r.stderr)
			}
		}
	}
	// $PILOTFISH_SOCKET is used when -socket is not given.
	if r := runCmdEnv(t, dir, []string{"PILOTFISH_SOCKET=" + stale}, "ping"); r.code != 3 || !strings.Contains(r.stderr, stale) {
		t.Errorf("ping with $PILOTFISH_SOCKET=%s: exit %d, stderr %q", stale, r.code, r.stderr)
	}
	// Usage errors are found before the socket is tried.
	for _, args := range [][]string{{"maintenance"}, {"maintenance", "sometimes"}, {"signal", "x"}, {"putenv", "NOVALUE"}, {"ping", "-nope"}} {
		if r := runCmdEnv(t, dir, nil, append(args, "-socket", stale)...); r.code != 2 {
			t.Errorf("pilotfish %q: exit %d, want 2 (usage)", args, r.code)
		}
	}
}

// docs/cli.md: `events -f` follows the stream until interrupted.
func TestControlCLIEventsFollow(t *testing.T) {
	t.Parallel()
	p, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`})
	a := newGoAPI(t, sock)
	waitJob(t, a, "steady", 10*time.Second, running, "running")
	for _, jsonOut := range []bool{false, true} {
		args := []string{"events", "-f", "-socket", sock}
		if jsonOut {
			args = append(args, "-json")
		}
		cmd := exec.Command(pilotfishBin, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
		})
		// Make events until the follower shows them (it subscribes some time after it starts).
		var got []string
		deadline := time.Now().Add(10 * time.Second)
		for !slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, "exitMaintenance") }) {
			if time.Now().After(deadline) {
				t.Fatalf("events -f (json %v) printed %q within 10s, want the maintenance events", jsonOut, got)
			}
			check(t, "maintenance on", a.Maintenance(true))
			check(t, "maintenance off", a.Maintenance(false))
			timeout := time.After(300 * time.Millisecond)
		read:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("events -f ended by itself after %q", got)
					}
					got = append(got, l)
				case <-timeout:
					break read
				}
			}
		}
		for _, l := range got {
			if jsonOut {
				var e client.Event
				if err := json.Unmarshal([]byte(l), &e); err != nil || e.Seq == 0 {
					t.Errorf("events -f -json line %q: %v", l, err)
				}
			} else if f := strings.Fields(l); len(f) < 4 || f[2] != "global" {
				t.Errorf("events -f line %q, want SEQ TIME global CODE", l)
			}
		}
		// Still following: nothing ended it.
		select {
		case err := <-done:
			t.Fatalf("events -f exited (%v) while following", err)
		default:
		}
		// Ctrl-C ends it cleanly.
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("events -f after SIGINT: %v, want exit 0", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("events -f did not end within 5s of SIGINT")
		}
	}
	if !p.Running() {
		t.Fatal("pilotfish exited")
	}
}
