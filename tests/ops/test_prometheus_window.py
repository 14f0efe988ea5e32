"""The tooling's Prometheus client against a real Prometheus (Debian's 2.42 binary) scraping the real
app (gunicorn with its metrics port, the load test's BareApp) over loopback, with a real
redis-server: a known number of requests, health checks among them, is what the client reports.
No lab; bounded (about 15 s) and self-cleaning."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
import urllib.request

import pytest
import requests

from ansible_collections.swarmlab.cluster.tests.integration.support.ports import free_port
from swarmlab_ops.checker.prometheus import client_counts
from swarmlab_ops.client.http import CounterClient
from swarmlab_ops.lab.prometheus import Prometheus, PrometheusError, observe
from swarmlab_ops.loadtest.locust import BareApp

SCRAPE = 1  # seconds


@contextlib.contextmanager
def prometheus_server(tmp_path, config, *args):
    """A real Prometheus on a free loopback port with `config`, stopped on exit; yields its URL."""
    assert shutil.which("prometheus"), "prometheus not found: run scripts/setup.sh"
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(config)
    with open(tmp_path / "prometheus.log", "wb") as logf:
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}", *args],
            stdout=subprocess.DEVNULL, stderr=logf)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(15)


def first_answer(prom, query, pause, tmp_path):
    """The first non-empty result of `query`, asked every `pause` s for up to 20 s; refusals (a
    PrometheusError: not listening yet, 503 while it starts) are waited out."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            result = prom.query(query, time.time())
            if result:
                return result
        except PrometheusError:
            pass
        time.sleep(pause)
    pytest.fail(f"Prometheus gave no answer to {query}: " + (tmp_path / "prometheus.log").read_text()[-800:])


@pytest.fixture
def scraped_app(tmp_path):
    assert shutil.which("redis-server"), "redis-server not found: run scripts/setup.sh"
    with BareApp(workers=2, threads=2, clients=4) as app, prometheus_server(
            tmp_path,
            f"global:\n  scrape_interval: {SCRAPE}s\n  evaluation_interval: {SCRAPE}s\n"
            f"scrape_configs:\n  - job_name: web\n    static_configs:\n"
            f"      - targets: ['{app.metrics_address}']\n") as url:
        prom = Prometheus(url)
        first_answer(prom, 'up{job="web"} == 1', 0.3, tmp_path)  # the app's target scraped once
        yield app, prom


def test_client_reports_the_requests_prometheus_scraped(scraped_app):
    app, prom = scraped_app
    # Requests before the window are not counted in it.
    for _i in range(3):
        assert requests.post(app.url + "/api/counter/increment", timeout=5).ok
    time.sleep(SCRAPE + 1)
    client = CounterClient(app.url, "http-0")
    start = time.time()
    ops = []
    for i in range(37):  # over about 3 s: one scrape's worth (the tolerance) is about 12 requests
        ops.append(client.invoke("incr" if i % 2 else "get"))
        time.sleep(0.08)
    for path in ("/healthz", "/readyz") * 4:  # probe="true": left out
        assert urllib.request.urlopen(app.url + path, timeout=5).status == 200
    end = time.time()
    mine = client_counts(ops)
    assert mine["requests"] == mine["by_app"] == 37 and mine["errors_5xx"] == 0

    view = observe(prom, start, end, mine)

    assert view["status"] == "ok", view
    assert view["app"] == {"requests": 37, "by_class": {"2xx": 37}}
    assert view["edge"] is None  # no HAProxy scraped here
    assert view["p95_ms"] is not None and view["p95_ms"] > 0
    assert view["alerts"] == []
    assert [c["what"] for c in view["checks"]] == ["requests in the app", "5xx answers in the app"]
    assert all(c["agree"] and c["prometheus"] == c["client"] for c in view["checks"]), view["checks"]
    assert view["text"].startswith("Prometheus saw: requests 37 (2xx 37), edge requests n/a, p95 ")
    assert "disagrees" not in view["text"]

    # A client that counted more than were sent disagrees, beyond one scrape's worth.
    assert end - start > 2.9
    inflated = dict(mine, requests=80, by_app=80)
    view = observe(prom, start, end, inflated)
    assert "disagrees: requests in the app: client 80, Prometheus 37" in view["text"]


def test_no_prometheus_answer_is_reported_not_raised():
    prom = Prometheus(f"http://127.0.0.1:{free_port()}", timeout=2)
    now = time.time()
    view = observe(prom, now - 5, now - 4, None)
    assert view["status"].startswith("no answer") and view["text"].startswith("Prometheus: no answer")
    assert observe(None, now - 5, now - 4)["text"] == "Prometheus: not deployed"


def test_an_answer_that_is_not_prometheus_json_is_reported_not_raised(tmp_path):
    """Prometheus answers plain text while it starts (503 "Service Unavailable", the error CI met in
    the fixture above) and outside its route prefix (404): a PrometheusError naming the status, and
    a report saying "no answer", never a JSON decoding error out of observe()."""
    with prometheus_server(tmp_path, "global:\n  scrape_interval: 1s\n",
                           "--web.external-url=http://127.0.0.1/prom/") as url:
        # Polled from its start (refused, then 503, then ready): any other error fails the test.
        starting = Prometheus(url + "/prom", timeout=2)
        assert first_answer(starting, "vector(1)", 0.005, tmp_path)[0]["value"][1] == "1"

        outside = Prometheus(url, timeout=2)  # the API is under /prom/ only: a plain-text 404
        with pytest.raises(PrometheusError) as raised:
            outside.query("vector(1)", time.time())
        assert str(raised.value).startswith("HTTP 404: 404 page not found (http://127.0.0.1:")
        now = time.time()
        view = observe(outside, now - 5, now - 4, None)
        assert view["status"].startswith("no answer") and "HTTP 404" in view["status"], view
        assert view["text"].startswith("Prometheus: no answer")
