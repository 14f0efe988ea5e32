"""Pieces of the drills that need no lab."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from swarmlab_ops.drills.redis import _overlapping, _restart_window, _stamp


@pytest.mark.parametrize("text, expected", [
    # As the Engine API gives UpdateStatus.StartedAt: nanoseconds, more than datetime takes.
    ("2026-12-05T06:29:12.243311999Z", datetime(2026, 12, 5, 6, 29, 12, 243311, tzinfo=timezone.utc).timestamp()),
    ("2026-12-05T06:29:12Z", datetime(2026, 12, 5, 6, 29, 12, tzinfo=timezone.utc).timestamp()),
])
def test_docker_times_are_read_in_utc_to_the_microsecond(text, expected):
    assert _stamp(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["", None, "0001-01-01 00:00"])
def test_no_time_is_none(text):
    assert _stamp(text) is None


def task(created, running_at, desired="running", state="running"):
    return {"CreatedAt": "2026-12-05T06:29:%02dZ" % created, "DesiredState": desired,
            "Status": {"State": state, "Timestamp": "2026-12-05T06:29:%02dZ" % running_at}}


def test_a_restart_window_is_the_running_task_from_its_creation_to_running():
    base = _stamp("2026-12-05T06:29:00Z")
    window = _restart_window([task(1, 3, "shutdown", "shutdown"), task(10, 14), task(5, 6, "shutdown", "complete")])
    assert window == (base + 10, base + 14)
    assert _restart_window([task(1, 3, "shutdown", "shutdown")]) is None


def test_overlapping_restarts_are_named_in_pairs():
    assert _overlapping({"a": (0, 5), "b": (6, 9), "c": (10, 12)}) == []
    assert _overlapping({"b": (4, 9), "a": (0, 5), "c": (8, 12)}) == [["a", "b"], ["b", "c"]]
