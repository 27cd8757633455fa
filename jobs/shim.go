package jobs

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/internal/execshim"
	"github.com/pilotfish/pilotfish/internal/reaper"
)

// shimTimeout bounds how long a start waits for the shim to exec the program.
const shimTimeout = 10 * time.Second

// throughShim makes spec start the program through pilotfish's exec shim when the job
// needs what syscall.ForkExec cannot do between fork and exec: resource limits,
// oom_score_adj, or variables holding the program's own PID. The shim then also takes the
// job's user and working directory, after the limits (docs/operations.md#resources).
func throughShim(job *config.Job, rt *Runtime, req RunRequest, spec *reaper.Spec, files *spawnFiles) error {
	sh := execshim.Spec{OOMScoreAdj: job.OOMScoreAdj}
	for _, r := range config.Rlimits() {
		if v, ok := job.Limits[r.Name]; ok {
			sh.Rlimits = append(sh.Rlimits, execshim.Rlimit{Name: r.Name, Resource: r.Resource, Value: v})
		}
	}
	if err := checkHardLimits(sh.Rlimits); err != nil {
		return err
	}
	if rt.Self != "" {
		sh.PidVars = req.Activation.PidVars
	}
	if len(sh.Rlimits) == 0 && sh.OOMScoreAdj == nil && len(sh.PidVars) == 0 {
		return nil
	}
	if rt.Self == "" {
		return errors.New("cannot apply limits or oom_score_adj: pilotfish's own executable is unknown")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	files.status = r
	files.childSide = append(files.childSide, w)
	spec.Files = append(spec.Files, w)
	sh.StatusFD = len(spec.Files) - 1
	sh.Cred, spec.Sys.Credential = spec.Sys.Credential, nil
	if sh.Cred != nil {
		sh.Dir, spec.Dir = spec.Dir, ""
	}
	spec.Args = sh.Args(rt.Self, spec.Path, spec.Args)
	spec.Path = rt.Self
	return nil
}

// checkHardLimits refuses a limit above pilotfish's own hard limit: the job inherits it,
// and raising it is for whoever starts the container.
func checkHardLimits(lims []execshim.Rlimit) error {
	for _, l := range lims {
		var cur syscall.Rlimit
		if err := syscall.Getrlimit(l.Resource, &cur); err != nil {
			return fmt.Errorf("cannot read limit %s: %w", l.Name, err)
		}
		if cur.Max != config.RlimitUnlimited && l.Value > cur.Max {
			return fmt.Errorf("limits.%s = %s is above the hard limit %d that pilotfish runs with; lower it, or raise the container's limit (docker run --ulimit %s=%s)",
				l.Name, execshim.LimitText(l.Value), cur.Max, l.Name, execshim.LimitText(l.Value))
		}
	}
	return nil
}

// waitShim waits until the shim has exec'ed the program or said why it could not. A shim
// that does not answer in time is killed.
func waitShim(status *os.File, pid int) error {
	_ = status.SetReadDeadline(time.Now().Add(shimTimeout))
	err := execshim.ReadStatus(status)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return fmt.Errorf("the program was not started within %s", shimTimeout)
	}
	return err
}
