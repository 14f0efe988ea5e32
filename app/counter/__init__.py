"""Counter API and page over Redis. Gunicorn entry point: ``counter:create_app()``."""
from __future__ import annotations

import json
import logging
import socket
import time
from typing import Any, Mapping
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from gunicorn.http.errors import ParseException as BodyFramingError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from . import lifecycle, metrics
from .config import Settings
from .store import CounterOverflow, CounterStore, NotDurable, RedisUnavailable

__all__ = ["create_app", "Settings", "CounterStore"]

MIN_BY = 1
MAX_BY = 1_000_000
# The API's bodies are flat objects; anything nested deeper is refused before json.loads, whose
# recursion would otherwise end in a RecursionError (a 500 and a traceback) for `[[[[...`.
MAX_JSON_DEPTH = 20
# What a browser may send cross-site without a CORS preflight is a "simple" request: a form's
# content types, or no body at all. Only JSON bodies are accepted, and browsers' own marks of a
# cross-site request (Sec-Fetch-Site, Origin) are refused, so another site cannot change the
# counter through its visitors' browsers.
JSON_TYPE = "application/json"
SAME_ORIGIN_FETCH_SITES = frozenset({"same-origin", "none"})

log = logging.getLogger(__name__)


class ClientError(Exception):
    """A request the API refuses; status and message go back to the client as they are."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _too_deep(text: str, limit: int) -> bool:
    """True if the JSON text opens more than `limit` arrays/objects inside one another.
    Brackets inside strings do not count; the text need not be valid JSON."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _short(text: str, limit: int = 40) -> str:
    """Client input quoted back in an error, cut so that an answer never echoes a whole body."""
    return text if len(text) <= limit else text[:limit] + "..."


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _read_body(limit: int) -> bytes:
    """The body, at most `limit` bytes (413 beyond), also when it comes chunked."""
    # Werkzeug's limited stream stops at its limit without an error, so a chunked body over the
    # limit would come back cut short: ask for one byte more than allowed to tell the two apart.
    stream = get_input_stream(request.environ, max_content_length=limit + 1)
    try:
        body = stream.read()
    except BodyFramingError as exc:
        # Broken chunked framing, found by gunicorn while the app reads. Werkzeug already turns
        # a body shorter than its Content-Length (or a disconnect) into a 400.
        raise ClientError("malformed request body (chunked encoding)") from exc
    if len(body) > limit:
        raise RequestEntityTooLarge()
    return body


