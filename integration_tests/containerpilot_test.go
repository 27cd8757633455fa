package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// A ContainerPilot v3 configuration run as it is (docs/migrating-from-containerpilot.md):
// the template over the environment, a chain of jobs, a health check, a pre-stop hook, a
// periodic sensor that calls `pilotfish -putmetric` as ContainerPilot's scripts call
// `containerpilot -putmetric`, and a custom metric.
const cpConfig = `{
  // ContainerPilot 3 syntax: comments, bare keys, single quotes, trailing commas.
  logging: { level: 'DEBUG', format: 'json' },
  stopTimeout: 5,
  control: { socket: '{{ .DIR }}/cp.sock' },
  jobs: [
    {
      name: 'preStart',
      exec: ['sh', '-c', 'echo prestart > {{ .DIR }}/prestart'],
    },
    {
      name: '{{ .APP | default "app" }}',
      exec: ['sh', '-c', 'touch {{ .DIR }}/ready; exec sleep 1000'],
      when: { source: 'preStart', once: 'exitSuccess' },
      health: { exec: 'test -f {{ .DIR }}/ready', interval: 1, ttl: 5, timeout: '2s' },
      restarts: 'unlimited',
      stopTimeout: '3s',
    },
    {
      name: 'after-healthy',
      exec: ['sh', '-c', 'echo "$PILOTFISH_EVENT" > {{ .DIR }}/after'],
      when: { source: '{{ .APP | default "app" }}', once: 'healthy' },
    },
    {
      name: 'preStop',
      exec: ['sh', '-c', 'echo stopping > {{ .DIR }}/prestop'],
      when: { source: '{{ .APP | default "app" }}', once: 'stopping' },
    },
    {
      name: 'sensor',
      exec: ['{{ .PF }}', '-putmetric', 'shop_orders_total=2'],
      when: { interval: '1s' },
    },
    {{ if .EXTRA }}
    { name: 'extra', exec: 'sh -c "echo {{ .EXTRA }} > {{ .DIR }}/extra"' },
    {{ end }}
    {
      name: 'echo',
      exec: ['sh', '-c', 'echo "{{ .GREETING | default "none" }}" > {{ .DIR }}/greeting; exec sleep 1000'],
    },
  ],
  telemetry: {
    port: 0,
    metrics: [ { namespace: 'shop', name: 'orders_total', help: 'Orders', type: 'counter' } ],
  },
}`

// startCP starts pilotfish as PID 1 with the ContainerPilot file named by $CONTAINERPILOT,
// as a ContainerPilot image does, and waits for its control socket.
func startCP(t *testing.T, env ...string) (*instance, *client.Client, string) {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "cp.sock")
	p := start(t, opts{Config: cpConfig, ConfigName: "containerpilot.json5", Dir: dir, NoConfig: true,
		Env: append([]string{"DIR=" + dir, "PF=" + pilotfishBin, "CONTAINERPILOT=" + filepath.Join(dir, "containerpilot.json5")}, env...)})
	waitPing(t, p, sock, 15*time.Second)
	return p, client.New(sock), dir
}

