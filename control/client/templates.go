package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/pilotfish/pilotfish/control/api"
)

// Template and Render are package api's (docs/api.md#templates).
type (
	Template = api.Template
	Render   = api.Render
)

// Templates lists the templates and how they fare.
func (c *Client) Templates(ctx context.Context) ([]Template, error) {
	var out []Template
	return out, c.do(ctx, http.MethodGet, "/v1/templates", nil, &out)
}

// Render runs a template with the daemon's values, without writing it.
func (c *Client) Render(ctx context.Context, name string) (Render, error) {
	var r Render
	return r, c.do(ctx, http.MethodGet, "/v1/templates/"+url.PathEscape(name)+"/render", nil, &r)
}
