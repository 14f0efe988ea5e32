"""Unit tests of the quiet-machine guard (swarmlab_ops.quiet) and of `swarmlab-ops perf`'s figures:
the verdict from canned /proc/stat samples and container lists, ratios and targets, the refusal of
--write-docs on a machine that was not quiet, the docs table rewrite between markers, the stack's
gunicorn settings. No lab and no load here; one 5 s smoke of the bare case on loopback at the end."""
from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from swarmlab_ops import cli, quiet
from swarmlab_ops.checkout import ROOT
from swarmlab_ops.loadtest.bareredis import RedisLayout, app_env, online_replicas
from swarmlab_ops.loadtest.locust import BareApp
from swarmlab_ops.perf import budget, chart, figures, settings
from swarmlab_ops.perf import run as perf

# /proc/stat's aggregate line: user nice system idle iowait irq softirq steal guest guest_nice
STAT0 = "cpu  1000 0 500 10000 100 0 50 0 0 0\ncpu0 500 0 250 5000 50 0 25 0 0 0\nintr 1 2 3\n"
# 1000 jiffies later: 50 busy (user 30, system 15, softirq 5), 950 idle (idle 940, iowait 10)
STAT_QUIET = "cpu  1030 0 515 10940 110 0 55 0 0 0\n"
# 1000 jiffies later: 400 busy, 600 idle
STAT_BUSY = "cpu  1300 0 600 10600 100 0 50 0 0 0\n"
LAB = "org.swarmlab.lab"


def ctr(name, **labels):
    return {"name": name, "labels": labels}


def test_idle_share_from_proc_stat_samples():
    assert quiet.idle_pct(STAT0, STAT_QUIET) == pytest.approx(95.0)
    assert quiet.idle_pct(STAT0, STAT_BUSY) == pytest.approx(60.0)
    with pytest.raises(ValueError):
        quiet.idle_pct(STAT_QUIET, STAT0)


def test_other_labs_are_lab_labelled_containers_of_another_name():
    containers = [ctr("swarmlab-manager1", **{LAB: "swarmlab"}), ctr("perf-worker1", **{LAB: "perf"}),
                  ctr("perf-manager1", **{LAB: "perf"}), ctr("registry", **{"org.swarmlab.role": "registry"})]
    assert quiet.other_labs(containers, "swarmlab") == {"perf": ["perf-manager1", "perf-worker1"]}
    assert quiet.other_labs(containers[:1], "swarmlab") == {}
    # No lab under test (the bare benchmark): every lab is another one.
    assert set(quiet.other_labs(containers, None)) == {"swarmlab", "perf"}


@pytest.mark.parametrize("stat, containers, quiet_, reason", [
    (STAT_QUIET, [ctr("swarmlab-manager1", **{LAB: "swarmlab"})], True, None),
    (STAT_BUSY, [], False, "only 60 % idle"),
    (STAT_QUIET, [ctr("hab-manager1", **{LAB: "hab"})], False, "other labs running: hab (1 containers)"),
])
def test_verdict(stat, containers, quiet_, reason):
    ok, reasons = quiet.verdict(quiet.idle_pct(STAT0, stat), quiet.other_labs(containers, "swarmlab"))
    assert ok is quiet_
    assert (reasons == []) if reason is None else any(reason in r for r in reasons)


def test_verdict_unknown_is_not_quiet():
    assert quiet.verdict(99.0, None) == (False, ["could not list the containers (other labs unknown)"])
    assert not quiet.verdict(None, {})[0]
    # The threshold is inclusive: exactly 90 % idle is quiet.
    assert quiet.verdict(90.0, {})[0] and not quiet.verdict(89.9, {})[0]


