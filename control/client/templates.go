package client

import (
	"context"
	"net/http"
	"net/url"
)

// Template is one template in GET /v1/templates (docs/api.md#templates).
type Template struct {
	Name        string   `json:"name"`
	Destination string   `json:"destination"`
	Rendered    bool     `json:"rendered"`             // its file was written, or found as it should be, once
	Renders     uint64   `json:"renders"`              // writes of the file
	Errors      uint64   `json:"errors"`               // runs and writes that failed
	LastError   string   `json:"last_error,omitempty"` // "" once a run succeeds
	Waiting     []string `json:"waiting,omitempty"`    // values read that have not answered yet
}

// Render is the answer of GET /v1/templates/{name}/render: what the template would write now.
type Render struct {
	Name        string `json:"name"`
	Destination string `json:"destination"`
	Text        string `json:"text"`
}

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
