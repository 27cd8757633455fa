package core

import (
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/pilotfish/pilotfish/jobs"
)

// outerNotify speaks sd_notify to whoever started pilotfish with NOTIFY_SOCKET (systemd,
// or a container runtime that supports it): READY=1 once every job with a health check or
// readiness has been healthy once, STATUS= with a one-line summary, STOPPING=1 at
// shutdown. Only the supervisor loop uses it.
type outerNotify struct {
	addr   *net.UnixAddr
	ready  bool
	status string
	seen   map[string]bool // jobs with health that have been healthy once
}

// newOuterNotify returns nil when NOTIFY_SOCKET is not set. "@name" is an abstract socket.
func newOuterNotify(env []string) *outerNotify {
	path := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "NOTIFY_SOCKET="); ok {
			path = v
		}
	}
	if path == "" {
		return nil
	}
	return &outerNotify{addr: &net.UnixAddr{Name: path, Net: "unixgram"}, seen: map[string]bool{}}
}

func (n *outerNotify) send(msg string) {
	if n == nil {
		return
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(msg))
}

// update sends READY=1 the first time every job with health has been healthy (or is
// stopped), and STATUS=
// when the summary changed.
func (n *outerNotify) update(list []*jobs.Job) {
	if n == nil {
		return
	}
	counts := map[string]int{}
	healthy, withHealth := 0, 0
	allSeen := true
	for _, j := range list {
		st := j.Status()
		counts[string(st.State)]++
		if !st.HasHealth {
			continue
		}
		withHealth++
		if st.Health == jobs.HealthHealthy {
			healthy++
			n.seen[st.Name] = true
		}
		// A stopped job (autostart = false, pilotfish stop JOB) is not meant to be up.
		allSeen = allSeen && (n.seen[st.Name] || st.State == jobs.Stopped)
	}
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
	}
	status := fmt.Sprintf("%d jobs: %s", len(list), strings.Join(parts, ", "))
	if withHealth > 0 {
		status += fmt.Sprintf("; %d/%d healthy", healthy, withHealth)
	}
	msg := ""
	if !n.ready && allSeen {
		n.ready = true
		msg += "READY=1\n"
		if pid := os.Getpid(); pid != 1 {
			// PID 1 of a container's namespace means nothing to the host; elsewhere the
			// host learns which process is the service's.
			msg += "MAINPID=" + fmt.Sprint(pid) + "\n"
		}
	}
	if status != n.status {
		n.status = status
		msg += "STATUS=" + status + "\n"
	}
	if msg != "" {
		n.send(msg)
	}
}

func (n *outerNotify) stopping() {
	n.send("STOPPING=1\nSTATUS=shutting down\n")
}

// withoutNotifySocket keeps the host's NOTIFY_SOCKET away from the jobs: only pilotfish
// speaks to the host; notify jobs get a socket of their own.
func withoutNotifySocket(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			out = append(out, kv)
		}
	}
	return out
}

// runtimeDir is where per-job sockets live: /run/pilotfish, or a private temporary
// directory when /run cannot be written.
func runtimeDir() string {
	if err := os.MkdirAll("/run/pilotfish", 0o755); err == nil {
		return "/run/pilotfish"
	}
	dir, err := os.MkdirTemp("", "pilotfish-")
	if err != nil {
		return os.TempDir()
	}
	return dir
}
