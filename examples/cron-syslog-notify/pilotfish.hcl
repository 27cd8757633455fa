# An app with a cron job, a syslog router and an sd_notify daemon — the parts of a classic
# Unix box, in one container:
#   pilotfish -config pilotfish.hcl          (see README.md)

logging {
  level = "info"
}

control {
  socket = env("PILOTFISH_SOCKET_PATH", "/var/run/pilotfish.sock")
}

# Every program that logs to /dev/log (syslog(3), logger, nginx, cron…) reaches this job:
# daemon messages and the report go to stdout, warnings and worse of anyone to a file.
job "syslog" {
  kind   = "syslog"
  listen = "unixgram://${env("SYSLOG_SOCKET", "/dev/log")}"

  output "console" {
    selector = "daemon.*;user.*"
    stdout   = true
  }
  output "problems" {
    selector = "*.warning"
    file     = "problems.log"
  }
}

# A daemon written for systemd: healthy when it says READY=1, restarted when it stops
# sending WATCHDOG=1 for 5s.
job "notifyd" {
  kind     = "notify"
  exec     = ["python3", "notifyd.py"]
  watchdog = "5s"
  restarts = "unlimited"
  env      = { SYSLOG_SOCKET = env("SYSLOG_SOCKET", "/dev/log") }
}

# The app starts once the daemon is ready.
job "app" {
  exec = ["sh", "-c", "logger -u \"$SOCK\" -t app -p user.notice \"app up after $PILOTFISH_EVENT_SOURCE.$PILOTFISH_EVENT\"; exec sleep 100000"]
  env  = { SOCK = env("SYSLOG_SOCKET", "/dev/log") }
  when {
    source = "notifyd"
    once   = "healthy"
  }
}

# A cron job: every ten seconds, a report through syslog (a warning when the app is down).
job "report" {
  kind     = "cron"
  schedule = "@every 10s"
  exec     = ["sh", "-c", "if pilotfish status app | grep -q running; then logger -u \"$SOCK\" -t report -p user.info 'app is up'; else logger -u \"$SOCK\" -t report -p user.warning 'app is down'; fi"]
  env      = { SOCK = env("SYSLOG_SOCKET", "/dev/log") }
}
