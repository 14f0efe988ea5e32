"""What Prometheus saw in a window, beside what the client counted: the queries, the arithmetic on
their answers, the comparison and its line of text. Pure: no network (lab/prometheus.py asks).

Counts come from the raw samples of the counters (a range selector at the window's end), not from
PromQL's increase(): increase() extrapolates to the range's edges and leaves out what a series
counted before its first sample, so a web task that starts during a drill would lose its first
requests and every figure would be fractional. Here a series' growth is its last sample in the
window minus its last sample before the window (0 for a series born in the window: a new process
counts from 0), adding back every reset (a restarted process).

Tolerance rule: the two counts may differ by one scrape interval's worth of the client's requests
(its mean rate over the window times the interval, rounded up): requests a task answered after its
last scrape before it was killed are never scraped, and requests at the window's edges may fall on
either side of a scrape. A difference beyond that is reported as a disagreement.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from ..history import Op

APP_REQUESTS = "counter_http_requests_total"
APP_LATENCY = "counter_http_request_duration_seconds_bucket"
EDGE_REQUESTS = "haproxy_frontend_http_requests_total"
EDGE_RESPONSES = "haproxy_frontend_http_responses_total"


def selector(metric: str, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def queries(window: float, scrape: float, web_job: str = "web", edge_job: str = "edge",
            edge_proxy: str = "http") -> dict[str, str]:
    """The instant queries asked at the window's end (plus the settling margin, see lookback).

    Counters are raw samples over the window plus two scrapes before it (the baseline sample);
    p95 is the app's histogram over the window, the settling margin and one scrape before the
    window (rate() needs two samples). Health checks (probe="true") are left out."""
    span = lookback(window, scrape)
    rate_span = math.ceil(window + settle(scrape) + scrape)
    app = selector(APP_REQUESTS, job=web_job, probe="false")
    return {
        "app": f"{app}[{span}s]",
        "edge": f"{selector(EDGE_REQUESTS, job=edge_job, proxy=edge_proxy)}[{span}s]",
        "edge_responses": f"{selector(EDGE_RESPONSES, job=edge_job, proxy=edge_proxy)}[{span}s]",
        "p95": ("histogram_quantile(0.95, sum by (le) (rate(%s[%ds])))"
                % (selector(APP_LATENCY, job=web_job, probe="false"), rate_span)),
        "alerts": 'ALERTS{alertstate="firing"}',
    }


def lookback(window: float, scrape: float) -> int:
    """Seconds of samples to fetch at the query time (window end + settle): the window, the settling
    margin, and two scrapes before the window for the baseline sample."""
    return math.ceil(window + settle(scrape) + 2 * scrape) + 1


def settle(scrape: float) -> float:
    """How long after the window to wait (and where to evaluate): one scrape plus a second, so the
    last requests of the window have been scraped."""
    return scrape + 1.0


def series_growth(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """How much one counter series grew in (start, end], from its samples [(time, value)], sorted.

    Baseline: the last sample at or before start (none: the series was born in the window, from 0).
    Resets (a value below the previous one) add the new value, as PromQL's increase() does."""
    before = [v for t, v in samples if t <= start]
    inside = [v for t, v in samples if start < t <= end]
    previous = before[-1] if before else 0.0
    grew = 0.0
    for value in inside:
        grew += value - previous if value >= previous else value
        previous = value
    return grew


def _matrix_samples(series: dict[str, Any]) -> list[tuple[float, float]]:
    return sorted((float(t), float(v)) for t, v in series.get("values", []))


def growth_by(matrix: list[dict[str, Any]], start: float, end: float, label: str | None = None,
              classify=lambda value: value) -> dict[str, float]:
    """Growth of each series of a range-vector answer in (start, end], summed by `label` (mapped
    through `classify`), or under "all" without a label."""
    out: dict[str, float] = {}
    for series in matrix:
        key = classify(series["metric"].get(label, "")) if label else "all"
        out[key] = out.get(key, 0.0) + series_growth(_matrix_samples(series), start, end)
    return out


def status_class(status: str) -> str:
    return f"{status[0]}xx" if status[:1].isdigit() else "other"


