"""Loopback ports for the test servers, each pytest-xdist worker from a slice of its own.

Why not bind(0): it hands out ports of the kernel's ephemeral range at random, so the two workers
can get the same port minutes apart. A Sentinel of one worker's test remembers a server that test
stopped; when the other worker's test starts a server on that port (same test password), the
Sentinel turns it into a replica of its own master within about 10 s (reproduced with real
servers), and the second test fails on a topology it never made. Here each worker hands out the
ports of its slice in turn, below the ephemeral range (no client socket takes them), so a port comes
back only after every other one of the slice, long after the test that used it ended.

Import it as ``ansible_collections.swarmlab.cluster.tests.integration.support.ports``.
"""

from __future__ import annotations

import os
import socket

# Below net.ipv4.ip_local_port_range (32768-60999 on Debian) and above the well-known services.
LOW, HIGH = 20000, 32000


def worker_slice(worker: str | None = None, count: str | None = None) -> range:
    """The ports of this pytest-xdist worker ('gw0', 'gw1'... of PYTEST_XDIST_WORKER_COUNT)."""
    worker = worker if worker is not None else os.environ.get('PYTEST_XDIST_WORKER', 'gw0')
    count = count if count is not None else os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1')
    total = max(int(count), 1)
    index = int(worker[2:]) if worker[:2] == 'gw' and worker[2:].isdigit() else 0
    size = (HIGH - LOW) // total
    start = LOW + (index % total) * size
    return range(start, start + size)


_ports = worker_slice()
_next = 0


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(('127.0.0.1', port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """The next port of this worker's slice that nothing listens on or holds."""
    global _next  # pylint: disable=global-statement
    for _attempt in range(len(_ports)):
        port = _ports[_next]
        _next = (_next + 1) % len(_ports)
        if _bindable(port):
            return port
    raise RuntimeError('no free port in %d-%d' % (_ports[0], _ports[-1]))
