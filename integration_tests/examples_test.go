package integration

// The examples users copy (examples/*) run as their READMEs say: each is started as PID 1
// from a copy of its directory, checked, and stopped with SIGTERM.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// exampleDir copies examples/NAME into a fresh directory and returns it.
func exampleDir(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "examples", name)
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		info, _ := e.Info()
		writeFile(t, filepath.Join(dst, e.Name()), string(b), info.Mode().Perm())
	}
	return dst
}

// withBinOnPath puts pilotfish on PATH, as an image installs it: the examples' jobs call it.
func withBinOnPath(env ...string) []string {
	return append(env, "PATH="+filepath.Dir(pilotfishBin)+":"+os.Getenv("PATH"))
}

// stopExample ends an example with SIGTERM: exit code 0 within its budget.
func stopExample(t *testing.T, p *instance) {
	t.Helper()
	if code, took := p.SignalWait(syscall.SIGTERM, 20*time.Second); code != 0 {
		t.Fatalf("exit code %d after %s", code, took)
	}
}

func TestExampleQuickstart(t *testing.T) {
	t.Parallel()
	dir := exampleDir(t, "quickstart")
	p := start(t, opts{Dir: dir, ConfigArg: "pilotfish.hcl", Config: readFile(t, filepath.Join(dir, "pilotfish.hcl"))})
	sock := filepath.Join(dir, "pilotfish.sock")
	waitPing(t, p, sock, 10*time.Second)
	k := &ctlPF{instance: p, sock: sock, c: client.New(sock)}
	k.waitJob(20*time.Second, "app", func(j client.Job) bool { return j.State == "running" && j.Health == "healthy" }, "app healthy")
	p.WaitStdout(20*time.Second, `^\[report\] .* report: db.ready is there$`)
	stopExample(t, p)
	for _, line := range []string{"[drain] drained", "[cleanup] db cleaned up"} {
		if !strings.Contains(p.Stdout.String(), line) {
			t.Errorf("no %q at shutdown", line)
		}
	}
}

// The ContainerPilot configuration runs unchanged, the converted HCL committed beside it is
// what `convert` writes, and the converted file runs the same jobs.
func TestExampleContainerPilot(t *testing.T) {
	t.Parallel()
	dir := exampleDir(t, "containerpilot")
	conv := exec.Command(pilotfishBin, "convert", "containerpilot.json5")
	conv.Dir = filepath.Join("..", "examples", "containerpilot")
	for _, kv := range os.Environ() { // as committed: rendered with TELEMETRY_PORT unset
		if !strings.HasPrefix(kv, "TELEMETRY_PORT=") {
			conv.Env = append(conv.Env, kv)
		}
	}
	out, err := conv.Output()
	if err != nil {
		t.Fatalf("convert: %v", err)
	}
	if committed := readFile(t, filepath.Join(dir, "pilotfish.hcl")); committed != string(out) {
		t.Fatalf("examples/containerpilot/pilotfish.hcl is not what `pilotfish convert containerpilot.json5` writes now; run it again")
	}
	for _, file := range []string{"containerpilot.json5", "converted.hcl"} {
		t.Run(file, func(t *testing.T) {
			port := freePorts(t, 1)[0]
			env := withBinOnPath("CONTAINERPILOT_SOCKET="+filepath.Join(dir, file+".sock"), "TELEMETRY_PORT="+strconv.Itoa(port))
			if file == "converted.hcl" {
				c := exec.Command(pilotfishBin, "convert", "-o", file, "containerpilot.json5")
				c.Dir, c.Env = dir, append(os.Environ(), env...)
				if b, err := c.CombinedOutput(); err != nil {
					t.Fatalf("convert: %v\n%s", err, b)
				}
			}
			p := start(t, opts{Dir: dir, ConfigName: "unused.hcl", ConfigArg: file, Env: env})
			sock := filepath.Join(dir, file+".sock")
			waitPing(t, p, sock, 10*time.Second)
			k := &ctlPF{instance: p, sock: sock, c: client.New(sock)}
			k.waitJob(20*time.Second, "app", func(j client.Job) bool { return j.State == "running" && j.Health == "healthy" }, "app healthy")
			p.WaitStdout(20*time.Second, `^\[sensor\] sensor reported$`)
			k.waitMetric(10*time.Second, "app_sensor_runs", nil, func(v float64) bool { return v >= 1 })
			stopExample(t, p)
			if !strings.Contains(p.Stdout.String(), "[preStop] draining app") {
				t.Errorf("the preStop hook did not run")
			}
		})
	}
}

func TestExampleCronSyslogNotify(t *testing.T) {
	t.Parallel()
	dir := exampleDir(t, "cron-syslog-notify")
	sock := filepath.Join(dir, "pf.sock")
	p := start(t, opts{Dir: dir, ConfigArg: "pilotfish.hcl", Config: readFile(t, filepath.Join(dir, "pilotfish.hcl")),
		Env: withBinOnPath("SYSLOG_SOCKET="+filepath.Join(dir, "log.sock"), "PILOTFISH_SOCKET_PATH="+sock)})
	waitPing(t, p, sock, 10*time.Second)
	k := &ctlPF{instance: p, sock: sock, c: client.New(sock)}
	p.WaitStdout(20*time.Second, `^\[syslog\] .* user\.notice app: app up after notifyd\.healthy$`)
	k.waitJob(10*time.Second, "notifyd", func(j client.Job) bool {
		return j.Health == "healthy" && strings.HasPrefix(j.Status, "served ")
	}, "notifyd's status line")
	p.WaitStdout(20*time.Second, `^\[syslog\] .* user\.info report: app is up$`)
	stopExample(t, p)
}
