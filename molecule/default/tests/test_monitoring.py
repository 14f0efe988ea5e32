"""The monitoring stack after site.yml on the lab, read the way an operator reads it: through
Prometheus's HTTP API on the manager's address and the alert sink Alertmanager posts to.

Timings come from the lab inventory (group_vars/swarm/monitoring.yml): scrape and evaluation every
5 s, RedisReplicaDown `for` 15 s, Alertmanager group_wait and group_interval 5 s.
"""
from __future__ import annotations

import json
import os
import shlex
import time

from lab_checks import run_playbook

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-default")
STACK = "swarmlab"
MONITORING = "swarmlab-monitoring"
SCRAPE = 5          # monitoring_scrape_interval (= evaluation interval) in the lab, seconds
REPLICA_DOWN_FOR = 15  # monitoring_alert_for.RedisReplicaDown in the lab, seconds
testinfra_hosts = [f"docker://{LAB}-manager1"]


def manager_address(host) -> str:
    return host.check_output("docker info --format '{{.Swarm.NodeAddr}}'").strip()


def api(host, path: str, **params: str) -> dict:
    args = " ".join(f"--data-urlencode {shlex.quote(f'{k}={v}')}" for k, v in params.items())
    out = host.check_output(f"curl -sS -m 10 -G {args} http://{manager_address(host)}:9090/api/v1/{path}")
    body = json.loads(out)
    assert body["status"] == "success", body
    return body["data"]


def scalar(host, query: str) -> float | None:
    result = api(host, "query", query=query)["result"]
    return float(result[0]["value"][1]) if result else None