def test_verdict_counts_the_lab_under_tests_own_use_as_idle():
    # An idle lab with monitoring keeps 2 CPUs ~85 % idle: its own share is what is measured, not
    # noise. Anything else busy on the machine still makes it not quiet.
    assert quiet.verdict(85.0, {}, lab_pct=6.0)[0]
    ok, reasons = quiet.verdict(85.0, {}, lab_pct=3.0)
    assert not ok and "88 % idle" in reasons[0] and "own 3 %" in reasons[0]


def test_lab_share_is_the_lab_processes_cpu_over_all_cpus():
    # node container init 100 with a child 101 (a task's process); 200 is something else.
    snap0 = {100: ("systemd", "1", 1, 10.0, ""), 101: ("gunicorn", "2", 100, 1.0, ""),
             200: ("stress", "3", 1, 0.0, "")}
    snap1 = {100: ("systemd", "1", 1, 10.5, ""), 101: ("gunicorn", "2", 100, 2.0, ""),
             200: ("stress", "3", 1, 5.0, ""), 102: ("python3", "4", 101, 0.5, "")}
    # 0.5 + 1.0 + 0.5 (a process started during the window) = 2 CPU seconds over 5 s on 2 CPUs
    assert quiet.lab_share(snap0, snap1, 5.0, {100}, cpus=2) == pytest.approx(20.0)
    assert quiet.lab_share(snap0, snap1, 5.0, set(), cpus=2) == 0.0


def test_heavy_processes_exclude_the_lab_under_test():
    # {pid: (comm, start key, ppid, cpu seconds, cmdline)}, 5 s apart
    snap0 = {10: ("dockerd", "1", 1, 100.0, ""), 20: ("python3", "7", 1, 5.0, ""),
             30: ("gunicorn", "9", 1, 1.0, "")}
    snap1 = {10: ("dockerd", "1", 1, 102.5, ""), 20: ("python3", "7", 1, 5.1, ""),
             30: ("gunicorn", "9", 1, 4.0, ""), 40: ("ansible", "99", 1, 1.0, "")}
    rows = quiet.heavy_processes(snap0, snap1, 5.0, exclude={30})
    assert [(r["comm"], r["cpu_pct"]) for r in rows] == [("dockerd", 50.0), ("ansible", 20.0)]


def reading(ok: bool) -> dict:
    return {"lab": "swarmlab", "load_avg": ["3.1", "2.9", "2.5"], "cpus": 2, "window_s": 5.0,
            "idle_pct": 95.0 if ok else 40.0, "other_labs": {} if ok else {"hab": ["hab-manager1"]},
            "containers_error": "", "heavy": [], "quiet": ok,
            "reasons": [] if ok else ["CPUs only 40 % idle", "other labs running: hab (1 containers)"]}


def test_describe_prints_every_reading():
    text = quiet.describe(reading(False))
    for part in ("load average 3.1 2.9 2.5", "40 %", "hab: hab-manager1", "quiet: NO", "CPUs only 40 % idle"):
        assert part in text


def wrk_result(rps, p95, errors=0):
    return {"rps": rps, "p50_ms": p95 / 3, "p95_ms": p95, "p99_ms": p95 * 2, "errors": errors,
            "gen_cpu_pct": 9.0, "machine_busy_pct": 80.0}


POST, GET = "POST /api/counter/increment", "GET /api/counter"
CASES = {"bare": {POST: wrk_result(1000, 40), GET: wrk_result(1200, 30)},
         "swarm": {POST: wrk_result(850, 55), GET: wrk_result(700, 60)},
         "replicas-1": {POST: wrk_result(400, 100), GET: wrk_result(500, 90)},
         "replicas-4": {POST: wrk_result(700, 60), GET: wrk_result(750, 60, errors=3)}}


