"""Prometheus metrics: real gunicorn with several workers writing prometheus-client's
multi-process files, the master serving their sum on its own port; Redis errors counted by
kind against real redis-server failures."""
from __future__ import annotations

import glob
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client import REGISTRY
from prometheus_client.mmap_dict import MmapedDict

from apptest_support import FAST_RETRY_ENV, free_port, redis_url, sample, wait_for

INCREMENT = "/api/counter/increment"


def _increments_per_worker(metrics_dir: str) -> dict[int, float]:
    """counter_operations_total{increment, ok} as each worker's own file holds it."""
    shares = {}
    for path in glob.glob(os.path.join(metrics_dir, "counter_*.db")):
        pid = int(path.rsplit("_", 1)[1][:-3])
        shares[pid] = sum(value for key, value, _ts, _pos in
                          MmapedDict.read_all_values_from_file(path)
                          if '"counter_operations_total"' in key and '"increment"' in key
                          and '"ok"' in key)
    return shares


def _post_many(url: str, count: int) -> list[int]:
    # A new connection per request (no Session), from several threads, so that the kernel
    # hands them to different workers.
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _i: requests.post(url, timeout=30).status_code, range(count)))


def test_counts_add_up_across_workers(gunicorn_factory, redis_pair, counter_key) -> None:
    master, _replica = redis_pair
    app = gunicorn_factory({"REDIS_URL": redis_url(master), "COUNTER_KEY": counter_key},
                           workers=3, threads=2)
    before = app.metrics()
    assert _post_many(app.base + INCREMENT, 60) == [200] * 60
    # The kernel may give every connection to one worker. Kill the busiest: the others (and
    # its replacement) serve the rest, and the dead one's file keeps its part of the totals.
    shares = _increments_per_worker(app.metrics_dir)
    victim = max(shares, key=lambda pid: shares[pid])
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in app.worker_pids() and len(app.worker_pids()) == 3, 20,
             "gunicorn to replace the killed worker")
    assert _post_many(app.base + INCREMENT, 30) == [200] * 30
    for _probe in range(4):
        assert requests.get(app.base + "/healthz", timeout=5).ok
        assert requests.get(app.base + "/readyz", timeout=5).ok
    after = app.metrics()

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert master.client().get(counter_key) == "90"
    shares = _increments_per_worker(app.metrics_dir)
    assert sum(shares.values()) == 90
    assert shares[victim] > 0 and len([pid for pid in shares if shares[pid]]) >= 2, shares
    # The master's sum over all the workers' files, dead ones included.
    assert grew("counter_operations_total", operation="increment", outcome="ok") == 90
    labels = {"method": "POST", "endpoint": INCREMENT, "status": "200", "probe": "false"}
    assert grew("counter_http_requests_total", **labels) == 90
    assert grew("counter_http_request_duration_seconds_count", **labels) == 90
    assert grew("counter_http_request_duration_seconds_bucket", le="+Inf", **labels) == 90
    assert grew("counter_http_request_duration_seconds_sum", **labels) > 0
    # Health checks are told apart by a label, so they can be left out of request rates.
    assert grew("counter_http_requests_total", probe="true") == 8
    assert grew("counter_http_requests_total", endpoint="/healthz", probe="true") == 4
    assert grew("counter_http_requests_total", probe="false") == 90
    assert sample(after, "counter_http_requests_in_flight") == 0


def test_metrics_only_on_their_own_port_with_bounded_labels(gunicorn_factory, redis_pair,
                                                            counter_key) -> None:
    master, _replica = redis_pair
    app = gunicorn_factory({"REDIS_URL": redis_url(master), "COUNTER_KEY": counter_key})
    # The web port has no /metrics: the edge forwards only this port.
    resp = requests.get(app.base + "/metrics", timeout=5)
    assert resp.status_code == 404 and resp.json()["error"]
    # Raw paths and unknown methods do not become label values.
    for path in ("/secret-path-1", "/secret-path-2/x", "/api/counter/../secret-path-3"):
        assert requests.get(app.base + path, timeout=5).status_code == 404
    assert requests.request("FOOBAR", app.base + "/api/counter", timeout=5).status_code == 405
    assert requests.post(app.base + INCREMENT, data="by=1", timeout=5,
                         headers={"Content-Type": "application/x-www-form-urlencoded"}
                         ).status_code == 415
    text = requests.get(app.metrics_url, timeout=5).text
    assert "secret-path" not in text and "FOOBAR" not in text
    scrape = app.metrics()
    assert sample(scrape, "counter_http_requests_total", endpoint="<unmatched>",
                  status="404") == 4  # with /metrics
    assert sample(scrape, "counter_http_requests_total", method="OTHER", status="405") == 1
    assert sample(scrape, "counter_http_requests_total", endpoint=INCREMENT, status="415") == 1


