"""Counter API and page over Redis. Gunicorn entry point: ``counter:create_app()``."""
from __future__ import annotations

import json
import logging
import socket
from typing import Any, Mapping

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .config import Settings
from .store import CounterOverflow, CounterStore, NotDurable, RedisUnavailable

__all__ = ["create_app", "Settings", "CounterStore"]

MIN_BY = 1
MAX_BY = 1_000_000

log = logging.getLogger(__name__)


class BadRequest(Exception):
    """Client input the API refuses; the message goes back to the client as is."""


def _parse_body(allowed: frozenset[str]) -> dict[str, Any]:
    raw = request.get_data(cache=False)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("JSON body must be an object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}"
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
        raise BadRequest(f"'by' must be an integer, got {json.dumps(by)}")
    if not MIN_BY <= by <= MAX_BY:
        raise BadRequest(f"'by' must be between {MIN_BY} and {MAX_BY}, got {by}")
    return by


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the app from environment variables (or the mapping given, for tests)."""
    settings = Settings.from_env(env)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    hostname = socket.gethostname()
    store = CounterStore(settings)
    app.extensions["counter_store"] = store
    # Swarm ignores depends_on: the app may start before Redis. Wait a bounded time, then
    # serve anyway (503 until Redis answers) rather than exit and crash-loop.
    store.wait_until_ready(settings.startup_timeout)

    @app.after_request
    def served_by(response: Response) -> Response:
        response.headers["X-Served-By"] = hostname
        return response

    @app.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> tuple[Response, int]:
        return jsonify(error=str(exc)), 400

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
    def overflow(exc: CounterOverflow) -> tuple[Response, int]:
        return jsonify(error="counter would leave the 64-bit integer range"), 409

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        response = exc.get_response()
        response.data = json.dumps({"error": exc.description or exc.name}).encode()
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def internal(exc: Exception) -> tuple[Response, int]:
        # Log the traceback for operators; never send it to the client.
        log.exception("unhandled error")
        return jsonify(error="internal error"), 500

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz() -> Response:
        store.ping_master()
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
