"""The bare baseline (BareApp: real gunicorn serving app/ + a real redis-server on loopback) spreads
a load generator's keep-alive connections over its workers: no worker holds more than its share
(spread_connections), so the baseline uses every core and the perf ratios do not flatter the stack.
No lab; bounded (a few seconds) and self-cleaning."""
from __future__ import annotations

import http.client
import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest

from swarmlab_ops.loadtest.cpu import children_of
from swarmlab_ops.loadtest.locust import BareApp, spread_connections


@pytest.mark.parametrize(("clients", "workers", "threads", "cap"), [(32, 3, 4, 15), (9, 3, 2, 5), (1, 3, 4, 5)])
def test_spread_connections_is_a_share_plus_the_threads(clients, workers, threads, cap):
    assert spread_connections(clients, workers, threads) == cap


def established_by_pid(port: int) -> dict[int, int]:
    out = subprocess.run(["ss", "-Htnp", "state", "established", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    counts: dict[int, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[int(pid)] = counts.get(int(pid), 0) + 1
    return counts


def test_no_worker_keeps_more_than_its_share_of_the_clients():
    assert shutil.which("redis-server"), "redis-server not found: run scripts/setup.sh"
    # threads >= 2: gunicorn's gthread worker (one thread is its sync worker, no keep-alive at all).
    clients, workers, threads = 9, 3, 2
    with BareApp(workers, threads, clients) as app:
        # gthread keeps worker_connections - threads idle connections alive and closes the others,
        # whose clients connect again and land where there is room. Which worker accepts a new
        # connection is the kernel's choice: the share is what is certain, not the exact spread.
        share = 3  # 9 clients over 3 workers
        assert app.worker_connections - threads == share
        url = urlsplit(app.url)
        conns: list[http.client.HTTPConnection | None] = [None] * clients
        try:
            # As wrk and Locust do: every client keeps its connection (HTTP/1.1 keep-alive) and
            # opens a new one when the server closes it.
            for _round in range(5):
                for i, conn in enumerate(conns):
                    if conn is None:
                        conn = conns[i] = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
                    conn.request("POST", "/api/counter/increment")
                    response = conn.getresponse()
                    response.read()
                    assert response.status == 200
                    if response.getheader("Connection", "").lower() == "close":
                        conn.close()
                        conns[i] = None
            held = established_by_pid(url.port)
            gunicorn_workers = set(children_of(app.procs[-1].pid))
            assert held and set(held) <= gunicorn_workers, (held, gunicorn_workers)
            # Left at gunicorn's 1000, the first worker to accept keeps all nine: one core.
            assert max(held.values()) <= share, held
        finally:
            for conn in conns:
                if conn is not None:
                    conn.close()