def wait_until(what: str, timeout: float, check, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(interval)


def stable(host, *queries: str) -> dict[str, float]:
    """Their values once two readings a scrape apart agree (earlier requests have all been scraped)."""
    previous = {q: scalar(host, q) for q in queries}
    for _attempt in range(10):
        time.sleep(SCRAPE + 1)
        current = {q: scalar(host, q) for q in queries}
        if current == previous and None not in current.values():
            return current
        previous = current
    raise AssertionError(f"did not settle: {previous}")


def sink_notifications(host) -> list[dict]:
    cid = host.check_output(f"docker ps -q --filter label=com.docker.swarm.service.name={MONITORING}_alert-sink")
    read = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9095/alerts').read().decode())"
    return json.loads(host.check_output(f"docker exec {cid.split()[0]} python3 -c {shlex.quote(read)}"))[
        "notifications"]


def sink_alerts(host, name: str, status: str, since: float) -> list[dict]:
    """Alerts named `name` with `status` in notifications the sink received after `since`."""
    return [alert for note in sink_notifications(host) if note["received"] >= since
            for alert in note["payload"]["alerts"]
            if alert["labels"]["alertname"] == name and alert["status"] == status]


def test_prometheus_and_alertmanager_listen_only_on_the_managers_address(host):
    addr = manager_address(host)
    for port in (9090, 9093):
        assert host.socket(f"tcp://{addr}:{port}").is_listening
        assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    # The edge's metrics port stays inside the overlay.
    assert not host.socket("tcp://0.0.0.0:8405").is_listening
    worker = host.get_host(f"docker://{LAB}-worker1")
    assert not worker.socket("tcp://0.0.0.0:9090").is_listening


def test_the_public_port_does_not_serve_the_edges_metrics(host):
    out = host.check_output(f"curl -s -m 5 http://{manager_address(host)}:8080/metrics")
    assert "haproxy_" not in out


def test_every_discovered_target_is_up(host):
    def all_up():
        targets = api(host, "targets", state="active")["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    try:
        targets = wait_until("every target up", 60, all_up, interval=2)
    except AssertionError:
        down = [(t["labels"]["job"], t["labels"]["instance"], t["lastError"])
                for t in api(host, "targets", state="active")["activeTargets"] if t["health"] != "up"]
        raise AssertionError(f"targets not up: {down}") from None
    per_job: dict[str, int] = {}
    for target in targets:
        per_job[target["labels"]["job"]] = per_job.get(target["labels"]["job"], 0) + 1
    expected = {"prometheus": 1, "alertmanager": 1, "node": 3, "dockerd": 3, "edge": 1,
                "redis": 6, "registry": 1, "web": 4}
    assert per_job == expected, per_job
    # Discovered, one per node: the node exporters and dockerds carry the node's name.
    nodes = {t["labels"]["node"] for t in targets if t["labels"]["job"] in ("node", "dockerd")}
    assert nodes == {"manager1", "worker1", "worker2"}


def test_requests_through_the_edge_grow_haproxys_and_the_apps_counters_by_exactly_n(host):
    edge = 'sum(haproxy_frontend_http_requests_total{job="edge", proxy="http"})'
    # The app's health checks (the edge's and Docker's) are labelled probe="true": left out.
    app = 'sum(counter_http_requests_total{job="web", probe="false"})'
    before = stable(host, edge, app)
    n = 20
    host.check_output(f"for i in $(seq {n}); do curl -sf -o /dev/null -m 5 -X POST "
                      f"http://{manager_address(host)}:8080/api/counter/increment || exit 1; done")
    for query, start in before.items():
        # All n were answered before the first scrape that shows them all: nothing comes after.
        after = wait_until(query, 4 * SCRAPE, lambda q=query, b=start: (v := scalar(host, q)) >= b + n and v)
        assert after == start + n, query


def prometheus_alert(host, name: str) -> dict | None:
    alerts = api(host, "alerts")["alerts"]
    return next((a for a in alerts if a["labels"]["alertname"] == name), None)


def test_a_stopped_replica_fires_replica_down_and_it_resolves_when_it_returns(host):
    """Fires after its `for` and within `for` plus one scrape (to see the replica gone) and one
    evaluation (to act on it), with a few seconds for the task to stop; Alertmanager posts it to
    the sink; resolved in the sink once the replica is back."""
    service = f"{STACK}_redis-replica-2"
    # Run on its own (pytest -k) right after site.yml, the first scrapes may not have happened yet.
    master = wait_until("the master and both replicas linked, in Prometheus", 60, lambda: scalar(
        host, 'count(redis_master_link_up{job="redis"} == 1)') == 2 and api(
        host, "query", query='redis_instance_info{job="redis", role="master"}')["result"], interval=2)
    assert len(master) == 1, master
    master = master[0]["metric"]["instance"]
    asked = time.time()
    host.check_output(f"docker service scale --detach {service}=0")
    try:
        # From when its task no longer runs: Redis' own shutdown takes longer on a busy machine.
        wait_until(f"{service} stopped", 60, lambda: host.check_output(
            f"docker service ls --filter name={service} --format '{{{{.Replicas}}}}'").split("/")[0] == "0", interval=0.2)
        stopped = time.time()
        wait_until("RedisReplicaDown firing in Prometheus", REPLICA_DOWN_FOR + 6 * SCRAPE, lambda: (
            prometheus_alert(host, "RedisReplicaDown") or {}).get("state") == "firing", interval=1)
        firing_after = time.time() - stopped
        print(f"RedisReplicaDown firing in Prometheus {firing_after:.1f} s after the replica stopped "
              f"({stopped - asked:.1f} s after it was asked to)")
        # Never before its `for` (less the 0.2-s poll), at most two scrapes and 3 s of lag after it.
        assert REPLICA_DOWN_FOR - 1 <= firing_after <= REPLICA_DOWN_FOR + 2 * SCRAPE + 3, firing_after
        fired = wait_until("RedisReplicaDown firing in the sink", 30,
                           lambda: sink_alerts(host, "RedisReplicaDown", "firing", asked), interval=2)
        assert fired[0]["labels"]["instance"] == master
        assert fired[0]["annotations"]["summary"] == f"Master {master} has 1 of 2 replicas connected"
    finally:
        returned = time.time()
        host.check_output(f"docker service scale --detach {service}=1")
    resolved = wait_until("RedisReplicaDown resolved in the sink", 120,
                          lambda: sink_alerts(host, "RedisReplicaDown", "resolved", returned), interval=2)
    print(f"RedisReplicaDown resolved in the sink {time.time() - returned:.1f} s after the replica was started")
    assert resolved[0]["labels"]["instance"] == master
    # The replica follows the master again before the next checks run.
    wait_until("replica-2 linked again", 60, lambda: scalar(
        host, 'redis_master_link_up{job="redis", instance="redis-replica-2"}') == 1, interval=2)


def alertmanager(host, path: str, body: list | None = None):
    url = f"http://{manager_address(host)}:9093/api/v2/{path}"
    if body is None:
        return json.loads(host.check_output(f"curl -sS -m 10 {url}"))
    host.check_output(f"curl -sS -m 10 -H 'Content-Type: application/json' -d {shlex.quote(json.dumps(body))} {url}")
    return None


def test_node_maintenance_silences_what_the_drain_fires_and_nothing_else(host):
    """From the drain to the activation, Alertmanager holds back the alerts the drain of worker2 fires
    (its Redis replica and Sentinel stop), so the on-call gets no notification for planned work; the
    same alert of an instance on another node, and another node's NodeDown, still reach the sink.
    Those two are posted to Alertmanager as Prometheus would (a failure cannot be made on demand
    elsewhere while the drain runs); the drain's own alert is the real one."""
    replica, others = "redis-replica-2", [{"alertname": "RedisInstanceDown", "instance": "redis-replica-1"},
                                          {"alertname": "NodeDown", "node": "worker1"}]
    subject = "node maintenance of worker2"
    started = time.time()
    drained = run_playbook(LAB, "playbooks/node_maintenance.yml", "-e", "node=worker2", "-e", "maintenance=drain")
    try:
        assert drained.returncode == 0, drained.stdout[-3000:]
        wait_until(f"RedisInstanceDown of {replica} firing in Prometheus", 60, lambda: any(
            a["labels"]["alertname"] == "RedisInstanceDown" and a["labels"].get("instance") == replica
            and a["state"] == "firing" for a in api(host, "alerts")["alerts"]), interval=2)
        held = wait_until(f"RedisInstanceDown of {replica} in Alertmanager", 30, lambda: [
            a for a in alertmanager(host, "alerts") if a["labels"]["alertname"] == "RedisInstanceDown"
            and a["labels"].get("instance") == replica], interval=2)
        assert held[0]["status"]["state"] == "suppressed", held
        now = time.time()
        window = {"startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
                  "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 300))}
        alertmanager(host, "alerts", [dict(window, labels=labels) for labels in others])
        for labels in others:
            wait_until(f"{labels} firing in the sink", 30, lambda labels=labels: [
                a for a in sink_alerts(host, labels["alertname"], "firing", now)
                if all(a["labels"].get(k) == v for k, v in labels.items())], interval=2)
    finally:
        ended = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        alertmanager(host, "alerts", [{"labels": labels, "startsAt": ended, "endsAt": ended} for labels in others])
        activated = run_playbook(LAB, "playbooks/node_maintenance.yml", "-e", "node=worker2", "-e", "maintenance=activate")
    assert activated.returncode == 0, activated.stdout[-3000:]
    ours = [s for s in alertmanager(host, "silences")
            if s["createdBy"] == "swarmlab.cluster" and s["comment"].startswith(subject + ":")]
    assert ours and {s["status"]["state"] for s in ours} == {"expired"}, ours
    # Lifted once the alerts resolved: nothing about worker2's replica reached the on-call.
    time.sleep(2 * SCRAPE)
    assert not [a for a in sink_alerts(host, "RedisInstanceDown", "firing", started)
                if a["labels"].get("instance") == replica]
    assert not sink_alerts(host, "RedisReplicaDown", "firing", started)
    wait_until("replica-2 linked again", 60, lambda: scalar(
        host, 'redis_master_link_up{job="redis", instance="redis-replica-2"}') == 1, interval=2)
