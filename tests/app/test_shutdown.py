"""Drain-aware stop under real gunicorn: SIGTERM to the master (what Docker sends) turns /readyz
to 503 at once while the app keeps serving for SHUTDOWN_DELAY, then gunicorn's graceful stop
lets a slow in-flight request finish, and the process exits by itself in time."""
from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from apptest_support import FAST_RETRY_ENV, redis_url, wait_for

DELAY = 3.0
GRACE = 10


def test_sigterm_drains_then_stops_without_dropping_requests(
        gunicorn_factory, lone_redis, counter_key) -> None:
    app = gunicorn_factory({**FAST_RETRY_ENV, "REDIS_URL": redis_url(lone_redis),
                            "COUNTER_KEY": counter_key, "REDIS_SOCKET_TIMEOUT": "15",
                            "SHUTDOWN_DELAY": str(DELAY),
                            "GUNICORN_GRACEFUL_TIMEOUT": str(GRACE)})
    assert requests.get(app.base + "/readyz", timeout=5).status_code == 200
    # A slow request: Redis holds writes for 5 s, longer than the delay, so the request is
    # still running when gunicorn's graceful stop begins. Reads go on meanwhile.
    lone_redis.client().execute_command("CLIENT", "PAUSE", str(int((DELAY + 2) * 1000)), "WRITE")
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(requests.post, app.base + "/api/counter/increment", timeout=30)
        time.sleep(0.5)
        assert not slow.done()

        assert app.proc is not None
        app.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        # At once: the load balancer's check fails, so it takes this task out.
        wait_for(lambda: requests.get(app.base + "/readyz", timeout=2).status_code == 503, 1,
                 "/readyz to answer 503 after SIGTERM")
        ready = requests.get(app.base + "/readyz", timeout=2)
        assert ready.json() == {"error": "shutting down"}
        # A second SIGTERM does not cut the delay short.
        app.proc.send_signal(signal.SIGTERM)
        # Meanwhile everything else is served as usual, on new connections too.
        served = 0
        while time.monotonic() - sent < DELAY - 0.5:
            page = requests.get(app.base + "/", timeout=2)
            assert page.status_code == 200 and "Counter" in page.text
            assert requests.get(app.base + "/api/counter", timeout=2).json() == {"value": 0}
            assert requests.get(app.base + "/healthz", timeout=2).status_code == 200
            assert requests.get(app.base + "/readyz", timeout=2).status_code == 503
            served += 1
            time.sleep(0.2)
        assert served >= 3

        # After the delay gunicorn stops listening; the request already inside completes.
        wait_for(lambda: _refused(app.base + "/healthz"), DELAY + 3,
                 "the listener to close after the delay")
        assert time.monotonic() - sent >= DELAY - 0.1
        resp = slow.result(timeout=GRACE)
    assert resp.status_code == 200 and resp.json() == {"value": 1}
    assert lone_redis.client().get(counter_key) == "1"
    # The master exits by itself, within the delay plus the graceful timeout.
    app.proc.wait(timeout=DELAY + GRACE + 2)
    elapsed = time.monotonic() - sent
    assert app.proc.returncode == 0
    assert elapsed < DELAY + GRACE, elapsed
    log = app.output()
    assert "SIGTERM: /readyz answers 503" in log and "SIGTERM while draining" in log
    assert "Traceback" not in log


def _refused(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
    except requests.ConnectionError:
        return True
    return False


def test_zero_delay_stops_at_once(gunicorn_factory, lone_redis) -> None:
    app = gunicorn_factory({"REDIS_URL": redis_url(lone_redis), "SHUTDOWN_DELAY": "0"})
    assert app.proc is not None
    started = time.monotonic()
    app.proc.send_signal(signal.SIGTERM)
    app.proc.wait(timeout=GRACE)
    assert time.monotonic() - started < 5
    assert "SIGTERM: /readyz answers 503" not in app.output()
