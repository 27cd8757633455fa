// Package execshim is what runs in a job's new process between fork and exec when Go's
// syscall.ForkExec cannot do it: set resource limits and oom_score_adj, set environment
// variables to the process's own PID (LISTEN_PID, WATCHDOG_PID), drop to the job's user,
// then exec the program, which keeps the PID. pilotfish starts such a process as its own
// executable with the hidden verb Verb (docs/operations.md#how-limits-are-set).
//
// The process reports a failure before exec on a status pipe, as ForkExec does for its
// own exec: the parent reads it with ReadStatus and sees a start error, not an exit.
//
// Concurrency: Main runs alone in the new process; Spec.Args and ReadStatus keep no state.
// Who calls it: package jobs builds the command line and reads the status; this package's
// init runs Main when the process was started with Verb (any binary that links it:
// pilotfish, and the test binaries of the packages that start jobs).
package execshim

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Verb is the hidden command-line verb that runs Main: pilotfish __exec OPTIONS -- PATH ARGV...
const Verb = "__exec"

// Rlimit is one resource limit, set soft and hard alike.
type Rlimit struct {
	Name     string // for messages: nofile, nproc…
	Resource int
	Value    uint64
}

// Spec is what the shim does before it execs the program, in this order: limits,
// oom_score_adj, PID variables, user and group, working directory.
type Spec struct {
	Rlimits     []Rlimit
	OOMScoreAdj *int
	PidVars     []string            // environment variables set to the process's own PID
	Cred        *syscall.Credential // taken after the limits, so lowering them needs no privilege
	Dir         string              // entered as the job's user (as ForkExec would)
	StatusFD    int                 // the write end of the status pipe in the new process
}

// Args is the command line that runs path (argv) through the shim of self.
func (s Spec) Args(self, path string, argv []string) []string {
	out := []string{self, Verb, "-status", strconv.Itoa(s.StatusFD)}
	for _, r := range s.Rlimits {
		out = append(out, "-rlimit", r.Name+":"+strconv.Itoa(r.Resource)+":"+strconv.FormatUint(r.Value, 10))
	}
	if s.OOMScoreAdj != nil {
		out = append(out, "-oom", strconv.Itoa(*s.OOMScoreAdj))
	}
	if len(s.PidVars) > 0 {
		out = append(out, "-pid", strings.Join(s.PidVars, ","))
	}
	if c := s.Cred; c != nil {
		groups := make([]string, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = strconv.FormatUint(uint64(g), 10)
		}
		out = append(out, "-uid", strconv.FormatUint(uint64(c.Uid), 10), "-gid", strconv.FormatUint(uint64(c.Gid), 10),
			"-groups", strings.Join(groups, ","))
	}
	if s.Dir != "" {
		out = append(out, "-dir", s.Dir)
	}
	return append(append(out, "--", path), argv...)
}

// parse reads the options Args wrote.
func parse(args []string) (s Spec, path string, argv []string, err error) {
	s.StatusFD = -1
	var uid, gid *uint32
	var groups []uint32
	for len(args) > 0 {
		opt := args[0]
		if opt == "--" {
			args = args[1:]
			break
		}
		if len(args) < 2 {
			return s, "", nil, fmt.Errorf("option %s has no value", opt)
		}
		v := args[1]
		args = args[2:]
		switch opt {
		case "-status":
			s.StatusFD, err = strconv.Atoi(v)
		case "-rlimit":
			f := strings.Split(v, ":")
			if len(f) != 3 {
				return s, "", nil, fmt.Errorf("bad -rlimit %q", v)
			}
			r := Rlimit{Name: f[0]}
			if r.Resource, err = strconv.Atoi(f[1]); err == nil {
				r.Value, err = strconv.ParseUint(f[2], 10, 64)
			}
			s.Rlimits = append(s.Rlimits, r)
		case "-oom":
			var n int
			n, err = strconv.Atoi(v)
			s.OOMScoreAdj = &n
		case "-pid":
			s.PidVars = strings.Split(v, ",")
		case "-uid", "-gid":
			var n uint64
			n, err = strconv.ParseUint(v, 10, 32)
			id := uint32(n)
			if opt == "-uid" {
				uid = &id
			} else {
				gid = &id
			}
		case "-groups":
			for _, g := range strings.Split(v, ",") {
				if g == "" {
					continue
				}
				n, e := strconv.ParseUint(g, 10, 32)
				if e != nil {
					err = e
				}
				groups = append(groups, uint32(n))
			}
		case "-dir":
			s.Dir = v
		default:
			return s, "", nil, fmt.Errorf("unknown option %s", opt)
		}
		if err != nil {
			return s, "", nil, fmt.Errorf("bad %s %q: %w", opt, v, err)
		}
	}
	if (uid == nil) != (gid == nil) {
		return s, "", nil, errors.New("-uid and -gid go together")
	}
	if uid != nil {
		s.Cred = &syscall.Credential{Uid: *uid, Gid: *gid, Groups: groups}
	}
	if len(args) < 2 {
		return s, "", nil, errors.New("no program after --")
	}
	return s, args[0], args[1:], nil
}

