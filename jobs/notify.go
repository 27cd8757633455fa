package jobs

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/events"
	"github.com/pilotfish/pilotfish/internal/reaper"
	"golang.org/x/sys/unix"
)

// notifyKind runs a program written for systemd's Type=notify: it gets its own
// NOTIFY_SOCKET and reports readiness (READY=1), status, its main PID and watchdog
// keep-alives there.
type notifyKind struct{}

// NotifySpec is the notify kind's part of a job's configuration.
type NotifySpec struct {
	Watchdog     time.Duration `json:"watchdog,omitempty"`
	ReadyTimeout time.Duration `json:"ready_timeout,omitempty"`
}

// Equal reports whether other is the same notify spec.
func (s *NotifySpec) Equal(other config.Spec) bool { return config.SpecEqual(s, other) }

func (notifyKind) Schema() *hcl.BodySchema {
	return &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "watchdog"}, {Name: "ready_timeout"}}}
}
func (notifyKind) ExecRule() config.ExecRule { return config.ExecRequired }
func (notifyKind) Emits(*config.Job) []events.Code {
	return append(slices.Clone(processCodes), events.Healthy, events.Unhealthy)
}

func (notifyKind) Decode(d *config.Decoder, j *config.Job, c *hcl.BodyContent) {
	spec := &NotifySpec{}
	d.Duration(c.Attributes, "watchdog", &spec.Watchdog)
	d.Duration(c.Attributes, "ready_timeout", &spec.ReadyTimeout)
	j.Spec = spec
	decodeOverlap(d, j, config.OverlapRestart, config.OverlapSkip)
	if j.Health != nil {
		d.Errorf(j.Range, "job %q: a notify job reports its health itself (READY=1, WATCHDOG=1); remove the health block", j.Name)
	}
}

func (notifyKind) NewDriver(job *config.Job, rt *Runtime) (Driver, error) {
	out, err := newJobOutput(job, rt)
	if err != nil {
		return nil, err
	}
	base := rt.RuntimeDir
	if base == "" {
		base = "/run/pilotfish"
	}
	return &notifyDriver{processDriver: processDriver{job: job, rt: rt, out: out}, spec: job.Spec.(*NotifySpec),
		dir: filepath.Join(base, "notify", job.Name)}, nil
}

// notifyDriver owns the job's notification socket. One reader goroutine takes every
// datagram, checks its sender, and hands it to the run it belongs to.
type notifyDriver struct {
	processDriver
	spec *NotifySpec
	dir  string

	mu      sync.Mutex
	conn    *net.UnixConn
	current *notifyRun
	rejects float64
}

func (d *notifyDriver) socketPath() string { return filepath.Join(d.dir, "notify.sock") }

// Prepare creates the socket in a directory only the job's user can reach.
func (d *notifyDriver) Prepare() error {
	cred, _, err := credential(d.job.User, d.job.Group)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(d.dir), 0o755); err != nil {
		return fmt.Errorf("cannot create the notify socket directory: %w", err)
	}
	os.RemoveAll(d.dir)
	if err := os.Mkdir(d.dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the notify socket directory: %w", err)
	}
	path := d.socketPath()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("cannot create the notify socket: %w", err)
	}
	if cred != nil {
		_ = os.Chown(d.dir, int(cred.Uid), int(cred.Gid))
		_ = os.Chown(path, int(cred.Uid), int(cred.Gid))
	}
	_ = os.Chmod(path, 0o600)
	raw, err := conn.SyscallConn()
	if err == nil {
		_ = raw.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	}
	if err != nil {
		conn.Close()
		return fmt.Errorf("cannot ask for sender credentials: %w", err)
	}
	d.mu.Lock()
	d.conn = conn
	d.mu.Unlock()
	go d.read(conn)
	return nil
}

func (d *notifyDriver) Close() {
	d.mu.Lock()
	if d.conn != nil {
		d.conn.Close()
		d.conn = nil
	}
	d.mu.Unlock()
	os.RemoveAll(d.dir)
	d.processDriver.Close()
}

