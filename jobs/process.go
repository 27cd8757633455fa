package jobs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/internal/logtail"
	"github.com/pilotfish/pilotfish/internal/output"
	"github.com/pilotfish/pilotfish/internal/reaper"
)

// jobOutput is where one job's stdout and stderr go, shared by all its runs.
type jobOutput struct {
	direct bool // the main job on a terminal: it owns pilotfish's stdin, stdout and stderr
	outCop output.Copier
	errCop output.Copier
	file   *output.RotatingFile
}

func newJobOutput(job *config.Job, rt *Runtime) (*jobOutput, error) {
	o := &jobOutput{direct: job.Main && isatty.IsTerminal(os.Stdin.Fd())}
	lg := job.Logging
	o.outCop = output.Copier{Sink: rt.Stdout, Raw: !lg.Prefix, Time: lg.Timestamps, Stream: logtail.Stdout}
	o.errCop = output.Copier{Sink: rt.Stderr, Raw: !lg.Prefix, Time: lg.Timestamps, Stream: logtail.Stderr}
	if rt.JSONLines && lg.Prefix {
		// prefix = false passes the bytes through untouched, also in JSON: a program that
		// writes its own JSON lines, or draws on a terminal (docs/jobs.md#json-lines).
		o.outCop.JSON = output.JSONFields(job.Name, logtail.Stdout.String())
		o.errCop.JSON = output.JSONFields(job.Name, logtail.Stderr.String())
	}
	if lg.Prefix {
		o.outCop.Prefix = output.Prefix(job.Name, lg.Color, colorIndex(job.Name), rt.Stdout.IsTerminal())
		o.errCop.Prefix = output.Prefix(job.Name, lg.Color, colorIndex(job.Name), rt.Stderr.IsTerminal())
	}
	if lg.File != "" {
		o.file = &output.RotatingFile{Path: lg.File, OnError: func(err error) {
			rt.Log.Warn("cannot write log file", "job", job.Name, "file", lg.File, "err", err)
		}}
		if r := lg.Rotate; r != nil {
			o.file.Size, o.file.Keep, o.file.Compress = r.Size, r.Keep, r.Compress
		}
		if err := o.file.Open(); err != nil {
			return nil, fmt.Errorf("cannot open log file %s: %w", lg.File, err)
		}
		o.outCop.File, o.errCop.File = o.file, o.file
	}
	return o, nil
}

// tailOf is the job's output tail (docs/jobs.md#the-tail-of-a-jobs-output), nil when the
// runtime keeps none. Look it up when a run starts, not when the job is built: a reload that
// fails builds jobs that never run, and must not touch the tail of the running one.
func tailOf(job *config.Job, rt *Runtime) *logtail.Ring {
	if rt.Logs == nil {
		return nil
	}
	size := job.Logging.Buffer
	if size == 0 {
		size = config.DefaultLogBuffer
	}
	return rt.Logs.Ring(job.Name, int(size))
}

func colorIndex(name string) int {
	h := 0
	for _, c := range name {
		h = h*31 + int(c)
	}
	if h < 0 {
		h = -h
	}
	return h
}

func (o *jobOutput) Close() {
	if o.file != nil {
		o.file.Close()
	}
}

// procRun is a running process of a job.
type procRun struct {
	pid int
}

func (p *procRun) Pid() int { return p.pid }

// Signal signals the whole process group, so that children of the job's process get it too.
func (p *procRun) Signal(sig syscall.Signal) error {
	err := syscall.Kill(-p.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		err = syscall.Kill(p.pid, sig)
	}
	return err
}

// outputDrain bounds how long an exit waits for the last output lines, which a grandchild
// holding the pipe open could otherwise delay forever.
const outputDrain = 200 * time.Millisecond

