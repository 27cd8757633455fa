#!/usr/bin/env python3
"""A small backend for the example: answers every request with its name, /health with ok."""
import http.server
import sys

name, port = sys.argv[1], int(sys.argv[2])


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        text = "ok\n" if self.path == "/health" else f"hello from backend {name}\n"
        body = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass  # one line per health check would drown the example's output


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