def test_targets_ratios_and_verdicts():
    checks = {(t["request"], t["target"]): t for t in figures.targets(CASES, [POST, GET])}
    post_rps = checks[(POST, "swarm / bare req/s")]
    assert post_rps["value"] == pytest.approx(0.85) and post_rps["met"] is True
    assert checks[(GET, "swarm / bare req/s")]["value"] == pytest.approx(700 / 1200)
    assert checks[(GET, "swarm / bare req/s")]["met"] is False
    assert checks[(POST, "swarm p95 / bare p95")]["value"] == pytest.approx(1.375)
    assert checks[(POST, "swarm p95 / bare p95")]["met"] is True
    assert checks[(GET, "swarm p95 / bare p95")]["met"] is False  # 2.0x
    assert checks[(POST, "4 / 1 replicas req/s")]["value"] == pytest.approx(1.75)
    assert checks[(POST, "4 / 1 replicas req/s")]["met"] is True
    assert checks[(GET, "4 / 1 replicas req/s")]["met"] is False  # 1.5x
    errors = [t for t in checks.values() if t["target"].startswith("errors")]
    assert [(t["request"], t["met"], t["value"]) for t in errors] == [(POST, True, 0), (GET, False, 3)]
    # Without a bare-replicated case its comparisons are not measured, never met or not met.
    assert checks[(POST, f"{figures.INFO} swarm / bare-replicated req/s")]["met"] is None


def test_the_swarm_against_bare_with_the_stacks_redis_is_information_beside_the_targets():
    cases = {**CASES, "bare-replicated": {POST: wrk_result(1000, 50), GET: wrk_result(800, 40)}}
    checks = {(t["request"], t["target"]): t for t in figures.targets(cases, [POST, GET])}
    assert checks[(POST, "(information) swarm / bare-replicated req/s")]["value"] == pytest.approx(0.85)
    assert checks[(POST, "(information) swarm / bare-replicated req/s")]["met"] is True
    assert checks[(GET, "(information) swarm p95 / bare-replicated p95")]["value"] == pytest.approx(1.5)
    # Issue 17's own verdicts stay against the strict bare case.
    assert checks[(GET, "swarm / bare req/s")]["value"] == pytest.approx(700 / 1200)


def test_targets_boundaries_are_inclusive_and_missing_cases_not_measured():
    cases = {"bare": {POST: wrk_result(1000, 40)}, "swarm": {POST: wrk_result(800, 60)}}
    checks = {t["target"]: t for t in figures.targets(cases, [POST])}
    assert checks["swarm / bare req/s"]["met"] is True         # exactly 0.8
    assert checks["swarm p95 / bare p95"]["met"] is True       # exactly 1.5
    assert checks["4 / 1 replicas req/s"]["met"] is None       # no sweep in this run
    cases["swarm"][POST] = {"error": "connection refused"}
    assert all(t["met"] is None for t in figures.targets(cases, [POST]) if "/" in t["target"])


def result(ok: bool) -> dict:
    meta = {"started": "20270101T000000", "lab": "swarmlab", "command": "swarmlab-ops perf --write-docs",
            "connections": 32, "wrk_threads": 1, "seconds": 20, "workers": 3, "threads": 4,
            "settings_source": "test", "swarm_replicas": 4}
    cases = {**CASES, "bare-replicated": {POST: wrk_result(900, 45), GET: wrk_result(1100, 35)}}
    return {"meta": meta, "quiet": reading(ok), "cases": cases, "targets": figures.targets(cases, [POST, GET])}


def test_render_has_cases_and_verdicts():
    text = figures.render(result(True))
    assert "| bare | POST /api/counter/increment | 1000 | 13.3 | 40.0 | 80.0 | 0 | 9 % | 80 % |" in text
    assert "| POST /api/counter/increment | swarm / bare req/s | 0.85x | >= 0.8x | met |" in text
    assert "| GET /api/counter | 4 / 1 replicas req/s | 1.50x | >= 1.6x | **not met** |" in text
    assert "| POST /api/counter/increment | (information) swarm / bare-replicated req/s | 0.94x | >= 0.8x | met |" in text
    assert "| bare-replicated | GET /api/counter | 1100 |" in text
    assert "quiet: yes" in text


