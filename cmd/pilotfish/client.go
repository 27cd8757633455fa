package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pilotfish/pilotfish/control/client"
	"github.com/pilotfish/pilotfish/core"
)

// clientCmd is one verb that talks to a running daemon.
type clientCmd struct {
	args     string // usage of the positional arguments
	min, max int    // number of positional arguments (-1: any)
	run      func(ctx context.Context, c *client.Client, o *clientOpts, args []string) error
}

type clientOpts struct {
	json   bool
	follow bool
	since  int64
	lines  int       // logs -n
	config pathsFlag // render: the socket comes from this configuration
	out    io.Writer
}

var clientCommands = map[string]clientCmd{
	"ping":        {"", 0, 0, cmdPing},
	"status":      {"[JOB]", 0, 1, cmdStatus},
	"events":      {"[-f] [-since SEQ]", 0, 0, cmdEvents},
	"logs":        {"[-f] [-n N] [JOB...]", 0, -1, cmdLogs},
	"reload":      {"", 0, 0, cmdReload},
	"maintenance": {"on|off", 1, 1, cmdMaintenance},
	"putenv":      {"KEY=VALUE...", 1, -1, cmdPutenv},
	"putmetric":   {"NAME=VALUE...", 1, -1, cmdPutmetric},
	"start":       {"JOB", 1, 1, jobVerb((*client.Client).Start)},
	"stop":        {"[JOB]  (no JOB: stop the container)", 0, 1, cmdStop},
	"restart":     {"JOB", 1, 1, jobVerb((*client.Client).Restart)},
	"signal":      {"JOB SIGNAL", 2, 2, cmdSignal},
	"render":      {"[-config PATH] TEMPLATE", 1, 1, cmdRender},
}

// Client exit codes (docs/cli.md).
const (
	exitRefused     = 1
	exitUsage       = 2
	exitUnreachable = 3
)

// clientFlags are the flags of a client verb, written into o.
func clientFlags(verb string, o *clientOpts) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	socket := fs.String("socket", "", "the control socket's `PATH` (default $PILOTFISH_SOCKET, else /var/run/pilotfish.sock)")
	fs.BoolVar(&o.json, "json", false, "print JSON")
	if verb == "events" {
		fs.BoolVar(&o.follow, "f", false, "follow: print new events as they come")
		fs.Int64Var(&o.since, "since", -1, "replay the events after sequence number `SEQ`")
	}
	if verb == "logs" {
		fs.BoolVar(&o.follow, "f", false, "follow")
		fs.IntVar(&o.lines, "n", client.DefaultLogLines, "lines to show; -1 for every line kept")
	}
	if verb == "render" {
		fs.Var(&o.config, "config", "find the control socket in the configuration at `PATH` (a file or a directory; may be repeated)")
	}
	return fs, socket
}

func runClient(verb string, cmd clientCmd, args []string) int {
	o := &clientOpts{out: os.Stdout}
	fs, socket := clientFlags(verb, o)
	// Flags may come before, between or after the arguments.
	var pos []string
	for {
		if done, code := parseFlags(fs, verb, args); done {
			return code
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < cmd.min || cmd.max >= 0 && len(pos) > cmd.max {
		fmt.Fprintf(os.Stderr, "usage: %s\n", verbUsage(verb))
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *socket == "" && len(o.config) > 0 {
		path, err := core.ConfigSocket(o.config)
		if err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			return exitUsage
		}
		*socket = path
	}
	c := client.New(client.SocketPath(*socket))
	out := &countingWriter{w: o.out}
	o.out = out
	err := cmd.run(ctx, c, o, pos)
	if err == nil && o.json && out.n == 0 && verb != "logs" {
		fmt.Fprintln(out, "{}") // -json always prints JSON (logs: NDJSON, maybe no line)
	}
	var usageErr usageError
	if errors.As(err, &usageErr) {
		fmt.Fprintf(os.Stderr, "error: %s\nusage: pilotfish %s %s\n", err, verb, cmd.args)
		return exitUsage
	}
	return clientExit(err, o)
}

// clientExit prints a client error and picks the exit code (docs/cli.md#exit-codes).
func clientExit(err error, o *clientOpts) int {
	var apiErr *client.APIError
	var usageErr usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &usageErr):
		fmt.Fprintf(os.Stderr, "error: %s\n", err)
		return exitUsage
	case errors.As(err, &apiErr):
		if o.json {
			_ = printJSON(o.out, client.ErrorBody{Error: client.ErrorDetail{Kind: apiErr.Kind, Message: apiErr.Message}, Diagnostics: apiErr.Diagnostics})
		}
		fmt.Fprintf(os.Stderr, "error: %s\n", apiErr.Message)
		for _, d := range apiErr.Diagnostics {
			fmt.Fprintln(os.Stderr, d)
		}
		return exitRefused
	case errors.Is(err, client.ErrUnreachable):
		fmt.Fprintf(os.Stderr, "error: %s (is pilotfish running? set -socket or $PILOTFISH_SOCKET)\n", err)
		return exitUnreachable
	}
	fmt.Fprintf(os.Stderr, "error: %s\n", err)
	return exitRefused
}

