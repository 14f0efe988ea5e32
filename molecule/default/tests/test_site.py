"""site.yml on the lab, as a user of the service sees it: services, the edge, Redis, the registry."""
from __future__ import annotations

import json
import os
import re

import pytest

LAB = os.environ.get("SWARMLAB_LAB_NAME", "molecule-default")
STACK = "swarmlab"
EDGE = "http://127.0.0.1:8080"
testinfra_hosts = [f"docker://{LAB}-manager1"]


def services(host) -> dict[str, str]:
    out = host.check_output("docker service ls --format '{{.Name}} {{.Replicas}}'")
    return dict(line.split(" ", 1) for line in out.splitlines())


def curl_json(host, method: str, path: str) -> tuple[dict, dict]:
    cmd = host.run(f"curl -sS -i -X {method} -m 5 {EDGE}{path}")
    assert cmd.rc == 0, cmd.stderr
    head, _sep, body = cmd.stdout.replace("\r\n", "\n").partition("\n\n")
    headers = dict(
        (k.strip().lower(), v.strip()) for k, _sep, v in (line.partition(":") for line in head.splitlines()[1:])
    )
    assert head.split()[1] == "200", cmd.stdout
    return json.loads(body), headers


def test_every_service_runs_its_replicas(host):
    svc = services(host)
    assert svc[f"{STACK}_web"] == "4/4"
    assert svc[f"{STACK}_redis-master"] == "1/1"
    assert svc[f"{STACK}_redis-replica-1"] == "1/1"
    assert svc[f"{STACK}_redis-replica-2"] == "1/1"
    running, desired = svc[f"{STACK}_edge"].split("/")
    assert int(running) >= 1 and running == desired


def test_web_tasks_spread_over_nodes(host):
    out = host.check_output(
        f"docker service ps {STACK}_web --filter desired-state=running --format '{{{{.Node}}}}'"
    )
    assert len(set(out.split())) >= 2, out


def test_increments_through_the_edge_are_exact(host):
    before, _headers = curl_json(host, "GET", "/api/counter")
    for _attempt in range(20):
        curl_json(host, "POST", "/api/counter/increment")
    after, _headers = curl_json(host, "GET", "/api/counter")
    assert after["value"] - before["value"] == 20


def test_the_edge_spreads_requests_over_all_replicas(host):
    served = set()
    for _attempt in range(100):
        _body, headers = curl_json(host, "GET", "/api/counter")
        served.add(headers["x-served-by"])
    assert len(served) == 4, served


def redis_info(host, service: str) -> str:
    # Run redis-cli in the service's own container, on whichever node it runs.
    node = host.check_output(
        f"docker service ps {STACK}_{service} --filter desired-state=running --format '{{{{.Node}}}}'"
    ).split()[0]
    node_host = host.get_host(f"docker://{LAB}-{node}")
    cid = node_host.check_output(f"docker ps -q --filter label=com.docker.swarm.service.name={STACK}_{service}")
    return node_host.check_output(
        f"docker exec {cid} sh -c 'REDISCLI_AUTH=$(cat /run/secrets/redis_password) redis-cli info replication'"
    )


def task_address(host, service: str) -> str:
    network = json.loads(host.check_output(f"docker network inspect --verbose {STACK}_backend"))[0]
    return network["Services"][f"{STACK}_{service}"]["Tasks"][0]["EndpointIP"]


@pytest.mark.parametrize("replica", ["redis-replica-1", "redis-replica-2"])
def test_redis_replicas_follow_the_master(host, replica):
    info = redis_info(host, replica)
    assert "role:slave" in info
    assert "master_link_status:up" in info
    # By service name as deployed, or by the master task's address once Sentinel has repointed it.
    master_host = re.search(r"master_host:(\S+)", info).group(1)
    assert master_host in ("redis-master", task_address(host, "redis-master")), info


def test_redis_master_sees_two_replicas(host):
    info = redis_info(host, "redis-master")
    assert "role:master" in info
    assert "connected_slaves:2" in info


def test_the_pushed_image_is_in_the_registry_catalog(host):
    image = host.check_output(f"docker service inspect {STACK}_web --format '{{{{.Spec.TaskTemplate.ContainerSpec.Image}}}}'")
    registry, _sep, ref = image.partition("/")
    repo, _sep, tag = ref.split("@")[0].partition(":")
    ca = f"/etc/docker/certs.d/{registry}/ca.crt"
    catalog = json.loads(host.check_output(f"curl -sS --cacert {ca} -u moby:gordon https://{registry}/v2/_catalog"))
    assert repo in catalog["repositories"]
    tags = json.loads(host.check_output(f"curl -sS --cacert {ca} -u moby:gordon https://{registry}/v2/{repo}/tags/list"))
    assert tag in tags["tags"]
