package integration

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// docs/guarantees.md#6, docs/configuration.md: values containing '=' and spaces reach the process intact.
func TestValuesWithEqualsSurvive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "args.sh"), "#!/bin/sh\nout=$1\nshift\nprintf '%s\\n' \"$@\" > \"$out\"\n", 0o755)
	cfg := jsonLogs + `
job "env" {
  exec = ["/bin/sh", "-c", "env > \"$TESTDIR/env.txt\""]
  env = {
    J_EQ     = "A=b=c"
    J_SPACE  = "a b  c"
    J_OPT    = "--opt=x=y"
    J_INTERP = "${env.PF_EQ}"
    J_MIXED  = "pre ${env.PF_OPT} ${env.PF_SPACE} post"
    J_FN     = env("PF_EQ", "unset")
    J_UPPER  = upper(env.PF_EQ)
    J_DEF    = env("PF_UNSET_VARIABLE", "d=e f")
  }
}
job "list" {
  exec = ["${env.TESTDIR}/args.sh", "${env.TESTDIR}/list.txt", "--opt=x=y", "a b", env.PF_SPACE, "k=${env.PF_EQ}", env.PF_OPT]
}
job "string" {
  exec = "${env.TESTDIR}/args.sh ${env.TESTDIR}/string.txt --opt=x=y 'a b' \"c=d e\" ${env.PF_OPT} ${env.PF_SPACE}"
}
`
	p := start(t, opts{Config: cfg, Dir: dir, Env: []string{"PF_EQ=A=b=c", "PF_SPACE=a b  c", "PF_OPT=--opt=x=y"}})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	env := envFile(t, filepath.Join(dir, "env.txt"))
	for k, want := range map[string]string{
		"J_EQ": "A=b=c", "J_SPACE": "a b  c", "J_OPT": "--opt=x=y", "J_INTERP": "A=b=c",
		"J_MIXED": "pre --opt=x=y a b  c post", "J_FN": "A=b=c", "J_UPPER": "A=B=C", "J_DEF": "d=e f",
		// inherited from pilotfish's own environment
		"PF_EQ": "A=b=c", "PF_SPACE": "a b  c", "PF_OPT": "--opt=x=y",
	} {
		if got, ok := env[k]; !ok || got != want {
			t.Errorf("env %s = %q (set: %v), want %q", k, got, ok, want)
		}
	}
	for file, want := range map[string][]string{
		"list.txt": {"--opt=x=y", "a b", "a b  c", "k=A=b=c", "--opt=x=y"},
		// A string exec is interpolated, then split into words: PF_SPACE becomes three.
		"string.txt": {"--opt=x=y", "a b", "c=d e", "--opt=x=y", "a", "b", "c"},
	} {
		if got := fileLines(t, filepath.Join(dir, file)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: args %q, want %q", file, got, want)
		}
	}
}

// docs/jobs.md#triggers: a job learns its name and what triggered it.
func TestTriggerEnvironment(t *testing.T) {
	t.Parallel()
	cfg := jsonLogs + `
job "first" {
  exec = ["/bin/sh", "-c", "env > \"$TESTDIR/first.env\""]
}
job "second" {
  exec = ["/bin/sh", "-c", "env > \"$TESTDIR/second.env\""]
  when {
    source = "first"
    once   = "exitSuccess"
  }
}
`
	p := start(t, opts{Config: cfg})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	for file, want := range map[string]map[string]string{
		"first.env":  {"PILOTFISH_JOB": "first", "PILOTFISH_EVENT": "startup", "PILOTFISH_EVENT_SOURCE": "global"},
		"second.env": {"PILOTFISH_JOB": "second", "PILOTFISH_EVENT": "exitSuccess", "PILOTFISH_EVENT_SOURCE": "first"},
	} {
		env := envFile(t, filepath.Join(p.Dir, file))
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s: %s = %q, want %q", file, k, env[k], v)
			}
		}
	}
}

