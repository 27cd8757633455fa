package main

// The supervisors of the peer comparison (peers.go) and how each is given its jobs.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// peerSocket is the control socket, in the run's directory, of peers that have one.
const peerSocket = "ctl.sock"

// peer is one supervisor under comparison.
type peer struct {
	name    string // column heading
	bin     string // its binary; "" when it is not installed
	single  bool   // runs one command only (tini): no rows with several jobs
	mainCmd bool   // `… -- CMD` exits with CMD's status
	socket  bool   // answers GET /v1/status on DIR/ctl.sock
	// command writes the configuration of jobs into dir and returns the command line that
	// runs them; main, if not nil, is the main command (peers with mainCmd only).
	command func(bin, dir string, jobs []peerJob, main []string) ([]string, error)
}

// peerJob is a job: a /bin/sh script, run as `/bin/sh -c SCRIPT` (s6: as the run script).
type peerJob struct{ name, script string }

// peerList resolves the peers named in names (comma-separated), printing a line for each
// one that is not installed.
func peerList(names, pilotfish, floor string) []*peer {
	all := map[string]*peer{
		"pilotfish":   {name: "pilotfish", bin: pilotfish, mainCmd: true, socket: true, command: pilotfishCommand},
		"floor":       {name: "Go floor", bin: floor, mainCmd: true, socket: true, command: floorCommand},
		"tini":        {name: "tini", bin: lookPath("tini"), single: true, mainCmd: true, command: tiniCommand},
		"s6":          {name: "s6", bin: lookPath("s6-svscan"), command: s6Command},
		"supervisord": {name: "supervisord", bin: lookPath("supervisord"), command: supervisordCommand},
	}
	var out []*peer
	for _, n := range strings.Split(names, ",") {
		n = strings.TrimSpace(n)
		p, ok := all[n]
		switch {
		case !ok:
			fmt.Printf("skip %s: not a peer (pilotfish, floor, tini, s6, supervisord)\n", n)
		case p.bin == "" && n == "floor":
			fmt.Printf("skip the Go floor: no -floor binary (bench/run builds bench/cmd/gofloor)\n")
		case p.bin == "":
			fmt.Printf("skip %s: not installed (bench/peers installs it with apt-get; as root: apt-get install %s)\n", n, debPackage[n])
		default:
			out = append(out, p)
		}
	}
	return out
}

var debPackage = map[string]string{"tini": "tini", "s6": "s6", "supervisord": "supervisor"}

func lookPath(name string) string {
	p, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	return p
}

// shq quotes s for /bin/sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func withMain(argv, main []string) []string {
	if main == nil {
		return argv
	}
	return append(append(argv, "--"), main...)
}

// pilotfishCommand: its defaults (text log, info) and a control socket in dir.
func pilotfishCommand(bin, dir string, jobs []peerJob, main []string) ([]string, error) {
	socket := fmt.Sprintf("control {\n  socket = %s\n}\n", hclStr(filepath.Join(dir, peerSocket)))
	return hclCommand(bin, filepath.Join(dir, "pilotfish.hcl"), socket, jobs, main)
}

func floorCommand(bin, dir string, jobs []peerJob, main []string) ([]string, error) {
	socket := fmt.Sprintf("socket = %s\n", hclStr(filepath.Join(dir, peerSocket)))
	return hclCommand(bin, filepath.Join(dir, "floor.hcl"), socket, jobs, main)
}

// hclCommand writes head and the jobs as HCL job blocks to path, the same for pilotfish and
// the Go floor, and returns `bin -config path [-- main]`.
func hclCommand(bin, path, head string, jobs []peerJob, main []string) ([]string, error) {
	var sb strings.Builder
	sb.WriteString(head)
	for _, j := range jobs {
		fmt.Fprintf(&sb, "\njob %s {\n  exec = %s\n}\n", hclStr(j.name), hclList("/bin/sh", "-c", j.script))
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		return nil, err
	}
	return withMain([]string{bin, "-config", path}, main), nil
}

// tiniCommand: `tini -- CMD`; tini runs one command, the job or the main command.
func tiniCommand(bin, _ string, jobs []peerJob, main []string) ([]string, error) {
	if main == nil {
		if len(jobs) != 1 {
			return nil, fmt.Errorf("tini runs one command, not %d jobs", len(jobs))
		}
		main = []string{"/bin/sh", "-c", jobs[0].script}
	}
	return withMain([]string{bin}, main), nil
}

// s6Command: `s6-svscan DIR/scan`, a service directory per job whose run script is the job's.
func s6Command(bin, dir string, jobs []peerJob, _ []string) ([]string, error) {
	scan := filepath.Join(dir, "scan")
	if err := os.MkdirAll(scan, 0o755); err != nil {
		return nil, err
	}
	for _, j := range jobs {
		sd := filepath.Join(scan, j.name)
		if err := os.Mkdir(sd, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(sd, "run"), []byte("#!/bin/sh\n"+j.script+"\n"), 0o755); err != nil {
			return nil, err
		}
	}
	return []string{bin, scan}, nil
}

// supervisordCommand: in the foreground, its log and the jobs' captured output in dir, no
// start delay (startsecs=0) and no restarts, as for the others.
func supervisordCommand(bin, dir string, jobs []peerJob, _ []string) ([]string, error) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "[supervisord]\nnodaemon=true\nuser=root\nlogfile=%s\npidfile=%s\nchildlogdir=%s\n",
		filepath.Join(dir, "supervisord.log"), filepath.Join(dir, "supervisord.pid"), dir)
	for _, j := range jobs {
		if strings.Contains(j.script, " ;") || strings.Contains(j.script, " #") || strings.Contains(j.script, "\n") {
			// " ;" and " #" start a comment in supervisord's INI files.
			return nil, fmt.Errorf("job %s: its script cannot be written in a supervisord.conf", j.name)
		}
		fmt.Fprintf(&sb, "\n[program:%s]\ncommand=/bin/sh -c %s\nstartsecs=0\nautorestart=false\n",
			j.name, strings.ReplaceAll(shq(j.script), "%", "%%"))
	}
	path := filepath.Join(dir, "supervisord.conf")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		return nil, err
	}
	return []string{bin, "-c", path}, nil
}
