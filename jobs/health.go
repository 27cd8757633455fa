package jobs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/internal/procfs"
	"github.com/pilotfish/pilotfish/internal/reaper"
)

// probeResult is one health check of one run.
type probeResult struct {
	runID    uint64
	ok       bool
	msg      string
	duration time.Duration
}

// firstProbe is the delay before the first check of a run; until the first success the
// delay doubles up to the configured interval, so a job that comes up fast is seen healthy
// fast without probing often afterwards.
const firstProbe = 100 * time.Millisecond

// prober checks one run of a job until its context ends.
type prober struct {
	h     *config.Health
	check func(ctx context.Context) (string, error)
	out   chan<- probeResult
	runID uint64
}

func (p *prober) loop(ctx context.Context) {
	delay := min(firstProbe, p.h.Interval)
	timer := time.NewTimer(delay)
	defer timer.Stop()
	everOK := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		cctx, cancel := context.WithTimeout(ctx, p.h.Timeout)
		t0 := time.Now()
		msg, err := p.check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		res := probeResult{runID: p.runID, ok: err == nil, msg: msg, duration: time.Since(t0)}
		if err != nil {
			res.msg = err.Error()
		}
		select {
		case p.out <- res:
		case <-ctx.Done():
			return
		}
		everOK = everOK || res.ok
		if everOK {
			delay = p.h.Interval
		} else {
			delay = min(2*delay, p.h.Interval)
		}
		timer.Reset(delay)
	}
}

// newCheck builds the periodic check for h, or nil for the log probe (which watches output
// instead). pid is the run's process.
func (j *Job) newCheck(h *config.Health, pid int, env []string) func(ctx context.Context) (string, error) {
	switch h.Probe() {
	case "http":
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		return func(ctx context.Context) (string, error) { return httpCheck(ctx, client, h.HTTP) }
	case "tcp":
		return func(ctx context.Context) (string, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", h.TCP)
			if err != nil {
				return "", err
			}
			c.Close()
			return "connected to " + h.TCP, nil
		}
	case "port":
		return func(context.Context) (string, error) { return portCheck(h.Port, pid) }
	case "exec":
		return func(ctx context.Context) (string, error) { return j.execCheck(ctx, h.Exec, env) }
	}
	return nil
}

func httpCheck(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 400 {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return "GET " + url + ": " + resp.Status, nil
}

// execCheck runs the probe command with the job's environment, directory and user; exit 0
// passes. Its output (first 1 KiB) is the check's message; without output, its exit status.
func (j *Job) execCheck(ctx context.Context, argv []string, env []string) (string, error) {
	path, err := lookPath(argv[0], envValue(env, "PATH"), j.cfg.Dir)
	if err != nil {
		return "", err
	}
	cred, home, err := credential(j.cfg.User, j.cfg.Group)
	if err != nil {
		return "", err
	}
	if cred != nil {
		env = userEnv(env, home)
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return "", err
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	proc, err := j.rt.Spawner.Spawn(reaper.Spec{Path: path, Args: argv, Env: env, Dir: j.cfg.Dir,
		Files: []*os.File{devnull, w, w}, Sys: &syscall.SysProcAttr{Setpgid: true, Credential: cred}})
	w.Close()
	if err != nil {
		r.Close()
		return "", err
	}
	outc := make(chan string, 1)
	go func() {
		defer r.Close()
		b, _ := io.ReadAll(io.LimitReader(r, 1024))
		_, _ = io.Copy(io.Discard, r)
		outc <- strings.TrimSpace(string(b))
	}()
	var st reaper.Status
	select {
	case st = <-proc.Done:
	case <-ctx.Done():
		_ = syscall.Kill(-proc.Pid, syscall.SIGKILL)
		<-proc.Done
		return "", fmt.Errorf("%s: timed out", argv[0])
	}
	var out string
	select {
	case out = <-outc:
	case <-time.After(outputDrain):
	}
	if out == "" { // the log line says more than check=""
		msg := fmt.Sprintf("%s: %s (no output)", argv[0], st)
		if !st.Success() {
			return "", errors.New(msg)
		}
		return msg, nil
	}
	if !st.Success() {
		return "", fmt.Errorf("%s: %s: %s", argv[0], st, out)
	}
	return out, nil
}

// logMatcher passes the log probe once a line of the run's output matches.
func (j *Job) logMatcher(expr string, runID uint64) func([]byte) {
	re := regexp.MustCompile(expr) // validated with the config
	var once sync.Once
	var matched atomic.Bool
	return func(line []byte) {
		if matched.Load() || !re.Match(line) {
			return // once healthy, lines are not matched any more
		}
		matched.Store(true)
		once.Do(func() {
			res := probeResult{runID: runID, ok: true, msg: "log matched: " + string(line)}
			go func() {
				select {
				case j.healthC <- res:
				case <-j.loopDone:
				}
			}()
		})
	}
}

// portCheck passes when something in the job's process tree listens on the TCP port.
func portCheck(port, pid int) (string, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := listeningInodes(f, port, inodes); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	if len(inodes) == 0 {
		return "", fmt.Errorf("nothing listens on port %d", port)
	}
	for _, p := range processTree(pid) {
		fds, err := os.ReadDir("/proc/" + strconv.Itoa(p) + "/fd")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink("/proc/" + strconv.Itoa(p) + "/fd/" + fd.Name())
			if err == nil && strings.HasPrefix(link, "socket:[") && inodes[link[8:len(link)-1]] {
				return fmt.Sprintf("port %d is listened on by pid %d", port, p), nil
			}
		}
	}
	return "", fmt.Errorf("port %d is in use, but not by this job's processes", port)
}

// listeningInodes adds the socket inodes of LISTEN sockets on port found in a
// /proc/net/tcp-format file.
func listeningInodes(file string, port int, into map[string]bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if p, err := strconv.ParseUint(hexPort, 16, 16); ok && err == nil && int(p) == port {
			into[fields[9]] = true
		}
	}
	return sc.Err()
}

// processTree returns pid, its descendants, and the members of its process group.
func processTree(root int) []int {
	children := map[int][]int{}
	tree := map[int]bool{root: true}
	_ = procfs.Scan(func(p procfs.Proc) {
		children[p.PPid] = append(children[p.PPid], p.Pid)
		if p.Pgrp == root {
			tree[p.Pid] = true
		}
	})
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			tree[c] = true
			queue = append(queue, c)
		}
	}
	out := make([]int, 0, len(tree))
	for p := range tree {
		out = append(out, p)
	}
	return out
}
