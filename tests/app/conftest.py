"""Fixtures for the counter app tests: real redis-server / redis-sentinel processes on loopback
(Debian's binaries, free ports, temp dirs, password on) and a real gunicorn serving the app."""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from apptest_support import (FAST_RETRY_ENV, REDIS_SERVER, Gunicorn, RedisProcess,
                             redis_url)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "docker: needs a docker daemon; builds and runs the app image")


@pytest.fixture(scope="session")
def redis_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    return tmp_path_factory.mktemp("redis")


@pytest.fixture(scope="session")
def redis_pair(redis_workdir: Path) -> Iterator[tuple[RedisProcess, RedisProcess]]:
    """A password-protected master and one replica, shared by the session."""
    master = RedisProcess(redis_workdir, "master").start()
    replica = RedisProcess(redis_workdir, "replica", replica_of=master.port).start()
    try:
        replica.wait_in_sync(master)
        yield master, replica
    finally:
        replica.stop()
        master.stop()


@pytest.fixture
def lone_redis(redis_workdir: Path) -> Iterator[RedisProcess]:
    """A master of its own (no replicas), which a test may stop and restart."""
    server = RedisProcess(redis_workdir, f"lone-{uuid.uuid4().hex[:8]}").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def counter_key() -> str:
    """A key of its own per test, so tests sharing the Redis pair do not see each other."""
    return f"counter:test:{uuid.uuid4().hex}"


@pytest.fixture
def make_client(counter_key: str):
    """Build the app from an env mapping (as create_app() would read it) and return a test
    client. The app talks to the real Redis given in the env."""
    from counter import create_app

    def _make(**env: str):
        full = {**FAST_RETRY_ENV, "COUNTER_KEY": counter_key, **env}
        app = create_app(full)
        app.config["TESTING"] = True
        return app.test_client()

    return _make


@pytest.fixture
def client(make_client, redis_pair: tuple[RedisProcess, RedisProcess]):
    """Test client on the master only (no replica reads, so reads see writes at once)."""
    master, _replica = redis_pair
    return make_client(REDIS_URL=redis_url(master))


@pytest.fixture
def gunicorn_factory() -> Iterator[Callable[..., Gunicorn]]:
    started: list[Gunicorn] = []

    def _start(env: dict[str, str], **kwargs: int) -> Gunicorn:
        server = Gunicorn(env, **kwargs).start()
        started.append(server)
        return server

    yield _start
    for server in started:
        server.stop()
