"""Fixtures for the Redis module tests (the harness is in redis_harness.py)."""

from __future__ import annotations

import shutil

import pytest

from redis_harness import Topology, server_base


@pytest.fixture
def server_dir():
    """A directory for one test's servers, outside /tmp (persist: true refuses temporary dirs)."""
    base = server_base()
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def topo(server_dir):
    """A master and two replicas, synced, with a password; stopped afterwards."""
    t = Topology(server_dir)
    try:
        t.start()
        yield t
    finally:
        t.stop()


@pytest.fixture
def bare(server_dir):
    """Three standalone instances (no replication yet)."""
    t = Topology(server_dir)
    try:
        t.start(replicate=False)
        yield t
    finally:
        t.stop()
