package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/pilotfish/pilotfish/config"
	"github.com/pilotfish/pilotfish/control"
	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/internal/errdefs"
	"github.com/pilotfish/pilotfish/telemetry"
	"github.com/pilotfish/pilotfish/template"
)

// startTemplates runs the template blocks (docs/templates.md). It comes after discovery,
// which feeds them, and before the jobs: a template that reads only the environment is
// written before Apply returns, so a job reads its rendered configuration at start-up.
func (d *Daemon) startTemplates() {
	var catalog template.Catalog
	if d.disc != nil {
		catalog = d.disc
	}
	e := template.New(template.Options{Catalog: catalog, Bus: d.bus, Log: d.log, Env: d.env.Map})
	d.tmpls.Store(e)
	e.Apply(d.cfg.Templates)
}

// stopTemplates stops every template (they stopped writing when the shutdown began).
func (d *Daemon) stopTemplates() {
	if e := d.tmpls.Load(); e != nil {
		e.Close()
	}
}

// reloadTemplates applies a new configuration's templates; an unchanged template keeps
// running and is not rendered again.
func (d *Daemon) reloadTemplates(cfg *config.Config) {
	if e := d.tmpls.Load(); e != nil {
		e.Apply(cfg.Templates)
	}
}

// envChanged renders again the templates that read a value putenv changed.
func (d *Daemon) envChanged() {
	if e := d.tmpls.Load(); e != nil {
		e.EnvChanged()
	}
}

// templatesLive reports whether a template reads Consul: it renders again when the catalog
// changes, so pilotfish stays up for it even with no job (docs/jobs.md).
func (d *Daemon) templatesLive() bool {
	e := d.tmpls.Load()
	return e != nil && e.ReadsCatalog()
}

var _ control.TemplateBackend = (*Daemon)(nil)

// Templates lists the templates for GET /v1/templates.
func (d *Daemon) Templates() []api.Template {
	out := []api.Template{}
	e := d.tmpls.Load()
	if e == nil {
		return out
	}
	for _, st := range e.Status() {
		out = append(out, api.Template{Name: st.Name, Destination: st.Destination, Rendered: st.Rendered,
			Renders: st.Renders, Errors: st.Errors, LastError: st.LastError, Waiting: st.Waiting})
	}
	return out
}

// RenderTemplate is `pilotfish render`: what a template would write now.
func (d *Daemon) RenderTemplate(_ context.Context, name string) (api.Render, error) {
	e := d.tmpls.Load()
	if e == nil {
		return api.Render{}, errdefs.Errorf(errdefs.ErrNotFound, "there is no template %q", name)
	}
	r, err := e.Render(name)
	switch {
	case errors.Is(err, template.ErrUnknown):
		return api.Render{}, errdefs.Errorf(errdefs.ErrNotFound, "there is no template %q", name)
	case errors.Is(err, template.ErrWaiting):
		return api.Render{}, errdefs.Wrap(errdefs.ErrUnavailable, err)
	case err != nil:
		return api.Render{}, errdefs.Wrap(errdefs.ErrConflict, err)
	}
	return api.Render{Name: r.Name, Destination: r.Destination, Text: string(r.Text)}, nil
}

func (s metricsSource) Templates() []telemetry.TemplateSample {
	e := s.d.tmpls.Load()
	if e == nil {
		return nil
	}
	list := e.Status()
	out := make([]telemetry.TemplateSample, len(list))
	for i, st := range list {
		out[i] = telemetry.TemplateSample{Name: st.Name, Renders: st.Renders, Errors: st.Errors}
	}
	return out
}

func (s metricsSource) ConsulQueries() map[string]int {
	if s.d.disc == nil {
		return nil
	}
	return s.d.disc.Queries()
}

// ConfigSocket is the control socket a configuration names (`pilotfish render -config
// PATH`, which talks to the daemon that runs it).
func ConfigSocket(paths []string) (string, error) {
	cfg, diags := config.Load(paths, configOptions(newEnviron(os.Environ()).Map()))
	if cfg == nil {
		return "", fmt.Errorf("%s is not valid: %s", strings.Join(paths, ", "), strings.Join(config.FormatDiagnostics(diags), "; "))
	}
	return cfg.Control.Socket, nil
}