DOC = f"# Performance\n\nintro\n\n{figures.BEGIN}\n{figures.NOT_MEASURED}\n{figures.END}\n\n## Next\nkept\n"


def test_rewrite_between_markers_keeps_the_rest():
    new = figures.rewrite_between(DOC, "| a | b |\n")
    assert new.startswith("# Performance\n\nintro\n\n" + figures.BEGIN + "\n| a | b |\n" + figures.END)
    assert new.endswith("\n\n## Next\nkept\n")
    assert figures.NOT_MEASURED not in new
    assert figures.rewrite_between(new, "| c |") == figures.rewrite_between(DOC, "| c |")


@pytest.mark.parametrize("text", ["no markers", DOC + figures.BEGIN, DOC.replace(figures.END, ""),
                                  f"{figures.END}\n{figures.BEGIN}\n"])
def test_rewrite_between_refuses_bad_markers(text):
    with pytest.raises(ValueError):
        figures.rewrite_between(text, "x")


def test_write_docs_refused_unless_quiet(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text(DOC)
    with pytest.raises(SystemExit, match="refused: the machine was not quiet: CPUs only 40 % idle; other labs"):
        perf.write_docs(result(False), doc)
    assert doc.read_text() == DOC
    partial = result(True)
    partial["cases"] = {k: v for k, v in partial["cases"].items() if k != "replicas-1"}
    with pytest.raises(SystemExit, match="cases not measured: replicas-1"):
        perf.write_docs(partial, doc)
    assert doc.read_text() == DOC
    assert perf.write_docs(result(True), doc) == 0
    assert "| swarm | GET /api/counter | 700 |" in doc.read_text()


def test_the_chart_draws_each_target_where_it_lies_met_or_not(tmp_path):
    png = tmp_path / "perf.png"
    drawn = chart.render(result(True), png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # CASES: swarm/bare POST 850/1000 met, GET 700/1200 not; p95 55/40 met, 60/30 not; 4/1 700/400 met, 750/500 not.
    assert drawn == {"req/s: swarm against bare": [(POST, "0.85x", True), (GET, "0.58x", False)],
                     "p95 at the same connections": [(POST, "1.38x", True), (GET, "2.00x", False)],
                     "1 and 4 web replicas, through the edge": [(POST, "1.75x", True), (GET, "1.50x", False)]}
    # A case that failed or was not measured draws no target, and the chart still comes out.
    partial = result(True)
    partial["cases"]["swarm"] = {POST: {"error": "connection refused"}}
    del partial["cases"]["replicas-1"]
    partial["targets"] = figures.targets(partial["cases"], [POST, GET])  # as a run writes them
    drawn = chart.render(partial, png)
    assert drawn == {"req/s: swarm against bare": [], "p95 at the same connections": [],
                     "1 and 4 web replicas, through the edge": []}


def test_write_docs_puts_the_chart_beside_the_table_and_render_redraws_a_past_run(tmp_path, capsys, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    doc = docs / "performance.md"
    monkeypatch.setattr(perf, "DOCS", doc)
    doc.write_text(DOC)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "perf.json").write_text(json.dumps(result(True)))
    ns = parsed("--render", str(run_dir))
    assert perf.run(ns) == 0                       # measures nothing: no lab, no wrk needed
    assert "| swarm | GET /api/counter | 700 |" in capsys.readouterr().out
    assert (run_dir / perf.CHART).read_bytes()[:4] == b"\x89PNG"
    assert perf.write_docs(result(True), doc, chart_png=run_dir / perf.CHART) == 0
    assert (docs / "performance" / perf.CHART).read_bytes() == (run_dir / perf.CHART).read_bytes()
    assert "](performance/perf.png)\n" + figures.END in doc.read_text()
    # A busy machine's run is drawn, but --write-docs still refuses it, chart and all.
    (run_dir / "perf.json").write_text(json.dumps(result(False)))
    doc.write_text(DOC)
    (docs / "performance" / perf.CHART).unlink()
    with pytest.raises(SystemExit, match="not quiet"):
        perf.run(parsed("--render", str(run_dir), "--write-docs"))
    assert doc.read_text() == DOC and not (docs / "performance" / perf.CHART).exists()
    with pytest.raises(SystemExit, match="no readable perf.json"):
        perf.run(parsed("--render", str(tmp_path / "nowhere")))


def test_the_repository_doc_has_the_markers():
    text = (ROOT / "docs" / "performance.md").read_text()
    assert figures.rewrite_between(text, "x").count("x") >= 1


def parsed(*argv):
    """`swarmlab-ops perf ARGV` as the command line parses it."""
    return cli.parser().parse_args(["perf", *argv])


@pytest.mark.parametrize("argv, message", [(["--seconds", "4"], "5..60"), (["--seconds", "61"], "5..60"),
                                           (["--cases", " , "], "subset"),
                                           (["--wrk-threads", "40"], "wrk-threads"),
                                           (["--bare-workers", "0"], "bare-workers")])
def test_bad_settings_fail_before_anything_starts(argv, message):
    with pytest.raises(SystemExit, match=message):
        perf.check_args(parsed(*argv))


def test_an_unknown_case_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        parsed("--cases", "bare,edge")
    assert exc.value.code == 2
    assert "unknown 'edge' (known: bare, bare-replicated, swarm, sweep)" in capsys.readouterr().err


def test_total_load_is_bounded():
    every = ["bare", "bare-replicated", "swarm", "sweep"]
    assert perf.planned_seconds(every, 60) == 600 <= perf.MAX_LOAD_SECONDS
    assert perf.planned_seconds(every, 20, 3) == (3 * 3 + 2) * 2 * 20  # the sweep runs once
    assert perf.check_args(parsed()) == every
    assert perf.check_args(parsed("--seconds", "60", "--rounds", "1")) == every
    with pytest.raises(SystemExit, match="--seconds or --rounds"):
        perf.check_args(parsed("--seconds", "60"))
    with pytest.raises(SystemExit, match="1..9"):
        perf.check_args(parsed("--rounds", "0"))


def test_each_case_is_its_median_round_with_every_round_kept():
    runs = [{POST: wrk_result(900, 70, errors=1)}, {POST: wrk_result(1200, 50)}, {POST: wrk_result(1000, 60)}]
    merged = figures.median_round(runs)[POST]
    assert (merged["rps"], merged["p95_ms"]) == (1000, 60)        # the median round, whole
    assert merged["rounds_rps"] == [900, 1200, 1000] and merged["rounds_p95_ms"] == [70, 50, 60]
    assert merged["errors"] == 1                                   # every round's errors count
    assert figures.median_round(runs[:2])[POST]["rps"] == 900      # even: the lower middle
    assert figures.median_round(runs[:1])[POST]["rps"] == 900
    failed = figures.median_round([*runs, {POST: {"error": "wrk: connection refused"}}])[POST]
    assert failed == {"error": "wrk: connection refused"}
    rows = figures.case_rows({"bare": figures.median_round(runs)})
    assert rows[2].endswith("| 900 (70), 1200 (50), 1000 (60) |")
    assert figures.case_rows({"bare": runs[0]})[2].endswith("| once |")


def test_the_bare_case_is_sized_for_the_machine_not_per_replica():
    ns = parsed()
    assert (ns.bare_workers, ns.bare_threads) == (3, 0)  # 0: the image's threads
    assert settings.image_threads() == 4


def test_stack_settings_from_the_checkout_and_the_deployed_service():
    web = settings.from_checkout()
    assert web["workers"] == 1 and web["threads"] == 4  # stack_web_gunicorn_workers; the image's ENV
    live = settings.from_service({"GUNICORN_WORKERS": "2", "REDIS_URL": "x"}, web)
    assert (live["workers"], live["threads"]) == (2, 4) and "deployed" in live["source"]
    assert settings.dockerfile_env("FROM x\nENV A=1 \\\n    B=2\nRUN true\nENV C=3\n") == \
        {"A": "1", "B": "2", "C": "3"}


@pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("redis-server") is None,
                    reason="needs wrk and redis-server (scripts/setup.sh installs them)")
def test_the_bare_redis_layout_follows_the_stack():
    assert settings.redis_from_checkout() == RedisLayout(replicas=2, wait=1, tls=False, aof=True)
    services = ["web", "edge", "redis-master", "redis-replica-1", "redis-replica-2", "redis-sentinel-1"]
    master_args = ["server", "--appendonly", "yes", "--replica-read-only", "yes"]
    lab = settings.redis_from_stack({"REDIS_TLS": "1", "REDIS_WAIT_REPLICAS": "1"}, services, master_args)
    assert lab == RedisLayout(replicas=2, wait=1, tls=True, aof=True)
    # REDIS_TLS unset: the URL's scheme says; WAIT never above the replicas there are.
    other = settings.redis_from_stack({"REDIS_URL": "rediss://redis-master:6379/0", "REDIS_WAIT_REPLICAS": "3"},
                                      services[:4], ["server", "--appendonly", "no"])
    assert other == RedisLayout(replicas=1, wait=1, tls=True, aof=False)
    assert "2 replica(s), WAIT 1, TLS on, AOF on" in lab.describe()
    assert RedisLayout().describe() == "a lone redis-server"
    env = app_env(lab, 7000, [7001, 7002], {"ca": Path("/x/ca.pem")})
    assert env == {"REDIS_URL": "rediss://:loadtest-pw@localhost:7000/0", "REDIS_WAIT_REPLICAS": "1",
                   "REDIS_REPLICAS": "localhost:7001,localhost:7002", "REDIS_TLS": "1",
                   "REDIS_TLS_CA_FILE": "/x/ca.pem"}
    assert app_env(RedisLayout(), 7000, [], None) == {"REDIS_URL": "redis://:loadtest-pw@127.0.0.1:7000/0",
                                                      "REDIS_WAIT_REPLICAS": "0"}


@pytest.mark.parametrize("layout", [RedisLayout(replicas=1, wait=2), RedisLayout(replicas=5, wait=1),
                                    RedisLayout(wait=-1)])
def test_an_impossible_bare_redis_layout_is_refused_before_anything_starts(layout):
    with pytest.raises(SystemExit, match="bare Redis"):
        BareApp(1, 1, 1, redis=layout)


def test_online_replicas_from_info_replication():
    info = ("# Replication\r\nrole:master\r\nconnected_slaves:2\r\n"
            "slave0:ip=127.0.0.1,port=1,state=online,offset=1,lag=0\r\n"
            "slave1:ip=127.0.0.1,port=2,state=wait_bgsave,offset=0,lag=0\r\n"
            "master_failover_state:no-failover\r\n")
    assert online_replicas(info) == 1 and online_replicas("") == 0


@pytest.mark.skipif(shutil.which("redis-server") is None or shutil.which("openssl") is None,
                    reason="needs redis-server and openssl (scripts/setup.sh installs them)")
def test_the_bare_app_with_the_stacks_redis_is_replicated_encrypted_and_waits():
    """Real redis-servers and gunicorn on loopback, laid out as the lab's stack: what the
    bare-replicated case measures is really there (a write on every replica, TLS only)."""
    layout = RedisLayout(replicas=2, wait=1, tls=True, aof=True)
    with BareApp(1, 2, 4, redis=layout) as app:
        conn = http.client.HTTPConnection("127.0.0.1", urlsplit(app.url).port, timeout=10)
        for _request in range(3):
            conn.request("POST", "/api/counter/increment")
            response = conn.getresponse()
            assert response.status == 200, response.read()
            value = json.loads(response.read())["value"]
        conn.close()
        ports = re.findall(r"--tls-port', '(\d+)", " ".join(repr(p.args) for p in app.procs[:-1]))
        ca = str(app.workdir / "ca.pem")
        cli_tls = ["redis-cli", "-h", "localhost", "--no-auth-warning", "-a", "loadtest-pw",
                   "--tls", "--cacert", ca]
        assert len(ports) == 3
        # WAIT 1 acknowledged each write; all of them reach both replicas.
        for port in ports:
            got = ""
            for _attempt in range(50):
                got = subprocess.run([*cli_tls, "-p", port, "GET", "loadtest:counter"],
                                     capture_output=True, text=True, timeout=5, check=False).stdout.strip()
                if got == str(value):
                    break
                time.sleep(0.1)
            assert got == str(value), (port, got)
        aof = subprocess.run([*cli_tls, "-p", ports[0], "CONFIG", "GET", "appendonly"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.split()
        assert aof == ["appendonly", "yes"]
        # No plaintext port: a client without TLS gets no answer from the master.
        plain = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", ports[0], "--no-auth-warning",
                                "-a", "loadtest-pw", "PING"], capture_output=True, text=True, timeout=10,
                               check=False)
        assert "PONG" not in plain.stdout
    assert not app.workdir.exists()


def test_smoke_bare_case_on_loopback(tmp_path, monkeypatch, capsys):
    """5 s of wrk (POST) against the bare app on 127.0.0.1: the tool works end to end. The
    figures are not looked at (nor recorded anywhere but the run's own results/ folder)."""
    monkeypatch.setattr(perf, "results_dir", lambda kind: tmp_path)
    monkeypatch.setattr(quiet, "WINDOW_S", 0.5)
    monkeypatch.setattr(perf, "REQUESTS", perf.REQUESTS[:1])  # POST only: 5 s of load in all
    ns = parsed("--cases", "bare", "--seconds", "5", "--connections", "4", "--lab", "perf-smoke",
                "--converge-timeout", "10", "--rounds", "2")
    assert perf.run(ns) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ")  # the guard's lines come first
    data = json.loads((tmp_path / "perf.json").read_text())
    assert set(data["cases"]["bare"]) == {POST}
    assert len(data["cases"]["bare"][POST]["rounds_rps"]) == 2 and data["meta"]["rounds"] == 2
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in data["cases"]["bare"].values())
    assert "idle_pct" in data["quiet"] and "quiet" in data["quiet"]
    assert "| bare | POST /api/counter/increment |" in out
    # Where the CPU went: the app's own processes carry most of it, and the parts add up.
    cpu = data["cases"]["bare"][POST]["cpu_ms"]
    assert cpu["web"] > 0 and cpu["redis"] > 0 and cpu["generator"] > 0
    assert cpu["total"] >= cpu["web"]
    assert sum(cpu[name] for name in budget.COMPONENTS) == pytest.approx(cpu["total"], rel=0.05)
    assert "| CPU ms per request | bare POST |" in out


