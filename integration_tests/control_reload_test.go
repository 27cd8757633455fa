package integration

// Reload through the control API and SIGHUP (docs/api.md "Reload", docs/guarantees.md#8): only what changed is
// touched, an invalid file changes nothing, and reloads never disturb a running job.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
)

// termJob is a job that records when it gets SIGTERM (date +%s%N into NAME.term) and exits.
func termJob(name, when string) string {
	return `
job "` + name + `" {
  exec = ` + sh(`trap 'date +%s%N > "$TESTDIR/`+name+`.term"; exit 0' TERM; while :; do sleep 0.05; done`) + `
` + when + `}
`
}

func whenStarted(source string) string {
	return "  when {\n    source = \"" + source + "\"\n    once   = \"started\"\n  }\n"
}

// writeConfig replaces the running configuration file (the next reload reads it) at once,
// as an editor saving by rename does: a reload never reads half a file.
func writeConfig(t testing.TB, p *instance, sock, cfg string) {
	t.Helper()
	path := filepath.Join(p.Dir, "pilotfish.hcl")
	writeFile(t, path+".new", cfg+controlBlock(sock), 0o644)
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// docs/api.md: reload keeps unchanged jobs (PIDs and restart counters), restarts changed ones,
// stops removed ones in reverse dependency order, starts added ones, and answers with the
// three lists; then `reload` and `startup` are published.
func TestControlReloadAppliesDiff(t *testing.T) {
	t.Parallel()
	keep := `
job "keep" {
  exec     = ` + sh(`if [ ! -f "$TESTDIR/keep.once" ]; then touch "$TESTDIR/keep.once"; exit 1; fi; exec sleep 1000`) + `
  restarts = 1
  backoff  = { initial = "10ms", max = "20ms" }
}
`
	follower := func(tag string) string {
		return `
job "follower" {
  exec = ` + sh(`echo "$TAG" >> "$TESTDIR/follower.txt"; exec sleep 1000`) + `
  env  = { TAG = "` + tag + `" }
` + whenStarted("keep") + `}
`
	}
	v1 := jsonLogs + keep + follower("v1") + `
job "change" {
  exec = "sleep 1000"
}
` + termJob("db", "") + termJob("app", whenStarted("db")) + termJob("web", whenStarted("app"))
	v2 := jsonLogs + keep + follower("v2") + `
job "change" {
  exec = "sleep 1001"
}
job "new" {
  exec = "sleep 1000"
}
`
	p, sock := startCtl(t, opts{Config: v1})
	a := newGoAPI(t, sock)
	for _, n := range []string{"follower", "change", "db", "app", "web"} {
		waitJob(t, a, n, 10*time.Second, running, "running")
	}
	keepJob := waitJob(t, a, "keep", 10*time.Second, func(j client.Job) bool { return running(j) && j.Restarts == 1 }, "running after one restart")
	before := map[string]client.Job{}
	for _, j := range must[client.Status](t, "status")(a.Status()).Jobs {
		before[j.Name] = j
	}
	ring := must[[]client.Event](t, "events")(a.Replay(0))
	mark := ring[len(ring)-1].Seq

	writeConfig(t, p, sock, v2)
	r := must[client.Reload](t, "reload")(a.Reload())
	if got := sorted(r.Changed); !slices.Equal(got, []string{"change", "follower"}) {
		t.Errorf("reload changed = %q, want change and follower", r.Changed)
	}
	if !slices.Equal(r.Added, []string{"new"}) {
		t.Errorf("reload added = %q, want [new]", r.Added)
	}
	if got := sorted(r.Removed); !slices.Equal(got, []string{"app", "db", "web"}) {
		t.Errorf("reload removed = %q, want app, db and web", r.Removed)
	}

	// Removed jobs are gone, stopped in reverse dependency order (web, app, db) by the time
	// the reload answers.
	for _, n := range []string{"db", "app", "web"} {
		_, err := a.Job(n)
		wantAPIError(t, "job "+n+" after its removal", err, http.StatusNotFound)
		if !exists(filepath.Join(p.Dir, n+".term")) {
			t.Errorf("removed job %s did not get SIGTERM before the reload answered", n)
		}
		if p.hostPID(before[n].Pid) != 0 {
			t.Errorf("removed job %s: its process %d still exists", n, before[n].Pid)
		}
	}
	if exists(filepath.Join(p.Dir, "db.term")) && exists(filepath.Join(p.Dir, "app.term")) && exists(filepath.Join(p.Dir, "web.term")) {
		web, app, db := stamp(t, filepath.Join(p.Dir, "web.term")), stamp(t, filepath.Join(p.Dir, "app.term")), stamp(t, filepath.Join(p.Dir, "db.term"))
		if !(web.Before(app) && app.Before(db)) {
			t.Errorf("removed jobs got SIGTERM at web %s, app %s, db %s; want web, then app, then db", web.Format(time.StampNano), app.Format(time.StampNano), db.Format(time.StampNano))
		}
	}

	// The unchanged job keeps its process and its restart counter.
	if j := must[client.Job](t, "job keep")(a.Job("keep")); j.Pid != keepJob.Pid || j.Restarts != 1 || !running(j) {
		t.Errorf("unchanged job keep after reload: %+v, want pid %d and 1 restart", j, keepJob.Pid)
	}
	// Changed jobs restart with their new definition, even one triggered long ago.
	waitJob(t, a, "change", 10*time.Second, func(j client.Job) bool { return running(j) && j.Pid != before["change"].Pid }, "a new process")
	waitJob(t, a, "follower", 10*time.Second, func(j client.Job) bool { return running(j) && j.Pid != before["follower"].Pid }, "a new process")
	waitFor(t, 5*time.Second, func() bool {
		return slices.Equal(fileLines(t, filepath.Join(p.Dir, "follower.txt")), []string{"v1", "v2"})
	},
		"follower to run its new definition (follower.txt: %q)", fileLines(t, filepath.Join(p.Dir, "follower.txt")))
	if p.hostPID(before["change"].Pid) != 0 {
		t.Errorf("changed job: the old process %d still exists", before["change"].Pid)
	}
	// Added jobs start.
	waitJob(t, a, "new", 10*time.Second, running, "running")
	var names []string
	for _, j := range must[client.Status](t, "status")(a.Status()).Jobs {
		names = append(names, j.Name)
	}
	if !slices.Equal(names, []string{"keep", "follower", "change", "new"}) {
		t.Errorf("status after reload lists %q, want keep, follower, change, new", names)
	}

	// Events: reload, then startup; keep was never stopped.
	evs := must[[]client.Event](t, "events")(a.Replay(mark))
	checkReplay(t, "events after the mark", evs, mark)
	reload, startup := -1, -1
	for i, e := range evs {
		if e.Source == "global" && e.Code == "reload" && reload < 0 {
			reload = i
		}
		if e.Source == "global" && e.Code == "startup" && reload >= 0 && startup < 0 {
			startup = i
		}
		if e.Source == "keep" {
			t.Errorf("reload touched the unchanged job keep: %s", e.Code)
		}
	}
	if reload < 0 || startup < 0 {
		t.Fatalf("events after the reload lack reload followed by startup: %v", eventNames(evs))
	}
	for _, e := range evs[:reload] {
		if e.Code == "started" {
			t.Errorf("a job was started (%s) before the reload event", e.Source)
		}
	}
	if !slices.ContainsFunc(evs[:reload], func(e client.Event) bool { return e.Source == "web" && e.Code == "stopped" }) {
		t.Errorf("web's stopped event does not come before reload: %v", eventNames(evs))
	}
	if !p.Running() {
		t.Fatal("pilotfish exited")
	}
}

// invalidConfig has errors on lines 3, 7 and 12 (before anything else in the file).
const invalidConfig = `job "a" {
  exec   = "sleep 1000"
  colour = "red"
}
job "b" {
  exec         = "sleep 1000"
  stop_timeout = "soon"
}
job "c" {
  exec = "true"
  when {
    source = "nosuch"
    once   = "started"
  }
}
`

// docs/configuration.md, docs/api.md, docs/guarantees.md#8: an invalid file is refused with 400 and every diagnostic as
// FILE:LINE:COL:, and the running jobs are not touched; the CLI prints the diagnostics and
// exits 1. A missing file and a syntax error are refused the same way.
func TestControlReloadInvalid(t *testing.T) {
	t.Parallel()
	valid := jsonLogs + `
job "a" {
  exec = "sleep 1000"
}
job "b" {
  exec = "sleep 1000"
}
`
	p, sock := startCtl(t, opts{Config: valid})
	cfgPath := filepath.Join(p.Dir, "pilotfish.hcl")
	a := newGoAPI(t, sock)
	waitJob(t, a, "a", 10*time.Second, running, "running")
	waitJob(t, a, "b", 10*time.Second, running, "running")
	before := must[client.Status](t, "status")(a.Status())
	unchanged := func(what string) {
		t.Helper()
		after := must[client.Status](t, "status")(a.Status())
		if len(after.Jobs) != len(before.Jobs) {
			t.Errorf("%s: jobs %d, want %d", what, len(after.Jobs), len(before.Jobs))
			return
		}
		for i, j := range after.Jobs {
			if b := before.Jobs[i]; j.Name != b.Name || j.Pid != b.Pid || j.State != b.State || j.Restarts != b.Restarts {
				t.Errorf("%s: job %+v, was %+v", what, j, b)
			}
		}
	}

	writeFile(t, cfgPath, invalidConfig+jsonLogs+controlBlock(sock), 0o644)
	code, ctype, body := rawRequest(sock, "POST", "/v1/reload", []byte("{}"), 20*time.Second)
	eb := apiError(t, "reload of an invalid file", code, ctype, body, http.StatusBadRequest, client.KindInvalidConfig)
	for _, line := range []int{3, 7, 12} {
		re := regexp.MustCompile(`^` + regexp.QuoteMeta(cfgPath) + fmt.Sprintf(`:%d:\d+: \S`, line))
		if !slices.ContainsFunc(eb.Diagnostics, re.MatchString) {
			t.Errorf("no diagnostic FILE:%d:COL: in %q", line, eb.Diagnostics)
		}
	}
	for _, d := range eb.Diagnostics {
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(cfgPath) + `:\d+:\d+: `).MatchString(d) {
			t.Errorf("diagnostic %q is not FILE:LINE:COL: message", d)
		}
	}
	unchanged("after an invalid reload")

	// The Go client and the CLI carry the same diagnostics.
	_, err := a.Reload()
	ae := wantAPIError(t, "client reload of an invalid file", err, http.StatusBadRequest)
	if len(ae.Diagnostics) != len(eb.Diagnostics) {
		t.Errorf("the client got %d diagnostics, curl %d", len(ae.Diagnostics), len(eb.Diagnostics))
	}
	res := runCmd(t, p.Dir, "reload", "-socket", sock)
	if res.code != 1 {
		t.Errorf("pilotfish reload of an invalid file: exit %d, want 1", res.code)
	}
	for _, line := range []int{3, 7, 12} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(cfgPath) + fmt.Sprintf(`:%d:\d+: `, line)).MatchString(res.stderr) {
			t.Errorf("pilotfish reload did not print the diagnostic of line %d:\n%s", line, res.stderr)
		}
	}

	// A syntax error and a missing file: refused too.
	writeFile(t, cfgPath, "job \"a\" {\n  exec = \"sleep 1000\"\n", 0o644)
	code, ctype, body = rawRequest(sock, "POST", "/v1/reload", nil, 20*time.Second)
	eb = apiError(t, "reload of a file with a syntax error", code, ctype, body, http.StatusBadRequest, client.KindInvalidConfig)
	if len(eb.Diagnostics) == 0 || !strings.HasPrefix(eb.Diagnostics[0], cfgPath+":") {
		t.Errorf("syntax error diagnostics: %q", eb.Diagnostics)
	}
	unchanged("after a reload of a file with a syntax error")
	check(t, "remove the config", os.Remove(cfgPath))
	code, ctype, body = rawRequest(sock, "POST", "/v1/reload", nil, 20*time.Second)
	eb = apiError(t, "reload of a missing file", code, ctype, body, http.StatusBadRequest, client.KindInvalidConfig)
	if !strings.Contains(strings.Join(eb.Diagnostics, "\n")+eb.Error.Message, cfgPath) {
		t.Errorf("the refusal of a missing file does not name it: %s", body)
	}
	unchanged("after a reload of a missing file")

	// No reload event was published for the refused ones, and a valid file still works.
	evs := must[[]client.Event](t, "events")(a.Replay(0))
	if slices.ContainsFunc(evs, func(e client.Event) bool { return e.Code == "reload" }) {
		t.Errorf("a refused reload published a reload event: %v", eventNames(evs))
	}
	writeConfig(t, p, sock, valid)
	if r := must[client.Reload](t, "reload")(a.Reload()); len(r.Changed)+len(r.Added)+len(r.Removed) != 0 {
		t.Errorf("reload of the original file: %+v, want nothing changed", r)
	}
	unchanged("after reloading the original file")
	if !p.Running() {
		t.Fatal("pilotfish exited")
	}
}

