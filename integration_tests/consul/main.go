// Command consul is a Consul agent for pilotfish's integration tests, built from
// source so tests need no download. Only the agent command is linked: the full
// consul CLI pulls in modules the proxy does not serve.
package main

import (
	"io"
	"log"
	"os"

	"github.com/hashicorp/consul/command/agent"
	"github.com/hashicorp/consul/command/cli"
	mcli "github.com/mitchellh/cli"
)

func main() {
	// As consul's own main: the agent logs through hclog; silence stray std log output.
	log.SetOutput(io.Discard)

	ui := &cli.BasicUI{
		BasicUi: mcli.BasicUi{Writer: os.Stdout, ErrorWriter: os.Stderr},
	}
	args := os.Args[1:]
	// Accept "consul agent -dev ..." as well as "consul -dev ...".
	if len(args) > 0 && args[0] == "agent" {
		args = args[1:]
	}
	cmd := agent.New(ui)
	if cmd == nil {
		os.Exit(1)
	}
	os.Exit(cmd.Run(args))
}
