package execshim

import (
	"errors"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestArgsRoundTrip(t *testing.T) {
	adj := -500
	s := Spec{
		Rlimits:     []Rlimit{{"nofile", syscall.RLIMIT_NOFILE, 64}, {"core", syscall.RLIMIT_CORE, ^uint64(0)}},
		OOMScoreAdj: &adj,
		PidVars:     []string{"LISTEN_PID", "WATCHDOG_PID"},
		Cred:        &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}},
		Dir:         "/srv/app dir",
		StatusFD:    5,
	}
	args := s.Args("/pf", "/bin/app", []string{"app", "--", "-x"})
	if args[0] != "/pf" || args[1] != Verb {
		t.Fatalf("args %q", args)
	}
	got, path, argv, err := parse(args[2:])
	if err != nil {
		t.Fatal(err)
	}
	if got.Cred != nil && got.Cred.Groups == nil {
		got.Cred.Groups = []uint32{}
	}
	if !reflect.DeepEqual(got, s) || path != "/bin/app" || !slices.Equal(argv, []string{"app", "--", "-x"}) {
		t.Fatalf("parsed %+v %q %q, want %+v", got, path, argv, s)
	}
	for _, bad := range [][]string{
		{"-rlimit", "nofile:7", "--", "/x", "x"},
		{"-oom", "x", "--", "/x", "x"},
		{"-uid", "1", "--", "/x", "x"},
		{"-bogus", "1", "--", "/x", "x"},
		{"--", "/x"},
		{"-status"},
	} {
		if _, _, _, err := parse(bad); err == nil {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

func TestReadStatus(t *testing.T) {
	if err := ReadStatus(strings.NewReader("")); err != nil {
		t.Fatalf("EOF (the program runs): %v", err)
	}
	var b strings.Builder
	report(&b, errors.Join(errors.New("cannot enter /x"), syscall.EACCES))
	err := ReadStatus(strings.NewReader(b.String()))
	if err == nil || !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), "cannot enter /x") {
		t.Fatalf("got %v", err)
	}
}

// shim runs script through the shim of this test binary (which, started with Verb, runs
// the shim from the package's init as pilotfish does) with the spec's options, and
// returns the started process, its output and what the status pipe said. Words in pre
// run first and exec the shim (a shell that sets limits).
func shim(t *testing.T, s Spec, script string, pre ...string) (*exec.Cmd, string, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s.StatusFD = 3
	args := append(pre, s.Args(self, "/bin/sh", []string{"sh", "-c", script})...)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = append(os.Environ(), "SHIM_TEST=1")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	status := ReadStatus(r)
	_ = cmd.Wait()
	return cmd, out.String(), status
}

// The program keeps the shim's PID, environment and exit status, and runs with the limits.
func TestShimExecs(t *testing.T) {
	cmd, out, err := shim(t, Spec{Rlimits: []Rlimit{{"nofile", syscall.RLIMIT_NOFILE, 64}}},
		`echo "$$ $(ulimit -n) $(ulimit -Hn) $SHIM_TEST"; exit 7`)
	if err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(cmd.Process.Pid) + " 64 64 1\n"
	if out != want || cmd.ProcessState.ExitCode() != 7 {
		t.Fatalf("printed %q and exited %d; want %q and 7", out, cmd.ProcessState.ExitCode(), want)
	}
	// Without a nofile limit, the program gets the soft limit the shim was started with,
	// not the one the Go runtime raised for itself.
	_, out, err = shim(t, Spec{PidVars: []string{"MY_PID"}}, `echo "$(ulimit -n) $MY_PID $$"`,
		"/bin/sh", "-c", `ulimit -Sn 100 && exec "$@"`, "sh")
	f := strings.Fields(out)
	if err != nil || len(f) != 3 || f[0] != "100" || f[1] != f[2] {
		t.Fatalf("printed %q (%v); want the soft limit 100 and MY_PID = $$", out, err)
	}
}

// What fails before exec reaches the status pipe, with the system's error.
func TestShimReportsFailures(t *testing.T) {
	_, out, err := shim(t, Spec{Dir: "/nonexistent/dir"}, "echo ran")
	if err == nil || !errors.Is(err, syscall.ENOENT) || !strings.Contains(err.Error(), "cannot enter /nonexistent/dir") || out != "" {
		t.Fatalf("status %v, output %q", err, out)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		_, _, err = shim(t, Spec{Rlimits: []Rlimit{{"nofile", syscall.RLIMIT_NOFILE, lim.Max + 1}}}, "echo ran")
		if err == nil || !strings.Contains(err.Error(), "cannot set limits.nofile") {
			t.Fatalf("a limit above the hard limit: %v", err)
		}
	}
}
