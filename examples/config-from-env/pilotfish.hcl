# An app whose configuration file is rendered from the environment when the container starts
# (docs/templates.md). No Consul: a template that reads only the environment is written before
# any job starts. See README.md. Run it from this directory: paths are relative to the
# working directory.

control {
  socket = "pilotfish.sock" # in the working directory, so no root is needed
}

template "app-config" {
  source      = "app.ini.tmpl"
  destination = "run/app.ini"
  perms       = "0600" # it may hold a password
}

# The app starts with its configuration's first render. A later render (`pilotfish putenv`
# of a variable the template reads) restarts it with the new file.
job "app" {
  exec     = ["python3", "app.py", "run/app.ini"]
  restarts = "unlimited"
  when {
    source = "template.app-config"
    each   = "changed"
  }
  health {
    http     = "http://127.0.0.1:${env("APP_PORT", "8000")}/health"
    interval = "1s"
  }
}
