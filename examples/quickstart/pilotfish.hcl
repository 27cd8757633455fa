# A small container's worth of processes, runnable anywhere with a POSIX shell:
#   make example            (from the repository root; Ctrl-C to stop)
# In another terminal, from this directory:
#   ../../bin/pilotfish -socket pilotfish.sock status
#   curl --unix-socket pilotfish.sock http://x/v1/events?since=0

stop_timeout = "10s"

control {
  socket = "pilotfish.sock" # in the working directory, so no root is needed
}

# A stand-in database: ready after a second, then keeps running.
job "db" {
  exec     = ["sh", "-c", "rm -f db.ready; echo starting; sleep 1; touch db.ready; echo ready; exec sleep 100000"]
  restarts = "unlimited"
  health {
    exec     = ["test", "-f", "db.ready"]
    interval = "2s"
  }
}

# A one-shot migration that runs once the database is healthy.
job "migrate" {
  exec = ["sh", "-c", "echo migrating schema; sleep 0.5; echo done"]
  when {
    source  = "db"
    once    = "healthy"
    timeout = "30s"
  }
}

# The application starts only after both the database is healthy and the migration succeeded.
job "app" {
  exec     = "sh -c 'echo app up, triggered by $PILOTFISH_EVENT_SOURCE.$PILOTFISH_EVENT; while :; do echo handling requests; sleep 3; done'"
  env      = { GREETING = "hello=world" }
  restarts = 3
  when {
    after   = { db = "healthy", migrate = "exitSuccess" }
    timeout = "1m"
  }
  health {
    log = "app up"
  }
}

# A periodic task, like a cron job.
job "report" {
  exec = ["sh", "-c", "echo \"$(date +%T) report: db.ready is $(test -f db.ready && echo there || echo missing)\""]
  when {
    interval = "10s"
  }
}

# A pre-stop hook: runs at every stop of app (pilotfish restart app, the container's
# shutdown), before app gets its signal.
job "drain" {
  exec = ["sh", "-c", "echo draining app connections; sleep 0.5; echo drained"]
  when {
    source = "app"
    once   = "stopping"
  }
}

# A post-stop hook: cleans up once db's process is gone.
job "cleanup" {
  exec = ["sh", "-c", "rm -f db.ready; echo db cleaned up"]
  when {
    source = "db"
    once   = "stopped"
  }
}