def test_metrics_start_from_zero_after_a_restart(gunicorn_factory, redis_pair, counter_key,
                                                 tmp_path) -> None:
    master, _replica = redis_pair
    env = {"REDIS_URL": redis_url(master), "COUNTER_KEY": counter_key,
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    first = gunicorn_factory(env)
    assert _post_many(first.base + INCREMENT, 5) == [200] * 5
    assert sample(first.metrics(), "counter_operations_total", operation="increment") == 5
    first.stop()
    assert glob.glob(str(tmp_path / "*.db"))  # what the first run left behind
    second = gunicorn_factory(env)
    assert sample(second.metrics(), "counter_operations_total", operation="increment") == 0


def test_dead_worker_leaves_the_in_flight_gauge(gunicorn_factory, lone_redis,
                                                counter_key) -> None:
    """child_exit marks the dead worker: its in-flight requests stop counting."""
    app = gunicorn_factory({**FAST_RETRY_ENV, "REDIS_URL": redis_url(lone_redis),
                            "COUNTER_KEY": counter_key, "REDIS_SOCKET_TIMEOUT": "10"},
                           workers=2, threads=2)
    # Writes wait while the pause lasts; the request stays in flight in one worker.
    lone_redis.client().execute_command("CLIENT", "PAUSE", "4000", "WRITE")
    pending = threading.Thread(target=lambda: _ignore_errors(
        lambda: requests.post(app.base + INCREMENT, timeout=15)))
    pending.start()
    wait_for(lambda: sample(app.metrics(), "counter_http_requests_in_flight") == 1, 5,
             "one request in flight")
    busy = [path for path in glob.glob(os.path.join(app.metrics_dir, "gauge_livesum_*.db"))
            if any(value for _k, value, _t, _p in MmapedDict.read_all_values_from_file(path))]
    assert len(busy) == 1
    os.kill(int(busy[0].rsplit("_", 1)[1][:-3]), signal.SIGKILL)
    wait_for(lambda: sample(app.metrics(), "counter_http_requests_in_flight") == 0, 10,
             "the dead worker's in-flight request to leave the gauge")
    pending.join(20)
    lone_redis.client().execute_command("CLIENT", "UNPAUSE")


def _ignore_errors(call) -> None:
    try:
        call()
    except requests.RequestException:
        pass  # the worker serving it is killed on purpose


# --- Redis errors and operations, in one process (Flask's test client, the default registry) ---

def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_redis_down_counts_connection_errors_and_unavailable_operations(
        make_client, lone_redis) -> None:
    client = make_client(REDIS_URL=redis_url(lone_redis))
    errors = _value("counter_redis_errors_total", kind="connection", role="master")
    unavailable = _value("counter_operations_total", operation="increment", outcome="unavailable")
    lone_redis.stop()
    for _attempt in range(3):
        assert client.post(INCREMENT).status_code == 503
    assert client.get("/readyz").status_code == 503
    assert _value("counter_redis_errors_total", kind="connection", role="master") == errors + 4
    assert _value("counter_operations_total", operation="increment",
                  outcome="unavailable") == unavailable + 3


def test_wrong_password_counts_auth_errors(make_client, redis_pair) -> None:
    master, _replica = redis_pair
    before = _value("counter_redis_errors_total", kind="auth", role="master")
    client = make_client(REDIS_URL=f"redis://127.0.0.1:{master.port}/0", REDIS_PASSWORD="wrong",
                         REDIS_STARTUP_TIMEOUT="0")
    assert client.post(INCREMENT).status_code == 503
    # One at start (given up at once), one for the request.
    assert _value("counter_redis_errors_total", kind="auth", role="master") == before + 2


def test_dead_replica_counts_replica_errors_and_still_serves(make_client, redis_pair) -> None:
    master, _replica = redis_pair
    before = _value("counter_redis_errors_total", kind="connection", role="replica")
    ok = _value("counter_operations_total", operation="get", outcome="ok")
    client = make_client(REDIS_URL=redis_url(master), REDIS_REPLICAS=f"127.0.0.1:{free_port()}")
    assert client.get("/api/counter").status_code == 200
    assert _value("counter_redis_errors_total", kind="connection", role="replica") == before + 1
    assert _value("counter_operations_total", operation="get", outcome="ok") == ok + 1


def test_overflow_and_not_durable_are_counted_apart(make_client, lone_redis, counter_key) -> None:
    client = make_client(REDIS_URL=redis_url(lone_redis), REDIS_WAIT_REPLICAS="1",
                         REDIS_WAIT_TIMEOUT_MS="50")
    not_durable = _value("counter_operations_total", operation="increment",
                         outcome="not_durable")
    overflow = _value("counter_operations_total", operation="increment", outcome="overflow")
    assert client.post(INCREMENT).status_code == 503
    lone_redis.client().set(counter_key, 2**63 - 1)
    assert client.post(INCREMENT).status_code == 409
    assert _value("counter_operations_total", operation="increment",
                  outcome="not_durable") == not_durable + 1
    assert _value("counter_operations_total", operation="increment",
                  outcome="overflow") == overflow + 1


def test_metrics_port_0_turns_the_server_off(gunicorn_factory, redis_pair, counter_key) -> None:
    master, _replica = redis_pair
    app = gunicorn_factory({"REDIS_URL": redis_url(master), "COUNTER_KEY": counter_key,
                            "METRICS_PORT": "0"})
    assert requests.post(app.base + INCREMENT, timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(app.metrics_url, timeout=2)
    assert "Serving metrics" not in app.output()
