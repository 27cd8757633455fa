// Command gofloor is the "Go floor" of `make bench-peers`: the least a supervisor written in Go
// with an HCL configuration and an HTTP API on a unix socket costs. It does what such a
// supervisor cannot skip, done plainly: read the config with gohcl, listen on the socket
// (GET /v1/ping, GET /v1/status) before the first job starts, fork/exec every job in its own
// process group, reap every child (orphans too, as PID 1 or as a child subreaper), and on
// SIGTERM or SIGINT stop every job (SIGTERM to its group, SIGKILL after 10s) and exit: 0, or
// the main command's status with `-- CMD`. No restarts, triggers, health checks or output
// capture: jobs inherit its stdout and stderr.
//
//	gofloor -config floor.hcl          # socket = "/run/floor.sock"  job "a" { exec = ["sleep", "9"] }
//	gofloor [-config floor.hcl] -- CMD ARGS
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

const (
	stopTimeout         = 10 * time.Second
	prSetChildSubreaper = 36 // linux/prctl.h; not in package syscall
)

type config struct {
	Socket string      `hcl:"socket,optional"`
	Jobs   []jobConfig `hcl:"job,block"`
}

type jobConfig struct {
	Name string   `hcl:"name,label"`
	Exec []string `hcl:"exec"`
}

// job is one supervised process; its exported fields are its /v1/status entry.
type job struct {
	Name     string    `json:"name"`
	State    string    `json:"state"` // running, exited, failed
	Pid      int       `json:"pid"`
	ExitCode int       `json:"exit_code"`
	Since    time.Time `json:"since"`
	argv     []string
}

type supervisor struct {
	mu    sync.Mutex // guards the jobs' fields; the main loop alone writes them
	jobs  []*job
	byPid map[int]*job
	main  *job
}

func main() {
	// Handlers first: a SIGTERM from now on is a shutdown, and no SIGCHLD is lost.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	cfgPath := flag.String("config", "", "HCL configuration file")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)

	var cfg config
	if *cfgPath != "" {
		f, diags := hclparse.NewParser().ParseHCLFile(*cfgPath)
		if !diags.HasErrors() {
			diags = gohcl.DecodeBody(f.Body, nil, &cfg)
		}
		if diags.HasErrors() {
			log.Print(diags)
			os.Exit(2)
		}
	} else if flag.NArg() == 0 {
		log.Print("usage: gofloor -config FILE [-- CMD ARGS]")
		os.Exit(2)
	}
	if os.Getpid() != 1 {
		// Orphans of our jobs come back to us, as they would to PID 1.
		if err := prctl(prSetChildSubreaper, 1); err != nil {
			log.Printf("cannot become a child subreaper: %v", err)
		}
	}

	s := &supervisor{byPid: map[int]*job{}}
	for _, jc := range cfg.Jobs {
		s.jobs = append(s.jobs, &job{Name: jc.Name, argv: jc.Exec})
	}
	if flag.NArg() > 0 {
		s.main = &job{Name: "main", argv: flag.Args()}
		s.jobs = append(s.jobs, s.main)
	}
	if cfg.Socket == "" {
		cfg.Socket = "/var/run/gofloor.sock"
	}
	if err := s.serve(cfg.Socket); err != nil {
		log.Print(err)
		os.Exit(1)
	}
	for _, j := range s.jobs {
		s.start(j)
	}
	os.Exit(s.loop(sigs))
}

// serve answers the control API on a unix socket, from its own goroutines.
func (s *supervisor) serve(path string) error {
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		jobs := make([]job, len(s.jobs))
		for i, j := range s.jobs {
			jobs[i] = *j
		}
		s.mu.Unlock()
		writeJSON(w, map[string]any{"jobs": jobs})
	})
	go func() { log.Print(http.Serve(ln, mux)) }()
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// start fork/execs j; it runs on the main loop only, so the reaper cannot see its pid first.
func (s *supervisor) start(j *job) {
	path, err := exec.LookPath(j.argv[0])
	var pid int
	if err == nil {
		pid, err = syscall.ForkExec(path, j.argv, &syscall.ProcAttr{
			Env:   os.Environ(),
			Files: []uintptr{0, 1, 2},
			Sys:   &syscall.SysProcAttr{Setpgid: true},
		})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j.Since = time.Now()
	if err != nil {
		j.State, j.ExitCode = "failed", 127
		log.Printf("job %s: %v", j.Name, err)
		return
	}
	j.State, j.Pid = "running", pid
	s.byPid[pid] = j
	log.Printf("job %s started, pid %d", j.Name, pid)
}

// loop handles signals until every job has exited after a shutdown (or the main command
// exited) and returns the exit code.
func (s *supervisor) loop(sigs chan os.Signal) int {
	var deadline <-chan time.Time
	stopping := false
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGCHLD {
				s.reap()
			} else if !stopping {
				log.Printf("%v: stopping", sig)
				stopping = true
				s.signalAll(syscall.SIGTERM)
				deadline = time.After(stopTimeout)
			}
		case <-deadline:
			log.Printf("stop timeout: killing what is left")
			s.signalAll(syscall.SIGKILL)
			deadline = nil
		}
		if s.main != nil && s.main.State != "running" && !stopping {
			stopping = true
			s.signalAll(syscall.SIGTERM)
			deadline = time.After(stopTimeout)
		}
		if stopping && s.running() == 0 {
			if s.main != nil {
				return s.main.ExitCode
			}
			return 0
		}
	}
}

// reap collects every exited child; orphans are reaped and forgotten.
func (s *supervisor) reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		s.mu.Lock()
		if j := s.byPid[pid]; j != nil {
			delete(s.byPid, pid)
			j.State, j.Pid, j.Since = "exited", 0, time.Now()
			j.ExitCode = ws.ExitStatus()
			if ws.Signaled() {
				j.ExitCode = 128 + int(ws.Signal())
			}
			log.Printf("job %s exited, code %d", j.Name, j.ExitCode)
		}
		s.mu.Unlock()
	}
}

func (s *supervisor) signalAll(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for pid := range s.byPid {
		_ = syscall.Kill(-pid, sig)
	}
}

func (s *supervisor) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byPid)
}

func prctl(option, arg uintptr) error {
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, option, arg, 0); e != 0 {
		return fmt.Errorf("prctl: %w", e)
	}
	return nil
}
