// Command pilotfish is a container's ENTRYPOINT: it runs the container's processes as jobs
// joined by an event bus. See README.md.
package main

import (
	"os"

	"github.com/pilotfish/pilotfish/core"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(core.Main(os.Args[1:], version))
}
