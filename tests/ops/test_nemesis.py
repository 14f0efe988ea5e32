"""The fault schedule (pure) and the nemesis runner (real threads, faults that only record)."""
from __future__ import annotations

import threading
import time

import pytest

from swarmlab_ops.nemesis.runner import Nemesis
from swarmlab_ops.nemesis.schedule import REDIS_FAULTS, make_schedule, per_kind


def test_twenty_one_faults_spread_evenly_over_the_three_kinds():
    schedule = make_schedule(21, REDIS_FAULTS, interval=25, jitter=5, seed=14)
    assert len(schedule) == 21
    assert per_kind(schedule) == {"switchover": 7, "sentinel-failover": 7, "master-kill": 7}
    # Every round of three holds each kind once.
    for i in range(0, 21, 3):
        assert sorted(f.kind for f in schedule[i:i + 3]) == sorted(REDIS_FAULTS)


def test_times_are_ordered_and_bounded():
    schedule = make_schedule(21, REDIS_FAULTS, interval=25, jitter=5, seed=1)
    times = [f.at for f in schedule]
    assert times == sorted(times)
    assert all(i * 25 <= f.at <= i * 25 + 5 for i, f in enumerate(schedule))


def test_the_same_seed_gives_the_same_schedule_another_seed_another_order():
    assert make_schedule(9, seed=3) == make_schedule(9, seed=3)
    orders = {tuple(f.kind for f in make_schedule(9, seed=s)) for s in range(10)}
    assert len(orders) > 1


@pytest.mark.parametrize("kwargs, message", [
    ({"count": 0}, "at least one fault"),
    ({"count": 21, "interval": 100, "max_seconds": 600}, "more than the bound"),
    ({"count": 3, "kinds": ()}, "kinds"),
    ({"count": 3, "kinds": ("a", "a")}, "kinds"),
    ({"count": 3, "interval": 0}, "interval"),
])
def test_a_schedule_that_cannot_be_bounded_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_schedule(**kwargs)


def test_runner_records_each_fault_waits_for_healing_and_survives_a_failing_fault():
    calls = []
    healthy = threading.Event()
    healthy.set()

    def kill():
        calls.append(("kill", time.time()))
        healthy.clear()
        threading.Timer(0.3, healthy.set).start()  # the system heals after a while
        return {"target": "master"}

    def broken():
        calls.append(("broken", time.time()))
        raise RuntimeError("playbook failed")

    schedule = make_schedule(4, ("kill", "broken"), interval=0.05, seed=0)
    nemesis = Nemesis(schedule, {"kill": kill, "broken": broken}, healed=healthy.is_set,
                      heal_timeout=5, log=lambda msg: None).start()
    ops = nemesis.join(10)
    assert [op.kind for op in ops] == [f.kind for f in schedule]
    assert {op.outcome for op in ops if op.kind == "broken"} == {"fail"}
    assert all(op.error == "playbook failed" for op in ops if op.kind == "broken")
    assert all(op.outcome == "ok" and op.detail["target"] == "master" for op in ops if op.kind == "kill")
    assert all(op.process == "nemesis" and op.end >= op.start for op in ops)
    # A fault never starts before the previous one healed: after a kill, 0.3 s pass.
    for (kind, at), (_next_kind, next_at) in zip(calls, calls[1:]):
        if kind == "kill":
            assert next_at - at >= 0.25
    assert all(op.detail["healed_before"] for op in ops)


def test_runner_stops_on_request_without_running_the_rest():
    schedule = make_schedule(5, ("noop",), interval=10, seed=0)
    nemesis = Nemesis(schedule, {"noop": lambda: {}}, healed=lambda: True, log=lambda msg: None).start()
    time.sleep(0.2)
    ops = nemesis.stop()
    assert len(ops) == 1 and nemesis.done


def test_runner_refuses_faults_it_cannot_run():
    with pytest.raises(ValueError, match="no implementation"):
        Nemesis(make_schedule(2, ("x", "y")), {"x": dict}, healed=lambda: True)
