"""Unit tests of checker/prometheus.py: the queries, counter growth from raw samples, alert spans,
the tolerance rule and the comparison. No network (test_prometheus_window.py runs a real one)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from swarmlab_ops.checker import prometheus as pq
from swarmlab_ops.history import Op
from swarmlab_ops.lab.prometheus import parse_duration
from swarmlab_ops.drills import DRILLS
from swarmlab_ops.report import render_drills


def series(values, **labels):
    return {"metric": labels, "values": [[t, str(v)] for t, v in values]}


def test_queries_leave_out_health_checks_and_cover_the_window():
    qs = pq.queries(window=60.2, scrape=5)
    # 60.2 s window + 6 s settle + two scrapes of baseline, rounded up, plus one
    assert qs["app"] == 'counter_http_requests_total{job="web",probe="false"}[78s]'
    assert qs["edge"] == 'haproxy_frontend_http_requests_total{job="edge",proxy="http"}[78s]'
    assert qs["edge_responses"] == 'haproxy_frontend_http_responses_total{job="edge",proxy="http"}[78s]'
    assert qs["p95"] == ('histogram_quantile(0.95, sum by (le) (rate(counter_http_request_duration_seconds_bucket'
                         '{job="web",probe="false"}[72s])))')
    assert qs["alerts"] == 'ALERTS{alertstate="firing"}'
    assert pq.queries(10, 1, web_job="app", edge_job="lb")["app"].startswith(
        'counter_http_requests_total{job="app",probe="false"}[')


@pytest.mark.parametrize("samples, expected", [
    ([(95, 10), (100, 10), (105, 30), (110, 50)], 40),   # baseline: the sample at the start
    ([(97, 10), (102, 12), (107, 20)], 10),              # baseline: the last one before the start
    ([(103, 7), (108, 19)], 19),                         # born in the window: counted from 0
    ([(95, 40), (102, 45), (104, 3), (109, 8)], 13),     # reset (a restarted process): 5 + 3 + 5
    ([(90, 5), (95, 5)], 0),                             # no sample in the window
    ([(95, 5), (105, 9), (111, 20)], 4),                 # after the end: left out
])
def test_series_growth(samples, expected):
    assert pq.series_growth(samples, 100, 110) == expected


def test_app_counts_by_status_class_sum_the_tasks():
    matrix = [series([(95, 100), (105, 130)], status="200", instance="a"),
              series([(95, 0), (105, 4)], status="503", instance="a"),
              series([(104, 20)], status="200", instance="b"),  # a task started in the window
              series([(95, 2), (105, 3)], status="404", instance="b")]
    assert pq.app_counts(matrix, 100, 110) == {"requests": 55, "by_class": {"2xx": 50, "4xx": 1, "5xx": 4}}
    assert pq.app_counts([], 100, 110) == {"requests": 0, "by_class": {}}


def test_edge_counts_none_without_an_edge():
    assert pq.edge_counts([], [], 100, 110) is None
    got = pq.edge_counts([series([(95, 10), (105, 60)])],
                         [series([(95, 8), (105, 56)], code="2xx"), series([(95, 2), (105, 4)], code="5xx"),
                          series([(95, 0), (105, 0)], code="4xx")], 100, 110)
    assert got == {"requests": 50, "by_class": {"2xx": 48, "5xx": 2}}


def test_alert_spans():
    step = 5
    matrix = [
        series([(115, 1), (120, 1), (125, 1)], alertname="RedisReplicaDown", alertstate="firing",
               instance="redis-master", severity="warning"),
        series([(100, 1), (105, 1), (110, 1), (150, 1), (160, 1)], alertname="Old", alertstate="firing"),
    ]
    spans = pq.alert_spans(matrix, start=100, end=160, step=step)
    assert spans == [
        {"alert": "Old", "labels": {}, "fired": None, "resolved": None},  # firing at start, still at the end
        {"alert": "RedisReplicaDown", "labels": {"instance": "redis-master", "severity": "warning"},
         "fired": 15.0, "resolved": 30.0},
    ]


def op(kind="incr", status=200, served="web.1", seconds=0.01, outcome="ok"):
    return Op("http-0", kind, 10.0, 10.0 + seconds, outcome, None, status, served)


def test_client_counts():
    ops = ([op(seconds=0.010)] * 18 + [op(seconds=0.200)] * 2
           + [op(status=503, served=None, outcome="fail")]  # the edge answered, no backend
           + [op(status=None, served=None, outcome="unknown")]  # no answer
           + [Op("nemesis", "kill", 10, 11, "ok")])
    got = pq.client_counts(ops)
    assert got == {"requests": 22, "by_app": 20, "errors_5xx": 1, "no_answer": 1, "p95_ms": 200.0}
    assert pq.client_counts([])["p95_ms"] is None


@pytest.mark.parametrize("requests, window, scrape, expected", [
    (600, 60, 5, 50),   # 10 req/s x 5 s
    (601, 60, 5, 51),   # rounded up
    (3, 60, 5, 1),      # a trickle: still one request
    (0, 60, 5, 0),      # nothing sent: must be exactly 0
    (10, 0, 5, 0),
])
def test_tolerance_is_one_scrape_of_the_clients_rate(requests, window, scrape, expected):
    assert pq.tolerance(requests, window, scrape) == expected


def test_compare_with_an_edge():
    client = {"requests": 600, "by_app": 590, "errors_5xx": 10}
    seen = {"app": {"requests": 560, "by_class": {"2xx": 560}},
            "edge": {"requests": 600, "by_class": {"2xx": 590, "5xx": 10}}}
    checks = pq.compare(client, seen, window=60, scrape=5)
    assert [(c["what"], c["client"], c["prometheus"], c["tolerance"], c["agree"]) for c in checks] == [
        ("requests at the edge", 600, 600, 50, True),
        ("requests in the app", 590, 560, 50, True),      # 30 off: within one scrape's worth (50)
        ("5xx answers at the edge", 10, 10, 50, True),
    ]
    seen["app"]["requests"] = 539  # 51 off
    assert [c["agree"] for c in pq.compare(client, seen, 60, 5)] == [True, False, True]


def test_compare_without_edge_or_served_by_uses_the_app():
    client = {"requests": 100, "errors_5xx": 5}  # Locust: no X-Served-By
    seen = {"app": {"requests": 100, "by_class": {"2xx": 95, "5xx": 5}}, "edge": None}
    checks = pq.compare(client, seen, window=10, scrape=1)
    assert [(c["what"], c["client"], c["prometheus"], c["agree"]) for c in checks] == [
        ("requests in the app", 100, 100, True), ("5xx answers in the app", 5, 5, True)]
    # A quiet window must be exactly quiet.
    quiet = pq.compare({"requests": 0, "errors_5xx": 0}, {"app": {"requests": 1, "by_class": {"2xx": 1}}}, 10, 1)
    assert [c["agree"] for c in quiet] == [False, True]


def test_render():
    view = {"status": "ok", "app": {"requests": 590, "by_class": {"2xx": 580, "5xx": 10}},
            "edge": {"requests": 600, "by_class": {}}, "p95_ms": 23.4,
            "alerts": [{"alert": "EdgeNoHealthyBackend", "labels": {"instance": "10.0.1.5:8405"},
                        "fired": 12.0, "resolved": 41.0},
                       {"alert": "NodeDown", "labels": {}, "fired": None, "resolved": None}],
            "checks": [{"what": "requests in the app", "client": 700, "prometheus": 590, "tolerance": 50,
                        "agree": False}, {"what": "x", "client": 1, "prometheus": 1, "tolerance": 0, "agree": True}]}
    assert pq.render(view) == (
        "Prometheus saw: requests 590 (2xx 580, 5xx 10), edge requests 600, p95 23 ms, alerts: "
        "EdgeNoHealthyBackend{10.0.1.5:8405} fired +12 s, resolved +41 s; NodeDown firing at start, still firing\n"
        "disagrees: requests in the app: client 700, Prometheus 590 (tolerance 50)")
    assert pq.render({"status": "not deployed"}) == "Prometheus: not deployed"


@pytest.mark.parametrize("text, seconds", [("5s", 5), ("1m", 60), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5", "s", "5x", ""])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_compare_locust_failures_against_5xx():
    checks = pq.compare({"requests": 1000, "failures": 40}, {
        "app": {"requests": 960, "by_class": {"2xx": 960}},
        "edge": {"requests": 1000, "by_class": {"2xx": 960, "5xx": 40}}}, window=20, scrape=5)
    assert [(c["what"], c["client"], c["prometheus"], c["agree"]) for c in checks] == [
        ("requests at the edge", 1000, 1000, True), ("requests in the app", 1000, 960, True),
        ("failed requests / 5xx answers at the edge", 40, 40, True)]


def test_every_drill_row_names_its_target():
    # A drill without a target left the table's target cell empty (master-drain, until 4 Dec 2026).
    for name in DRILLS:
        row = render_drills([{"drill": name, "met_text": "yes"}]).splitlines()[-1]
        assert row.split(" | ")[-2].strip(), f"{name}: no target in {row!r}"


def test_the_drills_playbook_runs_every_drill_by_default():
    # "The same through Ansible" ran seven of ten (no master-drain, bad-image, never-ready) until 4 Dec 2026.
    playbook = yaml.safe_load((Path(__file__).resolve().parents[2] / "playbooks" / "drills.yml").read_text())
    assert playbook[0]["vars"]["drills"].split(",") == list(DRILLS)


def test_reports_carry_the_prometheus_lines():
    rows = [{"drill": "web-kill", "met_text": "yes",
             "prometheus": {"text": "Prometheus saw: requests 5 (2xx 5), edge requests 5, p95 3 ms, alerts: none"
                                    "\ndisagrees: requests in the app: client 9, Prometheus 5 (tolerance 1)"}},
            {"drill": "registry", "met_text": "yes", "prometheus": {"text": "Prometheus: not deployed"}}]
    table = render_drills(rows)
    assert ("- web-kill: Prometheus saw: requests 5 (2xx 5), edge requests 5, p95 3 ms, alerts: none; "
            "disagrees: requests in the app: client 9, Prometheus 5 (tolerance 1)") in table
    assert "- registry: Prometheus: not deployed" in table
    assert "Prometheus" not in render_drills([{"drill": "web-kill"}])