// read takes datagrams until the socket closes. Passed file descriptors are closed at
// once (BARRIER=1: systemd-notify waits for that); a datagram from a process outside the
// current run's process tree is dropped.
func (d *notifyDriver) read(conn *net.UnixConn) {
	buf := make([]byte, maxNotifyMessage)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(64*4))
	for {
		n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pid, fds := sender(oob[:oobn])
		var msg NotifyMessage
		if flags&unix.MSG_TRUNC != 0 {
			// The rest of the datagram is lost: its first part alone could say
			// something else (MAINPID=12 for MAINPID=1234), so none of it counts.
			err = errNotifyTooLong
		} else {
			msg, err = ParseNotify(buf[:n])
		}
		d.mu.Lock()
		run := d.current
		d.mu.Unlock()
		// The sender is checked before its descriptors are closed: systemd-notify waits
		// for that (BARRIER=1) and exits right after, taking its /proc entry with it.
		switch {
		case err != nil:
			d.reject("malformed sd_notify message", pid, err)
		case run == nil:
			d.reject("sd_notify message while the job has no process", pid, nil)
		case pid == 0 || !run.owns(pid):
			d.reject("sd_notify message from a process outside the job", pid, nil)
		default:
			select {
			case run.msgs <- msg:
			default:
				d.reject("sd_notify message while the run is busy or over", pid, nil)
			}
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

func (d *notifyDriver) reject(why string, pid int, err error) {
	d.mu.Lock()
	d.rejects++
	d.mu.Unlock()
	d.rt.Log.Warn(why+"; dropped", "job", d.job.Name, "sender_pid", pid, "err", err)
}

func (d *notifyDriver) rejectMainPID(pid int) {
	d.mu.Lock()
	d.rejects++
	d.mu.Unlock()
	d.rt.Log.Warn("MAINPID names a process outside the job; ignored", "job", d.job.Name, "mainpid", pid)
}

// sender returns the sender's PID from SCM_CREDENTIALS (0 if none came) and the
// descriptors passed with SCM_RIGHTS, which the caller must close.
func sender(oob []byte) (pid int, fds []int) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, nil
	}
	for _, m := range msgs {
		if rights, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, rights...)
		}
		if cred, err := unix.ParseUnixCredentials(&m); err == nil {
			pid = int(cred.Pid)
		}
	}
	return pid, fds
}

// Counters reports pilotfish_notify_rejected_total.
func (d *notifyDriver) Counters() []Counter {
	d.mu.Lock()
	defer d.mu.Unlock()
	return []Counter{{Metric: "pilotfish_notify_rejected_total", N: d.rejects}}
}

func (d *notifyDriver) Start(req RunRequest) (Run, error) {
	req.Env = mergeEnv(req.Env, map[string]string{"NOTIFY_SOCKET": d.socketPath()})
	if d.spec.Watchdog > 0 {
		req.Env = mergeEnv(req.Env, map[string]string{"WATCHDOG_USEC": strconv.FormatInt(d.spec.Watchdog.Microseconds(), 10)})
		req.Activation.PidVars = append(req.Activation.PidVars, "WATCHDOG_PID")
	}
	// The process's exit goes to the run's loop, which may adopt the main PID it announced
	// and hands the job the end of that one instead.
	exited := make(chan Result, 1)
	inner := req
	inner.Exit = func(res Result) { exited <- res }
	r, err := d.processDriver.Start(inner)
	if err != nil {
		return nil, err
	}
	nr := &notifyRun{procRun: r.(*procRun), d: d, report: req.Report, exit: req.Exit, exited: exited, msgs: make(chan NotifyMessage, 16)}
	d.mu.Lock()
	d.current = nr
	d.mu.Unlock()
	go nr.loop()
	return nr, nil
}

// notifyRun is one run of a notify job: its process, and the main PID it may announce.
type notifyRun struct {
	*procRun
	d      *notifyDriver
	report func(Report)
	exit   func(Result)
	exited chan Result // the started process's end
	msgs   chan NotifyMessage

	mu      sync.Mutex
	mainPID int
}

// Pid is the announced main PID, or the process pilotfish started.
func (r *notifyRun) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mainPID != 0 {
		return r.mainPID
	}
	return r.pid
}

func (r *notifyRun) procRef() procRef {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref := procRef{group: r.pid}
	if r.mainPID != r.pid {
		ref.main = r.mainPID
	}
	return ref
}

// Signal signals the started process's group and the announced main PID (a daemon may
// have left the group).
func (r *notifyRun) Signal(sig syscall.Signal) error {
	err := r.procRun.Signal(sig)
	r.mu.Lock()
	main := r.mainPID
	r.mu.Unlock()
	if main != 0 && main != r.pid {
		if e := syscall.Kill(main, sig); e == nil {
			err = nil
		}
	}
	return err
}