// docs/api.md, docs/jobs.md: SIGHUP reloads like POST /v1/reload, and an invalid file on SIGHUP changes
// nothing.
func TestControlReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	v1 := jsonLogs + `
job "a" {
  exec = "sleep 1000"
}
`
	p, sock := startCtl(t, opts{Config: v1})
	a := newGoAPI(t, sock)
	ja := waitJob(t, a, "a", 10*time.Second, running, "running")
	writeConfig(t, p, sock, v1+`
job "b" {
  exec = "sleep 1000"
}
`)
	p.Signal(syscall.SIGHUP)
	waitJob(t, a, "b", 10*time.Second, running, "added job b to run after SIGHUP")
	if j := must[client.Job](t, "job a")(a.Job("a")); j.Pid != ja.Pid {
		t.Errorf("SIGHUP reload restarted the unchanged job a (pid %d → %d)", ja.Pid, j.Pid)
	}
	p.WaitLog(5*time.Second, is("reloaded on SIGHUP", ""), "the SIGHUP reload to be logged")
	before := must[client.Status](t, "status")(a.Status())

	writeFile(t, filepath.Join(p.Dir, "pilotfish.hcl"), invalidConfig+jsonLogs+controlBlock(sock), 0o644)
	p.Signal(syscall.SIGHUP)
	p.WaitLog(5*time.Second, is("reload on SIGHUP refused", ""), "the refused SIGHUP reload to be logged")
	after := must[client.Status](t, "status")(a.Status())
	if len(after.Jobs) != 2 || after.Jobs[0].Pid != before.Jobs[0].Pid || after.Jobs[1].Pid != before.Jobs[1].Pid {
		t.Errorf("an invalid file on SIGHUP changed the jobs: %+v → %+v", before.Jobs, after.Jobs)
	}
	if !p.Running() {
		t.Fatal("an invalid file on SIGHUP ended pilotfish")
	}
}

