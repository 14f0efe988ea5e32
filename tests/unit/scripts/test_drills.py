"""Unit tests of scripts/drills.py: outcome classification, accounting of acknowledged increments
against the counter, request counts and timing. No lab needed; the script is imported by path."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "drills.py"
spec = importlib.util.spec_from_file_location("drills", SCRIPT)
drills = importlib.util.module_from_spec(spec)
sys.modules["drills"] = drills
spec.loader.exec_module(drills)
Event = drills.Event


def incr(start, outcome, value=None, end=None):
    return Event(start, start + 0.01 if end is None else end, "incr", outcome, value)


# classify_increment
def test_200_with_value_is_acknowledged():
    assert drills.classify_increment(200, "web.1", {"value": 7}, None, True) == ("acknowledged", 7)


def test_error_from_the_app_is_unknown():
    # In WAIT mode a 503 carries the value the master applied: not acknowledged, not known lost.
    assert drills.classify_increment(503, "web.1", {"value": 7, "acknowledged": 0}, None, True) == ("unknown", None)
    assert drills.classify_increment(503, "web.1", {"error": "redis"}, None, True) == ("unknown", None)


def test_edge_error_without_the_app_is_failed():
    assert drills.classify_increment(503, None, None, None, True) == ("failed", None)


def test_timeout_after_sending_is_unknown_refused_connect_is_failed():
    assert drills.classify_increment(None, None, None, "Read timed out", True) == ("unknown", None)
    assert drills.classify_increment(None, None, None, "Connection refused", False) == ("failed", None)


def test_200_without_a_value_is_not_acknowledged():
    assert drills.classify_increment(200, "web.1", {"oops": 1}, None, True) == ("unknown", None)


# account
def test_no_loss_exact():
    acc = drills.account(100, 105, [101, 102, 103, 104, 105], unknown=0, failed=2)
    assert acc["lost"] == 0 and acc["delta"] == 5 and acc["consistent"]
    assert acc["unknown_applied"] == 0


def test_unknown_that_was_applied_is_not_loss():
    # 3 acknowledged, 2 unknown of which 1 was applied: final = start + 4.
    acc = drills.account(0, 4, [1, 2, 4], unknown=2, failed=0)
    assert acc["lost"] == 0 and acc["unknown_applied"] == 1 and acc["consistent"]


def test_fewer_in_the_counter_than_acknowledged_is_loss():
    acc = drills.account(10, 12, [11, 12, 13], unknown=0, failed=0)
    assert acc["lost"] == 1 and acc["above_final"] == 1 and not acc["consistent"]


def test_rollback_detected_by_duplicate_values_even_when_unknowns_hide_it():
    # Master at 5 acknowledged 4 and 5; the promoted replica had 3; then 4, 5, 6 acknowledged again.
    # Two unknown increments were applied too, so the count alone (final - start) would hide it.
    acc = drills.account(0, 8, [1, 2, 3, 4, 5, 4, 5, 6], unknown=2, failed=0)
    assert acc["duplicates"] == 2
    assert acc["lost"] >= 2 and not acc["consistent"]


def test_acknowledged_value_above_final_is_loss():
    acc = drills.account(0, 3, [1, 2, 9], unknown=5, failed=0)
    assert acc["lost"] >= 1


def test_empty_run():
    acc = drills.account(42, 42, [], unknown=0, failed=0)
    assert acc["lost"] == 0 and acc["consistent"]


# summarize
def test_summarize_counts_failed_requests():
    events = [incr(0, "acknowledged", 1), incr(1, "unknown"), incr(2, "failed"),
              Event(0, 0.1, "get", "ok"), Event(1, 1.1, "get", "failed")]
    s = drills.summarize(events)
    assert s["requests"] == 5 and s["failed_requests"] == 3 and s["failed_pct"] == 60.0
    assert (s["acknowledged"], s["incr_unknown"], s["incr_failed"], s["gets_failed"]) == (1, 1, 1, 1)


def test_summarize_empty():
    assert drills.summarize([])["failed_pct"] == 0.0


# writes_back_after
def test_writes_back_after_an_outage():
    t0 = 100.0
    events = [incr(99, "acknowledged", 1), incr(100.5, "failed"), incr(103, "unknown"),
              incr(107, "failed"), incr(108, "acknowledged", 2, end=108.2), incr(109, "acknowledged", 3)]
    wb = drills.writes_back_after(events, t0)
    assert wb == {"first_failure": 0.5, "last_failure": 7.0, "writes_back": pytest.approx(8.2)}


def test_writes_back_zero_without_failures():
    assert drills.writes_back_after([incr(101, "acknowledged", 1)], 100.0)["writes_back"] == 0.0


def test_writes_back_none_when_never_recovered():
    wb = drills.writes_back_after([incr(101, "acknowledged", 1), incr(102, "failed")], 100.0)
    assert wb["writes_back"] is None and wb["last_failure"] == 2.0


def test_writes_before_the_fault_do_not_count():
    wb = drills.writes_back_after([incr(90, "failed", end=90.1), incr(101, "acknowledged", 1)], 100.0)
    assert wb["writes_back"] == 0.0


def test_first_time():
    samples = [(1.0, False), (2.0, True), (3.0, True)]
    assert drills.first_time(samples, 0.5) == 1.5
    assert drills.first_time(samples, 0.5, after=2.5) == 2.5
    assert drills.first_time([(1.0, False)], 0.0) is None


# Load: bounded by count and time, against a local test server (loopback only)
def test_load_stops_by_itself_and_records_outcomes():
    import http.server
    import json
    import threading

    state = {"n": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            state["n"] += 1
            body = json.dumps({"value": state["n"]}).encode()
            self.send_response(200)
            self.send_header("X-Served-By", "test")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        load = drills.Load("http://127.0.0.1:%d" % server.server_port, workers=2, rate=200, max_seconds=5,
                           max_requests=20).start()
        for t in load._threads:
            t.join(10)
        events = load.stop()
    finally:
        server.shutdown()
    assert 20 <= len(events) <= 22  # each thread stops at the bound it observes
    s = drills.summarize(events)
    acked = [e.value for e in events if e.outcome == "acknowledged"]
    assert s["acknowledged"] == len(acked) == state["n"]
    assert s["gets_failed"] == s["requests"] - s["acknowledged"]
    assert drills.account(0, state["n"], acked, 0, 0)["lost"] == 0


def test_render_table_marks_targets():
    row = {"drill": "web-kill", "recover_text": "4/4 after 6.0 s",
           "load": drills.summarize([incr(0, "acknowledged", 1)]),
           "accounting": drills.account(0, 1, [1], 0, 0), "met_text": "yes"}
    table = drills.render_table([row, {"drill": "registry", "recover_text": "x", "met_text": "no"}])
    assert "| web-kill | 4/4 after 6.0 s | 0 / 1 (0.00 %) | 1 | 0 | 1 (+1) | 0 |" in table
    assert drills.TARGETS["registry"] in table


# stranded_from_output (playbooks/node_maintenance.yml's report, default callback)
def test_stranded_from_the_drain_report():
    out = """ok: [drills-manager1] => {
    "msg": [
        "worker1: active -> drain",
        "stranded (cannot run elsewhere while drained, not waited for): swarmlab_sentinel-worker1, swarmlab_redis-master"
    ]
}"""
    assert drills.stranded_from_output(out) == ["swarmlab_sentinel-worker1", "swarmlab_redis-master"]


def test_stranded_from_the_yaml_result_format_folded():
    out = """ok: [manager1] =>
    msg:
    - 'worker1: active -> drain'
    - 'stranded (cannot run elsewhere while drained, not waited for): swarmlab_redis-sentinel-2,
        swarmlab_redis-master'
"""
    assert drills.stranded_from_output(out) == ["swarmlab_redis-sentinel-2", "swarmlab_redis-master"]


def test_nothing_stranded():
    assert drills.stranded_from_output('"stranded (cannot run elsewhere while drained): none"') == []
    assert drills.stranded_from_output("PLAY RECAP") == []
