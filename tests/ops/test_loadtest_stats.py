"""Unit tests of swarmlab_ops.loadtest: Locust CSV parsing, ratios against the targets, the generator
saturation warning, CPU accounting helpers and the report. No network, no Locust run."""
from __future__ import annotations

import types
from pathlib import Path

import pytest

from swarmlab_ops.loadtest import cpu, report, stats


@pytest.fixture(scope="module")
def lt():
    """The load test's pure helpers under one name, as the tests were written against."""
    return types.SimpleNamespace(**{k: v for m in (stats, cpu, report) for k, v in vars(m).items()
                                    if not k.startswith("_")})


HEADER = ("Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,"
          "Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,"
          "75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n")
STATS = HEADER + (
    "GET,GET /api/counter,10994,0,11,14.67,0.46,307.7,12.2,1360.9,0.0,11,15,17,19,25,35,55,78,260,300,310\n"
    "POST,POST /api/counter/reset,200,2,12,15.3,0.52,320.3,12.4,24.5,0.25,12,16,18,20,27,40,53,91,280,320,320\n"
    ",Aggregated,11194,2,11,14.7,0.46,320.3,12.2,1385.4,0.25,11,15,17,19,25,36,55,80,270,310,320\n")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "case_stats.csv"
    path.write_text(text)
    return path


def test_parse_locust_stats_aggregated_and_endpoints(lt, tmp_path):
    r = lt.parse_locust_stats(write(tmp_path, STATS))
    assert r["requests"] == 11194
    assert r["failures"] == 2
    assert r["rps"] == pytest.approx(1385.4)
    assert (r["p50_ms"], r["p95_ms"], r["p99_ms"]) == (11, 36, 80)
    assert r["endpoints"]["GET GET /api/counter"]["p95_ms"] == 35
    assert r["endpoints"]["POST POST /api/counter/reset"]["failures"] == 2
    assert "Aggregated" not in " ".join(r["endpoints"])


def test_parse_locust_stats_na_percentiles(lt, tmp_path):
    # Locust writes N/A for percentiles of a row without requests.
    text = HEADER + ",Aggregated,0,0,0,0,0,0,0,0,0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n"
    r = lt.parse_locust_stats(write(tmp_path, text))
    assert r["requests"] == 0 and r["p95_ms"] == 0.0


def test_parse_locust_stats_without_aggregated_row_fails(lt, tmp_path):
    with pytest.raises(ValueError, match="Aggregated"):
        lt.parse_locust_stats(write(tmp_path, HEADER))


@pytest.mark.parametrize("gen, procs, per_proc, cpus, busy, expected", [
    (120.0, 2, [60.0, 60.0], 2, 50.0, []),                          # fine
    (185.0, 2, [92.0, 93.0], 2, 95.0, ["generator saturated: Locust used 185",
                                       "2 Locust process(es)", "machine saturated"]),
    (91.0, 1, [91.0], 2, None, ["of its 1 core(s)", "1 Locust process(es)"]),
    (95.0, 4, [95.0, 0.0, 0.0, 0.0], 2, 60.0, ["1 Locust process(es) at 95"]),  # one hot worker
    (179.0, 4, [45.0] * 4, 2, 89.9, []),                            # cores capped at cpu_count
    (180.0, 4, [45.0] * 4, 2, 90.0, ["of its 2 core(s)", "machine saturated"]),
])
def test_saturation_warnings(lt, gen, procs, per_proc, cpus, busy, expected):
    warnings = lt.saturation_warnings(gen, procs, per_proc, cpus, busy)
    assert len(warnings) == len(expected), warnings
    for want in expected:
        assert any(want in w for w in warnings), (want, warnings)


def case(rps, p95=20.0, failures=0):
    return {"rps": rps, "p95_ms": p95, "failures": failures}


def test_check_targets_met(lt):
    cases = {"bare": case(1000), "swarm": case(850, 40), "replicas-1": case(400),
             "replicas-4": case(800, 45)}
    t = {x["target"]: x for x in lt.check_targets(cases)}
    swarm = t["Swarm through the edge / bare baseline (req/s)"]
    assert swarm["value"] == pytest.approx(0.85) and swarm["met"] and swarm["missed_by"] == 0
    scale = t["4 replicas / 1 replica (req/s)"]
    assert scale["value"] == pytest.approx(2.0) and scale["met"]
    p95 = t["p95 at 4 replicas (ms)"]
    assert p95["value"] == 45 and p95["met"]           # the sweep's 4-replica case wins
    assert t["failed requests, every case"]["met"] is True


