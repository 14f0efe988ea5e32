"""GUNICORN_WORKER_CONNECTIONS against a real gunicorn: no worker keeps more keep-alive connections
than it allows, so a client with a few persistent connections cannot pile them all into one worker
(issue 17: the bare app's figures halved when wrk's 32 connections all landed in one worker)."""
from __future__ import annotations

import collections
import http.client
import re
import subprocess
import time

from apptest_support import redis_url


def _connections_per_worker(port: int) -> collections.Counter:
    """Established connections on the app's port, by the pid of the process that holds them."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "sport", f"= :{port}"],
                         capture_output=True, text=True, check=True).stdout
    return collections.Counter(int(pid) for pid in re.findall(r"pid=(\d+)", out))


def test_no_worker_keeps_more_connections_than_it_allows(gunicorn_factory, redis_pair, counter_key):
    master, _replica = redis_pair
    # gthread keeps (worker connections - threads) idle keep-alive connections per worker: 2 here.
    app = gunicorn_factory({"REDIS_URL": redis_url(master), "COUNTER_KEY": counter_key,
                            "GUNICORN_WORKER_CONNECTIONS": "4",
                            "GUNICORN_KEEPALIVE": "30"},
                           workers=3, threads=2)
    conns, kept = [], 0
    try:
        # 9 kept over 3 workers would put 3 in one (pigeonhole): the setting closes what it cannot keep.
        for _attempt in range(9):
            conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
            conn.request("GET", "/api/counter")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            kept += resp.getheader("Connection", "").lower() != "close"
            conns.append(conn)
            # The worker puts a served connection back in its keep-alive list from its main loop
            # a moment after the response: let it, so the next connection sees the list as it is.
            time.sleep(0.2)
        held = _connections_per_worker(app.port)
        assert set(held) <= set(app.worker_pids())
        assert max(held.values()) <= 2 and sum(held.values()) == kept, (held, kept)
    finally:
        for conn in conns:
            conn.close()
