"""The alert sink (roles/monitoring/files/alert_sink.py), really started with Debian's python3 as in
the lab's image: it keeps what Alertmanager posts and answers it on GET /alerts."""
from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from ansible_collections.swarmlab.cluster.tests.integration.support.ports import free_port
from monitoringtest_support import ROOT, stop, wait_for_port

SINK = ROOT / "roles/monitoring/files/alert_sink.py"

# The shape Alertmanager 0.25's webhook sends (version 4), trimmed.
NOTIFICATION = {
    "version": "4",
    "status": "firing",
    "receiver": "webhooks",
    "groupLabels": {"alertname": "RedisReplicaDown", "instance": "redis-master"},
    "alerts": [{
        "status": "firing",
        "labels": {"alertname": "RedisReplicaDown", "instance": "redis-master", "severity": "warning"},
        "annotations": {"summary": "Master redis-master has 1 of 2 replicas connected"},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
    }],
}


@pytest.fixture
def sink():
    port = free_port()
    proc = subprocess.Popen(["/usr/bin/python3", str(SINK), str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        stop(proc)


def request(url: str, body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_it_keeps_each_notification_in_order(sink):
    url, _proc = sink
    assert request(url + "/alerts") == (200, {"notifications": []})
    resolved = dict(NOTIFICATION, status="resolved")
    assert request(url + "/", json.dumps(NOTIFICATION).encode())[0] == 200
    assert request(url + "/", json.dumps(resolved).encode())[0] == 200
    status, body = request(url + "/alerts")
    assert status == 200
    assert [n["payload"] for n in body["notifications"]] == [NOTIFICATION, resolved]
    assert body["notifications"][0]["received"] <= body["notifications"][1]["received"]


def test_it_refuses_what_is_not_json_and_prints_what_it_keeps(sink):
    url, proc = sink
    assert request(url + "/", b"{not json")[0] == 400
    assert request(url + "/nowhere")[0] == 404
    assert request(url + "/healthz") == (200, {"status": "ok"})
    assert request(url + "/", json.dumps(NOTIFICATION).encode())[0] == 200
    stop(proc)
    lines = [json.loads(line) for line in proc.stdout.read().splitlines()]
    assert lines[0] == {"listening": int(url.rsplit(":", 1)[1])}
    assert [line["payload"] for line in lines[1:]] == [NOTIFICATION]
