"""Pieces of the drills that need no lab."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from swarmlab_ops.client.http import short_error
from swarmlab_ops.drills.redis import _overlapping, _restart_window, _stamp
from swarmlab_ops.drills.web import failure_kinds
from swarmlab_ops.history import Op


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


def test_a_refused_connection_is_kept_as_its_errno_and_reason():
    text = ("HTTPConnectionPool(host='172.18.0.2', port=8080): Max retries exceeded with url: /api/counter "
            "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f3a2c1d5e50>: "
            "Failed to establish a new connection: [Errno 111] Connection refused'))")
    assert short_error(text) == "[Errno 111] Connection refused"
    assert short_error("Read timed out. (read timeout=5.0)") == "Read timed out. (read timeout=5.0)"


def test_failures_are_counted_by_status_or_error():
    ops = [Op("http-0", "get", 0, 1, "ok", status=200), Op("http-0", "get", 1, 2, "fail", status=503),
           Op("http-1", "incr", 2, 3, "fail", error="[Errno 111] Connection refused"),
           Op("http-1", "get", 3, 4, "fail", error="[Errno 111] Connection refused"),
           Op("http-1", "incr", 4, 5, "unknown", error="Read timed out.")]
    assert failure_kinds(ops) == {"[Errno 111] Connection refused": 2, "HTTP 503": 1, "Read timed out.": 1}
