"""The counter checker and the timeline, on recorded histories (no lab)."""
from __future__ import annotations

from pathlib import Path

from swarmlab_ops.checker.counter import account, check
from swarmlab_ops.checker.timeline import first_time, summarize, writes_back_after
from swarmlab_ops.history import Op, from_jsonl, to_jsonl

HISTORIES = Path(__file__).parent / "histories"


def incr(start, outcome, value=None, end=None, process="http-0"):
    return Op(process, "incr", start, start + 0.01 if end is None else end, outcome, value)


# account
def test_no_loss_exact():
    acc = account(100, 105, [101, 102, 103, 104, 105], unknown=0, failed=2)
    assert acc["lost"] == 0 and acc["delta"] == 5 and acc["consistent"]
    assert acc["unknown_applied"] == 0


def test_unknown_that_was_applied_is_not_loss():
    # 3 acknowledged, 2 unknown of which 1 was applied: final = start + 4.
    acc = account(0, 4, [1, 2, 4], unknown=2, failed=0)
    assert acc["lost"] == 0 and acc["unknown_applied"] == 1 and acc["consistent"]


def test_fewer_in_the_counter_than_acknowledged_is_loss():
    acc = account(10, 12, [11, 12, 13], unknown=0, failed=0)
    assert acc["lost"] == 1 and not acc["consistent"]
    assert acc["above_final_values"] == [13]


def test_counter_that_went_back_is_caught_by_duplicated_values_even_when_unknowns_hide_it():
    # A failover to a replica that missed 11 and 12; the counter then handed out 11 and 12 again.
    # final - start equals the number acknowledged, so only the duplicates show the loss.
    acc = account(10, 14, [11, 12, 11, 12], unknown=0, failed=0)
    assert acc["duplicated"] == 2 and acc["duplicated_values"] == [11, 12]
    assert acc["lost"] == 2 and not acc["consistent"]


def test_empty_run():
    acc = account(5, 5, [], unknown=0, failed=0)
    assert acc["lost"] == 0 and acc["consistent"]


def test_more_applied_than_acknowledged_and_unknown_is_inconsistent():
    # Something else wrote, or a retry applied an increment twice: not loss, but not consistent.
    acc = account(0, 5, [1, 2], unknown=1, failed=0)
    assert acc["lost"] == 0 and acc["unknown_applied"] == 3 and not acc["consistent"]


def test_check_separates_writers_by_process():
    history = [incr(0, "ok", 1, process="http-0"), incr(1, "ok", 1, process="redis-0"),
               incr(2, "unknown", process="redis-1"), incr(3, "fail", process="http-1")]
    app = check(history, 0, 1, "http-")
    redis = check(history, 0, 2, "redis-")
    assert (app["acknowledged"], app["failed"], app["lost"]) == (1, 1, 0)
    assert (redis["acknowledged"], redis["unknown"], redis["unknown_applied"], redis["lost"]) == (1, 1, 1, 0)


def test_recorded_failover_without_wait_loses_acknowledged_writes():
    """A history recorded around a master kill with WAIT off: the promoted replica missed the last
    acknowledged increments, which the counter then handed out again."""
    history = from_jsonl(HISTORIES / "master-kill-no-wait.jsonl")
    acc = check(history, 0, 9, "redis-")
    assert acc["acknowledged"] == 11 and acc["unknown"] == 2
    assert acc["duplicated_values"] == [6, 7] and acc["lost"] == 2
    assert not acc["consistent"]


def test_recorded_failover_with_wait_loses_nothing():
    history = from_jsonl(HISTORIES / "master-kill-wait-all.jsonl")
    acc = check(history, 0, 8, "redis-")
    assert acc["acknowledged"] == 6 and acc["unknown"] == 3 and acc["failed"] == 2
    assert acc["lost"] == 0 and acc["unknown_applied"] == 2 and acc["consistent"]


def test_history_round_trips_through_jsonl(tmp_path):
    ops = [incr(0, "ok", 1), Op("nemesis", "master-kill", 1, 2, "ok", detail={"old_master": "10.0.1.5"})]
    to_jsonl(ops, tmp_path / "h.jsonl")
    assert from_jsonl(tmp_path / "h.jsonl") == ops


# timeline
def test_summarize_counts_failed_requests_and_ignores_faults():
    ops = [incr(0, "ok", 1), incr(1, "unknown"), incr(2, "fail"), Op("http-1", "get", 3, 4, "fail"),
           Op("nemesis", "master-kill", 1, 2, "ok")]
    s = summarize(ops)
    assert s["requests"] == 4 and s["failed_requests"] == 3 and s["failed_pct"] == 75.0
    assert (s["acknowledged"], s["incr_unknown"], s["incr_failed"], s["gets_failed"]) == (1, 1, 1, 1)


def test_summarize_empty():
    assert summarize([])["failed_pct"] == 0.0


def test_writes_back_after_an_outage():
    ops = [incr(9, "ok", 1), incr(10.5, "unknown"), incr(11, "fail"), incr(13, "fail"),
           incr(14, "ok", 2, end=14.2), incr(15, "ok", 3)]
    assert writes_back_after(ops, 10.0) == {"first_failure": 0.5, "last_failure": 3.0, "writes_back": 4.2}


def test_writes_back_zero_without_failures_and_none_when_never_recovered():
    assert writes_back_after([incr(11, "ok", 1)], 10.0)["writes_back"] == 0.0
    assert writes_back_after([incr(11, "fail")], 10.0)["writes_back"] is None


def test_writes_before_the_fault_do_not_count():
    assert writes_back_after([incr(5, "fail", end=5.5), incr(11, "ok", 1)], 10.0)["writes_back"] == 0.0


def test_first_time():
    samples = [(1.0, False), (2.0, True), (3.0, True)]
    assert first_time(samples, 0.5) == 1.5
    assert first_time(samples, 0.5, after=2.5) == 2.5
    assert first_time([(1.0, False)], 0.0) is None


def test_recorded_lab_run_with_wait_for_every_replica():
    """A history recorded on the lab (swarmlab-ops write-loss --faults 3: a Sentinel failover, a
    master kill and a redis_failover switchover under load, WAIT 2 of 2 replicas): the checker gives
    the run's own verdict again from the history alone."""
    import gzip
    import json

    with gzip.open(HISTORIES / "lab-wait-all-3-faults.jsonl.gz", "rt", encoding="utf-8") as handle:
        from swarmlab_ops.history import from_dicts
        history = from_dicts(json.loads(line) for line in handle)
    expected = json.loads((HISTORIES / "lab-wait-all-3-faults.json").read_text())
    faults = [op for op in history if op.is_fault]
    assert sorted(op.kind for op in faults) == ["master-kill", "sentinel-failover", "switchover"]
    assert all(op.outcome == "ok" for op in faults)
    for prefix, name in (("http-", "app"), ("redis-", "redis")):
        want = expected["writers"][name]
        got = check(history, want["start"], want["final"], prefix)
        assert {k: got[k] for k in want} == want
        assert got["lost"] == 0 and got["consistent"]
    # Every fault happened while both kinds of writers were running.
    for fault in faults:
        for prefix in ("http-", "redis-"):
            assert any(op.start <= fault.start for op in history if op.process.startswith(prefix))
            assert any(op.start >= fault.end for op in history if op.process.startswith(prefix))