// owns reports whether pid belongs to the run: the started process's tree, the tree of
// the announced main PID, or a process that inherited the job's NOTIFY_SOCKET — a daemon
// that forked twice and called setsid() is in none of the trees any more (systemd knows it
// by its cgroup; pilotfish by what it inherited from the job).
func (r *notifyRun) owns(pid int) bool {
	r.mu.Lock()
	roots := []int{r.pid}
	if r.mainPID != 0 {
		roots = append(roots, r.mainPID)
	}
	r.mu.Unlock()
	if slices.Contains(roots, pid) {
		return true // the usual case (a watchdog ping from the program): no /proc scan
	}
	for _, root := range roots {
		if slices.Contains(processTree(root), pid) {
			return true
		}
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return err == nil && slices.Contains(strings.Split(string(env), "\x00"), "NOTIFY_SOCKET="+r.d.socketPath())
}

func (r *notifyRun) loop() {
	spec := r.d.spec
	var readyT, dogT <-chan time.Time
	var readyTimer, dogTimer *time.Timer
	stopTimer := func(t *time.Timer) {
		if t != nil {
			t.Stop()
		}
	}
	defer func() { stopTimer(readyTimer); stopTimer(dogTimer) }()
	if spec.ReadyTimeout > 0 {
		readyTimer = time.NewTimer(spec.ReadyTimeout)
		readyT = readyTimer.C
	}
	dog := spec.Watchdog
	armDog := func() {
		stopTimer(dogTimer)
		dogTimer, dogT = nil, nil
		if dog > 0 {
			dogTimer = time.NewTimer(dog)
			dogT = dogTimer.C
		}
	}
	armDog()
	exited := r.exited
	var adopted <-chan reaper.Status
	var first Result
	status := func(s string) { r.report(Report{Status: &s}) }
	for {
		select {
		case m := <-r.msgs:
			if m.MainPID != 0 && m.MainPID != r.pid {
				if r.owns(m.MainPID) {
					r.mu.Lock()
					r.mainPID = m.MainPID
					r.mu.Unlock()
					status(fmt.Sprintf("main PID %d", m.MainPID))
				} else {
					r.d.rejectMainPID(m.MainPID)
				}
			}
			if m.Status != nil {
				status(*m.Status)
			}
			switch {
			case m.Reloading:
				status("reloading")
			case m.Stopping:
				status("stopping")
			}
			if m.Errno != 0 {
				status(fmt.Sprintf("errno %d: %s", m.Errno, syscall.Errno(m.Errno).Error()))
			}
			if m.Ready {
				stopTimer(readyTimer)
				readyT = nil
				r.report(Report{Ready: true, Message: "READY=1"})
			}
			if m.ExtendTimeout > 0 && readyT != nil {
				stopTimer(readyTimer)
				readyTimer = time.NewTimer(m.ExtendTimeout)
				readyT = readyTimer.C
			}
			if m.WatchdogUsec > 0 {
				dog = m.WatchdogUsec
			}
			if m.Watchdog || m.WatchdogUsec > 0 {
				armDog()
			}
			if m.WatchdogTrigger {
				r.watchdogMissed("the program asked for it (WATCHDOG=trigger)")
			}
		case <-readyT:
			readyT = nil
			r.report(Report{Unready: true, Message: fmt.Sprintf("READY=1 did not come within ready_timeout %s", spec.ReadyTimeout), Kill: syscall.SIGTERM})
		case <-dogT:
			dogT = nil
			r.watchdogMissed(fmt.Sprintf("no WATCHDOG=1 within %s", dog))
		case res := <-exited:
			exited = nil
			r.mu.Lock()
			main := r.mainPID
			r.mu.Unlock()
			if main != 0 && main != r.pid {
				if a, ok := r.d.rt.Spawner.(interface {
					Adopt(int) <-chan reaper.Status
				}); ok {
					first, adopted = res, a.Adopt(main)
					continue // the daemon lives on under its announced PID
				}
			}
			r.finish(res)
			return
		case st, ok := <-adopted:
			if !ok {
				r.finish(first)
			} else {
				r.finish(Result{Code: st.Code(), Signal: st.Signal, CPU: first.CPU + st.CPU})
			}
			return
		}
	}
}

func (r *notifyRun) watchdogMissed(why string) {
	r.report(Report{Unready: true, Message: "watchdog: " + why, Kill: syscall.SIGABRT, Restart: true})
}

func (r *notifyRun) finish(res Result) {
	r.d.mu.Lock()
	if r.d.current == r {
		r.d.current = nil
	}
	r.d.mu.Unlock()
	r.exit(res)
}
