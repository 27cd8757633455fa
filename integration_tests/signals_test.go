package integration

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// docs/jobs.md: catchable signals other than TERM/INT/HUP/USR1 go to the main job.
func TestSignalsForwardedToMainJob(t *testing.T) {
	t.Parallel()
	p := start(t, opts{Config: jsonLogs, Main: []string{"/bin/sh", "-c", `
trap 'echo USR2 >> "$TESTDIR/got"' USR2
trap 'echo WINCH >> "$TESTDIR/got"' WINCH
trap 'exit 0' TERM
echo ready
while :; do sleep 0.05; done`}})
	p.WaitStarted()
	p.WaitStdout(10*time.Second, `^\[main\] ready$`)
	got := filepath.Join(p.Dir, "got")
	p.Signal(syscall.SIGUSR2)
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(readFile(t, got), "USR2") }, "the main job to get SIGUSR2")
	p.Signal(syscall.SIGWINCH)
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(readFile(t, got), "WINCH") }, "the main job to get SIGWINCH")
	if !p.Running() {
		t.Fatalf("pilotfish exited after forwarding signals")
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0 (the main job trapped SIGTERM and exited 0)", code)
	}
}

// docs/jobs.md: SIGHUP means reload; it must never kill pilotfish or its jobs.
func TestSIGHUPDoesNotKillPilotfish(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`
	p := start(t, opts{Config: cfg})
	started := p.WaitLog(10*time.Second, is("started", "steady"), "steady started")
	p.Signal(syscall.SIGHUP)
	// pilotfish acknowledges the SIGHUP (reload, or a word that reload is not available).
	p.WaitLog(5*time.Second, func(e logEntry) bool {
		m := strings.ToLower(e.msg())
		return strings.Contains(m, "sighup") || strings.Contains(m, "reload")
	}, "a log line about the SIGHUP")
	if !p.Running() {
		t.Fatalf("SIGHUP ended pilotfish")
	}
	if n := p.CountLogs(is("exited", "steady")); n != 0 {
		t.Fatalf("SIGHUP made job steady exit")
	}
	if n := p.CountLogs(is("started", "steady")); n != 1 {
		t.Fatalf("job steady started %d times, want once (pid %s)", n, started.str("pid"))
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// docs/cli.md: with a terminal on stdin, the main job gets it as its foreground process group
// (`docker run -it image -- sh` works).
func TestMainJobGetsTerminal(t *testing.T) {
	t.Parallel()
	requirePID1(t)
	scriptBin, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1) is not installed: cannot give pilotfish a terminal")
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pilotfish.hcl"), jsonLogs, 0o644)
	main := `ps -o stat= -p $$ > "$TESTDIR/stat"; read line; echo "read: $line" > "$TESTDIR/read"; exit 7`
	wrapper := "#!/bin/sh\nexec unshare --pid --fork --mount-proc /bin/sh -c 'mount -t tmpfs -o mode=0755 pilotfish-run /run && exec \"$0\" \"$@\"' " +
		pilotfishBin + " -config " + filepath.Join(dir, "pilotfish.hcl") + " -- /bin/sh -c '" + main + "'\n"
	writeFile(t, filepath.Join(dir, "run.sh"), wrapper, 0o755)

	cmd := exec.Command(scriptBin, "-qec", filepath.Join(dir, "run.sh"), "/dev/null")
	cmd.Env = append(os.Environ(), "TESTDIR="+dir)
	out := newStream()
	cmd.Stdout, cmd.Stderr = out, out
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			for _, c := range append(descendants(cmd.Process.Pid), cmd.Process.Pid) {
				_ = syscall.Kill(c, syscall.SIGKILL)
			}
			<-done
		}
		stdin.Close()
		if t.Failed() {
			t.Logf("terminal output:\n%s", tail(out.String(), 4000))
		}
	})
	// Typed at the terminal: the main job reads it.
	if _, err := io.WriteString(stdin, "hello\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("pilotfish under script(1) did not finish in 20s")
	}
	if code := cmd.ProcessState.ExitCode(); code != 7 {
		t.Errorf("exit code %d, want 7 (the main job's)", code)
	}
	if st := strings.TrimSpace(readFile(t, filepath.Join(dir, "stat"))); !strings.Contains(st, "+") {
		t.Errorf("the main job's process state %q: not in the terminal's foreground process group", st)
	}
	if got := strings.TrimSpace(readFile(t, filepath.Join(dir, "read"))); got != "read: hello" {
		t.Errorf("the main job read %q from the terminal, want %q", got, "read: hello")
	}
}

// docs/jobs.md: without a main job, signals that would be forwarded are ignored, and SIGUSR1
// toggles maintenance: none of them may kill pilotfish (their default action would).
func TestSignalsWithoutMainJobAreHarmless(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`
	p := start(t, opts{Config: cfg})
	p.WaitLog(10*time.Second, is("started", "steady"), "steady started")
	for _, sig := range []syscall.Signal{syscall.SIGUSR2, syscall.SIGWINCH, syscall.SIGQUIT, syscall.SIGALRM} {
		p.Signal(sig)
		name := unixSignalName(sig)
		// pilotfish says (at debug level) what it did with the signal.
		p.WaitLog(5*time.Second, func(e logEntry) bool {
			for _, v := range e {
				if s, ok := v.(string); ok && s == name {
					return true
				}
			}
			return false
		}, "a log line about "+name)
	}
	p.Signal(syscall.SIGUSR1)
	p.WaitLog(5*time.Second, func(e logEntry) bool { return strings.Contains(strings.ToLower(e.String()), "maintenance") }, "maintenance toggled")
	if !p.Running() || p.CountLogs(is("exited", "steady")) != 0 {
		t.Fatalf("a signal ended pilotfish or its job")
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

func unixSignalName(sig syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGUSR2: "SIGUSR2", syscall.SIGWINCH: "SIGWINCH",
		syscall.SIGQUIT: "SIGQUIT", syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT",
		syscall.SIGHUP: "SIGHUP", syscall.SIGUSR1: "SIGUSR1"}[sig]
}

// jobSignalState runs pilotfish (through launcher, if any) with a job that prints its own
// /proc/self/status, and returns the job's SigIgn and SigBlk masks.
func jobSignalState(t *testing.T, launcher []string) (ign, blk uint64) {
	t.Helper()
	p := start(t, opts{Config: jsonLogs + `
job "state" {
  exec = ["cat", "/proc/self/status"]
}
`, Launcher: launcher})
	masks := map[string]uint64{}
	for _, k := range []string{"SigIgn", "SigBlk"} {
		line := p.WaitStdout(10*time.Second, `^\[state\] `+k+`:`)
		v, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(line, "[state] "+k+":")), 16, 64)
		if err != nil {
			t.Fatalf("cannot read %q: %v", line, err)
		}
		masks[k] = v
	}
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0 (the job completed, nothing else can run)", code)
	}
	return masks["SigIgn"] & standardSignals, masks["SigBlk"] & standardSignals
}