// countingWriter tells whether a verb printed anything.
type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

type usageError string

func (e usageError) Error() string { return string(e) }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func cmdPing(ctx context.Context, c *client.Client, o *clientOpts, _ []string) error {
	p, err := c.Ping(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.out, p)
	}
	fmt.Fprintf(o.out, "%s (pilotfish %s)\n", p.Status, p.Version)
	return nil
}

func cmdStatus(ctx context.Context, c *client.Client, o *clientOpts, args []string) error {
	var jobs []client.Job
	var st client.Status
	if len(args) == 1 {
		j, err := c.Job(ctx, args[0])
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(o.out, j)
		}
		jobs = []client.Job{j}
	} else {
		var err error
		if st, err = c.Status(ctx); err != nil {
			return err
		}
		if o.json {
			return printJSON(o.out, st)
		}
		jobs = st.Jobs
	}
	tw := tabwriter.NewWriter(o.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tKIND\tSTATE\tPID\tHEALTH\tRESTARTS\tUPTIME\tCPU%\tMEM\tSTATUS")
	now := time.Now()
	for _, j := range jobs {
		pid, uptime := "-", "-"
		if j.Pid > 0 {
			pid = strconv.Itoa(j.Pid)
		}
		if !j.Since.IsZero() {
			uptime = humanDuration(now.Sub(j.Since))
		}
		status := j.Status
		switch {
		case status == "" && j.NextRun != nil:
			status = nextRunText(*j.NextRun, now)
			if j.ExitCode != nil && j.Pid == 0 {
				status += fmt.Sprintf(", last exit code %d", *j.ExitCode)
			}
		case status == "" && j.ExitCode != nil && j.Pid == 0:
			status = fmt.Sprintf("exit code %d", *j.ExitCode)
		}
		cpu, mem := "-", "-"
		if j.Pid > 0 || j.MemoryBytes > 0 {
			cpu, mem = strconv.FormatFloat(j.CPUPercent, 'f', 1, 64), humanBytes(j.MemoryBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", j.Name, j.Kind, j.State, pid, j.Health, j.Restarts, uptime, cpu, mem, status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, w := range st.Watches {
		fmt.Fprintf(o.out, "watch %s: healthy=%v instances=%d\n", w.Name, w.Healthy, w.Instances)
	}
	if st.Maintenance {
		fmt.Fprintln(o.out, "maintenance: on")
	}
	return nil
}

// nextRunText shows a cron job's next run in local time: the time of day when it is within a
// day, the date too when it is further.
func nextRunText(t, now time.Time) string {
	t = t.Local()
	in := t.Sub(now)
	if in < 0 {
		in = 0
	}
	if in < 24*time.Hour {
		return fmt.Sprintf("next run %s (in %s)", t.Format("15:04:05"), humanDuration(in))
	}
	return fmt.Sprintf("next run %s (in %s)", t.Format("2006-01-02 15:04"), humanDuration(in))
}

// humanBytes writes a size as top(1) does, in powers of 1024: 812K, 52.4M, 1.2G.
func humanBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return strconv.FormatUint(n, 10) + "B"
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v, i = v/1024, i+1
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f%c", v, units[i])
	}
	return fmt.Sprintf("%.1f%c", v, units[i])
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s") // "10h37m"
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

func cmdEvents(ctx context.Context, c *client.Client, o *clientOpts, _ []string) error {
	var since *uint64
	switch {
	case o.since >= 0:
		n := uint64(o.since)
		since = &n
	case !o.follow:
		var zero uint64
		since = &zero
	}
	return c.Events(ctx, since, o.follow, func(ev client.Event) error {
		if o.json {
			b, _ := json.Marshal(ev)
			_, err := fmt.Fprintf(o.out, "%s\n", b)
			return err
		}
		var attrs []string
		for _, k := range slices.Sorted(maps.Keys(ev.Attrs)) {
			attrs = append(attrs, k+"="+strconv.Quote(ev.Attrs[k]))
		}
		_, err := fmt.Fprintf(o.out, "%6d %s %-20s %-16s %s\n", ev.Seq, ev.Time.Format("15:04:05.000"), ev.Source, ev.Code, strings.Join(attrs, " "))
		return err
	})
}

// logTime is the TIME of `pilotfish logs`: RFC 3339 with milliseconds, as pilotfish's
// own log lines and `timestamps = true`.
const logTime = "2006-01-02T15:04:05.000Z07:00"

// cmdLogs prints `TIME [job] message` on stdout, oldest first, a job's stdout and stderr
// lines together in the order they came, as pebble does (docs/cli.md#logs); with -json,
// the NDJSON lines of GET /v1/logs. A closed stdout (| head) ends it quietly.
func cmdLogs(ctx context.Context, c *client.Client, o *clientOpts, args []string) error {
	if o.lines < -1 {
		return usageError(fmt.Sprintf("-n takes a number of lines, or -1 for every line kept; not %d", o.lines))
	}
	var buf []byte
	err := c.Logs(ctx, args, o.lines, o.follow, func(l client.LogLine) error {
		buf = buf[:0]
		if o.json {
			b, err := json.Marshal(l)
			if err != nil {
				return err
			}
			buf = append(append(buf, b...), '\n')
		} else {
			buf = l.Time.AppendFormat(buf, logTime)
			buf = fmt.Appendf(buf, " [%s] ", l.Job)
			if l.Stream == client.StreamNotice {
				buf = fmt.Appendf(buf, "(%s)\n", l.Message)
			} else {
				buf = append(append(buf, l.Message...), '\n')
			}
		}
		_, err := o.out.Write(buf)
		return err
	})
	if errors.Is(err, syscall.EPIPE) {
		return nil
	}
	return err
}

func cmdReload(ctx context.Context, c *client.Client, o *clientOpts, _ []string) error {
	r, err := c.Reload(ctx)
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.out, r)
	}
	fmt.Fprintf(o.out, "reloaded: changed %s, added %s, removed %s\n", list(r.Changed), list(r.Added), list(r.Removed))
	return nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, " ")
}