// docs/guarantees.md#10, docs/configuration.md: user/group switch the ids and drop every supplementary group.
func TestUserGroupDropsSupplementaryGroups(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	status := `["grep", "-E", "^(Uid|Gid|Groups):", "/proc/self/status"]`
	cfg := jsonLogs + `
job "asroot" {
  exec = ` + status + `
}
job "nobody" {
  exec = ` + status + `
  user = "nobody"
}
job "grouponly" {
  exec  = ` + status + `
  group = "nogroup"
}
job "both" {
  exec  = ` + status + `
  user  = "nobody"
  group = "nogroup"
}
`
	// pilotfish itself starts with supplementary groups, which jobs must not inherit.
	p := start(t, opts{Config: cfg, Groups: []uint32{0, 4, 27, 100}})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	type ids struct{ uid, gid, groups string }
	got := map[string]*ids{}
	for _, l := range p.Stdout.Lines() {
		job, rest, ok := strings.Cut(strings.TrimPrefix(l, "["), "] ")
		if !ok {
			continue
		}
		key, val, _ := strings.Cut(rest, ":")
		val = strings.Join(strings.Fields(val), " ")
		if got[job] == nil {
			got[job] = &ids{}
		}
		switch key {
		case "Uid":
			got[job].uid = val
		case "Gid":
			got[job].gid = val
		case "Groups":
			got[job].groups = val
		}
	}
	want := map[string]ids{
		"asroot":    {"0 0 0 0", "0 0 0 0", "0 4 27 100"},
		"nobody":    {"65534 65534 65534 65534", "65534 65534 65534 65534", ""},
		"grouponly": {"0 0 0 0", "65534 65534 65534 65534", ""},
		"both":      {"65534 65534 65534 65534", "65534 65534 65534 65534", ""},
	}
	for job, w := range want {
		g := got[job]
		if g == nil {
			t.Errorf("job %s printed nothing", job)
			continue
		}
		if *g != w {
			t.Errorf("job %s: Uid %q Gid %q Groups %q; want Uid %q Gid %q Groups %q", job, g.uid, g.gid, g.groups, w.uid, w.gid, w.groups)
		}
	}
}

// docs/configuration.md: with `user`, HOME, USER and LOGNAME come from the passwd entry only
// where they are unset or empty; an inherited value (Docker's HOME=/root, an image's ENV)
// and the job's own env win.
func TestUserFillsInOnlyUnsetHomeAndUser(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	show := `["/bin/sh", "-c", "echo \"HOME=$HOME USER=$USER LOGNAME=$LOGNAME\""]`
	p := start(t, opts{Config: jsonLogs + `
job "inherited" {
  exec = ` + show + `
  user = "nobody"
}
job "own" {
  exec = ` + show + `
  user = "nobody"
  env  = { HOME = "/srv/own" }
}
job "empty" {
  exec = ` + show + `
  user = "nobody"
  env  = { HOME = "" }
}
`, Env: []string{"HOME=/home/image", "USER=", "LOGNAME=builder"}})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	want := map[string]string{
		"inherited": "HOME=/home/image USER=nobody LOGNAME=builder", // USER was empty: filled in
		"own":       "HOME=/srv/own USER=nobody LOGNAME=builder",
		"empty":     "HOME=/nonexistent USER=nobody LOGNAME=builder", // nobody's passwd entry
	}
	for job, w := range want {
		line := p.WaitStdout(time.Second, `^\[`+job+`\] HOME=`)
		if got := strings.TrimPrefix(line, "["+job+"] "); got != w {
			t.Errorf("job %s sees %q, want %q", job, got, w)
		}
	}
}

// docs/configuration.md: `dir` is the job's working directory; a relative exec path is found there.
func TestJobDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sub := filepath.Join(dir, "work dir")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(sub, "run.sh"), "#!/bin/sh\necho \"script in $(pwd)\"\n", 0o755)
	cfg := jsonLogs + `
job "pwd" {
  exec = ["pwd"]
  dir  = "${env.TESTDIR}/work dir"
}
job "relative" {
  exec = ["./run.sh"]
  dir  = "${env.TESTDIR}/work dir"
}
`
	p := start(t, opts{Config: cfg, Dir: dir})
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	out := p.Stdout.String()
	for _, want := range []string{"[pwd] " + sub + "\n", "[relative] script in " + sub + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}
