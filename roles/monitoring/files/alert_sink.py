"""Alert sink: a webhook receiver for Alertmanager that keeps what it was sent.

POST (any path): one Alertmanager notification (JSON); kept in memory (the newest 1000) and
printed as one JSON line, so `docker service logs` shows it too.
GET /alerts: every kept notification, oldest first, as {"notifications": [{"received": <unix
time>, "payload": <what Alertmanager sent>}, ...]}.
GET /healthz: 200.

Python's standard library only: it runs in the official python image and the lab's.
    python3 alert_sink.py [port]        (default 9095)
"""
from __future__ import annotations

import collections
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20
KEEP = 1000

_lock = threading.Lock()
_received: collections.deque = collections.deque(maxlen=KEEP)


class Handler(BaseHTTPRequestHandler):
    server_version = "alert-sink/1"

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            self._answer(413 if length > MAX_BODY else 400, {"error": "body length %d" % length})
            return
        try:
            payload = json.loads(self.rfile.read(length))
        except ValueError as exc:
            self._answer(400, {"error": "not JSON: %s" % exc})
            return
        entry = {"received": time.time(), "payload": payload}
        with _lock:
            _received.append(entry)
        print(json.dumps(entry, sort_keys=True), flush=True)
        self._answer(200, {"status": "kept"})

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/alerts":
            with _lock:
                notifications = list(_received)
            self._answer(200, {"notifications": notifications})
        elif self.path == "/healthz":
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"error": "unknown path"})

    def log_message(self, format: str, *args) -> None:  # pylint: disable=redefined-builtin
        # Each notification is printed once, as JSON; no access log besides.
        return


def main(argv: list[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else 9095
    server = ThreadingHTTPServer(("", port), Handler)
    print(json.dumps({"listening": port}), flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