def app_counts(matrix: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    by_class = {k: round(v) for k, v in sorted(growth_by(matrix, start, end, "status", status_class).items())}
    return {"requests": sum(by_class.values()), "by_class": by_class}


def edge_counts(requests: list[dict[str, Any]], responses: list[dict[str, Any]], start: float,
                end: float) -> dict[str, Any] | None:
    """HAProxy's public frontend: requests, and responses by its `code` label (1xx..5xx, other).
    None when the edge is not scraped (no series)."""
    if not requests and not responses:
        return None
    by_class = {k: round(v) for k, v in sorted(growth_by(responses, start, end, "code").items()) if round(v)}
    return {"requests": round(growth_by(requests, start, end).get("all", 0.0)), "by_class": by_class}


def alert_spans(matrix: list[dict[str, Any]], start: float, end: float, step: float) -> list[dict[str, Any]]:
    """Alerts firing at some point in [start, end] from a range query of ALERTS{alertstate="firing"}
    with `step`: each alert's name, labels, seconds from start when it was first seen firing
    (None: it was firing at the start already) and when it resolved (the step after it was last
    seen; None: still firing at the end)."""
    spans = []
    for series in matrix:
        labels = {k: v for k, v in series["metric"].items() if k not in ("__name__", "alertstate")}
        times = [t for t, _v in _matrix_samples(series)]
        if not times:
            continue
        first, last = times[0], times[-1]
        spans.append({
            "alert": labels.pop("alertname", "?"), "labels": labels,
            "fired": None if first <= start + step / 2 else round(first - start, 1),
            "resolved": None if last >= end - step else round(last + step - start, 1),
        })
    return sorted(spans, key=lambda s: (s["fired"] or 0.0, s["alert"]))


def client_counts(ops: Iterable[Op]) -> dict[str, Any]:
    """The client's own count of an HTTP load (the drills' history): requests, those the app
    answered (X-Served-By), 5xx answers, requests with no answer, p95 of the answered ones."""
    ops = [op for op in ops if not op.is_fault]
    answered = sorted(op.end - op.start for op in ops if op.status is not None)
    return {
        "requests": len(ops),
        "by_app": sum(1 for op in ops if op.served_by),
        "errors_5xx": sum(1 for op in ops if op.status is not None and op.status >= 500),
        "no_answer": sum(1 for op in ops if op.status is None),
        "p95_ms": round(1000 * answered[min(len(answered) - 1, math.ceil(0.95 * len(answered)) - 1)], 1)
        if answered else None,
    }


def tolerance(requests: int, window: float, scrape: float) -> int:
    """One scrape's worth of the client's requests: mean rate over the window x scrape interval."""
    if requests <= 0 or window <= 0:
        return 0
    return math.ceil(requests / window * scrape)


def compare(client: dict[str, Any], seen: dict[str, Any], window: float, scrape: float) -> list[dict[str, Any]]:
    """The client's counts against Prometheus's, each with the tolerance and whether they agree.

    client: requests, errors_5xx (or Locust's failures), and by_app when the client knows which answers came from the app
    (X-Served-By; Locust does not). seen: app and edge counts (edge None when not scraped).
    - requests at the edge: every request the client sent (one the edge refused at connect is in
      neither count: the client counts it as no_answer);
    - requests in the app: those the app answered (by_app), else every request;
    - 5xx: the client's 5xx answers against the edge's 5xx (the app's without an edge)."""
    tol = tolerance(client["requests"], window, scrape)
    checks = []

    def check(what: str, mine: int | None, theirs: int | None) -> None:
        if mine is None or theirs is None:
            return
        checks.append({"what": what, "client": mine, "prometheus": theirs, "tolerance": tol,
                       "agree": abs(mine - theirs) <= tol})

    edge = seen.get("edge")
    app = seen.get("app") or {}
    if edge is not None:
        check("requests at the edge", client["requests"], edge["requests"])
    check("requests in the app", client.get("by_app", client["requests"]), app.get("requests"))
    fivexx = (edge or app).get("by_class", {}).get("5xx", 0) if (edge or app) else None
    where = " at the edge" if edge is not None else " in the app"
    if "errors_5xx" in client:
        check("5xx answers" + where, client["errors_5xx"], fivexx)
    else:  # Locust counts failures (5xx, other statuses, no answer) without telling them apart
        check("failed requests / 5xx answers" + where, client.get("failures"), fivexx)
    return checks


def render(view: dict[str, Any]) -> str:
    """One or two lines: what Prometheus saw, and where it disagrees with the client."""
    if view.get("status") != "ok":
        return "Prometheus: " + view.get("status", "?")
    app, edge = view["app"], view.get("edge")
    classes = ", ".join(f"{k} {v}" for k, v in app["by_class"].items()) or "none"
    p95 = "n/a" if view.get("p95_ms") is None else "%.0f ms" % view["p95_ms"]
    alerts = "; ".join("%s%s %s, %s" % (
        a["alert"], "{%s}" % a["labels"]["instance"] if a["labels"].get("instance") else "",
        "firing at start" if a["fired"] is None else "fired +%.0f s" % a["fired"],
        "still firing" if a["resolved"] is None else "resolved +%.0f s" % a["resolved"])
        for a in view.get("alerts", [])) or "none"
    line = ("Prometheus saw: requests %d (%s), edge requests %s, p95 %s, alerts: %s"
            % (app["requests"], classes, "n/a" if edge is None else edge["requests"], p95, alerts))
    bad = [c for c in view.get("checks", []) if not c["agree"]]
    if bad:
        line += "\ndisagrees: " + "; ".join("%s: client %d, Prometheus %d (tolerance %d)" % (
            c["what"], c["client"], c["prometheus"], c["tolerance"]) for c in bad)
    return line