# --- the CPU budget per request (swarmlab_ops.perf.budget) -------------------------------------

@pytest.mark.parametrize("comm,cmdline,expected", [
    ("haproxy", "", "edge"),
    ("redis-server", "redis-server *:6379", "redis"),
    ("redis-server", "redis-server *:26379 [sentinel]", "sentinel"),
    ("redis-sentinel", "", "sentinel"),
    ("redis_exporter", "/redis_exporter -redis.addr=", "monitoring"),
    ("node_exporter", "", "monitoring"),
    ("prometheus", "", "monitoring"),
    ("alertmanager", "", "monitoring"),
    ("gunicorn", "", "web"),
    ("python3", "/opt/venv/bin/python3 /opt/venv/bin/gunicorn --config x", "web"),
    ("python3", "python3 -c import socket", "other"),
    ("containerd-shim", "", "docker engine"),
    ("dockerd", "", "docker engine"),
    ("systemd", "", "other"),
])
def test_component_by_process(comm, cmdline, expected):
    assert budget.component(comm, cmdline) == expected


def sample(procs, stat, children=0.0):
    """budget.Sample from {pid: (comm, cpu seconds, cmdline)} and /proc/stat's first 8 fields."""
    return budget.Sample({pid: (comm, f"start{pid}", 1, cpu, cmd) for pid, (comm, cpu, cmd) in procs.items()},
                         [int(x) for x in stat.split()], children)


