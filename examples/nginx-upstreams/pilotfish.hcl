# nginx in front of two small backends that pilotfish registers in Consul. The upstream
# block of nginx follows the healthy instances: pilotfish renders it from upstreams.ctmpl
# whenever they change, and a job reloads nginx (docs/templates.md). See README.md.
#
# Needs a Consul agent (consul agent -dev) at $CONSUL_HTTP_ADDR, by default 127.0.0.1:8500.
# Run it from this directory: paths are relative to the working directory.

consul {}

control {
  socket = "pilotfish.sock" # in the working directory, so no root is needed
}

# nginx's own configuration, from the environment: rendered before any job starts.
template "nginx" {
  source      = "nginx.conf.tmpl"
  destination = "run/nginx.conf"
}

# The upstream block: every passing instance of every service tagged "backend".
template "upstreams" {
  source      = "upstreams.ctmpl"
  destination = "run/upstreams.conf"
  wait        = "100ms" # a burst of changes (a fleet starting) makes one reload
}

# nginx starts once its upstreams are rendered the first time.
job "nginx" {
  exec        = ["nginx", "-p", "run/", "-c", "nginx.conf", "-e", "stderr"]
  restarts    = "unlimited"
  stop_signal = "SIGQUIT" # graceful: requests in flight finish
  when {
    source = "template.upstreams"
    once   = "changed"
  }
  health {
    tcp      = "127.0.0.1:${env("NGINX_PORT", "8080")}"
    interval = "1s"
  }
}

# Each later render reloads nginx: new workers take the new upstreams, the old ones finish
# their requests. The first render starts nginx instead (above).
job "nginx-reload" {
  exec = ["sh", "reload.sh"]
  when {
    source = "template.upstreams"
    each   = "changed"
  }
}

# Two backends. Each registers its own service, tagged "backend", while its health check
# passes; stopping one takes it out of Consul, and so out of the upstreams.
job "backend-a" {
  exec     = ["python3", "backend.py", "a", env("BACKEND_A_PORT", "9001")]
  restarts = "unlimited"
  health {
    http     = "http://127.0.0.1:${env("BACKEND_A_PORT", "9001")}/health"
    interval = "1s"
    failures = 1
  }
  service {
    name       = "backend-a"
    port       = env("BACKEND_A_PORT", "9001")
    tags       = ["backend"]
    interfaces = ["static:127.0.0.1"] # nginx runs beside it
  }
}

job "backend-b" {
  exec     = ["python3", "backend.py", "b", env("BACKEND_B_PORT", "9002")]
  restarts = "unlimited"
  health {
    http     = "http://127.0.0.1:${env("BACKEND_B_PORT", "9002")}/health"
    interval = "1s"
    failures = 1
  }
  service {
    name       = "backend-b"
    port       = env("BACKEND_B_PORT", "9002")
    tags       = ["backend"]
    interfaces = ["static:127.0.0.1"]
  }
}
