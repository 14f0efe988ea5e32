"""Prometheus metrics of the app.

Under gunicorn every worker writes its values to files in PROMETHEUS_MULTIPROC_DIR, and the
master serves their sum on METRICS_PORT (gunicorn.conf.py); the app's own port never serves
them. Without that variable (tests with Flask's client) the values stay in this process.

Every label has a bounded set of values: the route template (never the raw path), a fixed set
of methods, the status codes the app can answer, and fixed kinds and outcomes.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Health checks are labelled probe="true", so request rates can leave them out.
PROBE_ENDPOINTS = frozenset({"/healthz", "/readyz"})
UNMATCHED = "<unmatched>"  # 404 and 405: the path matched no route (the path itself is not kept)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})

_REQUEST_LABELS = ("method", "endpoint", "status", "probe")

REQUESTS = Counter(
    "counter_http_requests_total",
    "HTTP requests answered, by route template and status; probe=\"true\" for /healthz and /readyz.",
    _REQUEST_LABELS)
LATENCY = Histogram(
    "counter_http_request_duration_seconds",
    "Time from the request reaching the app to its response, by route template and status.",
    _REQUEST_LABELS)
IN_FLIGHT = Gauge(
    "counter_http_requests_in_flight",
    "Requests being handled now, summed over the live workers.",
    multiprocess_mode="livesum")
REDIS_ERRORS = Counter(
    "counter_redis_errors_total",
    "Redis failures the app saw after redis-py's own retries, by kind and by the node's role.",
    ("kind", "role"))
OPERATIONS = Counter(
    "counter_operations_total",
    "Counter operations by outcome: ok, unavailable (503), not_durable (applied, too few "
    "replicas acknowledged), overflow (409), error (500).",
    ("operation", "outcome"))


def method_label(method: str) -> str:
    # Gunicorn accepts any token as a method: unknown ones share one label value.
    return method if method in _METHODS else "OTHER"


def observe_request(method: str, endpoint: str, status: int, seconds: float) -> None:
    labels = (method_label(method), endpoint, str(status),
              "true" if endpoint in PROBE_ENDPOINTS else "false")
    REQUESTS.labels(*labels).inc()
    LATENCY.labels(*labels).observe(seconds)
