"""Pieces of the drills that need no lab."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from swarmlab_ops.drills.redis import _started


@pytest.mark.parametrize("text, expected", [
    # As the Engine API gives UpdateStatus.StartedAt: nanoseconds, more than datetime takes.
    ("2026-12-05T06:29:12.243311999Z", datetime(2026, 12, 5, 6, 29, 12, 243311, tzinfo=timezone.utc).timestamp()),
    ("2026-12-05T06:29:12Z", datetime(2026, 12, 5, 6, 29, 12, tzinfo=timezone.utc).timestamp()),
])
def test_an_update_start_is_read_in_utc_to_the_microsecond(text, expected):
    assert _started({"UpdateStatus": {"StartedAt": text}}) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("service", [{}, {"UpdateStatus": {}}, {"UpdateStatus": {"StartedAt": "0001-01-01 00:00"}}])
def test_a_service_never_updated_has_no_start(service):
    assert _started(service) is None