// The shim runs from this package's init, which Go runs before the packages that import
// it or sort after it (docs/operations.md#what-it-costs): the process execs the
// program before the heavy packages of pilotfish (the configuration language, Consul,
// Prometheus) have initialised, which would cost it several milliseconds.
func init() {
	if len(os.Args) > 1 && os.Args[1] == Verb {
		os.Exit(Main(os.Args[2:]))
	}
}

// Main is the shim, given the arguments after Verb. It returns only when it could not
// exec the program, with the exit code; the reason went to the status pipe (or stderr).
func Main(args []string) int {
	s, path, argv, err := parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: pilotfish %s: %v\n", Verb, err)
		return 2
	}
	status := os.Stderr
	if s.StatusFD >= 0 {
		syscall.CloseOnExec(s.StatusFD) // the parent reads EOF once the program runs
		status = os.NewFile(uintptr(s.StatusFD), "status")
	}
	report(status, s.apply(path, argv))
	return 127
}

// apply does what s says and execs the program; it returns only why it could not.
func (s Spec) apply(path string, argv []string) error {
	for _, r := range s.Rlimits {
		// syscall.Setrlimit, not a raw call: it also stops Exec from restoring the soft
		// RLIMIT_NOFILE the Go runtime raised at start.
		lim := syscall.Rlimit{Cur: r.Value, Max: r.Value}
		if err := syscall.Setrlimit(r.Resource, &lim); err != nil {
			return fmt.Errorf("cannot set limits.%s to %s: %w", r.Name, LimitText(r.Value), err)
		}
	}
	if s.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*s.OOMScoreAdj)), 0); err != nil {
			why := err
			if errors.Is(err, os.ErrPermission) {
				why = fmt.Errorf("%w (lowering it below pilotfish's own needs CAP_SYS_RESOURCE)", err)
			}
			return fmt.Errorf("cannot set oom_score_adj to %d: %w", *s.OOMScoreAdj, why)
		}
	}
	env := os.Environ()
	if len(s.PidVars) > 0 {
		env = slices.DeleteFunc(env, func(kv string) bool {
			k, _, _ := strings.Cut(kv, "=")
			return slices.Contains(s.PidVars, k)
		})
		for _, v := range s.PidVars {
			env = append(env, v+"="+strconv.Itoa(os.Getpid()))
		}
	}
	if c := s.Cred; c != nil {
		groups := make([]int, len(c.Groups))
		for i, g := range c.Groups {
			groups[i] = int(g)
		}
		if err := syscall.Setgroups(groups); err != nil {
			return fmt.Errorf("cannot set the supplementary groups: %w", err)
		}
		if err := syscall.Setgid(int(c.Gid)); err != nil {
			return fmt.Errorf("cannot switch to group %d: %w", c.Gid, err)
		}
		if err := syscall.Setuid(int(c.Uid)); err != nil {
			return fmt.Errorf("cannot switch to user %d: %w", c.Uid, err)
		}
	}
	if s.Dir != "" {
		if err := syscall.Chdir(s.Dir); err != nil {
			return fmt.Errorf("cannot enter %s: %w", s.Dir, err)
		}
	}
	err := syscall.Exec(path, argv, env)
	return fmt.Errorf("cannot run %s: %w", path, err)
}

// LimitText writes a limit's value as the configuration does.
func LimitText(v uint64) string {
	if v == ^uint64(0) {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// report writes the error for ReadStatus: the errno on the first line (0 if none), then
// the message.
func report(w io.Writer, err error) {
	var errno syscall.Errno
	errors.As(err, &errno)
	fmt.Fprintf(w, "%d\n%s\n", int(errno), err)
}

// ReadStatus reads the status pipe until the shim execs the program (EOF, nil) or reports
// why it could not. The error wraps the system's errno, so that errors.Is tells a
// permission problem.
func ReadStatus(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 4096))
	if err != nil {
		return fmt.Errorf("cannot read the start-up status: %w", err)
	}
	if len(b) == 0 {
		return nil
	}
	code, msg, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if n, _ := strconv.Atoi(code); n != 0 {
		return &shimError{msg: msg, errno: syscall.Errno(n)}
	}
	return errors.New(msg)
}

type shimError struct {
	msg   string
	errno syscall.Errno
}

func (e *shimError) Error() string { return e.msg }
func (e *shimError) Unwrap() error { return e.errno }