// standardSignals masks signals 1–31. Above them are glibc's own (32, 33), which GNU make
// ignores for the commands it runs, and the real-time ones: what a job gets of those
// depends on who started the test, not on pilotfish.
const standardSignals = 1<<31 - 1

func sigMask(sigs ...syscall.Signal) uint64 {
	var m uint64
	for _, s := range sigs {
		m |= 1 << (s - 1)
	}
	return m
}

// docs/jobs.md: a job starts with nothing of pilotfish's own signal handling. pilotfish must not
// die of SIGPIPE nor stop on SIGTTIN/SIGTTOU, but its jobs get the default action of each.
func TestJobsDoNotInheritPilotfishSignalHandling(t *testing.T) {
	t.Parallel()
	ign, blk := jobSignalState(t, nil)
	if ign != 0 || blk != 0 {
		t.Errorf("the job starts with SigIgn %016x SigBlk %016x, want none ignored or blocked (pilotfish was given none)", ign, blk)
	}
}

// docs/jobs.md, tini's sigconf test: the ignored dispositions and the signal mask pilotfish was
// given reach its jobs. A parent ignores SIGINT, SIGHUP and SIGTTOU and blocks SIGTTIN and
// SIGUSR2, then execs pilotfish.
func TestJobsInheritTheSignalStatePilotfishWasGiven(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	launcher := writePython(t, dir, "sigconf.py", `import os, signal, sys
# Python itself ignores SIGPIPE and SIGXFSZ; a plain parent would not.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
for s in (signal.SIGINT, signal.SIGHUP, signal.SIGTTOU):
    signal.signal(s, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTIN, signal.SIGUSR2})
os.execv(sys.argv[1], sys.argv[1:])
`)
	ign, blk := jobSignalState(t, []string{python, launcher})
	if want := sigMask(syscall.SIGINT, syscall.SIGHUP, syscall.SIGTTOU); ign != want {
		t.Errorf("the job's SigIgn is %016x, want %016x (SIGINT, SIGHUP, SIGTTOU as pilotfish was given them)", ign, want)
	}
	if want := sigMask(syscall.SIGTTIN, syscall.SIGUSR2); blk != want {
		t.Errorf("the job's SigBlk is %016x, want %016x (SIGTTIN, SIGUSR2 as pilotfish was given them)", blk, want)
	}
}