// startProcess starts the job's command for one run.
func startProcess(job *config.Job, rt *Runtime, out *jobOutput, req RunRequest) (*procRun, error) {
	spec, cleanup, err := processSpec(job, rt, out, req)
	if err != nil {
		return nil, err
	}
	if err := throughShim(job, rt, req, &spec, cleanup); err != nil {
		cleanup.closeChildSide()
		cleanup.closeAll()
		return nil, fmt.Errorf("cannot start %s: %w", cleanup.program, err)
	}
	proc, err := rt.Spawner.Spawn(spec)
	if err != nil && spec.Sys.Foreground {
		// The terminal on stdin is not pilotfish's controlling terminal: run without it.
		spec.Sys.Foreground = false
		proc, err = rt.Spawner.Spawn(spec)
	}
	cleanup.closeChildSide()
	if err == nil && cleanup.status != nil {
		err = waitShim(cleanup.status, proc.Pid)
		cleanup.status.Close()
		cleanup.status = nil
	}
	if err != nil {
		cleanup.closeAll()
		return nil, fmt.Errorf("cannot start %s: %w", cleanup.program, err)
	}
	p := &procRun{pid: proc.Pid}
	var copiers sync.WaitGroup
	for _, c := range cleanup.copies {
		copiers.Add(1)
		rt.copiers.Add(1)
		go func(c pendingCopy) {
			defer rt.copiers.Done()
			defer copiers.Done()
			defer c.r.Close()
			c.cop.Copy(c.r)
		}(c)
	}
	// The reaper hands the exit status to this goroutine, which lets the last output
	// through and gives the status to the job's loop.
	go func() {
		st := <-proc.Done
		drained := make(chan struct{})
		go func() { copiers.Wait(); close(drained) }()
		select {
		case <-drained:
		case <-time.After(outputDrain):
		}
		req.Exit(Result{Code: st.Code(), Signal: st.Signal, CPU: st.CPU})
	}()
	return p, nil
}

type pendingCopy struct {
	r   *os.File
	cop output.Copier
}

type spawnFiles struct {
	program   string // the job's program, for messages (the process may start as the shim)
	childSide []*os.File
	copies    []pendingCopy
	status    *os.File // the read end of the shim's status pipe, when it runs through the shim
}

func (s *spawnFiles) closeChildSide() {
	for _, f := range s.childSide {
		f.Close()
	}
}

func (s *spawnFiles) closeAll() {
	for _, c := range s.copies {
		c.r.Close()
	}
	if s.status != nil {
		s.status.Close()
	}
}