def test_budget_splits_the_machines_busy_time_per_request():
    ticks = budget.TICKS
    before = sample({10: ("gunicorn", 5.0, ""), 11: ("redis-server", 1.0, "redis-server *:6379"),
                     12: ("haproxy", 2.0, "")}, "0 0 0 0 0 0 0 0")
    # 1000 requests; over the run: web 2 s, redis 0.5 s, the edge 0.25 s, a Sentinel that started
    # during the run 0.1 s, the generator 0.3 s; the machine busy 3.5 s (user 2.5 + system 0.5 +
    # softirq 0.5), steal 0.1 s: 0.35 s went to processes that came and went.
    after = sample({10: ("gunicorn", 7.0, ""), 11: ("redis-server", 1.5, "redis-server *:6379"),
                    12: ("haproxy", 2.25, ""), 13: ("redis-server", 0.1, "redis-server *:26379 [sentinel]")},
                   f"{int(2.5 * ticks)} 0 {int(0.5 * ticks)} {100 * ticks} 0 0 {int(0.5 * ticks)} "
                   f"{int(0.1 * ticks)}", children=0.3)
    cpu = budget.split(before, after, 1000)
    assert cpu["web"] == pytest.approx(2.0)
    assert cpu["redis"] == pytest.approx(0.5)
    assert cpu["edge"] == pytest.approx(0.25)
    assert cpu["sentinel"] == pytest.approx(0.1)
    assert cpu["generator"] == pytest.approx(0.3)
    assert cpu["short-lived"] == pytest.approx(0.35)
    assert cpu["total"] == pytest.approx(3.5)
    assert sum(cpu[n] for n in budget.COMPONENTS) == pytest.approx(cpu["total"])
    assert cpu["kernel irq"] == pytest.approx(0.5)   # inside the rows, not added
    assert cpu["steal"] == pytest.approx(0.1)