def _parse_body(allowed: frozenset[str]) -> dict[str, Any]:
    raw = _read_body(current_app.config["COUNTER_MAX_BODY_BYTES"])
    if not raw.strip():
        return {}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ClientError(f"body is not UTF-8: invalid byte at position {exc.start}") from exc
    if _too_deep(text, MAX_JSON_DEPTH):
        raise ClientError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ClientError(f"malformed JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise ClientError("JSON body must be an object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ClientError(f"unknown field(s): {_short(', '.join(unknown))}"
                          + (f"; allowed: {', '.join(sorted(allowed))}" if allowed else
                             "; this endpoint takes no fields"))
    return body


def _parse_by() -> int:
    body = _parse_body(frozenset({"by"}))
    if "by" not in body:
        return 1
    by = body["by"]
    # bool is an int subclass in Python; JSON true is not a step size.
    if not isinstance(by, int) or isinstance(by, bool):
        raise ClientError(f"'by' must be an integer, got {_short(json.dumps(by))}")
    if not MIN_BY <= by <= MAX_BY:
        raise ClientError(f"'by' must be between {MIN_BY} and {MAX_BY}, got {_short(str(by))}")
    return by


def _origin_matches_host(origin: str) -> bool:
    """Whether a browser's Origin header names the host this request was sent to."""
    try:
        sent_from = urlsplit(origin)
        sent_to = urlsplit("//" + request.host)
        default_port = {"http": 80, "https": 443}.get(sent_from.scheme)
        if default_port is None or not sent_from.hostname:
            return False  # "null" (sandboxed frames, file: pages) or a scheme we do not serve
        return ((sent_from.hostname, sent_from.port or default_port)
                == (sent_to.hostname, sent_to.port or default_port))
    except ValueError:  # a port that is not a number
        return False


def _check_post() -> None:
    """Refuse a POST that a page of another site could have sent through a browser."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if fetch_site is not None:
        if fetch_site not in SAME_ORIGIN_FETCH_SITES:
            raise ClientError("cross-site request refused", 403)
    elif origin is not None and not _origin_matches_host(origin):
        raise ClientError("cross-origin request refused", 403)
    # A form always sends a Content-Type of its own, even with no fields; a request with none
    # at all may only come without a body.
    if request.headers.get("Content-Type") is not None:
        if request.mimetype != JSON_TYPE:
            got = _short(request.mimetype) or "(empty)"
            raise ClientError(f"Content-Type must be {JSON_TYPE}, got {got}", 415)
    elif (request.content_length or 0) > 0 or "chunked" in request.headers.get(
            "Transfer-Encoding", "").lower():
        raise ClientError(f"a request body needs Content-Type: {JSON_TYPE}", 415)


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the app from environment variables (or the mapping given, for tests)."""
    settings = Settings.from_env(env)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["COUNTER_MAX_BODY_BYTES"] = settings.max_body_bytes
    too_large = f"request body over {settings.max_body_bytes} bytes"
    hostname = socket.gethostname()
    store = CounterStore(settings)
    app.extensions["counter_store"] = store
    # Swarm ignores depends_on: the app may start before Redis. Wait a bounded time, then
    # serve anyway (503 until Redis answers) rather than exit and crash-loop.
    store.wait_until_ready(settings.startup_timeout)

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        metrics.IN_FLIGHT.inc()
        # A declared length over the limit is refused before anything reads the body.
        if (request.content_length or 0) > settings.max_body_bytes:
            raise ClientError(too_large, 413)
        if request.method == "POST" and request.routing_exception is None:
            _check_post()

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Served-By"] = hostname
        if "started" in g:
            rule = request.url_rule
            metrics.observe_request(request.method, rule.rule if rule else metrics.UNMATCHED,
                                    response.status_code, time.perf_counter() - g.started)
        return response

    @app.teardown_request
    def end_request(_exc: BaseException | None) -> None:
        if g.pop("started", None) is not None:
            metrics.IN_FLIGHT.dec()

    @app.errorhandler(ClientError)
    def client_error(exc: ClientError) -> tuple[Response, int]:
        return jsonify(error=str(exc)), exc.status

    @app.errorhandler(RedisUnavailable)
    def unavailable(exc: RedisUnavailable) -> tuple[Response, int, dict[str, str]]:
        log.warning("%s", exc)
        return jsonify(error=str(exc)), 503, {"Retry-After": "1"}

    @app.errorhandler(NotDurable)
    def not_durable(exc: NotDurable) -> tuple[Response, int]:
        # The master applied the write; say so, so a client does not assume it was lost.
        return jsonify(error=str(exc), value=exc.value, acknowledged=exc.acked,
                       required=exc.required), 503

    @app.errorhandler(CounterOverflow)
    def overflow(_exc: CounterOverflow) -> tuple[Response, int]:
        return jsonify(error="counter would leave the 64-bit integer range"), 409

    @app.errorhandler(RequestEntityTooLarge)
    def entity_too_large(_exc: RequestEntityTooLarge) -> tuple[Response, int]:
        # A chunked body (no Content-Length) that passed the limit while it was read.
        return jsonify(error=too_large), 413

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = exc.get_response()
        response.data = json.dumps({"error": exc.description or exc.name}).encode()
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def internal(_exc: Exception) -> tuple[Response, int]:
        # Log the traceback for operators; never send it to the client.
        log.exception("unhandled error")
        return jsonify(error="internal error"), 500

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Response | tuple[Response, int]:
        if lifecycle.draining():
            # SIGTERM came: the load balancer takes this task out while it still serves.
            return jsonify(error="shutting down"), 503
        if store.check_ready() == "replicas":
            return jsonify(status="ready", writes="unavailable: no Redis master answers; the replicas answer reads")
        return jsonify(status="ready")

    @app.get("/api/counter")
    def get_counter() -> Response:
        return jsonify(value=store.get())

    @app.post("/api/counter/increment")
    def increment() -> Response:
        return jsonify(value=store.increment(_parse_by()))

    @app.post("/api/counter/decrement")
    def decrement() -> Response:
        return jsonify(value=store.decrement(_parse_by()))

    @app.post("/api/counter/reset")
    def reset() -> Response:
        _parse_body(frozenset())
        return jsonify(value=store.reset())

    @app.get("/")
    def page() -> str:
        try:
            value: int | None = store.get()
        except RedisUnavailable:
            value = None  # the page still loads; its buttons show the API's error
        return render_template("index.html", value=value, hostname=hostname)

    return app
