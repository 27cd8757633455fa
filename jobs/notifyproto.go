package jobs

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"
)

// NotifyMessage is one parsed sd_notify datagram: newline-separated KEY=VALUE assignments.
// Unknown keys are kept in Other and otherwise ignored.
type NotifyMessage struct {
	Ready, Reloading, Stopping, Barrier bool
	Status                              *string
	MainPID                             int
	Errno                               int
	Watchdog                            bool // WATCHDOG=1
	WatchdogTrigger                     bool // WATCHDOG=trigger
	WatchdogUsec                        time.Duration
	ExtendTimeout                       time.Duration
	Other                               []string
}

// errNotifyMessage marks a datagram that is not an sd_notify message.
var errNotifyMessage = errors.New("not an sd_notify message")

// maxNotifyMessage is the longest datagram read, as systemd does (docs/notify.md); a longer
// one is dropped with errNotifyTooLong.
const maxNotifyMessage = 4096

var errNotifyTooLong = errors.New("longer than 4096 bytes, the most an sd_notify message may be")

// ParseNotify reads a datagram. A datagram with no KEY=VALUE line at all, or with a NUL
// byte, is an error; a bad value for a known key is an error too.
func ParseNotify(b []byte) (NotifyMessage, error) {
	var m NotifyMessage
	if len(b) == 0 || bytes.IndexByte(b, 0) >= 0 {
		return m, errNotifyMessage
	}
	seen := false
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			return m, errNotifyMessage
		}
		seen = true
		var err error
		switch k {
		case "READY":
			m.Ready = v == "1"
		case "RELOADING":
			m.Reloading = v == "1"
		case "STOPPING":
			m.Stopping = v == "1"
		case "BARRIER":
			m.Barrier = v == "1"
		case "STATUS":
			s := v
			m.Status = &s
		case "MAINPID":
			if m.MainPID, err = strconv.Atoi(v); err != nil || m.MainPID <= 0 {
				return m, errNotifyMessage
			}
		case "ERRNO":
			if m.Errno, err = strconv.Atoi(v); err != nil || m.Errno < 0 {
				return m, errNotifyMessage
			}
		case "WATCHDOG":
			m.Watchdog = v == "1"
			m.WatchdogTrigger = v == "trigger"
		case "WATCHDOG_USEC":
			if m.WatchdogUsec, err = usec(v); err != nil {
				return m, err
			}
		case "EXTEND_TIMEOUT_USEC":
			if m.ExtendTimeout, err = usec(v); err != nil {
				return m, err
			}
		default:
			m.Other = append(m.Other, k)
		}
	}
	if !seen {
		return m, errNotifyMessage
	}
	return m, nil
}

func usec(v string) (time.Duration, error) {
	n, err := strconv.ParseUint(v, 10, 63)
	if err != nil || n > uint64(1<<62)/1000 {
		return 0, errNotifyMessage
	}
	return time.Duration(n) * time.Microsecond, nil
}
