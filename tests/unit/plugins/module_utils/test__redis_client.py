"""read_until_caught_up: how long a replica is read again before its lag counts (no server needed:
the reads are the replica's successive offsets)."""
from __future__ import annotations

import time

from ansible_collections.swarmlab.cluster.plugins.module_utils._redis_client import read_until_caught_up


def states(*offsets):
    return [{'repl': {'replica_repl_offset': o}} for o in offsets]


def reader(queue):
    reads = []

    def read():
        reads.append(1)
        return queue.pop(0) if queue else None
    return read, reads


def test_a_caught_up_replica_is_not_read_again():
    read, reads = reader(states(200))
    assert read_until_caught_up(states(100)[0], read, 100, time.monotonic() + 1)['repl']['replica_repl_offset'] == 100
    assert not reads


def test_read_again_until_the_master_offset_is_reached():
    read, reads = reader(states(110, 150, 160))
    last = read_until_caught_up(states(100)[0], read, 150, time.monotonic() + 5, interval=0)
    assert last['repl']['replica_repl_offset'] == 150 and len(reads) == 2


def test_the_deadline_ends_it_with_the_last_state():
    read, reads = reader(states(*range(101, 10000)))
    last = read_until_caught_up(states(100)[0], read, 10 ** 9, time.monotonic() + 0.2, interval=0.01)
    assert 101 <= last['repl']['replica_repl_offset'] < 10 ** 9 and reads


def test_a_failed_read_keeps_the_state_read_before():
    read, reads = reader([])
    assert read_until_caught_up(states(100)[0], read, 150, time.monotonic() + 5, interval=0)['repl'] == {
        'replica_repl_offset': 100}
    assert len(reads) == 1


def test_nothing_to_compare_returns_at_once():
    read, reads = reader(states(200))
    read_until_caught_up(states(100)[0], read, None, time.monotonic() + 5)
    read_until_caught_up({'repl': {'role': 'master'}}, read, 150, time.monotonic() + 5)
    assert not reads
