#!/usr/bin/env python3
"""A daemon written for systemd's Type=notify, in plain Python (no library): it tells its
service manager when it is ready, what it is doing, and that it is alive, and logs to
syslog like any daemon (to $SYSLOG_SOCKET, /dev/log by default)."""
import logging, logging.handlers, os, socket, time

def notify(msg):
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(msg.encode(), addr)

log = logging.getLogger("notifyd")
log.setLevel(logging.INFO)
h = logging.handlers.SysLogHandler(address=os.environ.get("SYSLOG_SOCKET", "/dev/log"),
                                   facility=logging.handlers.SysLogHandler.LOG_DAEMON)
h.setFormatter(logging.Formatter("notifyd[%d]: %%(message)s" % os.getpid()))
log.addHandler(h)
notify("STATUS=loading")
log.info("loading")
time.sleep(1)
notify("READY=1\nSTATUS=serving")
log.info("ready")
n = 0
while True:
    time.sleep(1)
    n += 1
    notify("WATCHDOG=1\nSTATUS=served %d ticks" % n)
    if n % 5 == 0:
        log.info("served %d ticks", n)
