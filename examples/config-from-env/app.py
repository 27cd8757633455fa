#!/usr/bin/env python3
"""The example's app: reads its INI configuration once, at start-up, as most programs do."""
import configparser
import http.server
import sys

config = configparser.ConfigParser()
if not config.read(sys.argv[1]):
    sys.exit(f"cannot read {sys.argv[1]}")
server = config["server"]
hosts = sorted(config["allowed_hosts"].values())
print(f"configured: greeting={server['greeting']!r} port={server['port']} "
      f"debug={server['debug']} workers={server['workers']} allowed={','.join(hosts)}", flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        text = "ok\n" if self.path == "/health" else f"{server['greeting']} (allowed hosts: {', '.join(hosts)})\n"
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer((server["listen"], int(server["port"])), Handler).serve_forever()
