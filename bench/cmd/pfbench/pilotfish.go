package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// instance is one running pilotfish, started by start and watched through its log lines.
//
// Concurrency: the reader goroutines and the waiter goroutine update the fields below mu
// and then broadcast; callers wait with instance.until.
type instance struct {
	cmd      *exec.Cmd
	pid      int       // pilotfish's pid as seen from here (under unshare: unshare's child)
	execAt   time.Time // just before exec
	unshared bool
	readers  sync.WaitGroup
	files    []*os.File // our read ends of the pipes

	notifier
	started   map[string]time.Time   // job → receive time of its first "started" line
	runs      map[string][]time.Time // job → receive time of every "started" line
	msgs      map[string]int         // pilotfish's own log lines by msg
	firstMsg  map[string]time.Time   // receive time of the first line of each msg
	raw       []string               // stderr lines that are not pilotfish's JSON log
	warnings  []string               // the first warnings and errors of pilotfish's own log
	jobPids   map[string]int
	exited    map[string]time.Time // job → receive time of its first "exited" line
	stdout    map[string]time.Time // job output line → receive time of its first occurrence
	stopped   bool                 // the final "stopped" line was seen
	took      time.Duration        // its "took"
	logExit   int                  // its "exit_code"
	tail      []string             // the last lines of output, for failure reports
	done      bool                 // the process was waited for
	exitAt    time.Time
	exitCode  int
	exitState string
}

const tailLines = 12

// start runs bin with args, under `unshare --pid --fork --mount-proc` when unshared.
func start(bin string, args []string, unshared bool) (*instance, error) {
	argv := append([]string{bin}, args...)
	if unshared {
		// --kill-child: if unshare dies, pilotfish (and with it the namespace) dies too.
		argv = append([]string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)
	}
	return startArgv(argv, nil, unshared)
}

// startArgv runs argv with env added to pfbench's environment. When wrapped, argv is a
// wrapper (unshare) whose only child becomes pilotfish.
func startArgv(argv, env []string, wrapped bool) (*instance, error) {
	unshared := wrapped
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = outW
	cmd.Stderr = errW
	// Its own process group: a Ctrl-C on the terminal reaches only pfbench, which then
	// cleans up. Pdeathsig: should pfbench die anyway, pilotfish goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	in := &instance{
		cmd:      cmd,
		unshared: unshared,
		started:  map[string]time.Time{},
		runs:     map[string][]time.Time{},
		msgs:     map[string]int{},
		firstMsg: map[string]time.Time{},
		jobPids:  map[string]int{},
		exited:   map[string]time.Time{},
		stdout:   map[string]time.Time{},
		files:    []*os.File{outR, errR},
	}
	in.execAt = time.Now()
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	in.pid = cmd.Process.Pid
	in.readers.Add(2)
	go in.read(errR, true)
	go in.read(outR, false)
	go func() {
		err := cmd.Wait()
		in.mu.Lock()
		in.done = true
		in.exitAt = time.Now()
		in.exitCode = cmd.ProcessState.ExitCode()
		in.exitState = cmd.ProcessState.String()
		if err != nil && cmd.ProcessState == nil {
			in.exitState = err.Error()
		}
		in.broadcast()
		in.mu.Unlock()
	}()
	if unshared {
		// The pid that matters is pilotfish's, unshare's only child.
		var kid int
		ok := pollUntil(5*time.Second, time.Millisecond, func() bool {
			kids := children(in.cmd.Process.Pid)
			if len(kids) > 0 {
				kid = kids[0]
				return true
			}
			return in.isDone()
		})
		if !ok || kid == 0 {
			in.kill()
			return nil, fmt.Errorf("unshare did not start pilotfish within 5s")
		}
		in.pid = kid
	}
	return in, nil
}

func (in *instance) read(r io.Reader, stderr bool) {
	defer in.readers.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		now := time.Now()
		line := sc.Text()
		in.mu.Lock()
		in.tail = append(in.tail, line)
		if len(in.tail) > tailLines {
			in.tail = in.tail[len(in.tail)-tailLines:]
		}
		if stderr {
			in.onLog(now, line)
		} else if _, seen := in.stdout[line]; !seen && len(in.stdout) < 1000 {
			in.stdout[line] = now
		}
		in.broadcast()
		in.mu.Unlock()
	}
}

