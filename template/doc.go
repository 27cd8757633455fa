// Package template renders the `template` blocks of a configuration: Go text/template with
// consul-template's function names, fed by the catalog views of package discovery
// (docs/templates.md).
//
// A template learns what it reads by running: each service, key or prefix it asks for
// becomes a dependency, followed through discovery.Manager.Follow, and templates that read
// the same thing share one dependency (one blocking query). When a dependency answers with
// a change, every template that read it renders again after its `wait`; the destination is
// replaced (temp file in the same directory, then rename) only when the text differs, and
// `changed` is published from template.NAME. A template renders first once every value it
// read has answered; a template that reads only the environment renders inside Apply, so
// before any job starts. A run is bounded (internal/tmplguard); a run-time error keeps the
// old file and is counted. Check parses a template for config's validation.
//
// Concurrency: each template has one goroutine (runner.loop) that renders and writes it;
// Apply, Close and the control API's calls reach it through its channels or read its status
// under its mutex. The dependencies are shared under Engine.mu; a dependency's subscribers
// are told of a change under the dependency's own lock and only poke runners (never
// blocking), so that no lock is held across a call into discovery that waits. Events are
// held back from the moment Apply runs until the next global startup, when every job is
// subscribed again. Core calls New, Apply (start-up and reload), EnvChanged (putenv),
// Render and Status (control API) and Close.
package template
