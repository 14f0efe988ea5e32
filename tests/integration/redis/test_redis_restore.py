"""Restoring the stack's Redis data from a backup (issue 20): the RDB that playbooks/backup.yml saves
(BGSAVE, checked with redis-check-rdb) is put into an empty data directory by the stack role's
``redis_restore`` entry point, as playbooks/restore.yml does on the master's volume, and a real
redis-server started there, with the stack's ``--appendonly yes``, must hold the data.

Run from the checkout:  .venv/bin/pytest tests/integration/redis/test_redis_restore.py -q
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
import redis

from redis_harness import REDIS_SERVER, free_port, run_playbook, server_base

pytestmark = pytest.mark.integration

CHECK_RDB = shutil.which('redis-check-rdb') or '/usr/bin/redis-check-rdb'


class Plain:
    """A redis-server on loopback with a data directory and the stack's append-only setting."""

    def __init__(self, data: Path, appendonly: bool = True) -> None:
        self.data = data
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> redis.Redis:
        self.data.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, '--port', str(self.port), '--bind', '127.0.0.1', '--dir', str(self.data),
             '--appendonly', 'yes' if self.appendonly else 'no', '--save', ''],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        # Loading a dataset answers LOADING until done.
        while client.info('persistence')['loading']:
            time.sleep(0.05)
        return client

    def __exit__(self, *exc) -> None:
        assert self.proc is not None
        try:
            redis.Redis(port=self.port).shutdown(save=False)
        except redis.ConnectionError:
            pass
        self.proc.wait(timeout=10)


@pytest.fixture
def base():
    b = server_base('restore-')
    try:
        yield b
    finally:
        shutil.rmtree(b, ignore_errors=True)


def make_backup(base: Path) -> Path:
    """What backup.yml fetches: a BGSAVE of a server with the counter and other keys, checked."""
    with Plain(base / 'source') as src:
        src.set('counter', 4242)
        for i in range(50):
            src.set('k%d' % i, i)
        before = src.info('persistence')['rdb_saves']
        src.bgsave()
        while src.info('persistence')['rdb_saves'] == before or src.info('persistence')['rdb_bgsave_in_progress']:
            time.sleep(0.05)
        assert src.info('persistence')['rdb_last_bgsave_status'] == 'ok'
    rdb = base / 'backup' / 'dump.rdb'
    rdb.parent.mkdir()
    shutil.copy(base / 'source' / 'dump.rdb', rdb)
    check = subprocess.run([CHECK_RDB, str(rdb)], capture_output=True, text=True, check=False)
    assert check.returncode == 0 and 'RDB looks OK' in check.stdout, check.stdout
    return rdb


def restore(rdb: Path, target: Path, appendonly: bool = True) -> None:
    proc = run_playbook('tests/integration/redis/playbooks/redis_restore.yml', {
        'stack_redis_restore_rdb': str(rdb), 'stack_redis_restore_dir': str(target),
        'stack_redis_appendonly': appendonly})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_lone_dump_rdb_is_ignored_with_appendonly(base):
    """Why the entry point writes more than dump.rdb: the obvious restore (the RDB as dump.rdb in
    the volume) starts the stack's master EMPTY, because with appendonly yes Redis 7 loads only the
    append-only file. Its replicas would then copy the empty master. (This is what a restore did
    before redis_restore.yml wrote the append-only base.)"""
    rdb = make_backup(base)
    target = base / 'naive'
    target.mkdir()
    shutil.copy(rdb, target / 'dump.rdb')
    with Plain(target) as server:
        assert server.dbsize() == 0
        assert server.get('counter') is None


def test_restored_master_holds_the_backup_and_keeps_writing(base):
    rdb = make_backup(base)
    target = base / 'volume'
    restore(rdb, target)
    with Plain(target) as server:
        assert server.get('counter') == '4242'
        assert server.dbsize() == 51
        assert server.incr('counter') == 4243
    # A restart: the append-only file (base + the increment) is the state now.
    with Plain(target) as server:
        assert server.get('counter') == '4243'
        assert server.dbsize() == 51


def test_restore_without_appendonly_and_rerun(base):
    rdb = make_backup(base)
    target = base / 'volume'
    restore(rdb, target, appendonly=False)
    assert not (target / 'appendonlydir').exists()
    with Plain(target, appendonly=False) as server:
        assert server.get('counter') == '4242'
    # The entry point run again over the same files changes nothing.
    proc = run_playbook('tests/integration/redis/playbooks/redis_restore.yml', {
        'stack_redis_restore_rdb': str(rdb), 'stack_redis_restore_dir': str(target), 'stack_redis_appendonly': False})
    assert proc.returncode == 0 and 'changed=0' in proc.stdout, proc.stdout
