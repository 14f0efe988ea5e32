"""The test servers' ports: the two pytest-xdist workers never hand out the same one."""

from __future__ import annotations

import socket

from ansible_collections.swarmlab.cluster.tests.integration.support import ports


def test_the_workers_slices_are_disjoint_and_below_the_ephemeral_range():
    first, second = ports.worker_slice('gw0', '2'), ports.worker_slice('gw1', '2')
    assert not set(first) & set(second)
    with open('/proc/sys/net/ipv4/ip_local_port_range', encoding='ascii') as f:
        ephemeral_low = int(f.read().split()[0])
    assert max(second) < ephemeral_low and min(first) >= 1024
    # without pytest-xdist the one process has the whole range
    assert ports.worker_slice('master', '1') == range(ports.LOW, ports.HIGH)


def test_a_port_comes_back_only_after_the_rest_and_a_held_one_is_skipped():
    first = ports.free_port()
    with socket.socket() as held:
        held.bind(('127.0.0.1', first + 1))
        held.listen()
        second = ports.free_port()
    assert second == first + 2
    assert first in ports.worker_slice() and second in ports.worker_slice()
