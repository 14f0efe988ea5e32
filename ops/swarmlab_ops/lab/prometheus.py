"""Prometheus's HTTP API, asked what it saw in a drill's or a load test case's window.

Where it is: the monitoring role publishes Prometheus through its gateway container on the first
manager (`<stack>-monitoring`-gateway, label org.swarmlab.role=monitoring-gateway), bound to one
address of the manager (docs/monitoring.md); the tooling reads that binding from the manager's
Engine API. No gateway: the monitoring stack is not deployed, and the reports say so.
The queries and the arithmetic are in checker/prometheus.py.
"""
from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import yaml
from docker.errors import DockerException

from ..checker import prometheus as promq

GATEWAY_LABEL = "org.swarmlab.role=monitoring-gateway"


class PrometheusError(RuntimeError):
    pass


class Prometheus:
    """GET /api/v1/query, /api/v1/query_range and /api/v1/status/config (standard library only)."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, **params: Any) -> Any:
        # Errors say the reason first, then the endpoint without the query: reports cut them short.
        endpoint = f"{self.url}/api/v1/{path}"
        try:
            with urllib.request.urlopen(f"{endpoint}?{urllib.parse.urlencode(params)}",
                                        timeout=self.timeout) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            # A bad query: 400 and a JSON error. Plain text while Prometheus starts (503 "Service
            # Unavailable") or outside its route prefix (404): said as such, never a decoding error.
            text = exc.read().decode("utf-8", "replace")
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if not isinstance(body, dict) or "status" not in body:
                raise PrometheusError(f"HTTP {exc.code}: {text.strip()[:200]} ({endpoint})") from exc
        except (OSError, ValueError) as exc:
            raise PrometheusError(f"{exc} ({endpoint})") from exc
        if not isinstance(body, dict):
            raise PrometheusError(f"not Prometheus's API, an answer that is not a JSON object ({endpoint})")
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType')}: {body.get('error')} ({endpoint} {params})")
        return body["data"]

    def query(self, query: str, at: float) -> list[dict[str, Any]]:
        return self._get("query", query=query, time=f"{at:.3f}")["result"]

    def query_range(self, query: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self._get("query_range", query=query, start=f"{start:.3f}", end=f"{end:.3f}",
                         step=f"{step:g}")["result"]

    def scrape_interval(self, job: str) -> float:
        """The job's scrape interval (else the global one) from Prometheus's loaded configuration."""
        config = yaml.safe_load(self._get("status/config")["yaml"]) or {}
        found = next((j.get("scrape_interval") for j in config.get("scrape_configs", [])
                      if j.get("job_name") == job), None)
        return parse_duration(found or config.get("global", {}).get("scrape_interval", "1m"))

    def window(self, start: float, end: float, web_job: str = "web", edge_job: str = "edge",
               alerts_until: float | None = None) -> dict[str, Any]:
        """What Prometheus saw in [start, end]: the app's and the edge's counts, p95, alerts.

        Waits until one scrape after `end` has happened, and asks for that moment (not now, so that
        what the tooling does after the window, restoring the lab, stays out). Alerts are read up to
        `alerts_until` (default: now), so that an alert resolved by the restoration is seen."""
        scrape = self.scrape_interval(web_job)
        at = end + promq.settle(scrape)
        pause = at - time.time()
        if pause > 0:
            time.sleep(pause)
        qs = promq.queries(end - start, scrape, web_job, edge_job)
        p95 = self.query(qs["p95"], at)
        value = float(p95[0]["value"][1]) if p95 else float("nan")
        until = max(at, alerts_until or time.time())
        return {
            "status": "ok", "url": self.url, "start": start, "end": end, "evaluated_at": at,
            "scrape_interval": scrape,
            "app": promq.app_counts(self.query(qs["app"], at), start, at),
            "edge": promq.edge_counts(self.query(qs["edge"], at), self.query(qs["edge_responses"], at),
                                      start, at),
            "p95_ms": None if math.isnan(value) else round(value * 1000, 1),  # NaN: no request observed
            "alerts": promq.alert_spans(self.query_range(qs["alerts"], start, until, scrape), start, until,
                                        scrape),
        }


def parse_duration(text: str) -> float:
    """A Prometheus duration (1m, 5s, 1m30s, 500ms) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    total, number = 0.0, ""
    i = 0
    while i < len(text):
        if text[i].isdigit():
            number += text[i]
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else text[i]
        if unit not in units or not number:
            raise ValueError(f"not a Prometheus duration: {text!r}")
        total += int(number) * units[unit]
        number = ""
        i += len(unit)
    if number or not text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return total


def find(swarm: Any) -> Prometheus | None:
    """Prometheus as the monitoring role publishes it (the gateway on the manager), or None."""
    try:
        containers = swarm.manager.client().containers.list(filters={"label": GATEWAY_LABEL})
    except (DockerException, OSError):
        return None
    containers.sort(key=lambda c: c.name != f"{swarm.stack}-monitoring-gateway")
    for ctr in containers:
        bound = (ctr.attrs.get("NetworkSettings", {}).get("Ports") or {}).get("9090/tcp") or []
        if bound:
            host = bound[0].get("HostIp") or ""
            host = swarm.manager.address if host in ("", "0.0.0.0", "::") else host
            return Prometheus(f"http://{'[%s]' % host if ':' in host else host}:{bound[0]['HostPort']}")
    return None


def observe(prom: Prometheus | None, start: float, end: float, client: dict[str, Any] | None = None,
            **kwargs: Any) -> dict[str, Any]:
    """The window as Prometheus saw it, compared with the client's counts; never raises (a report
    must not fail because monitoring is absent or slow)."""
    if prom is None:
        return {"status": "not deployed", "text": promq.render({"status": "not deployed"})}
    try:
        view = prom.window(start, end, **kwargs)
    except PrometheusError as exc:
        view = {"status": f"no answer ({str(exc)[:200]})", "url": prom.url}
        return dict(view, text=promq.render(view))
    if client is not None:
        view["client"] = client
        view["checks"] = promq.compare(client, view, end - start, view["scrape_interval"])
    view["text"] = promq.render(view)
    return view
