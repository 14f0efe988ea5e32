"""Clients and the generator against real servers on loopback: an HTTP server standing in for the
app's API (docs/api.md), and a real redis-server for the writer straight at Redis (the writer runs
the same program it runs in the lab, with the app's Settings read from its environment)."""
from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.swarmlab.cluster.tests.integration.support.ports import free_port
from swarmlab_ops.checker.counter import check
from swarmlab_ops.checker.timeline import summarize
from swarmlab_ops.client.http import CounterClient, classify_increment
from swarmlab_ops.generator import Load
from swarmlab_ops.history import from_dicts
from swarmlab_ops.incontainer import source

ROOT = Path(__file__).resolve().parents[2]


# classify_increment (docs/api.md's answers)
def test_200_with_value_is_ok():
    assert classify_increment(200, "web.1", {"value": 7}, None, True) == ("ok", 7)


def test_error_from_the_app_is_unknown():
    # In WAIT mode a 503 carries the value the master applied: not acknowledged, not known lost.
    assert classify_increment(503, "web.1", {"value": 7, "acknowledged": 0}, None, True) == ("unknown", None)
    assert classify_increment(503, "web.1", {"error": "redis"}, None, True) == ("unknown", None)


def test_edge_error_without_the_app_is_fail():
    assert classify_increment(503, None, None, None, True) == ("fail", None)


def test_timeout_after_sending_is_unknown_refused_connect_is_fail():
    assert classify_increment(None, None, None, "Read timed out", True) == ("unknown", None)
    assert classify_increment(None, None, None, "Connection refused", False) == ("fail", None)


def test_200_without_a_value_is_not_acknowledged():
    assert classify_increment(200, "web.1", {"oops": 1}, None, True) == ("unknown", None)


@pytest.fixture
def app_double():
    """Stands in for the app behind the edge (a Flask + Redis stack cannot run in a unit test):
    increments answer 200 with the value, reads answer 500."""
    state = {"n": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            state["n"] += 1
            body = json.dumps({"value": state["n"]}).encode()
            self.send_response(200)
            self.send_header("X-Served-By", "test")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_port, state
    server.shutdown()


def test_load_stops_by_itself_and_records_outcomes(app_double):
    url, state = app_double
    load = Load(lambda i: CounterClient(url, f"http-{i}"), workers=2, rate=200, max_seconds=5, max_ops=20).start()
    for thread in load._threads:  # pylint: disable=protected-access
        thread.join(10)
    ops = load.stop()
    assert 20 <= len(ops) <= 22  # each thread stops at the bound it observes
    s = summarize(ops)
    acked = [op.value for op in ops if op.outcome == "ok" and op.kind == "incr"]
    assert s["acknowledged"] == len(acked) == state["n"]
    assert s["gets_failed"] == s["requests"] - s["acknowledged"]
    assert check(ops, 0, state["n"])["lost"] == 0
    assert all(op.end >= op.start and op.process in ("http-0", "http-1") for op in ops)


def test_load_stops_at_its_time_bound(app_double):
    url, _state = app_double
    started = time.time()
    ops = Load(lambda i: CounterClient(url, f"http-{i}"), workers=1, rate=20, max_seconds=1).start()
    time.sleep(1.5)
    assert time.time() - started < 3 and len(ops.stop()) <= 25


def test_refused_connect_is_fail():
    port = free_port()
    op = CounterClient("http://127.0.0.1:%d" % port, "http-0", timeout=1).invoke("incr")
    assert op.outcome == "fail" and op.value is None


# The writer straight at Redis, against a real redis-server
@pytest.fixture
def redis_server(tmp_path):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (scripts/setup.sh installs it)")
    port = free_port()
    (tmp_path / "pw").write_text("writer-test-pw\n")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--dir", str(tmp_path), "--requirepass", "writer-test-pw"],
                            stdout=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port, tmp_path / "pw", proc
    proc.kill()
    proc.wait()


def run_writer(port: int, password_file: Path, args: dict, seconds: float = 30):
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:%d/0" % port, "REDIS_PASSWORD_FILE": str(password_file),
           "REDIS_CONNECT_TIMEOUT": "0.3", "REDIS_SOCKET_TIMEOUT": "0.5"}
    return subprocess.Popen([sys.executable, "-c", source("redis_writer"), json.dumps(args)],
                            cwd=ROOT / "app", env=env, stdout=subprocess.PIPE, text=True)