def test_budget_never_negative_and_empty_without_requests():
    before = sample({10: ("gunicorn", 5.0, "")}, "0 0 0 0 0 0 0 0")
    # Per-process ticks can add up to a little more than the machine's busy time.
    after = sample({10: ("gunicorn", 6.0, "")}, f"{int(0.9 * budget.TICKS)} 0 0 0 0 0 0 0")
    cpu = budget.split(before, after, 100)
    assert cpu["short-lived"] == 0 and cpu["total"] == pytest.approx(10.0)
    assert budget.split(before, after, 0) == {}


def test_budget_table_only_for_cases_that_have_one():
    cases = {"bare": {POST: {"cpu_ms": {"web": 1.25, "total": 1.5}}},
             "swarm": {POST: {"cpu_ms": {"web": 1.5, "total": 2.0}}, GET: {"rps": 1}}}
    table = budget.rows(cases, [("bare", POST), ("swarm", POST), ("bare", GET), ("swarm", GET)])
    assert table[0] == "| CPU ms per request | bare POST | swarm POST |"
    assert "| web | 1.250 | 1.500 |" in table and "| **total** | 1.500 | 2.000 |" in table
    assert "| redis | 0.000 | 0.000 |" in table
    assert budget.rows(CASES, [("bare", POST)]) == []
    with_budget = result(True)
    with_budget["cases"] = {**CASES, "swarm": {**CASES["swarm"], POST: {**CASES["swarm"][POST], "cpu_ms": {"web": 2.0}}}}
    assert "| CPU ms per request | swarm POST |" in figures.render(with_budget)
    assert "CPU ms per request" not in figures.render(result(True))