func TestContainerPilotConfigRuns(t *testing.T) {
	p, c, dir := startCP(t, "APP=web")
	ctx := ctxFor(t, 30*time.Second)
	events := followEvents(t, c)
	events.waitCode(15*time.Second, "web", "healthy", 1)
	waitFor(t, 10*time.Second, func() bool { return strings.TrimSpace(readIfExists(filepath.Join(dir, "after"))) == "healthy" },
		"the job triggered by web's healthy event")
	if got := readIfExists(filepath.Join(dir, "prestart")); got != "prestart\n" {
		t.Errorf("preStart wrote %q", got)
	}
	if readIfExists(filepath.Join(dir, "extra")) != "" {
		t.Error("the job inside {{ if .EXTRA }} ran without EXTRA")
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, j := range st.Jobs {
		names = append(names, j.Name)
	}
	if strings.Join(names, ",") != "preStart,web,after-healthy,preStop,sensor,echo" {
		t.Errorf("jobs %v", names)
	}
	// The sensor's `pilotfish -putmetric` reaches the daemon through $PILOTFISH_SOCKET.
	waitFor(t, 15*time.Second, func() bool {
		text, err := c.Metrics(ctx)
		return err == nil && metricIn(text, "shop_orders_total", nil) >= 4
	}, "two runs of the sensor adding 2 each to shop_orders_total")

	code, took := p.SignalWait(syscall.SIGTERM, 10*time.Second)
	if code != 0 || took > 6*time.Second {
		t.Errorf("exit %d after %s; want 0 within stopTimeout 5s + 1s", code, took)
	}
	if got := readIfExists(filepath.Join(dir, "prestop")); got != "stopping\n" {
		t.Errorf("the pre-stop hook wrote %q", got)
	}
}

func readIfExists(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// TestContainerPilotFlags runs ContainerPilot's command-line flags against a running daemon,
// the way the scripts of an Autopilot image call `containerpilot -putenv …`.
func TestContainerPilotFlags(t *testing.T) {
	_, c, dir := startCP(t)
	ctx := ctxFor(t, 30*time.Second)
	cfg := filepath.Join(dir, "containerpilot.json5")
	base := []string{"DIR=" + dir, "PF=" + pilotfishBin, "PILOTFISH_CONFIG="}
	cp := func(env []string, args ...string) result {
		t.Helper()
		return runCmdEnv(t, dir, append(append([]string{"PILOTFISH_SOCKET="}, base...), env...), args...)
	}
	viaConfig := []string{"CONTAINERPILOT=" + cfg}

	if r := cp(nil, "-config", cfg, "-ping"); r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("-ping: %d %q %q", r.code, r.stdout, r.stderr)
	}
	// $CONTAINERPILOT names the file whose control socket the flags talk to.
	waitFor(t, 10*time.Second, func() bool { return strings.TrimSpace(readIfExists(filepath.Join(dir, "greeting"))) == "none" }, "the first greeting")
	if r := cp(viaConfig, "-putenv", "GREETING=hello world=1", "-putenv", "OTHER"); r.code != 0 {
		t.Fatalf("-putenv: %d %s", r.code, r.stderr)
	}
	// -reload renders the template again with the new environment: echo changed, restarts.
	if r := cp(viaConfig, "-reload"); r.code != 0 {
		t.Fatalf("-reload: %d %s", r.code, r.stderr)
	}
	waitFor(t, 10*time.Second, func() bool {
		return strings.TrimSpace(readIfExists(filepath.Join(dir, "greeting"))) == "hello world=1"
	}, "echo restarted with GREETING from -putenv (value with '=' and a space intact)")

	before := metricOf(t, c, "shop_orders_total")
	if r := cp(viaConfig, "-putmetric", "shop_orders_total=10"); r.code != 0 {
		t.Fatalf("-putmetric: %d %s", r.code, r.stderr)
	}
	if after := metricOf(t, c, "shop_orders_total"); after < before+10 {
		t.Errorf("-putmetric: the counter went from %v to %v", before, after)
	}

	if r := cp(viaConfig, "-maintenance", "enable"); r.code != 0 {
		t.Fatalf("-maintenance enable: %d %s", r.code, r.stderr)
	}
	if st, err := c.Status(ctx); err != nil || !st.Maintenance {
		t.Fatalf("maintenance after -maintenance enable: %+v %v", st.Maintenance, err)
	}
	if r := cp(viaConfig, "-maintenance=disable"); r.code != 0 {
		t.Fatalf("-maintenance=disable: %d %s", r.code, r.stderr)
	}
	if st, err := c.Status(ctx); err != nil || st.Maintenance {
		t.Fatalf("maintenance after -maintenance disable: %+v %v", st.Maintenance, err)
	}
	if r := cp(viaConfig, "-maintenance", "sometimes"); r.code != 2 {
		t.Errorf("-maintenance sometimes: exit %d, want 2", r.code)
	}
	// Inside a job, $PILOTFISH_SOCKET is enough.
	if r := cp([]string{"PILOTFISH_SOCKET=" + filepath.Join(dir, "cp.sock")}, "-ping"); r.code != 0 {
		t.Errorf("-ping with $PILOTFISH_SOCKET: %d %s", r.code, r.stderr)
	}
	if r := cp([]string{"PILOTFISH_SOCKET=" + filepath.Join(dir, "nothing.sock")}, "-ping"); r.code != 3 {
		t.Errorf("-ping to no daemon: exit %d, want 3", r.code)
	}
	if r := cp(viaConfig, "-template"); r.code != 0 || !strings.Contains(r.stdout, "socket: '"+dir+"/cp.sock'") {
		t.Errorf("-template: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := cp(nil, "-version"); r.code != 0 || !strings.HasPrefix(r.stdout, "pilotfish ") {
		t.Errorf("-version: %d %q", r.code, r.stdout)
	}

	// The /v3 API as ContainerPilot's clients use it.
	sock := filepath.Join(dir, "cp.sock")
	if code, _, body := rawRequest(sock, "POST", "/v3/ping", nil, 5*time.Second); code != http.StatusOK {
		t.Errorf("POST /v3/ping: %d %s", code, body)
	}
	before = metricOf(t, c, "shop_orders_total")
	if code, _, body := rawRequest(sock, "POST", "/v3/metric", []byte(`{"shop_orders_total":"3"}`), 5*time.Second); code != http.StatusOK {
		t.Errorf("POST /v3/metric with a string value: %d %s", code, body)
	}
	if after := metricOf(t, c, "shop_orders_total"); after < before+3 {
		t.Errorf("/v3/metric: the counter went from %v to %v", before, after)
	}
}

func metricOf(t *testing.T, c *client.Client, name string) float64 {
	t.Helper()
	text, err := c.Metrics(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return metricIn(text, name, nil)
}

// TestContainerPilotValidatePlanConvert: validate, plan and convert of a real Autopilot
// Pattern configuration (../shared, beside the checkout), and of its conversion.
func TestContainerPilotValidatePlanConvert(t *testing.T) {
	src, err := os.ReadFile("../../shared/containerpilot-configs/12-containerpilot.json5")
	if err != nil {
		t.Skipf("the real ContainerPilot configurations are not beside the checkout: %v", err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "containerpilot.json5")
	writeFile(t, cfg, string(src), 0o644)
	env := []string{"PILOTFISH_CONFIG=", "CONTAINERPILOT=" + cfg}

	r := runCmdEnv(t, dir, env, "validate")
	if r.code != 0 || !strings.Contains(r.stdout, "valid (9 jobs") || !strings.Contains(r.stderr, "containerpilot.json5:87:7: warning: a watch's interval") {
		t.Fatalf("validate with $CONTAINERPILOT: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	plan := runCmdEnv(t, dir, env, "plan")
	if plan.code != 0 || !regexp.MustCompile(`(?m)^  serviceA .*\n(?: {32}.*\n)* {32}on stopping runs preStop \(hook\)\n {32}on stopped runs postStop \(hook\)$`).MatchString(plan.stdout) {
		t.Fatalf("plan: %d\n%s\n%s", plan.code, plan.stdout, plan.stderr)
	}
	conv := runCmdEnv(t, dir, env, "convert", "-o", filepath.Join(dir, "pilotfish.hcl"), cfg)
	if conv.code != 0 || !strings.Contains(conv.stderr, "converted to") {
		t.Fatalf("convert: %d\n%s", conv.code, conv.stderr)
	}
	hcl := runCmdEnv(t, dir, env, "plan", "-config", filepath.Join(dir, "pilotfish.hcl"))
	if hcl.code != 0 {
		t.Fatalf("plan of the converted file: %d\n%s", hcl.code, hcl.stderr)
	}
	body := func(s string) string { // without the file's name and the warnings
		s = s[strings.IndexByte(s, '\n'):]
		return s[:strings.Index(s, "\nwarnings:")]
	}
	if body(hcl.stdout) != body(plan.stdout) {
		t.Errorf("the converted file plans differently:\n%s\n---\n%s", hcl.stdout, plan.stdout)
	}
	if v := runCmdEnv(t, dir, env, "validate", "-config", filepath.Join(dir, "pilotfish.hcl")); v.code != 0 {
		t.Errorf("validate of the converted file: %d %s", v.code, v.stderr)
	}
	// A broken file: the diagnostic names the original line.
	writeFile(t, cfg, "{\n  jobs: [\n    { name: 'a', exec: 'x' }\n    { name: 'b', exec: 'y' }\n  ]\n}\n", 0o644)
	bad := runCmdEnv(t, dir, env, "validate")
	if bad.code != 1 || !regexp.MustCompile(`containerpilot\.json5:4:5: Invalid JSON5: .*comma missing after line 3`).MatchString(bad.stderr) {
		t.Errorf("validate of a broken file: %d\n%s", bad.code, bad.stderr)
	}
	if r := runCmdEnv(t, dir, env, "convert", cfg); r.code != 1 || r.stdout != "" {
		t.Errorf("convert of a broken file: %d %q", r.code, r.stdout)
	}
}