// docs/configuration.md, docs/api.md: putenv values reach jobs started later at once, but ${env.X} in the
// configuration only at the next reload, which restarts exactly the jobs whose interpolated
// definition changed.
func TestControlEnvironThenReload(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
job "interp" {
  exec = ` + sh(`echo "SEEN=$SEEN" >> "$TESTDIR/interp.txt"; exec sleep 1000`) + `
  env  = { SEEN = "${env.PF_MODE}" }
}
job "plain" {
  exec = ` + sh(`echo "PF_MODE=$PF_MODE" >> "$TESTDIR/plain.txt"; exec sleep 1000`) + `
}
`
	p, sock := startCtl(t, opts{Config: cfg, Env: []string{"PF_MODE=start"}})
	a := newGoAPI(t, sock)
	steady := waitJob(t, a, "steady", 10*time.Second, running, "running")
	interp := waitJob(t, a, "interp", 10*time.Second, running, "running")
	plain := waitJob(t, a, "plain", 10*time.Second, running, "running")
	interpFile, plainFile := filepath.Join(p.Dir, "interp.txt"), filepath.Join(p.Dir, "plain.txt")
	waitFor(t, 5*time.Second, func() bool { return len(fileLines(t, interpFile)) == 1 && len(fileLines(t, plainFile)) == 1 }, "the jobs to record their environment")

	check(t, "environ", a.PutEnv(map[string]string{"PF_MODE": "blue=sky and sea"}))
	// Nothing restarts by itself.
	for _, j := range []client.Job{steady, interp, plain} {
		if now := must[client.Job](t, "job")(a.Job(j.Name)); now.Pid != j.Pid {
			t.Errorf("putenv restarted %s", j.Name)
		}
	}
	// A later start sees the value.
	if _, err := a.Restart("plain"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, plainFile)) == 2 }, "plain to start again")
	if got := fileLines(t, plainFile); !slices.Equal(got, []string{"PF_MODE=start", "PF_MODE=blue=sky and sea"}) {
		t.Errorf("plain saw %q, want start, then the putenv value", got)
	}
	plain = waitJob(t, a, "plain", 10*time.Second, running, "running")
	if got := fileLines(t, interpFile); !slices.Equal(got, []string{"SEEN=start"}) {
		t.Errorf("interp: %q before the reload, want only SEEN=start", got)
	}

	// The reload interpolates with the new value: only interp changed.
	r := must[client.Reload](t, "reload")(a.Reload())
	if !slices.Equal(r.Changed, []string{"interp"}) || len(r.Added) != 0 || len(r.Removed) != 0 {
		t.Errorf("reload after putenv: %+v, want only interp changed", r)
	}
	waitJob(t, a, "interp", 10*time.Second, func(j client.Job) bool { return running(j) && j.Pid != interp.Pid }, "interp to restart")
	waitFor(t, 10*time.Second, func() bool { return len(fileLines(t, interpFile)) == 2 }, "interp to record its new environment")
	if got := fileLines(t, interpFile); got[1] != "SEEN=blue=sky and sea" {
		t.Errorf("interp after the reload saw %q, want SEEN=blue=sky and sea", got[1])
	}
	for _, j := range []client.Job{steady, plain} {
		if now := must[client.Job](t, "job")(a.Job(j.Name)); now.Pid != j.Pid {
			t.Errorf("the reload restarted %s, whose definition did not change", j.Name)
		}
	}
	// Reloading again changes nothing.
	if r := must[client.Reload](t, "reload")(a.Reload()); len(r.Changed) != 0 {
		t.Errorf("second reload: %+v, want nothing changed", r)
	}
}

// docs/api.md, docs/guarantees.md#8: 50 reloads through curl, valid and invalid files mixed, while a job runs:
// that job is never touched, every answer fits its file, and the daemon keeps answering.
func TestControlReloadStorm(t *testing.T) {
	t.Parallel()
	requireCurl(t)
	base := jsonLogs + `
job "steady" {
  exec = "sleep 1000"
}
`
	flip := func(v int) string { return fmt.Sprintf("\njob \"flip\" {\n  exec = \"sleep %d\"\n}\n", 1000+v) }
	p, sock := startCtl(t, opts{Config: base + flip(0)})
	a := newGoAPI(t, sock)
	steady := waitJob(t, a, "steady", 10*time.Second, running, "running")
	waitJob(t, a, "flip", 10*time.Second, running, "running")

	// Pings alongside the storm, timing each.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var slowest time.Duration
	var pingErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if code, _, body := rawRequest(sock, "GET", "/v1/ping", nil, 10*time.Second); code != 200 {
				pingErr = fmt.Errorf("ping during the storm: %d %s", code, body)
				return
			}
			slowest = max(slowest, time.Since(t0))
		}
	}()

	applied, ok, refused := 0, 0, 0
	for i := range 50 {
		invalid := i%3 == 2
		v := (i / 2) % 2
		if invalid {
			writeFile(t, filepath.Join(p.Dir, "pilotfish.hcl"), invalidConfig+base+controlBlock(sock), 0o644)
		} else {
			writeConfig(t, p, sock, base+flip(v))
		}
		code, ctype, body := curlDo(t, sock, "POST", "/v1/reload", nil)
		if invalid {
			apiError(t, fmt.Sprintf("reload #%d (invalid)", i), code, ctype, body, http.StatusBadRequest, client.KindInvalidConfig)
			refused++
			continue
		}
		var r client.Reload
		if code != 200 {
			t.Errorf("reload #%d (valid): %d %s", i, code, body)
			continue
		}
		if err := json.Unmarshal(body, &r); err != nil {
			t.Errorf("reload #%d: %v", i, err)
			continue
		}
		want := []string{}
		if v != applied {
			want = []string{"flip"}
		}
		if !slices.Equal(r.Changed, want) || len(r.Added) != 0 || len(r.Removed) != 0 {
			t.Errorf("reload #%d: %s, want changed %q", i, body, want)
		}
		applied = v
		ok++
	}
	// A burst of concurrent reloads of the same valid file: all answered, nothing changed.
	writeConfig(t, p, sock, base+flip(applied))
	var burst sync.WaitGroup
	answers := make([]string, 10)
	for i := range answers {
		burst.Add(1)
		go func() {
			defer burst.Done()
			code, _, body := rawRequest(sock, "POST", "/v1/reload", nil, 30*time.Second)
			answers[i] = fmt.Sprintf("%d %s", code, strings.Join(strings.Fields(string(body)), ""))
		}()
	}
	burst.Wait()
	for i, ans := range answers {
		if ans != `200 {"changed":[],"added":[],"removed":[]}` {
			t.Errorf("concurrent reload %d: %s", i, ans)
		}
	}
	close(stop)
	wg.Wait()
	if pingErr != nil {
		t.Error(pingErr)
	}
	t.Logf("%d reloads applied, %d refused; slowest ping during the storm %s", ok, refused, slowest)
	if slowest > 2*time.Second {
		t.Errorf("a ping took %s during the reload storm", slowest)
	}

	if j := must[client.Job](t, "job steady")(a.Job("steady")); j.Pid != steady.Pid || j.Restarts != 0 || !running(j) {
		t.Errorf("steady after the storm: %+v, want untouched (pid %d)", j, steady.Pid)
	}
	evs := must[[]client.Event](t, "events")(a.Replay(0))
	reloads := 0
	for _, e := range evs {
		if e.Source == "steady" && e.Code != "started" {
			t.Errorf("the storm touched steady: %s", e.Code)
		}
		if e.Source == "global" && e.Code == "reload" {
			reloads++
		}
	}
	if reloads != ok+len(answers) {
		t.Errorf("%d reload events, want one per accepted reload (%d)", reloads, ok+len(answers))
	}
	waitJob(t, a, "flip", 10*time.Second, running, "running")
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}
