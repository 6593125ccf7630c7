"""A small HTTP server on 127.0.0.1 for ZooFetchTests (never binds another interface).

Usage: python http_range_server.py ROOT LOG [LIFETIME_SECONDS]
Prints the chosen port on stdout, then serves until killed or LIFETIME_SECONDS (default 120)
pass. Each request is appended to LOG as one JSON line: {"path", "range"}.

Paths:
  /files/NAME            ROOT/NAME with Range support (206 + Content-Range, 416 when out of range)
  /truncate/N/NAME       like /files/NAME but closes the connection after N body bytes
                         (Content-Length still announces the full size)
  /flaky/N/NAME          first request for NAME truncated after N bytes, later ones served whole
                         (with Range support): an interrupted transfer that a resume completes
  /norange/NAME          ignores Range, always 200 with the whole file
  /redirect/PATH         302 to /PATH (e.g. /redirect/files/NAME), as release hosts redirect to a CDN
  anything else          404
"""
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT, LOG = sys.argv[1], sys.argv[2]
LIFETIME = float(sys.argv[3]) if len(sys.argv) > 3 else 120.0
seen = set()
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        rng = self.headers.get("Range")
        with lock:
            with open(LOG, "a") as f:
                f.write(json.dumps({"path": self.path, "range": rng}) + "\n")
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/redirect"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        m = re.fullmatch(r"/(files|norange)/([\w.\-]+)|/(truncate|flaky)/(\d+)/([\w.\-]+)", self.path)
        if not m:
            return self.send_error(404, "Not Found")
        kind = m.group(1) or m.group(3)
        name = m.group(2) or m.group(5)
        cut = int(m.group(4)) if m.group(4) else None
        path = os.path.join(ROOT, name)
        if not os.path.isfile(path):
            return self.send_error(404, "Not Found")
        data = open(path, "rb").read()
        if kind == "flaky":
            with lock:
                first = name not in seen
                seen.add(name)
            if not first:
                cut = None
        start = 0
        status = 200
        if rng and kind != "norange":
            r = re.fullmatch(r"bytes=(\d+)-", rng.strip())
            if not r or int(r.group(1)) >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(r.group(1))
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if cut is not None:
            self.send_header("Connection", "close")
        self.end_headers()
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            try:
                import socket
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
threading.Timer(LIFETIME, server.shutdown).start()
server.serve_forever()