// onLog handles one line of pilotfish's own JSON log; call with mu held.
func (in *instance) onLog(now time.Time, line string) {
	var m map[string]any
	if json.Unmarshal([]byte(line), &m) != nil {
		if len(in.raw) < 100 {
			in.raw = append(in.raw, line)
		}
		return
	}
	msg, _ := m["msg"].(string)
	job, _ := m["job"].(string)
	if in.msgs[msg]++; in.msgs[msg] == 1 {
		in.firstMsg[msg] = now
	}
	if lvl, _ := m["level"].(string); (lvl == "WARN" || lvl == "ERROR") && len(in.warnings) < 20 {
		in.warnings = append(in.warnings, line)
	}
	switch {
	case msg == "started" && job != "":
		if len(in.runs[job]) < 100000 {
			in.runs[job] = append(in.runs[job], now)
		}
		if _, ok := in.started[job]; !ok {
			in.started[job] = now
			if pid, ok := m["pid"].(float64); ok {
				in.jobPids[job] = int(pid)
			}
		}
	case msg == "exited" && job != "":
		if _, ok := in.exited[job]; !ok {
			in.exited[job] = now
		}
	case msg == "stopped" && job == "":
		in.stopped = true
		switch v := m["took"].(type) {
		case string: // "1.5s" (docs/configuration.md#logging-pilotfishs-own-log)
			in.took, _ = time.ParseDuration(v)
		case float64: // nanoseconds, from builds before durations were written as text
			in.took = time.Duration(v)
		}
		if c, ok := m["exit_code"].(float64); ok {
			in.logExit = int(c)
		}
	}
}

// notifier lets goroutines wait for a condition on the state mu guards: whoever changes
// that state calls broadcast with mu held.
type notifier struct {
	mu      sync.Mutex
	changed chan struct{}
}

// broadcast wakes every until; call with mu held.
func (n *notifier) broadcast() {
	if n.changed != nil {
		close(n.changed)
	}
	n.changed = make(chan struct{})
}

// until waits until cond (called with mu held) holds or timeout passes.
func (n *notifier) until(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		n.mu.Lock()
		ok := cond()
		if n.changed == nil {
			n.changed = make(chan struct{})
		}
		ch := n.changed
		n.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			n.mu.Lock()
			defer n.mu.Unlock()
			return cond()
		}
	}
}

func (in *instance) isDone() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.done
}

// waitJobs waits until every named job logged "started"; it returns the time from exec to
// the last of those lines.
func (in *instance) waitJobs(timeout time.Duration, names []string) (time.Duration, error) {
	var last time.Time
	n := 0
	in.until(timeout, func() bool {
		n = 0
		last = time.Time{}
		for _, name := range names {
			if t, ok := in.started[name]; ok {
				n++
				if t.After(last) {
					last = t
				}
			}
		}
		return n == len(names) || in.done
	})
	if n != len(names) {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.done {
			return 0, fmt.Errorf("pilotfish exited (%s) with only %d/%d jobs started", in.exitState, n, len(names))
		}
		return 0, fmt.Errorf("timeout: only %d/%d jobs started after %s", n, len(names), timeout)
	}
	return last.Sub(in.execAt), nil
}

// stopResult is how pilotfish answered SIGTERM.
type stopResult struct {
	wall     time.Duration // SIGTERM → process exit, seen from here
	took     time.Duration // its own "stopped" line's took
	exitCode int
}

// terminate sends SIGTERM to pilotfish and waits for it to exit. It fails on a timeout, a
// missing "stopped" line or an exit code other than 0.
func (in *instance) terminate(timeout time.Duration) (stopResult, error) {
	var r stopResult
	sent := time.Now()
	if err := syscall.Kill(in.pid, syscall.SIGTERM); err != nil {
		return r, fmt.Errorf("cannot send SIGTERM: %v", err)
	}
	if !in.until(timeout, func() bool { return in.done }) {
		in.kill()
		return r, fmt.Errorf("pilotfish did not exit within %s of SIGTERM (killed)", timeout)
	}
	// The last log lines may still be in the pipe when wait4 returns.
	in.until(2*time.Second, func() bool { return in.stopped })
	in.mu.Lock()
	defer in.mu.Unlock()
	r.wall = in.exitAt.Sub(sent)
	r.took = in.took
	r.exitCode = in.exitCode
	switch {
	case in.exitCode != 0:
		return r, fmt.Errorf("exit code %d (%s) after SIGTERM, want 0", in.exitCode, in.exitState)
	case !in.stopped:
		return r, fmt.Errorf(`no "stopped" log line after SIGTERM`)
	case in.logExit != 0:
		return r, fmt.Errorf(`"stopped" line says exit_code %d, want 0`, in.logExit)
	}
	return r, nil
}

// kill ends pilotfish (and, under unshare, its whole namespace) at once.
func (in *instance) kill() {
	if !in.isDone() {
		_ = syscall.Kill(in.pid, syscall.SIGKILL)
		_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
		in.until(5*time.Second, func() bool { return in.done })
	}
}

// finish kills what is left of this run and reports processes that outlived pilotfish.
func (in *instance) finish() []string {
	in.kill()
	left := sweep()
	// Every writer of the pipes is gone now; the readers see EOF.
	ch := make(chan struct{})
	go func() { in.readers.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(2 * time.Second):
	}
	for _, f := range in.files {
		f.Close()
	}
	return left
}

// tailText is the last lines of output, for a failure report.
func (in *instance) tailText() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.tail) == 0 {
		return ""
	}
	return "\n      | " + strings.Join(in.tail, "\n      | ")
}
