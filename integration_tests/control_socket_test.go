package integration

// The control socket itself (docs/configuration.md control {}, docs/guarantees.md#10): its mode and group, its default
// place, and its life across a crashed daemon.

import (
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// statSocket returns the socket's permission bits and owner group, failing if it is not a
// socket.
func statSocket(t testing.TB, path string) (os.FileMode, int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("%s is %v, not a socket", path, fi.Mode().Type())
	}
	return fi.Mode().Perm(), int(fi.Sys().(*syscall.Stat_t).Gid)
}

// docs/configuration.md, docs/guarantees.md#10: the socket is 0600 unless configured otherwise, also at the default path
// /var/run/pilotfish.sock, where the CLI finds it without -socket.
func TestControlSocketDefaultMode(t *testing.T) {
	t.Parallel()
	_, sock := startCtl(t, opts{Config: jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`})
	if mode, _ := statSocket(t, sock); mode != 0o600 {
		t.Errorf("socket mode %04o, want 0600", mode)
	}

	// The default socket, seen from inside the container: a job stats it and runs the CLI
	// without -socket or $PILOTFISH_SOCKET.
	p := start(t, opts{Config: jsonLogs + `
job "probe" {
  exec = ` + sh(`stat -L -c '%a %F' /var/run/pilotfish.sock > "$TESTDIR/stat.txt"; "$PF_BIN" ping > "$TESTDIR/ping.txt" 2>&1; echo "exit $?" >> "$TESTDIR/ping.txt"; exec sleep 1000`) + `
  env  = { PF_BIN = ` + hclString(pilotfishBin) + `, PILOTFISH_SOCKET = "" }
}
`})
	pingFile := filepath.Join(p.Dir, "ping.txt")
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(readFile(t, pingFile), "exit ") }, "the job to ping the default socket")
	if got := strings.TrimSpace(readFile(t, filepath.Join(p.Dir, "stat.txt"))); got != "600 socket" {
		t.Errorf("/var/run/pilotfish.sock inside the container: %q, want \"600 socket\"", got)
	}
	if got := readFile(t, pingFile); !strings.HasPrefix(got, "ok (pilotfish ") || !strings.HasSuffix(got, "exit 0\n") {
		t.Errorf("pilotfish ping inside the container with the default socket: %q", got)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// docs/configuration.md: mode = "0660" with a group gives that group access; a mode with rights for
// others is refused; an unknown group stops pilotfish from starting.
func TestControlSocketModeAndGroup(t *testing.T) {
	t.Parallel()
	g, err := user.LookupGroup("daemon")
	if err != nil {
		t.Skip("no group daemon on this system")
	}
	gid, _ := strconv.Atoi(g.Gid)
	for _, group := range []string{"daemon", g.Gid} {
		dir := t.TempDir()
		sock := filepath.Join(dir, "pf.sock")
		p := start(t, opts{Dir: dir, Config: jsonLogs + `
control {
  socket = ` + hclString(sock) + `
  mode   = "0660"
  group  = "` + group + `"
}
job "steady" {
  exec = "sleep 1000"
}
`})
		waitPing(t, p, sock, 10*time.Second)
		mode, owner := statSocket(t, sock)
		if mode != 0o660 || owner != gid {
			t.Errorf("group %q: socket mode %04o group %d, want 0660 and %d", group, mode, owner, gid)
		}
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(10 * time.Second); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
	}

	// World rights are a configuration error.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "open.hcl"), "control {\n  socket = \"/tmp/x.sock\"\n  mode = \"0666\"\n}\njob \"a\" {\n  exec = \"true\"\n}\n", 0o644)
	if r := runCmd(t, dir, "validate", "-config", "open.hcl"); r.code != 1 || !strings.Contains(r.stderr, "open.hcl:3:") {
		t.Errorf("validate with mode 0666: exit %d, stderr %q; want 1 and a diagnostic on line 3", r.code, r.stderr)
	}

	// An unknown group: pilotfish says so and exits non-zero, without running any job.
	sock := filepath.Join(dir, "pf.sock")
	p := start(t, opts{Dir: dir, Config: jsonLogs + `
control {
  socket = ` + hclString(sock) + `
  mode   = "0660"
  group  = "no-such-group-pf"
}
job "marker" {
  exec = ` + sh(`touch "$TESTDIR/ran"; exec sleep 1000`) + `
}
`})
	if code := p.Wait(10 * time.Second); code == 0 {
		t.Errorf("pilotfish with an unknown socket group exited 0")
	}
	if !strings.Contains(p.Stderr.String(), "no-such-group-pf") {
		t.Errorf("the error does not name the group:\n%s", p.Stderr.String())
	}
	if exists(filepath.Join(dir, "ran")) {
		t.Errorf("a job ran although the control socket could not be set up")
	}
	if exists(sock) {
		t.Errorf("the half set-up socket was left behind")
	}
}

// A socket file left by a pilotfish that was killed (SIGKILL: no cleanup) is replaced at
// the next start; a socket that a live daemon answers on is not taken over; a file that is
// not a socket is not deleted.
func TestControlStaleSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "pf.sock")
	cfg := func(job string) string {
		return jsonLogs + controlBlock(sock) + "\njob \"" + job + "\" {\n  exec = \"sleep 1000\"\n}\n"
	}
	first := start(t, opts{Dir: dir, Config: cfg("first")})
	waitPing(t, first, sock, 10*time.Second)
	first.Signal(syscall.SIGKILL)
	first.Wait(10 * time.Second)
	if _, err := os.Lstat(sock); err != nil {
		t.Fatalf("the killed pilotfish left no socket file behind (%v); nothing to test", err)
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		t.Fatalf("the killed pilotfish's socket still answers")
	}

	second := start(t, opts{Dir: dir, Config: cfg("second")})
	waitPing(t, second, sock, 10*time.Second)
	a := newGoAPI(t, sock)
	st := must[client.Status](t, "status")(a.Status())
	if len(st.Jobs) != 1 || st.Jobs[0].Name != "second" {
		t.Errorf("the socket answers with jobs %+v, want the new daemon's job second", st.Jobs)
	}
	if mode, _ := statSocket(t, sock); mode != 0o600 {
		t.Errorf("replaced socket mode %04o, want 0600", mode)
	}

	// A third daemon on the same socket while the second runs: refused, the second keeps it.
	third := start(t, opts{Dir: t.TempDir(), Plain: true, Config: cfg("third")})
	if code := third.Wait(10 * time.Second); code == 0 {
		t.Errorf("a second daemon on a socket in use exited 0")
	}
	if !strings.Contains(third.Stderr.String(), sock) {
		t.Errorf("the refusal does not name the socket:\n%s", third.Stderr.String())
	}
	st = must[client.Status](t, "status")(a.Status())
	if len(st.Jobs) != 1 || st.Jobs[0].Name != "second" {
		t.Errorf("after a refused takeover the socket answers with %+v, want second's job", st.Jobs)
	}
	second.Signal(syscall.SIGTERM)
	if code := second.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}

	// A regular file where the socket should be: refused and left alone.
	writeFile(t, sock, "precious\n", 0o644)
	fourth := start(t, opts{Dir: t.TempDir(), Plain: true, Config: cfg("fourth")})
	if code := fourth.Wait(10 * time.Second); code == 0 {
		t.Errorf("pilotfish started over a regular file at the socket path")
	}
	if got := readFile(t, sock); got != "precious\n" {
		t.Errorf("the regular file at the socket path was changed to %q", got)
	}
}
