"""The counter app's HTTP API as a client: POST /api/counter/increment and GET /api/counter.

What the app answers (docs/api.md): 200 {"value": n} after an increment; 503 when Redis is
unreachable after its retries; in WAIT mode (REDIS_WAIT_REPLICAS) 503 {"value", "acknowledged",
"required"} when the master applied the write but too few replicas confirmed it. Every answer of the
app carries X-Served-By; an answer without it came from the edge, not from the app.
"""
from __future__ import annotations

import re
import time

import requests

from ..history import Op

# Connect errors that prove nothing was sent.
_NOT_SENT = (requests.exceptions.ConnectTimeout,)
_NOT_SENT_TEXT = ("Connection refused", "NewConnectionError", "Failed to establish")


def short_error(text: str) -> str:
    """An error as kept in the history: its errno and reason when it has one (urllib3 buries
    "[Errno 111] Connection refused" behind the pool's and the connection's reprs), else its start."""
    errno = re.search(r"\[Errno -?\d+\][^'\")\]]*", text)
    return errno.group(0).strip() if errno else text[:200]


def classify_increment(status: int | None, served_by: str | None, body: dict | None,
                       error: str | None, sent: bool) -> tuple[str, int | None]:
    """Outcome of one POST /api/counter/increment and the value it acknowledged.

    sent: whether the request may have reached a server (False for a refused or failed connect)."""
    if error is not None:
        return ("unknown", None) if sent else ("fail", None)
    if status == 200 and isinstance(body, dict) and isinstance(body.get("value"), int):
        return "ok", body["value"]
    if served_by:
        # The app answered an error: Redis may have applied the INCR (a retried command, or a 503 in
        # WAIT mode whose value the master applied but too few replicas acknowledged).
        return "unknown", None
    return "fail", None


class CounterClient:
    """One HTTP session (one connection at a time) against the app, e.g. through the edge."""

    def __init__(self, url: str, process: str, timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.process = process
        self.timeout = timeout
        self.session = requests.Session()

    def invoke(self, kind: str) -> Op:
        start = time.time()
        try:
            if kind == "incr":
                resp = self.session.post(self.url + "/api/counter/increment", timeout=self.timeout)
            else:
                resp = self.session.get(self.url + "/api/counter", timeout=self.timeout)
        except requests.exceptions.ConnectionError as exc:
            text = str(exc)
            sent = not isinstance(exc, _NOT_SENT) and not any(s in text for s in _NOT_SENT_TEXT)
            outcome = classify_increment(None, None, None, text, sent)[0] if kind == "incr" else "fail"
            return Op(self.process, kind, start, time.time(), outcome, error=short_error(text))
        except requests.exceptions.RequestException as exc:  # a read timeout and the like: sent
            return Op(self.process, kind, start, time.time(), "unknown" if kind == "incr" else "fail",
                      error=str(exc)[:200])
        end = time.time()
        served_by = resp.headers.get("X-Served-By")
        try:
            body = resp.json()
        except ValueError:
            body = None
        if kind == "incr":
            outcome, value = classify_increment(resp.status_code, served_by, body, None, True)
            if outcome == "unknown" and isinstance(body, dict) and isinstance(body.get("value"), int):
                value = body["value"]  # WAIT mode: applied on the master, not confirmed by replicas
            return Op(self.process, kind, start, end, outcome, value, resp.status_code, served_by)
        return Op(self.process, kind, start, end, "ok" if resp.status_code == 200 else "fail", None,
                  resp.status_code, served_by)