// docs/jobs.md: `yes | head -1` in a job behaves as under a shell: yes dies of SIGPIPE (141),
// instead of printing "Broken pipe" and exiting 1.
func TestShellPipelineInJobDiesOfSIGPIPE(t *testing.T) {
	t.Parallel()
	p := start(t, opts{Config: jsonLogs + `
job "pipe" {
  exec = ["/bin/sh", "-c", "(yes; echo $? > \"$TESTDIR/yes.status\") | head -n 1"]
}
`})
	p.WaitLog(10*time.Second, is("exited", "pipe"), "the pipeline to end")
	waitFor(t, 5*time.Second, func() bool { return strings.TrimSpace(readFile(t, filepath.Join(p.Dir, "yes.status"))) != "" }, "yes's status")
	if got := strings.TrimSpace(readFile(t, filepath.Join(p.Dir, "yes.status"))); got != "141" {
		t.Errorf("yes ended with status %s, want 141 (killed by SIGPIPE); stderr:\n%s", got, tail(p.Stderr.String(), 500))
	}
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

// requireNoDefaultConfig skips a wrapper-mode test on a host that has the default
// configuration file (pilotfish would read it).
func requireNoDefaultConfig(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/etc/pilotfish/pilotfish.hcl"); err == nil {
		t.Skip("/etc/pilotfish/pilotfish.hcl exists: pilotfish -- CMD would read it")
	}
}

// docs/jobs.md wrapper mode: `pilotfish -- CMD` without a configuration file is a drop-in for
// tini. SIGUSR1 and SIGHUP reach the command (nothing to reload or put in maintenance),
// its output passes through untouched (a JSON log line stays JSON), SIGTERM stops it with
// stop_signal and pilotfish exits with its code.
func TestWrapperModeIsTransparent(t *testing.T) {
	t.Parallel()
	requireNoDefaultConfig(t)
	p := start(t, opts{NoConfig: true, Main: []string{"/bin/sh", "-c", `
for s in USR1 HUP USR2 WINCH; do trap "echo '{\"got\":\"'$s'\"}'" $s; done
trap 'echo "{\"got\":\"TERM\"}"; exit 7' TERM
echo '{"level":"info","msg":"ready"}'
printf 'no newline at the end'
printf '\n'
while :; do sleep 0.05; done`}})
	p.WaitStdout(10*time.Second, `^\{"level":"info","msg":"ready"\}$`)
	p.WaitStdout(10*time.Second, `^no newline at the end$`)
	for _, sig := range []syscall.Signal{syscall.SIGUSR1, syscall.SIGHUP, syscall.SIGUSR2, syscall.SIGWINCH} {
		p.Signal(sig)
		name := strings.TrimPrefix(unixSignalName(sig), "SIG")
		p.WaitStdout(10*time.Second, `^\{"got":"`+name+`"\}$`)
	}
	if strings.Contains(p.Stdout.String(), "[main]") {
		t.Errorf("the command's output is prefixed:\n%s", p.Stdout.String())
	}
	for _, e := range p.Logs() {
		if m := e.msg(); strings.Contains(m, "maintenance") || strings.Contains(m, "reload") {
			t.Errorf("pilotfish acted on a signal meant for the command: %s", e)
		}
	}
	code, _ := p.SignalWait(syscall.SIGTERM, 20*time.Second)
	p.WaitStdout(time.Second, `^\{"got":"TERM"\}$`)
	if code != 7 {
		t.Errorf("exit code %d, want 7 (the command's)", code)
	}
}