func cmdMaintenance(ctx context.Context, c *client.Client, o *clientOpts, args []string) error {
	var on bool
	switch args[0] {
	case "on", "enable":
		on = true
	case "off", "disable":
	default:
		return usageError(fmt.Sprintf("maintenance takes on or off, not %q", args[0]))
	}
	if err := c.Maintenance(ctx, on); err != nil {
		return err
	}
	if !o.json {
		fmt.Fprintf(o.out, "maintenance %s\n", args[0])
	}
	return nil
}

func cmdPutenv(ctx context.Context, c *client.Client, o *clientOpts, args []string) error {
	env := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return usageError(fmt.Sprintf("%q is not KEY=VALUE", a))
		}
		env[k] = v
	}
	return c.PutEnv(ctx, env)
}

func cmdPutmetric(ctx context.Context, c *client.Client, o *clientOpts, args []string) error {
	for _, a := range args {
		split := strings.LastIndex(a, "}=") + 1 // after NAME{labels}, if any
		if split == 0 {
			split = strings.IndexByte(a, '=')
		}
		if split <= 0 {
			return usageError(fmt.Sprintf("%q is not NAME=VALUE", a))
		}
		name, val := a[:split], a[split+1:]
		m, err := parseMetricArg(name, val)
		if err != nil {
			return usageError(err.Error())
		}
		if err := c.PutMetric(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// parseMetricArg reads NAME=VALUE, NAME=+N / NAME=-N (add to a gauge) and
// NAME{label="v",…}=VALUE.
func parseMetricArg(name, val string) (client.Metric, error) {
	m := client.Metric{Name: name}
	if i := strings.IndexByte(name, '{'); i >= 0 && strings.HasSuffix(name, "}") {
		m.Name = name[:i]
		m.Labels = map[string]string{}
		for _, pair := range strings.Split(name[i+1:len(name)-1], ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok {
				return m, fmt.Errorf("label %q is not key=value", pair)
			}
			m.Labels[k] = strings.Trim(v, `"`)
		}
	}
	if strings.HasPrefix(val, "+") || strings.HasPrefix(val, "-") {
		m.Add = true
	}
	f, err := strconv.ParseFloat(val, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return m, fmt.Errorf("%q is not a finite number", val)
	}
	m.Value = f
	return m, nil
}

func jobVerb(fn func(*client.Client, context.Context, string) (client.Job, error)) func(context.Context, *client.Client, *clientOpts, []string) error {
	return func(ctx context.Context, c *client.Client, o *clientOpts, args []string) error {
		j, err := fn(c, ctx, args[0])
		if err != nil {
			return err
		}
		if o.json {
			return printJSON(o.out, j)
		}
		fmt.Fprintf(o.out, "%s: %s", j.Name, j.State)
		if j.Pid > 0 {
			fmt.Fprintf(o.out, " (pid %d)", j.Pid)
		}
		fmt.Fprintln(o.out)
		return nil
	}
}

func cmdStop(ctx context.Context, c *client.Client, o *clientOpts, args []string) error {
	if len(args) == 1 {
		return jobVerb((*client.Client).Stop)(ctx, c, o, args)
	}
	if err := c.Shutdown(ctx); err != nil {
		return err
	}
	if !o.json {
		fmt.Fprintln(o.out, "shutting down")
	}
	return nil
}

func cmdSignal(ctx context.Context, c *client.Client, o *clientOpts, args []string) error {
	return c.Signal(ctx, args[0], args[1])
}
