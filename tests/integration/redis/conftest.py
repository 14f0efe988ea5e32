"""Fixtures for the Redis module tests (the harness is in redis_harness.py)."""

from __future__ import annotations

import pytest

from redis_harness import Topology


@pytest.fixture
def topo(tmp_path):
    """A master and two replicas, synced, with a password; stopped afterwards."""
    t = Topology(tmp_path)
    try:
        t.start()
        yield t
    finally:
        t.stop()


@pytest.fixture
def bare(tmp_path):
    """Three standalone instances (no replication yet)."""
    t = Topology(tmp_path)
    try:
        t.start(replicate=False)
        yield t
    finally:
        t.stop()
