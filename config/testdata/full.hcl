stop_timeout    = "10s"
exit_on_failure = false

control {
  socket = "/var/run/pilotfish.sock"
}

logging {
  level  = "info"
  format = "text"
}

job "db" {
  exec     = ["postgres", "-D", "/data"]
  restarts = "unlimited"
  health {
    tcp      = "127.0.0.1:5432"
    interval = "2s"
  }
}

job "app" {
  exec         = "/bin/app --port ${env.X} --name 'a b'"
  env          = { MODE = "prod", DSN = "a=b c" }
  restarts     = 5
  backoff      = { initial = "500ms", max = "30s" }
  stop_signal  = "SIGTERM"
  stop_timeout = "5s"
  when {
    source  = "db"
    once    = "healthy"
    timeout = "60s"
  }
  health {
    http     = "http://127.0.0.1:8080/health"
    interval = "5s"
    failures = 3
  }
  logging {
    prefix = true
    color  = "auto"
    file   = "/var/log/app.log"
    rotate = { size = "50MB", keep = 5, compress = true }
  }
}

job "periodic" {
  exec = "date"
  when {
    interval = "30s"
  }
}

job "late" {
  exec = "true"
  when {
    after   = { db = "healthy", app = "started" }
    timeout = "2m"
  }
}

job "drain" {
  exec = "true"
  when {
    source = "app"
    once   = "stopping"
  }
}
