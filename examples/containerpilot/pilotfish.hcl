# Converted from the ContainerPilot configuration containerpilot.json5 by `pilotfish convert`.
# See docs/migrating-from-containerpilot.md for what each key became and what behaves differently.
# Values that only read a variable ({{ .X }}) read it at each load: ${env.X}.
# Rendered once, with this environment, where ContainerPilot's template shaped the file
# ({{ if }} blocks, names, durations):
#   TELEMETRY_PORT (unset)
# Run `pilotfish convert` again with the container's environment if it differs.

stop_timeout = "5s"

# warning: no consul: ContainerPilot refused to start without it; pilotfish runs the jobs and registers nothing
control {
  socket = env("CONTAINERPILOT_SOCKET", "/var/run/containerpilot.socket")
}

logging {
  level  = env("LOG_LEVEL", "INFO")
  format = "text"
}

telemetry {
  listen = "0.0.0.0:9090"
  metric "app_sensor_runs" {
    type = "counter"
    help = "times the sensor ran"
  }
}

job "preStart" {
  exec = ["sh", "-c", "echo preparing the app; mkdir -p app && echo ok > app/config"]
}

job "app" {
  exec     = ["sh", "-c", "echo app serving with $(cat app/config); touch app/ready; exec sleep 100000"]
  restarts = "unlimited"
  when {
    source = "preStart"
    once   = "exitSuccess"
  }
  health {
    exec     = "test -f app/ready"
    interval = "2s"
    timeout  = "1s"
    failures = 1 # ContainerPilot turned a job unhealthy at the first failed check
  }
}

job "sensor" {
  exec    = ["sh", "-c", "pilotfish -putmetric app_sensor_runs=1 && echo sensor reported"]
  timeout = "4s"
  when {
    interval = "5s"
  }
}

job "preStop" {
  exec = ["sh", "-c", "echo draining app; rm -f app/ready"]
  when {
    source = "app"
    once   = "stopping"
  }
}
