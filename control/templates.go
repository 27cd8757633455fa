package control

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/pilotfish/pilotfish/control/api"
	"github.com/pilotfish/pilotfish/internal/errdefs"
)

// TemplateBackend is what the template endpoints need of the daemon (docs/api.md#templates);
// a Backend without it answers them with 404.
type TemplateBackend interface {
	Templates() []api.Template
	// RenderTemplate runs a template with the values at hand, without writing it.
	RenderTemplate(ctx context.Context, name string) (api.Render, error)
}

func (s *Server) templateRoutes(r chi.Router) {
	r.Get("/v1/templates", s.templates)
	r.Get("/v1/templates/{name}/render", s.renderTemplate)
}

func (s *Server) templateBackend() (TemplateBackend, error) {
	if tb, ok := s.b.(TemplateBackend); ok {
		return tb, nil
	}
	return nil, errdefs.Errorf(errdefs.ErrNotFound, "this daemon has no templates")
}

func (s *Server) templates(w http.ResponseWriter, r *http.Request) {
	tb, err := s.templateBackend()
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, tb.Templates())
}

func (s *Server) renderTemplate(w http.ResponseWriter, r *http.Request) {
	tb, err := s.templateBackend()
	if err != nil {
		writeError(w, err)
		return
	}
	out, err := tb.RenderTemplate(r.Context(), chi.URLParam(r, "name"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
