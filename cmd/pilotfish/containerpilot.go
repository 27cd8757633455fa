package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/pilotfish/pilotfish/control/client"
	"github.com/pilotfish/pilotfish/core"
)

// ContainerPilot's command line (its core/flags.go): the flags that talk to a running
// ContainerPilot through its control socket, so the scripts of an image keep working with
// pilotfish in its place (docs/cli.md#containerpilots-flags).
var cpFlagNames = map[string]bool{"putenv": true, "putmetric": true, "reload": true, "maintenance": true, "ping": true, "template": true, "version": true}

// isContainerPilotCall reports whether args use one of ContainerPilot's client flags.
func isContainerPilotCall(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if cpFlagNames[name] {
			return true
		}
	}
	return false
}

// pairs is a repeatable KEY=VALUE flag; the last value of a key counts.
type pairs struct {
	keys []string
	vals map[string]string
}

func (p *pairs) String() string { return "" }

func (p *pairs) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if k == "" {
		return fmt.Errorf("%q is not KEY=VALUE", v)
	}
	if !ok {
		val = "" // ContainerPilot's docs: -putenv KEY clears KEY
	}
	if p.vals == nil {
		p.vals = map[string]string{}
	}
	if _, seen := p.vals[k]; !seen {
		p.keys = append(p.keys, k)
	}
	p.vals[k] = val
	return nil
}

// containerPilot runs `pilotfish -putenv K=V`, `-putmetric K=V`, `-reload`,
// `-maintenance enable|disable`, `-ping` and `-template [-out FILE]`.
func containerPilot(args []string) int {
	fs := flag.NewFlagSet("pilotfish", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var putenv, putmetric pairs
	configPath := fs.String("config", "", "configuration file")
	socket := fs.String("socket", "", "control socket")
	reload := fs.Bool("reload", false, "reload the configuration")
	maintenance := fs.String("maintenance", "", "enable or disable")
	ping := fs.Bool("ping", false, "check that the control socket answers")
	template := fs.Bool("template", false, "print the rendered configuration")
	out := fs.String("out", "", "where -template writes")
	showVersion := fs.Bool("version", false, "print the version")
	fs.Var(&putenv, "putenv", "KEY=VALUE")
	fs.Var(&putmetric, "putmetric", "NAME=VALUE")
	usage := "usage: pilotfish [-config FILE] [-socket PATH] -putenv K=V... | -putmetric K=V... | -reload | -maintenance enable|disable | -ping | -template [-out FILE]"
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n%s\n", err, usage)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "error: unexpected arguments %q\n%s\n", fs.Args(), usage)
		return exitUsage
	}
	if *showVersion {
		return dispatch([]string{"version"})
	}
	explicit := *configPath != ""
	paths := cpConfigPaths()
	if explicit {
		paths = []string{*configPath}
	}
	if *template {
		if len(paths) != 1 {
			fmt.Fprintln(os.Stderr, "error: -template needs -config or $CONTAINERPILOT: one ContainerPilot file")
			return exitUsage
		}
		path := paths[0]
		w := io.Writer(os.Stdout)
		if *out != "" && *out != "-" {
			f, err := os.Create(*out)
			if err != nil {
				fmt.Fprintf(os.Stderr, "error: %v\n", err)
				return 1
			}
			defer f.Close()
			w = f
		}
		return core.RenderTemplate(path, w, os.Stderr)
	}
	on := false
	switch *maintenance {
	case "", "disable", "off":
	case "enable", "on":
		on = true
	default:
		fmt.Fprintf(os.Stderr, "error: -maintenance takes enable or disable, not %q\n", *maintenance)
		return exitUsage
	}
	sock, err := cpSocket(*socket, paths, explicit)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: cannot find the control socket: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	c := client.New(sock)
	// ContainerPilot's order: one action per call.
	switch {
	case *reload:
		_, err = c.Reload(ctx)
	case *maintenance != "":
		err = c.Maintenance(ctx, on)
	case len(putenv.keys) > 0:
		err = c.PutEnv(ctx, putenv.vals)
	case len(putmetric.keys) > 0:
		err = putMetrics(ctx, c, &putmetric)
	case *ping:
		if _, err = c.Ping(ctx); err == nil {
			fmt.Println("ok")
		}
	}
	return clientExit(err, &clientOpts{out: os.Stdout})
}

// putMetrics sends the values as ContainerPilot did: each a number, which a counter adds and
// a gauge, a histogram or a summary takes as it is.
func putMetrics(ctx context.Context, c *client.Client, p *pairs) error {
	values := map[string]float64{}
	keys := append([]string(nil), p.keys...)
	sort.Strings(keys)
	for _, k := range keys {
		v, err := strconv.ParseFloat(strings.TrimSpace(p.vals[k]), 64)
		if err != nil {
			return usageError(fmt.Sprintf("-putmetric %s=%s: the value must be a number", k, p.vals[k]))
		}
		values[k] = v
	}
	return c.PutMetrics(ctx, values)
}

// cpConfigPaths is the configuration named by the environment: $PILOTFISH_CONFIG, paths
// separated by ':' (docs/configuration.md#configuration-in-layers), else $CONTAINERPILOT.
func cpConfigPaths() []string {
	var out []string
	for _, p := range filepath.SplitList(os.Getenv("PILOTFISH_CONFIG")) {
		if p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 && os.Getenv("CONTAINERPILOT") != "" {
		out = []string{os.Getenv("CONTAINERPILOT")}
	}
	return out
}

// cpSocket picks the socket: -socket; else the control socket of the file given with
// -config; else $PILOTFISH_SOCKET (which pilotfish sets for its jobs); else the one of the
// file of $PILOTFISH_CONFIG or $CONTAINERPILOT; else the default.
func cpSocket(flagValue string, paths []string, explicit bool) (string, error) {
	switch {
	case flagValue != "":
		return flagValue, nil
	case explicit:
		return core.ControlSocket(paths)
	case os.Getenv("PILOTFISH_SOCKET") != "":
		return os.Getenv("PILOTFISH_SOCKET"), nil
	case len(paths) > 0:
		return core.ControlSocket(paths)
	}
	return client.SocketPath(""), nil
}
