package integration

// The examples users copy (examples/*) run as their READMEs say: each is started as PID 1
// from a copy of its directory, checked, and stopped with SIGTERM.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
	"github.com/pilotfish/pilotfish/integration_tests/consulagent"
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

// requireNginx skips a test without nginx, unless the suite must run everything (CI).
func requireNginx(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("nginx"); err != nil {
		if os.Getenv(consulagent.EnvRequire) == "1" {
			t.Fatal("nginx is not installed (Debian package nginx); .ci/run installs it")
		}
		t.Skip("nginx is not installed (Debian package nginx)")
	}
}

// curlGet fetches url with curl(1), as a user would; "" on failure.
func curlGet(t testing.TB, url string) string {
	t.Helper()
	out, err := exec.Command("curl", "-sS", "--max-time", "2", url).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// The nginx example, run as its README says, as PID 1: curl through nginx reaches both
// backends; a stopped backend leaves the upstreams and gets no traffic; started again it
// comes back.
func TestExampleNginxUpstreams(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	requireCurl(t)
	a := consulagent.Start(t)
	dir := exampleDir(t, "nginx-upstreams")
	if err := os.Chmod(dir, 0o755); err != nil { // nginx's workers run as another user
		t.Fatal(err)
	}
	ports := freePorts(t, 3)
	env := []string{"CONSUL_HTTP_ADDR=" + a.Addr(), "NGINX_PORT=" + strconv.Itoa(ports[0]),
		"BACKEND_A_PORT=" + strconv.Itoa(ports[1]), "BACKEND_B_PORT=" + strconv.Itoa(ports[2])}
	if res := runCmdEnv(t, dir, env, "validate", "-config", "pilotfish.hcl"); res.code != 0 {
		t.Fatalf("the example does not validate: %+v", res)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "pilotfish.hcl"))
	p := start(t, opts{Dir: dir, Config: string(data), ConfigArg: "pilotfish.hcl", Env: env})
	sock := filepath.Join(dir, "pilotfish.sock")
	waitPing(t, p, sock, 10*time.Second)
	cl := client.New(sock)
	url := fmt.Sprintf("http://127.0.0.1:%d/", ports[0])

	// Both backends answer through nginx.
	seen := map[string]bool{}
	waitFor(t, 30*time.Second, func() bool {
		seen[curlGet(t, url)] = true
		return seen["hello from backend a"] && seen["hello from backend b"]
	}, "both backends through nginx (seen %v)", seen)
	up := filepath.Join(dir, "run", "upstreams.conf")
	f, _ := readTmpl(t, up)
	if !strings.Contains(f.text, fmt.Sprintf("server 127.0.0.1:%d;", ports[1])) || !strings.Contains(f.text, fmt.Sprintf("server 127.0.0.1:%d;", ports[2])) {
		t.Fatalf("upstreams = %q", f.text)
	}

	// Stop backend a: it leaves the file, and nginx (reloaded) sends it nothing.
	if _, err := cl.Stop(ctxFor(t, 20*time.Second), "backend-a"); err != nil {
		t.Fatal(err)
	}
	waitTmpl(t, 10*time.Second, up, "backend a gone", func(s string) bool { return !strings.Contains(s, strconv.Itoa(ports[1])) })
	run := 0
	waitFor(t, 15*time.Second, func() bool {
		if curlGet(t, url) == "hello from backend b" {
			run++
		} else {
			run = 0
		}
		return run >= 10
	}, "ten answers in a row from backend b alone")

	// Start it again: once healthy it is back.
	if _, err := cl.Start(ctxFor(t, 20*time.Second), "backend-a"); err != nil {
		t.Fatal(err)
	}
	waitTmpl(t, 15*time.Second, up, "backend a back", has(fmt.Sprintf("server 127.0.0.1:%d;", ports[1])))
	seen = map[string]bool{}
	waitFor(t, 15*time.Second, func() bool {
		seen[curlGet(t, url)] = true
		return seen["hello from backend a"] && seen["hello from backend b"]
	}, "both backends again (seen %v)", seen)

	// The reload job ran for the later renders; nginx itself never restarted.
	nginx, err := cl.Job(ctxFor(t, 5*time.Second), "nginx")
	if err != nil || nginx.State != "running" || nginx.Restarts != 0 {
		t.Errorf("nginx = %+v %v, want running with no restart", nginx, err)
	}
	stopExample(t, p)
	// Everything pilotfish registered is gone.
	c := consulClient(t, a)
	if ids := c.passingIDs("backend-a"); len(ids) != 0 {
		t.Errorf("backend-a left registered: %v", ids)
	}
}

// The config-from-env example as its README runs it: the app reads the file rendered from
// the environment at start-up, and a putenv restarts it with the new file.
func TestExampleConfigFromEnv(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed")
	}
	dir := exampleDir(t, "config-from-env")
	port := freePort(t)
	env := []string{"APP_PORT=" + strconv.Itoa(port), "APP_GREETING=bonjour", "APP_ALLOWED_HOSTS=Example.com, localhost"}
	data, _ := os.ReadFile(filepath.Join(dir, "pilotfish.hcl"))
	p := start(t, opts{Dir: dir, Config: string(data), ConfigArg: "pilotfish.hcl", Env: env})
	sock := filepath.Join(dir, "pilotfish.sock")
	waitPing(t, p, sock, 10*time.Second)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var got string
	waitFor(t, 15*time.Second, func() bool { got = curlGet(t, url); return got != "" }, "the app to answer")
	if got != "bonjour (allowed hosts: example.com, localhost)" {
		t.Errorf("the app answered %q", got)
	}
	if st, err := os.Stat(filepath.Join(dir, "run", "app.ini")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("run/app.ini: %v %v, want mode 0600", st, err)
	}
	if res := runCmd(t, dir, "putenv", "-socket", sock, "APP_GREETING=hola"); res.code != 0 {
		t.Fatalf("putenv: %+v", res)
	}
	waitFor(t, 15*time.Second, func() bool { got = curlGet(t, url); return strings.HasPrefix(got, "hola") }, "the app restarted with the new greeting (last %q)", got)
	stopExample(t, p)
}