def history_of(proc) -> list:
    out, _err = proc.communicate(timeout=60)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert rows[-1]["kind"] == "done"
    return from_dicts(rows[:-1])


def test_writer_without_wait_acknowledges_every_increment_it_applied(redis_server):
    port, pw, _proc = redis_server
    ops = history_of(run_writer(port, pw, {"key": "k", "stop_key": "k:stop", "writers": 2, "seconds": 1, "wait": 0, "rate": 40,
                                           "wait_timeout_ms": 100}))
    assert len(ops) >= 20 and {op.outcome for op in ops} == {"ok"}
    import redis  # pylint: disable=import-outside-toplevel
    final = int(redis.Redis(port=port, password="writer-test-pw").get("k"))
    assert check(ops, 0, final, "redis-") == check(ops, 0, final)
    assert check(ops, 0, final)["lost"] == 0 and check(ops, 0, final)["consistent"]


def test_writer_with_wait_and_no_replica_reports_unknown_with_the_value(redis_server):
    port, pw, _proc = redis_server
    ops = history_of(run_writer(port, pw, {"key": "k", "stop_key": "k:stop", "writers": 1, "seconds": 1, "wait": 1, "rate": 10,
                                           "wait_timeout_ms": 50}))
    assert ops and {op.outcome for op in ops} == {"unknown"}
    assert [op.value for op in ops] == list(range(1, len(ops) + 1))
    assert all(op.detail["replicas_acked"] == 0 for op in ops)


def test_writer_records_fail_or_unknown_when_redis_goes_away(redis_server):
    port, pw, proc = redis_server
    writer = run_writer(port, pw, {"key": "k", "stop_key": "k:stop", "writers": 1, "seconds": 2, "wait": 0, "rate": 20,
                                   "wait_timeout_ms": 50})
    time.sleep(0.8)
    proc.kill()
    ops = history_of(writer)
    after = [op for op in ops if op.outcome != "ok"]
    assert after, "no operation after the kill was recorded as failed or unknown"
    assert any(op.outcome == "fail" and "connecting" in (op.error or "") for op in after)


def test_writer_stops_early_when_the_stop_key_is_set(redis_server):
    port, pw, _proc = redis_server
    writer = run_writer(port, pw, {"key": "k", "stop_key": "k:stop", "writers": 2, "seconds": 60, "wait": 0,
                                   "rate": 20, "wait_timeout_ms": 50})
    import redis  # pylint: disable=import-outside-toplevel
    client = redis.Redis(port=port, password="writer-test-pw")
    # Stop it once it writes: on a busy machine its interpreter may take more than a second to start.
    deadline = time.monotonic() + 30
    while not int(client.get("k") or 0) and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert int(client.get("k") or 0) > 0, "the writer wrote nothing in 30 s"
    stopped = time.monotonic()
    client.set("k:stop", "1")
    ops = history_of(writer)
    # It was asked to write for 60 s: it ended because of the stop key, not its time.
    assert time.monotonic() - stopped < 10 and ops


def run_probe(port: int, password_file: Path, request: dict) -> dict:
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:%d/0" % port, "REDIS_PASSWORD_FILE": str(password_file)}
    out = subprocess.run([sys.executable, "-c", source("redis_probe"), json.dumps(request)], cwd=ROOT / "app",
                         env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_probe_answers_with_the_apps_settings(redis_server):
    """The probe connects the way the app does (its Settings and CounterStore), against real Redis."""
    port, pw, _proc = redis_server
    assert run_probe(port, pw, {"op": "set", "key": "k", "value": "41"})["ok"]
    assert run_probe(port, pw, {"op": "get", "keys": ["k", "missing"]})["values"] == {"k": 41, "missing": None}
    assert run_probe(port, pw, {"op": "master"})["address"] == ["127.0.0.1", port]
    replication = run_probe(port, pw, {"op": "replication"})
    assert replication["info"]["role"] == "master" and replication["info"]["connected_slaves"] == 0
    # Without Sentinel there is nothing to fail over: an answer, not a traceback.
    refused = run_probe(port, pw, {"op": "failover"})
    assert refused["ok"] is False and "no Sentinel" in refused["error"]