func processSpec(job *config.Job, rt *Runtime, out *jobOutput, req RunRequest) (reaper.Spec, *spawnFiles, error) {
	files := &spawnFiles{}
	env := req.Env
	path, err := lookPath(job.Exec[0], envValue(env, "PATH"), job.Dir)
	if err != nil {
		return reaper.Spec{}, files, err
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	cred, home, err := credential(job.User, job.Group)
	if err != nil {
		return reaper.Spec{}, files, err
	}
	if cred != nil {
		sys.Credential = cred
		env = userEnv(env, home)
	}
	files.program = path
	spec := reaper.Spec{Path: path, Args: job.Exec, Env: env, Dir: job.Dir, Sys: sys}

	if out.direct {
		// docker run -it … -- bash: the main job owns the terminal.
		spec.Files = []*os.File{os.Stdin, os.Stdout, os.Stderr}
		sys.Foreground, sys.Ctty = true, 0
		return spec, files, nil
	}

	stdin := req.Activation.Stdin
	if stdin == nil && job.Main {
		stdin = os.Stdin // docker run -i … -- cat: the main job reads pilotfish's stdin
	} else if stdin == nil {
		if stdin, err = os.Open(os.DevNull); err != nil {
			return reaper.Spec{}, files, err
		}
		files.childSide = append(files.childSide, stdin)
	}
	stdout := req.Activation.Stdout
	outCop, errCop := out.outCop, out.errCop
	outCop.OnLine, errCop.OnLine = req.OnLine, req.OnLine
	outCop.Activity, errCop.Activity = &rt.activity, &rt.activity
	if ring := tailOf(job, rt); ring != nil {
		outCop.Tail, errCop.Tail = ring, ring
	}
	if stdout == nil {
		r, w, err := outputPipe()
		if err != nil {
			files.closeChildSide()
			return reaper.Spec{}, files, err
		}
		stdout = w
		files.childSide = append(files.childSide, w)
		files.copies = append(files.copies, pendingCopy{r, outCop})
	}
	er, ew, err := outputPipe()
	if err != nil {
		files.closeChildSide()
		files.closeAll()
		return reaper.Spec{}, files, err
	}
	files.childSide = append(files.childSide, ew)
	files.copies = append(files.copies, pendingCopy{er, errCop})
	spec.Files = append([]*os.File{stdin, stdout, ew}, req.Activation.Files...)
	return spec, files, nil
}

// outputPipe is a pipe for a child's output: the read end pollable, as os.Pipe makes it;
// the write end, the child's, left blocking and never registered with the poller, which
// os.Pipe does and Fd undoes before the fork — two fcntl and two epoll_ctl per pipe that a
// start of 200 jobs paid 400 times.
func outputPipe() (r, w *os.File, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	if err := syscall.SetNonblock(p[0], true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}

// lookPath finds name the way execvp would, using the job's own PATH.
func lookPath(name, pathEnv, dir string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if err := executable(p); err != nil {
			return "", fmt.Errorf("cannot run %s: %w", name, err)
		}
		return name, nil
	}
	if pathEnv == "" {
		pathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("cannot run %s: not found in PATH %s", name, pathEnv)
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fs.ErrPermission
	}
	return nil
}

// credential resolves `user` and `group`. Supplementary groups are always dropped (an empty
// Groups list makes the child call setgroups(0)).
func credential(userName, groupName string) (*syscall.Credential, []string, error) {
	if userName == "" && groupName == "" {
		return nil, nil, nil
	}
	cred := &syscall.Credential{Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()), Groups: []uint32{}}
	var home []string
	if userName != "" {
		u, err := lookupUser(userName)
		if err != nil {
			return nil, nil, err
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred.Uid, cred.Gid = uint32(uid), uint32(gid)
		if u.HomeDir != "" {
			home = append(home, "HOME="+u.HomeDir)
		}
		if u.Username != "" {
			home = append(home, "USER="+u.Username, "LOGNAME="+u.Username)
		}
	}
	if groupName != "" {
		gid, err := lookupGroup(groupName)
		if err != nil {
			return nil, nil, err
		}
		cred.Gid = gid
	}
	return cred, home, nil
}

func lookupUser(name string) (*user.User, error) {
	if _, err := strconv.Atoi(name); err == nil {
		if u, err := user.LookupId(name); err == nil {
			return u, nil
		}
		return &user.User{Uid: name, Gid: name}, nil // a bare uid need not be in /etc/passwd
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("unknown user %q: %w", name, err)
	}
	return u, nil
}

func lookupGroup(name string) (uint32, error) {
	if n, err := strconv.Atoi(name); err == nil {
		return uint32(n), nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("unknown group %q: %w", name, err)
	}
	n, _ := strconv.Atoi(g.Gid)
	return uint32(n), nil
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// userEnv fills in HOME, USER and LOGNAME of the job's user where env (pilotfish's own,
// putenv values and the job's env, merged) leaves them unset or empty (docs/jobs.md): an
// image's HOME stays what the image says.
func userEnv(env, vars []string) []string {
	set := map[string]string{}
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		if envValue(env, k) == "" {
			set[k] = v
		}
	}
	return mergeEnv(env, set)
}

// mergeEnv returns base with each of the overrides applied in order; later keys win, and
// every key appears once.
func mergeEnv(base []string, overrides ...map[string]string) []string {
	idx := map[string]int{}
	out := make([]string, 0, len(base)+8)
	set := func(k, v string) {
		kv := k + "=" + v
		if i, ok := idx[k]; ok {
			out[i] = kv
			return
		}
		idx[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range base {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	for _, o := range overrides {
		for _, k := range sortedKeys(o) {
			set(k, o[k])
		}
	}
	return out
}
