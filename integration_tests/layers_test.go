package integration

// A configuration in layers (docs/configuration.md#configuration-in-layers) from the binary:
// repeated -config, directories, duplicates naming both positions, validate, plan, reload and
// SIGHUP reading the same set; and the command line's conveniences (docs/cli.md): -json,
// verb help, shell completion, plan and status of cron jobs.

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

const baseLayer = `
stop_timeout = "5s"
job "web" {
  exec = "sleep 1000"
}
`

const appLayer = `job "app" {
  exec = "sleep 1000"
  when {
    source = "web"
    once   = "started"
  }
}

job "drain" {
  exec = "true"
  when {
    source = "app"
    each   = "stopping"
  }
}

job "nightly" {
  kind     = "cron"
  schedule = "0 3 * * *"
  timezone = "UTC"
  exec     = "true"
}
`

// validate and plan read every file of a directory, or every -config, as one configuration.
func TestConfigLayersValidatePlan(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mkdirs(t, filepath.Join(dir, "conf.d"), filepath.Join(dir, "dup"))
	writeFile(t, filepath.Join(dir, "conf.d", "10-base.hcl"), baseLayer, 0o644)
	writeFile(t, filepath.Join(dir, "conf.d", "20-app.hcl"), appLayer, 0o644)
	writeFile(t, filepath.Join(dir, "conf.d", "README.md"), "not read", 0o644)
	writeFile(t, filepath.Join(dir, "extra.hcl"), "job \"extra\" {\n  exec = \"sleep 1000\"\n}\n", 0o644)

	r := runCmd(t, dir, "validate", "-config", "conf.d")
	if r.code != 0 || r.stdout != "conf.d: valid (2 files, 4 jobs, 0 warnings)\n" {
		t.Errorf("validate -config conf.d: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCmd(t, dir, "validate", "-config", "conf.d", "-config", "extra.hcl")
	if r.code != 0 || r.stdout != "conf.d, extra.hcl: valid (3 files, 5 jobs, 0 warnings)\n" {
		t.Errorf("validate of a directory and a file: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = runCmdEnv(t, dir, []string{"PILOTFISH_CONFIG=conf.d/10-base.hcl:extra.hcl"}, "validate")
	if r.code != 0 || r.stdout != "conf.d/10-base.hcl, extra.hcl: valid (2 files, 2 jobs, 0 warnings)\n" {
		t.Errorf("validate with $PILOTFISH_CONFIG a list: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// A job defined twice: both positions, and "1 error".
	writeFile(t, filepath.Join(dir, "dup", "a.hcl"), "job \"web\" {\n  exec = \"true\"\n}\n", 0o644)
	writeFile(t, filepath.Join(dir, "dup", "b.hcl"), "# the app\n\njob \"web\" {\n  exec = \"false\"\n}\n", 0o644)
	r = runCmd(t, dir, "validate", "-config", "dup")
	if r.code != 1 || r.stderr != "dup/b.hcl:3:5: job \"web\" is defined twice (first at dup/a.hcl:1:5)\ndup: 1 error\n" {
		t.Errorf("validate of a duplicate job: exit %d, stderr %q", r.code, r.stderr)
	}

	// Did you mean, for keys and for blocks.
	writeFile(t, filepath.Join(dir, "typo.hcl"), `job "web" {
  exec    = "sleep 1000"
  restart = "unlimited"
  helth {
    tcp = "127.0.0.1:1"
  }
}
consul {
  adress = "127.0.0.1:8500"
}
telemtry {
}
`, 0o644)
	r = runCmd(t, dir, "validate", "-config", "typo.hcl")
	for _, want := range []string{
		`typo.hcl:3:3: Unsupported argument: An argument named "restart" is not expected here. Did you mean "restarts"?`,
		`typo.hcl:4:3: Unsupported block type: Blocks of type "helth" are not expected here. Did you mean "health"?`,
		`typo.hcl:9:3: Unsupported argument: An argument named "adress" is not expected here. Did you mean "address"?`,
		`typo.hcl:11:1: Unsupported block type: Blocks of type "telemtry" are not expected here. Did you mean "telemetry"?`,
		"typo.hcl: 4 errors\n",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("validate typo.hcl: no %q in:\n%s", want, r.stderr)
		}
	}

	// validate -json: the diagnostics as objects, on stdout.
	var rep struct {
		Valid        bool     `json:"valid"`
		Files        []string `json:"files"`
		Jobs         int      `json:"jobs"`
		ErrorCount   int      `json:"error_count"`
		WarningCount int      `json:"warning_count"`
		Diagnostics  []struct {
			Severity, Summary, Detail, Message string
			Range                              *struct {
				Filename   string
				Start, End struct{ Line, Column, Byte int }
			}
		} `json:"diagnostics"`
		Plan *json.RawMessage `json:"plan"`
	}
	decode := func(r result) {
		t.Helper()
		rep.Plan, rep.Diagnostics = nil, nil
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, r.stdout)
		}
	}
	r = runCmd(t, dir, "validate", "-json", "-config", "dup")
	decode(r)
	if r.code != 1 || rep.Valid || rep.ErrorCount != 1 || rep.WarningCount != 0 || !slices.Equal(rep.Files, []string{"dup/a.hcl", "dup/b.hcl"}) || len(rep.Diagnostics) != 1 {
		t.Fatalf("validate -json of dup: exit %d, %+v", r.code, rep)
	}
	if d := rep.Diagnostics[0]; d.Severity != "error" || d.Range == nil || d.Range.Filename != "dup/b.hcl" || d.Range.Start.Line != 3 ||
		d.Range.Start.Column != 5 || d.Message != `dup/b.hcl:3:5: job "web" is defined twice (first at dup/a.hcl:1:5)` {
		t.Errorf("diagnostic %+v", d)
	}
	r = runCmd(t, dir, "validate", "-json", "-config", "conf.d")
	decode(r)
	if r.code != 0 || !rep.Valid || rep.Jobs != 4 || rep.Diagnostics == nil || len(rep.Diagnostics) != 0 || rep.Plan != nil {
		t.Errorf("validate -json of conf.d: exit %d, %+v, stdout %s", r.code, rep, r.stdout)
	}

	// plan: a cron job's schedule and zone, hooks under their job and not in the start order.
	r = runCmd(t, dir, "plan", "-config", "conf.d")
	if r.code != 0 {
		t.Fatalf("plan: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		`(?m)^config conf\.d \(2 files\): 4 jobs, 0 watches, 0 templates, `,
		`(?m)^  nightly +cron +on schedule "0 3 \* \* \*" \(time zone UTC\)$`,
		`(?m)^  app +exec +once web\.started\n(?: {32}.*\n)* {32}on stopping runs drain \(hook\)$`,
		`(?m)^  drain +exec +each app\.stopping\n(?: {32}.*\n)* {32}hook of app: not in the start order$`,
	} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("plan: no match for %q in:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "hooks:") || slices.ContainsFunc(section(r.stdout, "start order:"), func(l string) bool { return strings.Contains(l, "drain") }) {
		t.Errorf("plan lists the hook in the start order or apart from its job:\n%s", r.stdout)
	}

	r = runCmd(t, dir, "plan", "-json", "-config", "conf.d")
	decode(r)
	var plan struct {
		Jobs []struct {
			Name, Kind, When, Schedule, Timezone string
			Hooks                                []struct{ Job, On string }
			HookOf                               []string `json:"hook_of"`
		}
		StartOrder    [][]string `json:"start_order"`
		ShutdownOrder [][]string `json:"shutdown_order"`
	}
	if r.code != 0 || rep.Plan == nil || json.Unmarshal(*rep.Plan, &plan) != nil {
		t.Fatalf("plan -json: exit %d\n%s", r.code, r.stdout)
	}
	byName := map[string]int{}
	for i, j := range plan.Jobs {
		byName[j.Name] = i
	}
	if n := plan.Jobs[byName["nightly"]]; n.Schedule != "0 3 * * *" || n.Timezone != "UTC" || n.When != `on schedule "0 3 * * *" (time zone UTC)` {
		t.Errorf("plan -json nightly: %+v", n)
	}
	if a := plan.Jobs[byName["app"]]; len(a.Hooks) != 1 || a.Hooks[0].Job != "drain" || a.Hooks[0].On != "stopping" {
		t.Errorf("plan -json app hooks: %+v", a.Hooks)
	}
	if d := plan.Jobs[byName["drain"]]; !slices.Equal(d.HookOf, []string{"app"}) {
		t.Errorf("plan -json drain hook_of: %+v", d.HookOf)
	}
	if want := [][]string{{"web", "nightly"}, {"app"}}; !slices.EqualFunc(plan.StartOrder, want, slices.Equal) {
		t.Errorf("plan -json start_order %q, want %q", plan.StartOrder, want)
	}
}

// pilotfish runs a directory, and reload (the verb and SIGHUP) lists it anew: a file added
// adds its jobs, a file removed removes them, a duplicate is refused naming both positions.
func TestConfigLayersReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	confd := filepath.Join(dir, "conf.d")
	mkdirs(t, confd)
	writeFile(t, filepath.Join(confd, "20-app.hcl"), appLayer, 0o644)
	k := startPF(t, baseLayer, opts{Dir: dir, ConfigName: "conf.d/10-base.hcl", ConfigArg: confd})
	for _, j := range []string{"web", "app"} {
		k.waitState(10*time.Second, j, "running")
	}
	k.waitState(10*time.Second, "nightly", "scheduled")
	if e := k.WaitLog(5*time.Second, is("pilotfish started", ""), "started"); e.str("config") != confd {
		t.Errorf("started with config %q, want %q", e.str("config"), confd)
	}
	webPID := k.job("web").Pid

	// A file added, then the reload verb.
	writeFile(t, filepath.Join(confd, "30-extra.hcl"), "job \"extra\" {\n  exec = \"sleep 1000\"\n}\n", 0o644)
	r := runCmd(t, dir, "reload", "-socket", k.sock)
	if r.code != 0 || r.stdout != "reloaded: changed none, added extra, removed none\n" {
		t.Fatalf("reload after adding a file: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	k.waitState(10*time.Second, "extra", "running")

	// A file removed, then SIGHUP: its jobs go (the hook of app runs as app stops).
	if err := os.Remove(filepath.Join(confd, "20-app.hcl")); err != nil {
		t.Fatal(err)
	}
	k.Signal(syscall.SIGHUP)
	e := k.WaitLog(10*time.Second, is("reloaded on SIGHUP", ""), "reload on SIGHUP")
	if got := e.str("removed"); got != "[app drain nightly]" && got != "[app nightly drain]" {
		t.Errorf("reload on SIGHUP removed %s, want app, drain and nightly", got)
	}
	for _, j := range []string{"app", "drain", "nightly"} {
		if code, _, _ := rawRequest(k.sock, "GET", "/v1/jobs/"+j, nil, 5*time.Second); code != http.StatusNotFound {
			t.Errorf("GET /v1/jobs/%s after its file was removed: %d, want 404", j, code)
		}
	}

	// A duplicate in a new file: refused with both positions, nothing changed.
	writeFile(t, filepath.Join(confd, "40-dup.hcl"), "job \"extra\" {\n  exec = \"true\"\n}\n", 0o644)
	r = runCmd(t, dir, "reload", "-socket", k.sock)
	want := "error: the configuration has 1 error; nothing was changed\n" +
		confd + "/40-dup.hcl:1:5: job \"extra\" is defined twice (first at " + confd + "/30-extra.hcl:1:5)\n"
	if r.code != 1 || r.stderr != want {
		t.Errorf("reload with a duplicate: exit %d, stderr %q, want %q", r.code, r.stderr, want)
	}
	// validate reads the same set, and says the same.
	if r := runCmd(t, dir, "validate", "-config", confd); r.code != 1 || !strings.Contains(r.stderr, "40-dup.hcl:1:5: job \"extra\" is defined twice (first at "+confd+"/30-extra.hcl:1:5)") {
		t.Errorf("validate of the same directory: exit %d, stderr %q", r.code, r.stderr)
	}
	if j := k.job("web"); j.Pid != webPID || j.State != "running" {
		t.Errorf("web after the refused reload: %+v, want pid %d running", j, webPID)
	}
	if err := os.Remove(filepath.Join(confd, "40-dup.hcl")); err != nil {
		t.Fatal(err)
	}

	// The job names complete from the running pilotfish.
	if r := runCmd(t, dir, "completion", "jobs", "-socket", k.sock); r.code != 0 || r.stdout != "web\nextra\n" {
		t.Errorf("completion jobs: exit %d, stdout %q", r.code, r.stdout)
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		out := shellOut(t, bash, `source <(pilotfish completion bash)
COMP_WORDS=(pilotfish restart -socket "$SOCK" e); COMP_CWORD=4; _pilotfish; echo "${COMPREPLY[*]}"`, "SOCK="+k.sock)
		if out != "extra\n" {
			t.Errorf("bash completion of a job name: %q, want extra", out)
		}
	}

	k.Signal(syscall.SIGTERM)
	if code := k.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// -config repeated: the files form one configuration (a job of one waits for a job of the
// other), and a reload reads them all again.
func TestConfigLayersRepeatedFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	app := filepath.Join(dir, "app.hcl")
	writeFile(t, app, "job \"app\" {\n  exec = \"sleep 1000\"\n  when {\n    source = \"web\"\n    once   = \"started\"\n  }\n}\n", 0o644)
	k := startPF(t, baseLayer, opts{Dir: dir, Args: []string{"run", "-config", app}})
	k.waitState(10*time.Second, "app", "running")
	k.waitState(10*time.Second, "web", "running")
	writeFile(t, app, "job \"app\" {\n  exec = \"sleep 2000\"\n  when {\n    source = \"web\"\n    once   = \"started\"\n  }\n}\n", 0o644)
	r := runCmd(t, dir, "reload", "-socket", k.sock)
	if r.code != 0 || r.stdout != "reloaded: changed app, added none, removed none\n" {
		t.Fatalf("reload after editing the second file: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// shellOut runs script with the shell, pilotfish first on PATH, and returns its stdout.
func shellOut(t *testing.T, shell, script string, env ...string) string {
	t.Helper()
	bin := t.TempDir()
	if err := os.Symlink(pilotfishBin, filepath.Join(bin, "pilotfish")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(shell, "-c", script)
	cmd.Env = append(append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH")), env...)
	var errb strings.Builder
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -c %q: %v\n%s", shell, script, err, errb.String())
	}
	return string(out)
}

// pilotfish VERB --help prints the verb's help on stdout and exits 0.
func TestVerbHelp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, verb := range []string{"run", "validate", "plan", "version", "convert", "completion", "ping", "status", "events",
		"reload", "maintenance", "putenv", "putmetric", "start", "stop", "restart", "signal", "render"} {
		for _, args := range [][]string{{verb, "--help"}, {verb, "-h"}, {"help", verb}} {
			r := runCmd(t, dir, args...)
			usage := "usage: pilotfish " + verb + " "
			if verb == "run" {
				usage = "usage: pilotfish [run] "
			}
			if verb == "version" {
				usage = "usage: pilotfish version\n"
			}
			if r.code != 0 || !strings.HasPrefix(r.stdout, usage) || r.stderr != "" {
				t.Errorf("pilotfish %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
		}
	}
	// docs/cli.md names every verb and every flag the verbs' help lists.
	doc, err := os.ReadFile("../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	flagRe := regexp.MustCompile(`(?m)^  (-\w+)`)
	for _, verb := range []string{"run", "validate", "plan", "version", "convert", "completion", "ping", "status", "events",
		"reload", "maintenance", "putenv", "putmetric", "start", "stop", "restart", "signal", "render"} {
		if !strings.Contains(string(doc), "`"+verb) && !strings.Contains(string(doc), " "+verb+" ") {
			t.Errorf("docs/cli.md does not name the verb %s", verb)
		}
		help := runCmd(t, dir, verb, "-h").stdout
		for _, m := range flagRe.FindAllStringSubmatch(help, -1) {
			if strings.Contains(help, "\nexit 0 ok, 1 refused") && (m[1] == "-socket" || m[1] == "-json") {
				continue // every client verb's: the table of "Client verbs" (checked below)
			}
			if !regexp.MustCompile(`\b` + verb + `\b[^\n]*` + regexp.QuoteMeta(m[1]) + `\b`).Match(doc) {
				t.Errorf("docs/cli.md has no line with %s and its flag %s", verb, m[1])
			}
		}
	}

	if !strings.Contains(string(doc), "| `-socket PATH` |") || !strings.Contains(string(doc), "| `-json` |") {
		t.Errorf("docs/cli.md has no row for the client verbs' -socket and -json")
	}

	r := runCmd(t, dir, "validate", "-config", "x.hcl", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "-config PATH") || !strings.Contains(r.stdout, "-json") {
		t.Errorf("validate -config x.hcl --help: exit %d, stdout %q", r.code, r.stdout)
	}
	if r := runCmd(t, dir, "status", "-bogus"); r.code != 2 || !strings.HasPrefix(r.stderr, "error: flag provided but not defined: -bogus\nusage: pilotfish status ") {
		t.Errorf("status -bogus: exit %d, stderr %q", r.code, r.stderr)
	}
}

// pilotfish completion bash|zsh|fish prints a script each shell loads.
func TestCompletionScripts(t *testing.T) {
	t.Parallel()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	if out := shellOut(t, bash, `source <(pilotfish completion bash); complete -p pilotfish`); out != "complete -F _pilotfish pilotfish\n" {
		t.Errorf("complete -p pilotfish: %q", out)
	}
	for line, want := range map[string]string{
		`COMP_WORDS=(pilotfish st); COMP_CWORD=1`:                            "start status stop",
		`COMP_WORDS=(pilotfish plan -); COMP_CWORD=2`:                        "-config -json -h",
		`COMP_WORDS=(pilotfish maintenance ""); COMP_CWORD=2`:                "on off",
		`COMP_WORDS=(pilotfish completion ""); COMP_CWORD=2`:                 "bash zsh fish",
		`COMP_WORDS=(pilotfish signal web SIGT); COMP_CWORD=3`:               "SIGTERM SIGTSTP",
		`COMP_WORDS=(pilotfish -socket /nonexistent start ""); COMP_CWORD=4`: "",
	} {
		out := shellOut(t, bash, `source <(pilotfish completion bash); `+line+`; _pilotfish; echo "${COMPREPLY[*]}"`)
		if out != want+"\n" {
			t.Errorf("bash, %s: %q, want %q", line, out, want)
		}
	}
	if r := runCmd(t, t.TempDir(), "completion", "tcsh"); r.code != 2 || !strings.Contains(r.stderr, `no completion for "tcsh"`) {
		t.Errorf("completion tcsh: exit %d, stderr %q", r.code, r.stderr)
	}

	if zsh, err := exec.LookPath("zsh"); err == nil {
		out := shellOut(t, zsh, `pilotfish completion zsh > "$HOME/_pilotfish" && zsh -n "$HOME/_pilotfish" &&
autoload -U compinit && compinit -u -d "$HOME/.zcompdump" && source "$HOME/_pilotfish" && print -r -- "${_comps[pilotfish]}"`, "HOME="+t.TempDir())
		if out != "_pilotfish\n" {
			t.Errorf("zsh: the completion function is %q, want _pilotfish", out)
		}
	} else {
		t.Log("zsh is not installed: its script is not checked")
	}
	if fish, err := exec.LookPath("fish"); err == nil {
		out := shellOut(t, fish, `pilotfish completion fish | source; complete -C "pilotfish st"; complete -C "pilotfish maintenance "`, "HOME="+t.TempDir())
		var words []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			w, _, _ := strings.Cut(l, "\t")
			words = append(words, w)
		}
		if want := []string{"start", "status", "stop", "off", "on"}; !slices.Equal(words, want) {
			t.Errorf("fish completes %q, want %q:\n%s", words, want, out)
		}
	} else {
		t.Log("fish is not installed: its script is not checked")
	}
}

// A cron job's next run in status; log lines that say something: an exec probe without
// output, a webhook without a process, durations as text in JSON logs.
func TestStatusAndLogLines(t *testing.T) {
	t.Parallel()
	srv := newHookServer(t, func(string, int) int { return http.StatusOK })
	k := startPF(t, `
job "nightly" {
  kind     = "cron"
  schedule = "0 3 * * *"
  timezone = "UTC"
  exec     = "true"
}
job "tick" {
  kind     = "cron"
  schedule = "@every 1s"
  exec     = "true"
}
job "probed" {
  exec = "sleep 1000"
  health {
    exec     = ["true"]
    interval = "100ms"
  }
}
job "failing" {
  exec = "sleep 1000"
  health {
    exec     = ["false"]
    interval = "100ms"
  }
}
job "hook" {
  kind = "webhook"
  url  = "`+srv.URL+`/started"
}
job "crash" {
  exec     = "false"
  restarts = 1
  backoff  = { initial = "150ms" }
}
`)
	before := time.Now()
	j := k.waitState(10*time.Second, "nightly", "scheduled")
	var st struct {
		Jobs []struct {
			Name    string     `json:"name"`
			NextRun *time.Time `json:"next_run"`
		} `json:"jobs"`
	}
	_, _, body := curlDo(t, k.sock, "GET", "/v1/status", nil)
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	next := before.UTC().Truncate(24 * time.Hour).Add(3 * time.Hour)
	if !next.After(before) {
		next = next.Add(24 * time.Hour)
	}
	for _, sj := range st.Jobs {
		switch {
		case sj.Name == "nightly" && (sj.NextRun == nil || !sj.NextRun.Equal(next)):
			t.Errorf("nightly next_run %v, want %s (%+v)", sj.NextRun, next, j)
		case sj.Name != "nightly" && sj.Name != "tick" && sj.NextRun != nil:
			t.Errorf("%s has a next_run", sj.Name)
		}
	}
	r := runCmd(t, k.Dir, "status", "-socket", k.sock, "nightly")
	if r.code != 0 || !regexp.MustCompile(`(?m)^nightly +cron +scheduled .* next run \d\d:\d\d:\d\d \(in \d+h\d+m\)|next run \d{4}-\d\d-\d\d \d\d:\d\d`).MatchString(r.stdout) {
		t.Errorf("pilotfish status nightly: exit %d\n%s", r.code, r.stdout)
	}

	// Between two runs of tick (each a few ms of its second), its last exit code too.
	k.waitJob(10*time.Second, "tick", func(j client.Job) bool { return j.ExitCode != nil }, "a run of tick ended")
	tickRe := regexp.MustCompile(`(?m)^tick +cron +scheduled .*next run \d\d:\d\d:\d\d \(in \d+s\), last exit code 0$`)
	var out string
	if !poll(10*time.Second, func() bool {
		out = runCmd(t, k.Dir, "status", "-socket", k.sock, "tick").stdout
		return tickRe.MatchString(out)
	}) {
		t.Errorf("pilotfish status tick:\n%s", out)
	}

	if e := k.WaitLog(10*time.Second, is("healthy", "probed"), "probed healthy"); e.str("check") != "true: exit status 0 (no output)" {
		t.Errorf("healthy probed: check %q", e.str("check"))
	}
	if e := k.WaitLog(10*time.Second, is("unhealthy", "failing"), "failing unhealthy"); e.str("check") != "false: exit status 1 (no output)" {
		t.Errorf("unhealthy failing: check %q", e.str("check"))
	}
	if e := k.WaitLog(10*time.Second, is("started", "hook"), "hook started"); e["pid"] != nil {
		t.Errorf("the webhook logs a pid: %s", e)
	}
	e := k.WaitLog(10*time.Second, is("restarting after backoff", "crash"), "crash restarting")
	if in, ok := e["in"].(string); !ok {
		t.Errorf("in = %v (%T), want a duration as text", e["in"], e["in"])
	} else if d, err := time.ParseDuration(in); err != nil || d < 100*time.Millisecond {
		t.Errorf("in = %q, want a duration of at least 100ms (150ms less 20%% jitter)", in)
	}
}

// The layers section of docs/operations.md runs as written: its files are written, and what it shows of
// validate and plan is what they print.
func TestOperationsLayersDoc(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(operationsPage(t, "Configuration in layers", "CLI conveniences"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blocks := regexp.MustCompile("(?s)```(sh|text)\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 3 || blocks[0][1] != "sh" {
		t.Fatalf("docs/operations.md: want the setup in its first sh block, then text blocks; found %d blocks", len(blocks))
	}
	if out, err := exec.Command("bash", "-ec", "cd "+dir+"\n"+blocks[0][2]).CombinedOutput(); err != nil {
		t.Fatalf("the setup: %v\n%s", err, out)
	}
	checked := 0
	for _, b := range blocks[1:] {
		if b[1] != "text" {
			continue
		}
		lines := strings.SplitAfter(b[2], "\n")
		for i := 0; i < len(lines); i++ {
			cmd, ok := strings.CutPrefix(strings.TrimSuffix(lines[i], "\n"), "$ ")
			if !ok {
				continue
			}
			var out strings.Builder // the lines shown after the command
			j := i + 1
			for ; j < len(lines) && !strings.HasPrefix(lines[j], "$ "); j++ {
				out.WriteString(lines[j])
			}
			f := strings.Fields(cmd)
			switch {
			case len(f) == 4 && f[0] == "cat" && f[1] == ">" && f[3] == "<<'EOF'":
				body := strings.Join(lines[i+1:], "")
				body, _, _ = strings.Cut(body, "\nEOF\n")
				writeFile(t, filepath.Join(dir, f[2]), body+"\n", 0o644)
			case len(f) == 2 && f[0] == "rm":
				if err := os.Remove(filepath.Join(dir, f[1])); err != nil {
					t.Fatal(err)
				}
			case len(f) >= 2 && f[0] == "pilotfish" && (f[1] == "validate" || f[1] == "plan") && !strings.Contains(cmd, "|"):
				r := runCmd(t, dir, f[1:]...)
				if got := r.stdout + r.stderr; got != out.String() {
					t.Errorf("%s prints:\n%s\nthe doc shows:\n%s", cmd, got, out.String())
				}
				checked++
			}
			i = j - 1
		}
	}
	if checked < 4 {
		t.Errorf("only %d validate and plan commands of the doc were checked", checked)
	}
}
