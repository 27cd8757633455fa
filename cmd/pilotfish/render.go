package main

import (
	"context"
	"fmt"

	"github.com/pilotfish/pilotfish/control/client"
)

// cmdRender prints what a template would write now, from the running daemon's values
// (docs/cli.md#render): the text as is, or the answer's JSON with -json.
func cmdRender(ctx context.Context, c *client.Client, o *clientOpts, args []string) error {
	r, err := c.Render(ctx, args[0])
	if err != nil {
		return err
	}
	if o.json {
		return printJSON(o.out, r)
	}
	_, err = fmt.Fprint(o.out, r.Text)
	return err
}