def test_check_targets_missed_by(lt):
    cases = {"bare": case(2000), "single": case(900, failures=3), "swarm": case(700, 120),
             "replicas-1": case(500), "replicas-4": case(600, 130, failures=1)}
    t = {x["target"]: x for x in lt.check_targets(cases)}
    swarm = t["Swarm through the edge / bare baseline (req/s)"]
    assert swarm["value"] == pytest.approx(0.35) and swarm["met"] is False
    assert swarm["missed_by"] == pytest.approx(0.45)
    scale = t["4 replicas / 1 replica (req/s)"]
    assert scale["value"] == pytest.approx(1.2) and scale["missed_by"] == pytest.approx(0.4)
    assert t["p95 at 4 replicas (ms)"]["missed_by"] == pytest.approx(80)
    failed = t["failed requests, every case"]
    assert failed["met"] is False and failed["value"] == 4
    assert failed["detail"] == {"single": 3, "replicas-4": 1}


def test_check_targets_missing_cases_are_not_judged(lt):
    t = {x["target"]: x for x in lt.check_targets({"single": case(900)})}
    assert t["Swarm through the edge / bare baseline (req/s)"]["met"] is None
    assert t["4 replicas / 1 replica (req/s)"]["value"] is None
    assert t["p95 at 4 replicas (ms)"]["met"] is None
    assert t["failed requests, every case"]["met"] is True


def test_check_targets_swarm_falls_back_to_sweep(lt):
    t = lt.check_targets({"bare": case(1000), "replicas-4": case(900)})
    assert t[0]["value"] == pytest.approx(0.9)


def test_ratio(lt):
    assert lt.ratio(3, 2) == 1.5
    assert lt.ratio(None, 2) is None and lt.ratio(3, 0) is None


def test_cpu_deltas_new_and_reused_pids(lt):
    before = {1: ("100", 5.0), 2: ("200", 1.0)}
    after = {1: ("100", 7.5), 2: ("999", 0.5), 3: ("300", 2.0)}
    assert lt.cpu_deltas(before, after) == {1: 2.5, 2: 0.5, 3: 2.0}


@pytest.mark.parametrize("comm, cmd, component", [
    ("haproxy", "", "edge"), ("redis-server", "", "redis"), ("gunicorn", "", "web"),
    ("python3", "/opt/venv/bin/python /opt/venv/bin/gunicorn --config x", "web"),
    ("locust", "", "generator"), ("dockerd", "", "docker engine"),
    ("containerd-shim", "", "docker engine"), ("systemd", "", "other"),
])
def test_classify(lt, comm, cmd, component):
    assert lt.classify(comm, cmd) == component


def test_descendants(lt):
    snap = {1: ("init", "0", 0, 0.0, ""), 10: ("a", "0", 1, 0.0, ""), 11: ("b", "0", 10, 0.0, ""),
            20: ("c", "0", 2, 0.0, "")}
    assert lt.descendants(snap, {10}) == {10, 11}


def test_report_and_chart(lt, tmp_path):
    profile = {"cpu_pct": {"generator": 80.0, "web": 60.0}, "machine_busy_pct": 97.0,
               "gen_per_process_pct": [40.0, 40.0]}
    cases = {name: {**case(rps, p95), "p50_ms": 10, "p99_ms": 90, "profile": profile,
                    "load_avg_start": "8.0 8.0 9.0", "load_avg_end": "9.0 8.5 9.0",
                    "warnings": ["machine saturated: x"] if name == "bare" else []}
             for name, rps, p95 in [("bare", 1800, 30), ("single", 900, 60), ("swarm", 700, 90),
                                    ("replicas-1", 300, 150), ("replicas-2", 500, 100),
                                    ("replicas-4", 650, 95)]}
    meta = {"started": "20260101T000000", "cpus": 2, "locust": "2.47.0", "users": 32,
            "spawn_rate": 32, "seconds": 25, "processes": 2, "workers": 3, "threads": 4,
            "profile_seconds": 4}
    cases["swarm"]["prometheus"] = {"text": "Prometheus saw: requests 17500 (2xx 17500), edge requests 17500, "
                                            "p95 40 ms, alerts: none"}
    md = lt.render_markdown(meta, cases, lt.check_targets(cases), None)
    assert "| swarm | 700 |" in md
    assert "- swarm: Prometheus saw: requests 17500 (2xx 17500), edge requests 17500, p95 40 ms" in md
    assert "**no** (short by 0.41)" in md          # 700/1800 = 0.39 vs 0.8
    assert "**no** (over by 45)" in md             # p95 95 vs 50
    assert "- bare: machine saturated: x" in md
    png = tmp_path / "chart.png"
    lt.render_chart(cases, png, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cpu_ms_per_request(lt):
    assert lt.cpu_ms_per_request(50.0, 1000.0) == pytest.approx(0.5)  # half a core, 1000 req/s
    assert lt.cpu_ms_per_request(50.0, 0.0) == 0.0
